"""handprop losses: fused, numerically stable, derived by hand."""
from .base import Loss
from .softmax_cross_entropy import SoftmaxCrossEntropy, log_softmax, softmax

__all__ = ["Loss", "SoftmaxCrossEntropy", "log_softmax", "softmax"]

"""handprop losses: fused, numerically stable, derived by hand."""
from .softmax_cross_entropy import SoftmaxCrossEntropy, log_softmax, softmax

__all__ = ["SoftmaxCrossEntropy", "log_softmax", "softmax"]

"""handprop losses: fused, numerically stable, derived by hand."""
from .base import Loss
from .bce_with_logits import BCEWithLogitsLoss
from .regression import HuberLoss, L1Loss, MSELoss
from .softmax_cross_entropy import SoftmaxCrossEntropy, log_softmax, softmax

__all__ = ["Loss", "BCEWithLogitsLoss", "HuberLoss", "L1Loss", "MSELoss", "SoftmaxCrossEntropy",
           "log_softmax", "softmax"]

"""handprop training: SGD, the training loop, data, checkpoints and gradcheck."""
from .loop import evaluate, fit, predict
from .sgd import SGD

__all__ = ["SGD", "evaluate", "fit", "predict"]

"""handprop training: SGD, the training loop, data, checkpoints, gradcheck and loss curves."""
from .loop import evaluate, fit, predict
from .plot import plot_history
from .sgd import SGD

__all__ = ["SGD", "evaluate", "fit", "plot_history", "predict"]

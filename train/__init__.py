"""handprop training: SGD, the training loop, L-BFGS, data, checkpoints, gradcheck, loss curves."""
from .lbfgs import LBFGSResult, fit_lbfgs
from .loop import evaluate, fit, predict
from .plot import plot_history
from .sgd import SGD

__all__ = ["SGD", "LBFGSResult", "evaluate", "fit", "fit_lbfgs", "plot_history", "predict"]

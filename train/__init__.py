"""handprop training: optimizers, the training loop, L-BFGS, data, checkpoints, gradcheck and
loss curves."""
from .lbfgs import LBFGSResult, fit_lbfgs
from .loop import evaluate, fit, predict
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop
from .plot import plot_history

__all__ = ["SGD", "Adam", "AdamW", "LBFGSResult", "Optimizer", "RMSprop", "evaluate", "fit",
           "fit_lbfgs", "plot_history", "predict"]

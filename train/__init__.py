"""handprop training: optimizers, the training loop, data, checkpoints and gradcheck."""
from .loop import evaluate, fit, predict
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "evaluate", "fit", "predict"]

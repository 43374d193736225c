"""handprop training: optimizers, schedules, the training loop, data, checkpoints, gradcheck."""
from .loop import evaluate, fit, predict
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop
from .schedule import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR, StepLR, clip_grad_norm

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "CosineAnnealingLR", "LinearLR",
           "LRScheduler", "SequentialLR", "StepLR", "clip_grad_norm", "evaluate", "fit", "predict"]

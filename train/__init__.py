"""handprop training: optimizers, schedules, the training loop, L-BFGS, data, checkpoints,
gradcheck and loss curves."""
from .clip import clip_grad_norm
from .lbfgs import LBFGSResult, fit_lbfgs
from .loop import evaluate, fit, predict
from .memory import keep_freed_memory
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop
from .plot import plot_history
from .schedule import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR, StepLR
from .warmup_cosine import WarmupCosineLR

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "CosineAnnealingLR", "LinearLR",
           "LRScheduler", "SequentialLR", "StepLR", "clip_grad_norm", "LBFGSResult", "evaluate",
           "fit", "fit_lbfgs", "keep_freed_memory", "plot_history", "predict", "WarmupCosineLR"]

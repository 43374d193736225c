"""Optimizers over one flat parameter buffer: SGD, Adam, AdamW and RMSprop, with the update
rules of ``torch.optim`` (docs/optimizers.md derives them). Each file holds one update rule,
its docstring and its ``step()``; ``base.py`` holds what they share (the flat buffers, the
declared option checks, ``state_dict``/``load_state_dict``)."""
from .adam import Adam, AdamW
from .base import Optimizer
from .groups import decay_groups
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "decay_groups"]

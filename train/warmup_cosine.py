"""nanoGPT's learning-rate shape by iterations: a linear warm-up, then half a cosine down to a
floor (``warmup_cosine_lr``), and the schedule that sets it after every optimizer step
(``WarmupCosineLR``, an ``LRScheduler`` whose ``last_epoch`` counts iterations).
docs/optimizers.md, "nanoGPT's schedule, by iterations", derives it."""
from __future__ import annotations

import math

from .optim import Optimizer
from .schedule import LRScheduler, _at_least_0, _epoch


def warmup_cosine_lr(it: int, *, lr: float, min_lr: float, warmup_iters: int,
                     lr_decay_iters: int) -> float:
    """nanoGPT's learning rate at iteration ``it`` (0 for the first step), in its order of
    operations: linear warm-up ``lr * (it + 1) / (warmup_iters + 1)`` while it < warmup_iters,
    then a half cosine from lr down to ``min_lr`` at ``lr_decay_iters``, then ``min_lr``."""
    if it < warmup_iters:
        return lr * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:  # nanoGPT's it > lr_decay_iters; at equality its cosine is min_lr
        return min_lr
    ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


class WarmupCosineLR(LRScheduler):
    """nanoGPT's schedule by iterations (``warmup_cosine_lr``), stepped after every
    optimizer step: built on the optimizer it sets the lr of iteration 0; ``last_epoch``
    counts iterations. A closed form of ``base_lr`` (the optimizer's lr when built), so a
    change of ``opt.lr`` by hand does not carry on.

    Examples
    --------
    >>> from handprop.layers import Linear
    >>> from handprop.train import AdamW
    >>> opt = AdamW(Linear(2, 1), lr=1e-3)
    >>> sched = WarmupCosineLR(opt, warmup_iters=100, lr_decay_iters=2000, min_lr=1e-4)
    >>> opt.lr                                 # 1e-3 * 1 / 101
    9.900990099009901e-06
    """

    option_names = ("warmup_iters", "lr_decay_iters", "min_lr")
    warmup_iters: int
    lr_decay_iters: int
    min_lr: float

    def __init__(self, optimizer: Optimizer, *, warmup_iters: int, lr_decay_iters: int,
                 min_lr: float) -> None:
        super().__init__(optimizer, warmup_iters=warmup_iters, lr_decay_iters=lr_decay_iters,
                         min_lr=min_lr)

    def _check_options(self, *, warmup_iters, lr_decay_iters, min_lr) -> dict:
        who = "WarmupCosineLR"
        warmup = _epoch(who, "warmup_iters", warmup_iters, minimum=0)
        decay = _epoch(who, "lr_decay_iters", lr_decay_iters, minimum=0)
        if decay < warmup:
            raise ValueError(f"{who}: expected lr_decay_iters >= warmup_iters (the cosine "
                             f"starts after the warm-up), got {decay} < {warmup}")
        return {"warmup_iters": warmup, "lr_decay_iters": decay,
                "min_lr": _at_least_0(who, "min_lr", min_lr)}

    def get_lr(self) -> float:
        return self.closed_form()

    def closed_form(self) -> float:
        return warmup_cosine_lr(self.last_epoch, lr=self.base_lr, min_lr=self.min_lr,
                                warmup_iters=self.warmup_iters, lr_decay_iters=self.lr_decay_iters)

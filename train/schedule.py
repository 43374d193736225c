"""Learning-rate schedules with torch.optim.lr_scheduler's semantics.

A schedule is built on an optimizer and stepped once per epoch, after the epoch's training::

    opt = SGD(model, lr=0.1, momentum=0.9)
    sched = CosineAnnealingLR(opt, T_max=30)    # sets opt.lr for epoch 1 (here: 0.1)
    for epoch in range(30):
        train_one_epoch(...)                    # opt.step() per batch
        sched.step()                            # opt.lr for the next epoch

``fit(..., scheduler=sched)`` does exactly that. Each schedule gives the same lr sequence as
PyTorch's, through the same recursions (each lr computed from the previous one, so a change
of ``opt.lr`` by hand carries on, as in PyTorch), and starts from ``opt.initial_lr``: the lr
when the first schedule was built on the optimizer. ``state_dict()`` is plain JSON data.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any, ClassVar

from ..layers import validate
from .optim import Optimizer


def _positive(who: str, name: str, value: object) -> float:
    return validate.real(who, name, value, low=0, low_open=True)


def _at_least_0(who: str, name: str, value: object) -> float:
    return validate.real(who, name, value, low=0)


MAX_EPOCHS = 10**12
"""The bound of every count of epochs (or iterations) a schedule holds: far past any run, and
exact as a float, so a count read from a damaged checkpoint (``last_epoch=10**400``) is
refused when it is loaded instead of overflowing the lr's arithmetic later."""


def _epoch(who: str, name: str, value: object, minimum: int = 1) -> int:
    number = validate.integer(who, name, value, low=minimum)
    if number > MAX_EPOCHS:
        raise ValueError(f"{who}: expected {name} <= {MAX_EPOCHS:.0e}, got an int of "
                         f"{len(str(number)) if number.bit_length() < 10_000 else 'over 3000'} digits")
    return number


class LRScheduler:
    """Base of the schedules: holds the optimizer, ``base_lr`` and ``last_epoch`` (0 after
    construction, +1 per ``step()``), and sets ``optimizer.lr`` from ``get_lr()``.

    Subclasses define ``get_lr`` (the recursive form, from the optimizer's current lr),
    ``closed_form`` (the lr at ``last_epoch`` from ``base_lr`` alone; SequentialLR starts a
    schedule with it) and ``_check_options``, and name their settings in ``option_names``.
    """

    option_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, optimizer: Optimizer, **options) -> None:
        checked = self._check_options(**options)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an optimizer of handprop.train "
                            f"(SGD, Adam, ...), got {type(optimizer).__name__}")
        for key, value in checked.items():
            setattr(self, key, value)
        self.optimizer = optimizer
        if optimizer.initial_lr is None:
            optimizer.initial_lr = optimizer.lr
        self.base_lr = optimizer.initial_lr
        self.last_epoch = -1
        self.step()  # epoch 0's lr, as PyTorch's constructor does

    def _check_options(self, *args: Any, **options: Any) -> dict:
        return options

    def get_lr(self) -> float:
        raise NotImplementedError

    def closed_form(self) -> float:
        raise NotImplementedError

    def step(self) -> None:
        """Move to the next epoch and set the optimizer's lr for it."""
        self.last_epoch += 1
        self._set(self.get_lr())

    def _start(self) -> None:
        """Start at epoch 0 from ``base_lr`` (SequentialLR, at this schedule's milestone)."""
        self.last_epoch = 0
        self._set(self.closed_form())

    def _set(self, lr: float) -> None:
        self.optimizer._schedule_lr(lr)
        self.last_lr = self.optimizer.lr

    def get_last_lr(self) -> float:
        """The lr this schedule set last (PyTorch returns a list, one per parameter group)."""
        return self.last_lr

    def state_dict(self) -> dict:
        """``last_epoch``, ``base_lr``, ``last_lr`` and the settings: JSON values."""
        return {"last_epoch": self.last_epoch, "base_lr": self.base_lr, "last_lr": self.last_lr,
                **{key: getattr(self, key) for key in self.option_names}}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` gave; everything is checked before anything changes
        (a ValueError or TypeError naming the entry). As in PyTorch, the optimizer's lr is
        the optimizer's own state: load it with ``optimizer.load_state_dict``."""
        self._apply(self._checked(state))

    def _checked(self, state: object) -> dict:
        who = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"{who}: expected a state dict, got {type(state).__name__}")
        required = ("last_epoch", "base_lr", "last_lr", *self.option_names)
        missing = [key for key in required if key not in state]
        unexpected = sorted(map(str, state.keys() - set(required)))
        if missing or unexpected:
            raise ValueError(f"{who}: the state does not match a {who}'s: "
                             f"{validate.mismatch(missing, unexpected)}")
        checked = self._check_options(**{key: state[key] for key in self.option_names})
        # -1: a schedule of a SequentialLR whose turn has not come
        checked["last_epoch"] = _epoch(who, "last_epoch", state["last_epoch"], minimum=-1)
        checked["base_lr"] = _positive(who, "base_lr", state["base_lr"])
        checked["last_lr"] = _at_least_0(who, "last_lr", state["last_lr"])
        return checked

    def _apply(self, checked: dict) -> None:
        for key, value in checked.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={getattr(self, key)!r}" for key in self.option_names)
        return f"{type(self).__name__}({options})"


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs, ``torch.optim.lr_scheduler.StepLR``.

    Recursion, at epoch t (``last_epoch``)::

        lr_t = lr_{t-1} * gamma   if t > 0 and t % step_size == 0   else   lr_{t-1}

    Closed form: ``lr_t = base_lr * gamma ** (t // step_size)``.
    """

    option_names = ("step_size", "gamma")
    step_size: int
    gamma: float

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer, step_size=step_size, gamma=gamma)

    def _check_options(self, *, step_size, gamma) -> dict:
        return {"step_size": _epoch("StepLR", "step_size", step_size),
                "gamma": _positive("StepLR", "gamma", gamma)}

    def get_lr(self) -> float:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma

    def closed_form(self) -> float:
        return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from ``base_lr`` down to ``eta_min`` over ``T_max`` epochs,
    ``torch.optim.lr_scheduler.CosineAnnealingLR`` (without restarts: past T_max the cosine
    climbs back up, as PyTorch's does).

    Closed form (SGDR, Loshchilov and Hutter, 2017), at epoch t::

        lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    PyTorch computes it recursively, each lr from the previous one, and so does this::

        lr_t = eta_min + (lr_{t-1} - eta_min) * (1 + cos(pi * t / T_max))
                                              / (1 + cos(pi * (t - 1) / T_max))

    except where the denominator is 0 (t - 1 an odd multiple of T_max, the bottom of the
    cosine), where it adds the first step up: ``lr_{t-1} + (base_lr - eta_min) * (1 -
    cos(pi / T_max)) / 2``. With ``eta_min=0`` the lr reaches 0 at t = T_max.
    """

    option_names = ("T_max", "eta_min")
    T_max: int
    eta_min: float

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer, T_max=T_max, eta_min=eta_min)

    def _check_options(self, *, T_max, eta_min) -> dict:
        return {"T_max": _epoch("CosineAnnealingLR", "T_max", T_max),
                "eta_min": _at_least_0("CosineAnnealingLR", "eta_min", eta_min)}

    def get_lr(self) -> float:
        t, T, lr, eta_min = self.last_epoch, self.T_max, self.optimizer.lr, self.eta_min
        if t == 0:
            return lr
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
        return ((1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (lr - eta_min) + eta_min)

    def closed_form(self) -> float:
        return (self.eta_min + (self.base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2)


class LinearLR(LRScheduler):
    """Scale the lr by a factor going linearly from ``start_factor`` to ``end_factor`` over
    ``total_iters`` epochs (a warm-up, with the defaults), ``torch.optim.lr_scheduler.LinearLR``.

    Closed form, at epoch t: ``lr_t = base_lr * (start + (end - start) * min(t, total_iters)
    / total_iters)``. PyTorch's recursion, used here::

        lr_0 = lr * start_factor
        lr_t = lr_{t-1} * (1 + (end - start) / (total_iters * start + (t - 1) * (end - start)))
                                                                      for 0 < t <= total_iters
        lr_t = lr_{t-1}                                               for t > total_iters

    (the ratio of consecutive factors of the closed form).
    """

    option_names = ("start_factor", "end_factor", "total_iters")
    start_factor: float
    end_factor: float
    total_iters: int

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5) -> None:
        super().__init__(optimizer, start_factor=start_factor, end_factor=end_factor,
                         total_iters=total_iters)

    def _check_options(self, *, start_factor, end_factor, total_iters) -> dict:
        start = validate.real("LinearLR", "start_factor", start_factor, low=0, high=1,
                              low_open=True)
        end = validate.real("LinearLR", "end_factor", end_factor, low=0, high=1)
        return {"start_factor": start, "end_factor": end,
                "total_iters": _epoch("LinearLR", "total_iters", total_iters)}

    def get_lr(self) -> float:
        t, lr = self.last_epoch, self.optimizer.lr
        start, end, total = self.start_factor, self.end_factor, self.total_iters
        if t == 0:
            return lr * start
        if t > total:
            return lr
        return lr * (1.0 + (end - start) / (total * start + (t - 1) * (end - start)))

    def closed_form(self) -> float:
        start, end, total = self.start_factor, self.end_factor, self.total_iters
        return self.base_lr * (start + (end - start) * min(total, self.last_epoch) / total)


class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another, switching at the epochs in ``milestones``,
    ``torch.optim.lr_scheduler.SequentialLR``: a warm-up, then a decay::

        warmup = LinearLR(opt, start_factor=0.2, total_iters=4)
        decay = CosineAnnealingLR(opt, T_max=26)
        sched = SequentialLR(opt, [warmup, decay], milestones=[4])

    At construction the lr goes back to ``opt.initial_lr`` and the first schedule starts
    again; at milestone i schedule i + 1 starts from its closed form at epoch 0 (its
    ``base_lr``), then steps by its own recursion.
    """

    def __init__(self, optimizer: Optimizer, schedulers: list[LRScheduler],
                 milestones: list[int]) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"SequentialLR: expected an optimizer of handprop.train, got "
                            f"{type(optimizer).__name__}")
        if not isinstance(schedulers, (list, tuple)) or not schedulers:
            raise ValueError(f"SequentialLR: expected a non-empty list of schedules, got "
                             f"{schedulers!r}")
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler) or isinstance(s, SequentialLR):
                raise TypeError(f"SequentialLR: expected StepLR, CosineAnnealingLR or LinearLR "
                                f"schedules, got {type(s).__name__} at position {i}")
            if s.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: schedule {i}, {s!r}, was built on another "
                                 f"optimizer, {s.optimizer!r}")
        self.schedulers = list(schedulers)
        self.milestones = self._checked_milestones(milestones)
        self.optimizer = optimizer
        self.last_epoch = 0
        optimizer._schedule_lr(self.schedulers[0].base_lr)  # the initial lr
        for s in self.schedulers:  # undo the step each schedule took when it was built
            s.last_epoch -= 1
        self.schedulers[0].step()
        self.last_lr = self.schedulers[0].last_lr

    def _checked_milestones(self, milestones: object) -> list[int]:
        if not isinstance(milestones, (list, tuple)) or len(milestones) != len(self.schedulers) - 1:
            raise ValueError(f"SequentialLR: expected {len(self.schedulers) - 1} milestones (one "
                             f"fewer than the schedules), got {milestones!r}")
        checked = [_epoch("SequentialLR", "each milestone", m) for m in milestones]
        if any(a >= b for a, b in zip(checked, checked[1:])):
            raise ValueError(f"SequentialLR: expected increasing milestones, got {checked}")
        return checked

    def step(self) -> None:
        """Move to the next epoch; the schedule whose span holds it sets the lr."""
        self.last_epoch += 1
        i = bisect_right(self.milestones, self.last_epoch)
        current = self.schedulers[i]
        if i > 0 and self.milestones[i - 1] == self.last_epoch:
            current._start()
        else:
            current.step()
        self.last_lr = current.last_lr

    def state_dict(self) -> dict:
        """``last_epoch``, ``last_lr``, ``milestones`` and each schedule's state, in order."""
        return {"last_epoch": self.last_epoch, "last_lr": self.last_lr,
                "milestones": list(self.milestones),
                "schedulers": [s.state_dict() for s in self.schedulers]}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` gave, every schedule's state checked before any is
        loaded."""
        if not isinstance(state, dict):
            raise TypeError(f"SequentialLR: expected a state dict, got {type(state).__name__}")
        required = ("last_epoch", "last_lr", "milestones", "schedulers")
        missing = [key for key in required if key not in state]
        unexpected = sorted(map(str, state.keys() - set(required)))
        if missing or unexpected:
            raise ValueError(f"SequentialLR: the state does not match a SequentialLR's: "
                             f"{validate.mismatch(missing, unexpected)}")
        last_epoch = _epoch("SequentialLR", "last_epoch", state["last_epoch"], minimum=0)
        last_lr = _at_least_0("SequentialLR", "last_lr", state["last_lr"])
        milestones = state["milestones"]
        if not isinstance(milestones, (list, tuple)) or list(milestones) != self.milestones:
            raise ValueError(f"SequentialLR: the state's milestones {state['milestones']!r} "
                             f"differ from this schedule's {self.milestones}")
        states = state["schedulers"]
        if not isinstance(states, (list, tuple)) or len(states) != len(self.schedulers):
            raise ValueError(f"SequentialLR: expected the states of {len(self.schedulers)} "
                             f"schedules, got {states!r}")
        checked = [s._checked(sub) for s, sub in zip(self.schedulers, states)]
        for s, sub in zip(self.schedulers, checked):
            s._apply(sub)
        self.last_epoch, self.last_lr = last_epoch, last_lr

    def __repr__(self) -> str:
        return f"SequentialLR([{', '.join(map(repr, self.schedulers))}], milestones={self.milestones})"

"""gradcheck's own arguments, checked before any evaluation.

A mistake in the call (``step=0``, ``tol=-1``, ``directions=0``) or in the values it is given
(a NaN in x or in a parameter, an empty x, something that is not a layer) is gradcheck's to
name, with a TypeError or ValueError saying which argument, what was expected and what was got.
Found later, by the differences, it would read as a broken layer: a NaN compares unequal to
itself, so two evaluations at the same x look "stochastic", and an empty x has no element that
could be checked.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import validate
from .objective import is_ids


def check_arguments(subject: Any, x: Any, targets: Any = None, *, seed: Any = 0, step: Any = 1e-6,
                    tol: Any = 1e-7, fast: Any = None, directions: Any = 3,
                    not_differentiated: Any = (), progress: Any = None) -> tuple:
    """The inputs as a tuple, once every argument of a gradcheck call (the same arguments, the
    same defaults) is known to be usable; a TypeError or ValueError naming the argument
    otherwise. Nothing is evaluated: a caller (the CLI) can tell the call's mistakes from the
    layer's."""
    if isinstance(subject, type):
        raise TypeError(f"gradcheck: expected a layer or a loss as the first argument, got the class "
                        f"{subject.__name__}; pass an instance, {subject.__name__}(...) with its arguments")
    who = f"gradcheck {subject!r}" if _has_methods(subject) else "gradcheck"
    if not _has_methods(subject):
        raise TypeError(f"gradcheck: expected a layer or a loss (an object with forward and backward "
                        f"methods) as the first argument, got {_shown(subject)}")
    validate.integer(who, "seed", seed, low=0)
    validate.real(who, "step", step, low=0, low_open=True)
    validate.real(who, "tol", tol, low=0, low_open=True)
    if fast is not None:
        validate.flag(who, "fast", fast)
    validate.integer(who, "directions", directions, low=1)
    if progress is not None:
        validate.flag(who, "progress", progress)
    inputs = _inputs(who, x)
    _not_differentiated(who, not_differentiated, len(inputs))
    names = (["pred" if targets is not None else "x"] if len(inputs) == 1
             else [f"input {i}" for i in range(len(inputs))])
    for name, value in zip(names, inputs):
        if value.size == 0:
            raise ValueError(f"{who}: {name} has no elements (shape {value.shape}), so there is "
                             f"nothing to difference; check with at least one sample")
        _finite(who, name, value)
    for key, value in getattr(subject, "params", {}).items():
        if isinstance(value, np.ndarray):
            _finite(who, f"parameter {key}", value)
    if targets is not None and isinstance(targets, np.ndarray):
        _finite(who, "targets", targets)
    _require_float64(subject, inputs, who, targets is None)
    return inputs


def _has_methods(subject: Any) -> bool:
    return callable(getattr(subject, "forward", None)) and callable(getattr(subject, "backward", None))


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _inputs(who: str, x: Any) -> tuple[np.ndarray, ...]:
    """x as a tuple of arrays: one array, or a tuple (or list) of them for several inputs."""
    if isinstance(x, np.ndarray):
        return (x,)
    if isinstance(x, (tuple, list)):
        if not x:
            raise ValueError(f"{who}: expected x as an ndarray or a tuple of ndarrays (several "
                             f"inputs), got an empty {type(x).__name__}")
        for i, value in enumerate(x):
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{who}: expected x as an ndarray or a tuple of ndarrays (several "
                                f"inputs), got {_shown(value)} as input {i}; pass np.asarray(...) "
                                f"of float64 (integer token ids pass through)")
        return tuple(x)
    raise TypeError(f"{who}: expected x as an ndarray or a tuple of ndarrays (several inputs), "
                    f"got {_shown(x)}")


def _not_differentiated(who: str, positions: Any, count: int) -> None:
    if not isinstance(positions, Sequence) or isinstance(positions, str):
        raise TypeError(f"{who}: expected not_differentiated as a sequence of input positions, "
                        f"got {_shown(positions)}")
    for position in positions:
        validate.integer(who, "each of not_differentiated", position, low=0, high=count - 1)


def _finite(who: str, name: str, value: np.ndarray) -> None:
    """A NaN or infinity in a float array: the differences around it are meaningless."""
    if is_ids(value) or value.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(value)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{who}: {name} has {int(bad.sum())} of {value.size} elements NaN or "
                         f"infinite (the first, {value[first]}, at {first}); differences need "
                         f"finite values: check at finite ones")


def _require_float64(subject: Any, inputs: tuple, name: str, is_layer: bool) -> None:
    how = "build it with dtype=np.float64 and pass x.astype(np.float64)"
    for x in inputs:
        if isinstance(x, np.ndarray) and (x.dtype == np.float64 or (is_layer and is_ids(x))):
            continue
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{name}: differences need float64 to resolve errors far "
                        f"below 1e-7, got an input of {got}; {how} (integer token ids are "
                        f"passed through as they are)")
    for key, p in getattr(subject, "params", {}).items():
        if getattr(p, "dtype", None) != np.float64:
            raise TypeError(f"{name}: differences need float64 to resolve errors far "
                            f"below 1e-7, but parameter {key} is {getattr(p, 'dtype', type(p).__name__)}; "
                            f"{how}")

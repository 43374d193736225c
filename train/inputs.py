"""What ``fit``, ``evaluate`` and ``predict`` are given, checked and converted once, up front:
inputs to the model's dtype (or kept as integer token ids), targets as the loss wants them,
and fit's other arguments, before anything touches the model."""
from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from ..layers import DataParallel, validate
from ..layers.data_parallel import MAX_WORKERS
from ..layers.flat_params import flat_buffers
from .clip import checked_max_norm
from .data import batch_bounds
from .files import writable_target
from .protocols import (
    BuiltForModel,
    BuiltOnOptimizer,
    HasTable,
    IgnoresIndex,
    OnFlatBuffers,
    SaysTargets,
    Walks,
    reduction,
    takes_ids,
    targets,
)


def model_dtype(model) -> np.dtype | None:
    """The dtype of the model's parameters, or None for a model without any."""
    for p in model.params.values():
        return p.dtype
    return None


def as_inputs(who: str, model, X, name: str = "X") -> np.ndarray:
    """X as an array of the model's dtype (float64 for a model without parameters), checked
    once, up front: real-valued, not empty, and finite (after the conversion, so a value
    too large for float32 is caught too). For a model that takes token ids
    (``model.takes_ids``), X stays integers: see ``as_ids``."""
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise TypeError(f"{who}: expected real-valued inputs {name}, got an array of dtype {X.dtype}")
    if X.ndim == 0 or len(X) == 0:
        raise ValueError(f"{who}: expected at least one sample in {name}, got an array of shape "
                         f"{X.shape}")
    if takes_ids(model):
        return as_ids(who, model, X, name)
    dtype = model_dtype(model) or (X.dtype if X.dtype.kind == "f" else np.dtype(np.float64))
    with np.errstate(over="ignore"):  # an overflow to inf is reported below, by row
        X = X.astype(dtype, copy=False)
    return check_finite(who, name, X)


def as_ids(who: str, model, X: np.ndarray, name: str = "X") -> np.ndarray:
    """Token ids for a model that takes them, never cast to float: an integer X as it is,
    a float X of whole numbers as int64; each id checked >= 0 and below the size of the
    first id-taking layer's table (its ``num_embeddings``, where it has one)."""
    if X.dtype.kind == "f":
        X = whole_numbers(who, name, X, "token ids")
    table, owner = ids_table(model)
    low, high = X.min(), X.max()
    if low < 0 or (table is not None and high >= table):
        bad = (X < 0) if table is None else (X < 0) | (X >= table)
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        limit = f"[0, {table})" if table is not None else ">= 0"
        raise ValueError(f"{who}: {name}{list(where)} = {X[where]} is not a token id of {owner!r} "
                         f"(expected ids in {limit}; {int(bad.sum())} such ids)")
    return X


def ids_table(model) -> tuple[int | None, Any]:
    """The table size of the first layer in the model's tree that takes ids and has a
    ``num_embeddings``, with that layer; (None, model) where none says its size."""
    walk = model.named_modules() if isinstance(model, Walks) else [("", model)]
    for _, layer in walk:
        if takes_ids(layer) and isinstance(layer, HasTable):
            return int(layer.num_embeddings), layer
    return None, model


def whole_numbers(who: str, name: str, a: np.ndarray, what: str) -> np.ndarray:
    """A float array of whole numbers as int64; a ValueError naming the first that is not."""
    fractional = ~np.isfinite(a) | (a != np.round(a))
    if fractional.any():
        where = [int(i) for i in np.argwhere(fractional)[0]]
        raise ValueError(f"{who}: expected whole-number {what} {name}, got {a[tuple(where)].item()!r} "
                         f"at {name}{where} ({int(fractional.sum())} such values); they are "
                         f"never truncated")
    return a.astype(np.int64)


def check_finite(who: str, name: str, a: np.ndarray) -> np.ndarray:
    """``a`` if every value is finite, else a ValueError naming the first row that is not.
    One sum in the common case; the row search only when the sum is not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        if a.dtype.kind != "f" or math.isfinite(np.sum(a, dtype=np.float64)):
            return a
    bad_rows = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
    if not bad_rows.any():  # the sum overflowed, the values are fine
        return a
    i = int(np.flatnonzero(bad_rows)[0])
    row = a[i].reshape(-1)
    value = row[~np.isfinite(row)][0]
    raise ValueError(f"{who}: {name} holds {value} in row {i} ({int(bad_rows.sum())} such rows); "
                     f"non-finite data would poison the model (BatchNorm's running statistics, "
                     f"every weight): drop or repair those rows first")


def as_data(who: str, model, loss_fn, X, y, names: tuple[str, str] = ("X", "y")
            ) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) as ``as_inputs`` gives X, and y as the loss wants its targets: whole-number
    class labels as int64 (of any shape whose first axis is X's: (N,) or (N, T)), or values
    in the model's dtype. ``names`` are the names the caller gave them, for the errors."""
    x_name, y_name = names
    X = as_inputs(who, model, X, x_name)
    if reduction(loss_fn) not in ("mean", "sum"):
        raise ValueError(f"{who}: expected a loss that reduces to one number, got {loss_fn!r}; "
                         f"use reduction='mean' or 'sum'")
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != len(X):
        raise ValueError(f"{who}: {x_name} has {len(X)} samples but {y_name} has "
                         f"{len(y) if y.ndim else 'none (a scalar)'}")
    if targets(loss_fn) == "values":
        if y.dtype.kind not in "fiu":
            raise TypeError(f"{who}: expected real-valued targets {y_name}, got dtype {y.dtype}")
        dtype = X.dtype if X.dtype.kind == "f" else (model_dtype(model) or np.dtype(np.float64))
        return X, check_finite(who, y_name, y.astype(dtype, copy=False))
    if y.dtype.kind in "iu":
        return X, y.astype(np.int64, copy=False)
    if y.dtype.kind != "f":
        raise TypeError(f"{who}: expected integer class labels {y_name}, got dtype {y.dtype}")
    return X, whole_numbers(who, y_name, y, "class labels")


def check_targets(who: str, model, loss_fn, X: np.ndarray, y: np.ndarray,
                  names: tuple[str, str] = ("X", "y")) -> None:
    """Check converted (X, y) against the model before anything changes state: the model's
    output for the first sample, in eval mode (no running statistic moves, no dropout mask
    is drawn, the loss is not called); for a loss that declares its ``targets``, the
    targets' shape against that output's; and every class label against the model's number
    of outputs, naming the first bad label's position in ``y`` as passed (not its place in a
    shuffled batch)."""
    x_name, y_name = names
    was_training = getattr(model, "training", True)
    model.train(False)
    try:
        with _named(who, x_name, X):
            probe = model.forward(X[:1])
    finally:
        model.train(was_training)
    if not isinstance(loss_fn, SaysTargets) or not isinstance(probe, np.ndarray) or probe.ndim < 1:
        return
    classes = loss_fn.targets == "classes"
    want = probe.shape[1:-1] if classes else probe.shape[1:]
    if y.shape[1:] != want:
        what = "class labels" if classes else "targets"
        hint = (f"; if they are the same values, use {y_name}.reshape{(len(y), *want)}"
                if y.size == len(y) * math.prod(want) else "")
        raise ValueError(f"{who}: {y_name} has shape {y.shape}, but the model's outputs "
                         f"{(len(y), *probe.shape[1:])} need {what} of shape {(len(y), *want)}{hint}")
    if not classes or y.dtype.kind not in "iu" or probe.ndim < 2:
        return
    bad = (y < 0) | (y >= probe.shape[-1])
    if isinstance(loss_fn, IgnoresIndex):
        bad &= y != loss_fn.ignore_index
    if bad.any():
        where = [int(i) for i in np.argwhere(bad)[0]]
        raise ValueError(f"{who}: {y_name}{where} = {y[tuple(where)]} is not a class of the "
                         f"model's {probe.shape[-1]} outputs (expected labels in [0, "
                         f"{probe.shape[-1]}); {int(bad.sum())} such labels)")


@contextmanager
def _named(who: str, name: str, data: np.ndarray) -> Iterator[None]:
    """A ValueError or TypeError from the model or the loss, prefixed with the data's name."""
    try:
        yield
    except (ValueError, TypeError) as err:
        raise type(err)(f"{who}: {name} of shape {data.shape}: {err}") from err


class FitArguments(NamedTuple):
    """fit's arguments, checked and converted."""

    X: np.ndarray
    y: np.ndarray
    validation: tuple[np.ndarray, np.ndarray] | None
    epochs: int
    steps: int                      # optimizer steps per epoch
    clip_grad_norm: float | None
    workers: int
    runner: Any                     # what runs the batches: the model, or DataParallel(model)


def check_fit_arguments(model, loss_fn, optimizer, X, y, *, epochs, batch_size, validation,
                        checkpoint, scheduler, clip_grad_norm, checkpoint_extra, workers,
                        **options) -> FitArguments:
    """Every check of fit's arguments, in one place, before anything touches the model: a
    ValueError or TypeError naming the argument as the caller passed it. ``options`` are the
    plain ones (``seed``, ``shuffle``, ``progress``, ``resume``, ``on_epoch_end``)."""
    batch_size = checked_batch_size("fit", batch_size)
    _check_options(options)
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"fit: expected checkpoint as a path (str or os.PathLike), got "
                        f"{type(checkpoint).__name__}")
    if checkpoint is not None:
        writable_target(checkpoint)  # a missing folder is said now, not after the first epoch
    if checkpoint_extra is not None:
        _check_extra(checkpoint_extra)
    X, y = as_data("fit", model, loss_fn, X, y)
    check_targets("fit", model, loss_fn, X, y)
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise ValueError(f"fit: expected validation=(X_val, y_val), a pair, got "
                             f"{_describe(validation)}")
        validation = as_data("fit: validation", model, loss_fn, validation[0], validation[1],
                             names=("X_val", "y_val"))
        check_targets("fit: validation", model, loss_fn, validation[0], validation[1], names=("X_val", "y_val"))
    epochs = validate.integer("fit", "epochs", epochs, low=1)
    if isinstance(optimizer, BuiltForModel) and optimizer.model is not model:
        raise ValueError(f"fit: the optimizer {optimizer!r} was built for another model; "
                         f"build it with this one, e.g. SGD(model, lr=0.1)")
    if isinstance(optimizer, OnFlatBuffers) and not _views_of(optimizer, model):
        raise ValueError(f"fit: the model's parameters are no longer the views of {optimizer!r}'s "
                         f"flat buffer (an entry of model.params or model.grads was replaced "
                         f"after the optimizer was built); build the optimizer again")
    if scheduler is not None and (not isinstance(scheduler, BuiltOnOptimizer)
                                  or scheduler.optimizer is not optimizer):
        raise ValueError(f"fit: the scheduler {scheduler!r} was built on another optimizer; "
                         f"build it on this one, e.g. CosineAnnealingLR(optimizer, T_max={epochs})")
    if clip_grad_norm is not None:
        clip_grad_norm = checked_max_norm("fit", clip_grad_norm, "clip_grad_norm")
    steps = len(batch_bounds(len(X), batch_size, who="fit"))
    workers = validate.integer("fit", "workers", workers, low=1, high=MAX_WORKERS)
    return FitArguments(X, y, validation, epochs, steps, clip_grad_norm, workers,
                        batch_runner("fit", model, workers))


def batch_runner(who: str, model: Any, workers: int) -> Any:
    """What runs the batches of a training loop: ``model``, or for ``workers`` > 1 a
    ``DataParallel`` of that many copies of it; a ValueError naming ``who`` for a model whose
    training pass a split would change."""
    try:
        return DataParallel(model, workers) if workers > 1 else model
    except ValueError as err:
        raise ValueError(f"{who}: workers={workers}: {err}") from None


def blas_for(workers: int) -> contextlib.AbstractContextManager:
    """BLAS on one thread while ``workers`` > 1 copies of a model train (two copies that each
    ask for every core wait on each other); as it is otherwise."""
    return threadpool_limits(1, "blas") if workers > 1 else contextlib.nullcontext()


def checked_batch_size(who: str, batch_size: object) -> int:
    """A batch size: an int >= 1, named as the caller's argument."""
    return validate.integer(who, "batch_size", batch_size, low=1)


def _check_options(options: dict) -> None:
    """fit's plain options: a seed numpy accepts (an int >= 0), flags that are True or False,
    a callable ``on_epoch_end``."""
    validate.integer("fit", "seed", options["seed"], low=0)
    for name in ("shuffle", "progress", "resume"):
        validate.flag("fit", name, options[name])
    if options["on_epoch_end"] is not None and not callable(options["on_epoch_end"]):
        raise TypeError(f"fit: expected on_epoch_end to be callable (it is called with the "
                        f"epoch's metrics), got {type(options['on_epoch_end']).__name__}")


def _check_extra(extra: object) -> None:
    """checkpoint_extra as every checkpoint will save it: a dict of plain JSON data, without
    fit's own key; refused now rather than at the end of the first epoch."""
    if not isinstance(extra, dict):
        raise TypeError(f"fit: expected checkpoint_extra as a dict of plain JSON data, got "
                        f"{type(extra).__name__}")
    if "fit" in extra:
        raise ValueError("fit: checkpoint_extra cannot hold 'fit', fit's own entry")
    try:
        json.dumps(extra, default=_plain_scalar)
    except (TypeError, ValueError, RecursionError) as err:
        raise TypeError(f"fit: checkpoint_extra must hold plain JSON data (numbers, strings, "
                        f"lists, dicts), as every checkpoint saves it: {err}") from None


def _plain_scalar(value: object) -> object:
    if isinstance(value, np.generic):  # as checkpoint.save converts it
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON data")


def _views_of(optimizer: OnFlatBuffers, model) -> bool:
    """Whether the model's params and grads are still the views of the optimizer's buffers."""
    flat = flat_buffers(model)
    if flat is None:
        return optimizer.flat_params.size == 0
    return flat[0] is optimizer.flat_params and flat[1] is optimizer.flat_grads


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}; pass validation=(X_val, y_val)"
    return type(value).__name__


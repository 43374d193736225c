"""fit, evaluate, predict: the training loop, with tqdm progress bars."""
from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..layers.base import check_size
from ..layers.flat_params import flat_buffers
from .checkpoint import check, copy, save
from .data import batch_bounds, minibatches
from .files import writable_target
from .schedule import LRScheduler, checked_max_norm
from .schedule import clip_grad_norm as clip_gradients


def fit(model, loss_fn, optimizer, X, y, *, epochs: int, batch_size: int = 64,
        validation: tuple | None = None, seed: int = 0, shuffle: bool = True,
        progress: bool = True, on_epoch_end: Callable[[dict], None] | None = None,
        checkpoint: str | os.PathLike | None = None, resume: bool = False,
        scheduler: LRScheduler | None = None, clip_grad_norm: float | None = None,
        checkpoint_extra: dict | None = None) -> dict[str, list]:
    """Train ``model`` on (X, y) with minibatch steps of ``optimizer``.

    For each epoch: train on shuffled minibatches, validate, record, save a checkpoint.

    Parameters
    ----------
    model : Layer
        Put in training mode; its first layer computes no gradient for the data.
    loss_fn : Loss
        ``SoftmaxCrossEntropy``, ``BCEWithLogitsLoss``, ``MSELoss`` or another loss with
        ``forward(pred, target)`` and ``backward()``, reducing to one number ("mean" or "sum").
    optimizer : SGD, Adam, AdamW, RMSprop, or an object with ``step()``
        Built for this ``model`` (after which the model's params are views of its flat buffer).
    X, y : array-like
        Inputs (N, ...) and targets: (N,) class labels, or for a loss of values (MSE, BCE) an
        array of the model output's shape, (N, 1) for one output. Any real-valued X (a list,
        integers, float64) is converted once to the model's dtype, as Keras does, and so are
        targets that are values; the layers and losses themselves stay strict.
        Class labels must be whole numbers (``3.0`` is accepted, ``3.9`` is an error).
    epochs : int
        Number of passes over the data.
    batch_size : int
        Samples per step; a lone last sample joins the batch before it.
    validation : (X_val, y_val), optional
        Evaluated after every epoch.
    seed : int
        Seed of the shuffling; the same seed gives the same batches, and so bit-identical
        weights when the model starts from the same weights.
    shuffle : bool
        Shuffle the samples every epoch.
    progress : bool
        A tqdm bar per epoch with the running loss; it stays as one line with the epoch's
        metrics. ``False`` is silent.
    on_epoch_end : callable, optional
        Called with the epoch's metrics (a dict) after each epoch, after its checkpoint.
    checkpoint : path, optional
        Saved (atomically) at the end of every epoch: weights, running statistics, the
        optimizer's and the schedule's state, the history so far and the shuffling
        generator's state. Its folder is checked before the first epoch.
    resume : bool
        Continue from ``checkpoint`` if it exists: the run ends with weights bit-for-bit
        identical to a run that was never interrupted (same machine, same BLAS thread count).
        A killed run loses at most the epoch it was in. Without the file, training starts at
        epoch 1 (with a warning). The whole checkpoint is checked before anything is loaded;
        one written by ``checkpoint.save`` by hand holds no epoch to resume from (an error).
        An optimizer without ``load_state_dict`` resumes with the model alone.
    scheduler : StepLR, CosineAnnealingLR, LinearLR or SequentialLR, optional
        Built on ``optimizer``; stepped once after each epoch (PyTorch's convention). The
        history then records each epoch's ``lr``.
    clip_grad_norm : float, optional
        Clip the gradients' global L2 norm to this before every step (``clip_grad_norm``).
    checkpoint_extra : dict, optional
        More plain JSON data saved in every checkpoint beside fit's own ``"fit"`` entry
        (the command line keeps its settings there); ``checkpoint.read_extra`` reads it back.

    Returns
    -------
    dict of lists, one entry per epoch (like Keras' ``History.history``): ``epoch``, ``loss``,
    ``accuracy`` (running averages over the epoch's steps), ``val_loss`` and
    ``val_accuracy`` (with ``validation``), ``seconds``. Accuracy is there only where it
    means something (``Loss.count_correct``): class indices (arg-max) and binary logits
    (logit > 0 against a 0/1 target); a regression loss's history has no accuracy keys.

    Raises
    ------
    ValueError
        If X (or y, for values) holds NaN or infinity, naming the first such row: checked
        before anything touches the model.
    FloatingPointError
        If the loss turns NaN or infinite; the step that produced it is not applied.
    """
    if checkpoint is not None:
        writable_target(checkpoint)  # a missing folder is said now, not after the first epoch
        if "fit" in (checkpoint_extra or {}):
            raise ValueError("fit: checkpoint_extra cannot hold 'fit', fit's own entry")
    X, y = as_data("fit", model, loss_fn, X, y)
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise ValueError(f"fit: expected validation=(X_val, y_val), a pair, got "
                             f"{_describe(validation)}")
        validation = as_data("fit: validation", model, loss_fn, *validation)
    epochs = check_size("fit", "epochs", epochs)
    if getattr(optimizer, "model", model) is not model:
        raise ValueError(f"fit: the optimizer {optimizer!r} was built for another model; "
                         f"build it with this one, e.g. SGD(model, lr=0.1)")
    if hasattr(optimizer, "flat_params") and not _views_of(optimizer, model):
        raise ValueError(f"fit: the model's parameters are no longer the views of {optimizer!r}'s "
                         f"flat buffer (an entry of model.params or model.grads was replaced "
                         f"after the optimizer was built); build the optimizer again")
    if scheduler is not None and getattr(scheduler, "optimizer", None) is not optimizer:
        raise ValueError(f"fit: the scheduler {scheduler!r} was built on another optimizer; "
                         f"build it on this one, e.g. CosineAnnealingLR(optimizer, T_max={epochs})")
    if clip_grad_norm is not None:
        clip_grad_norm = checked_max_norm("fit", clip_grad_norm, "clip_grad_norm")
    steps = len(batch_bounds(len(X), batch_size))
    rng = np.random.default_rng(seed)
    history: dict[str, list] = {}
    first = 1
    if resume:
        first, history = _resume(checkpoint, model, optimizer, rng, scheduler)
    model.train()
    for epoch in range(first, epochs + 1):
        started = time.perf_counter()
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch",
                   disable=not progress, leave=True, dynamic_ncols=True)
        with bar:
            logs = {"epoch": epoch, **_train_epoch(model, loss_fn, optimizer, X, y, batch_size,
                                                   rng if shuffle else None, epoch, bar,
                                                   clip_grad_norm)}
            if validation is not None:
                scores = _evaluate(model, loss_fn, *validation)
                logs.update({f"val_{name}": value for name, value in scores.items()})
            if scheduler is not None:
                logs["lr"] = optimizer.lr  # the epoch's lr, before the schedule moves it
            logs["seconds"] = time.perf_counter() - started
            bar.set_postfix_str(format_metrics(logs, skip=("epoch", "seconds")))
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if scheduler is not None:
            scheduler.step()
        if checkpoint is not None:
            extra = {"epoch": epoch, "history": history, "rng": rng.bit_generator.state}
            if scheduler is not None:
                extra["scheduler"] = {"class": type(scheduler).__name__,
                                      "state": scheduler.state_dict()}
            save(checkpoint, model, optimizer if hasattr(optimizer, "state_dict") else None,
                 fit=extra, **(checkpoint_extra or {}))
        if on_epoch_end is not None:
            on_epoch_end(logs)
    return history


def _views_of(optimizer, model) -> bool:
    """Whether the model's params and grads are still the views of the optimizer's buffers."""
    flat = flat_buffers(model)
    if flat is None:
        return optimizer.flat_params.size == 0
    return flat[0] is optimizer.flat_params and flat[1] is optimizer.flat_grads


def _resume(checkpoint, model, optimizer, rng: np.random.Generator,
            scheduler: LRScheduler | None = None) -> tuple[int, dict]:
    """Load ``checkpoint`` into the model, optimizer, schedule and shuffling generator; return
    the first epoch still to run and the history so far. All or nothing: fit's own state is
    checked with the rest of the file before anything is loaded, and the schedule (loaded
    first, since its load checks it) is put back if the optimizer's load fails after it."""
    if checkpoint is None:
        raise ValueError("fit: resume=True needs checkpoint=PATH to resume from")
    if not os.path.exists(checkpoint):
        warnings.warn(f"fit: no checkpoint at {checkpoint} to resume from; starting at "
                      f"epoch 1", stacklevel=3)
        return 1, {}
    found: dict = {}
    optimizer = optimizer if hasattr(optimizer, "load_state_dict") else None
    checked = check(checkpoint, model, optimizer,
                    check_extra=lambda extra: found.update(fit_state(checkpoint, extra, rng)))
    before = None if scheduler is None else scheduler.state_dict()
    _load_scheduler(checkpoint, scheduler, found.get("scheduler"))
    try:
        copy(checked, model, optimizer)
    except Exception:
        if scheduler is not None and before is not None:
            scheduler.load_state_dict(before)
        raise
    rng.bit_generator.state = found["rng"]
    return found["epoch"] + 1, found["history"]


def fit_state(checkpoint, extra: dict, rng: np.random.Generator) -> dict:
    """The ``"fit"`` entry of a checkpoint's extra, checked: epoch, history and a generator
    state that ``rng`` accepts. A ValueError naming the file otherwise."""
    state = extra.get("fit")
    if not isinstance(state, dict):
        raise ValueError(f"fit: {checkpoint} holds no training state to resume from (it was "
                         f"written by checkpoint.save, not by fit): load it with "
                         f"checkpoint.load(path, model, optimizer) and call fit without resume")
    epoch, history = state.get("epoch"), state.get("history")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"fit: {checkpoint}: expected its epoch to be an int >= 1, got {epoch!r}")
    if not isinstance(history, dict) or not all(
            isinstance(v, list) and len(v) == epoch and all(_is_number(x) for x in v)
            for v in history.values()):
        raise ValueError(f"fit: {checkpoint}: expected its history to hold {epoch} numbers "
                         f"per metric")
    try:
        type(rng.bit_generator)().state = state["rng"]  # a throwaway generator checks it
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(f"fit: {checkpoint}: its shuffling generator state does not load "
                         f"({type(err).__name__}: {err})") from None
    return {**state, "epoch": epoch, "history": history}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _load_scheduler(checkpoint, scheduler: LRScheduler | None, saved: dict | None) -> None:
    """The checkpoint's schedule state into ``scheduler``; both or neither must be there."""
    mine = None if scheduler is None else type(scheduler).__name__
    theirs = None if saved is None else saved.get("class")
    if mine != theirs:
        raise ValueError(f"fit: {checkpoint} was saved with "
                         f"{'a ' + theirs + ' schedule' if theirs else 'no schedule'}, but this "
                         f"run has {'a ' + mine if mine else 'none'}; resume with the same "
                         f"schedule")
    if scheduler is not None and saved is not None:
        try:
            scheduler.load_state_dict(saved["state"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{checkpoint}: the schedule's state does not load into "
                             f"{scheduler!r}: {err}") from None


def _train_epoch(model, loss_fn, optimizer, X, y, batch_size: int, rng, epoch: int,
                 bar, clip_grad_norm: float | None = None) -> dict[str, float]:
    """One pass over the data; the running mean loss (and accuracy) of its steps."""
    totals = Totals()
    with np.errstate(over="ignore", invalid="ignore"):  # a bad loss is reported below
        for step, (xb, yb) in enumerate(minibatches(X, y, batch_size, rng), 1):
            logits = model.forward(xb)
            loss = loss_fn.forward(logits, yb)
            if not math.isfinite(loss):
                raise FloatingPointError(_diverged(loss, epoch, step, optimizer))
            model.param_backward(loss_fn.backward())
            if clip_grad_norm is not None:
                clip_gradients(model, clip_grad_norm)
            optimizer.step()
            totals.add(loss_fn, loss, logits, yb)
            bar.set_postfix(loss=f"{totals.loss / totals.samples:.4f}", refresh=False)
            bar.update()
    return totals.metrics()


def _diverged(loss: float, epoch: int, step: int, optimizer) -> str:
    """Why a loss turned non-finite: the data were checked finite, so the steps diverged."""
    settings = {name: getattr(optimizer, name) for name in ("lr", "momentum", "weight_decay")
                if _is_number(getattr(optimizer, name, None))}
    named = ", ".join(f"{k}={v:g}" for k, v in settings.items())
    return (f"fit: the loss became {loss} at epoch {epoch}, step {step}; training stopped "
            f"before applying that step. The data are finite (checked before training), so "
            f"the weights diverged under the optimizer's settings"
            + (f" ({named})" if named else "") + ". Try a smaller learning rate"
            + (f" than lr={settings['lr']:g}" if "lr" in settings else "")
            + (", less momentum" if settings.get("momentum") else "")
            + (", less weight decay" if settings.get("weight_decay") else ""))


def evaluate(model, loss_fn, X, y, batch_size: int = 1024) -> dict[str, float]:
    """Loss (mean per sample) and accuracy of ``model`` on (X, y), in eval mode; no accuracy
    for a loss without one (regression: ``{"loss": ...}`` only).

    X and y are converted as ``fit`` converts them. The model is put back in the mode it was in.
    """
    return _evaluate(model, loss_fn, *as_data("evaluate", model, loss_fn, X, y), batch_size)


def _evaluate(model, loss_fn, X: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> dict[str, float]:
    """``evaluate`` on data already converted and checked by ``as_data`` (fit's validation
    data, checked once before the first epoch rather than again at every epoch)."""
    was_training = model.training
    model.eval()
    try:
        totals = Totals()
        for xb, yb in minibatches(X, y, batch_size):
            logits = model.forward(xb)
            totals.add(loss_fn, loss_fn.forward(logits, yb), logits, yb)
    finally:
        model.train(was_training)
    return totals.metrics()


def predict(model, X, batch_size: int = 1024) -> np.ndarray:
    """The model's outputs for X (logits, for a classifier), computed in eval mode, batched.

    X is converted as ``fit`` converts it. The model is put back in the mode it was in.
    """
    X = as_inputs("predict", model, X)
    was_training = model.training
    model.eval()
    try:
        return np.concatenate([model.forward(X[start:stop])
                               for start, stop in batch_bounds(len(X), batch_size)])
    finally:
        model.train(was_training)


def model_dtype(model) -> np.dtype | None:
    """The dtype of the model's parameters, or None for a model without any."""
    for p in model.params.values():
        return p.dtype
    return None


def as_inputs(who: str, model, X) -> np.ndarray:
    """X as an array of the model's dtype (float64 for a model without parameters), checked
    once, up front: real-valued, not empty, and finite (after the conversion, so a value
    too large for float32 is caught too)."""
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise TypeError(f"{who}: expected real-valued inputs X, got an array of dtype {X.dtype}")
    if X.ndim == 0 or len(X) == 0:
        raise ValueError(f"{who}: expected at least one sample in X, got an array of shape "
                         f"{X.shape}")
    dtype = model_dtype(model) or (X.dtype if X.dtype.kind == "f" else np.dtype(np.float64))
    with np.errstate(over="ignore"):  # an overflow to inf is reported below, by row
        X = X.astype(dtype, copy=False)
    return check_finite(who, "X", X)


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


def as_data(who: str, model, loss_fn, X, y) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) as ``as_inputs`` gives X, and y as the loss wants its targets: whole-number
    class labels as int64, or values in the model's dtype."""
    X = as_inputs(who, model, X)
    if getattr(loss_fn, "reduction", "mean") not in ("mean", "sum"):
        raise ValueError(f"{who}: expected a loss that reduces to one number, got {loss_fn!r}; "
                         f"use reduction='mean' or 'sum'")
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != len(X):
        raise ValueError(f"{who}: X has {len(X)} samples but y has "
                         f"{len(y) if y.ndim else 'none (a scalar)'}")
    if getattr(loss_fn, "targets", "classes") == "values":
        if y.dtype.kind not in "fiu":
            raise TypeError(f"{who}: expected real-valued targets y, got dtype {y.dtype}")
        return X, check_finite(who, "y", y.astype(X.dtype, copy=False))
    if y.dtype.kind in "iu":
        return X, y.astype(np.int64, copy=False)
    if y.dtype.kind != "f":
        raise TypeError(f"{who}: expected integer class labels y, got dtype {y.dtype}")
    fractional = ~np.isfinite(y) | (y != np.round(y))
    if fractional.any():
        i = int(np.flatnonzero(fractional)[0])
        raise ValueError(f"{who}: expected whole-number class labels y, got {y.flat[i].item()!r} at "
                         f"position {i} ({int(fractional.sum())} such labels); labels are "
                         f"never truncated")
    return X, y.astype(np.int64)


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}; pass validation=(X_val, y_val)"
    return type(value).__name__


def format_metrics(logs: dict, skip: tuple[str, ...] = ()) -> str:
    """``key=value`` pairs, floats to 4 digits, for progress bars and log lines."""
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in logs.items() if k not in skip)


@dataclass
class Totals:
    """Sums over a pass's batches: the loss over samples, and the right decisions over all
    decisions where the loss has an accuracy (``count_correct`` is not None)."""

    loss: float = 0.0
    samples: int = 0
    correct: int = 0
    decisions: int = 0
    accuracy: bool = True

    def add(self, loss_fn, loss: float, pred: np.ndarray, y: np.ndarray) -> None:
        """One batch: ``loss`` as ``loss_fn`` reduced it, a mean or a sum over the batch."""
        self.loss += loss * len(y) if getattr(loss_fn, "reduction", "mean") == "mean" else loss
        self.samples += len(y)
        correct = count_correct(loss_fn, pred, y)
        if correct is None:
            self.accuracy = False
        else:
            self.correct += correct
            self.decisions += y.size

    def metrics(self) -> dict[str, float]:
        """``loss`` (mean per sample) and, where it means something, ``accuracy``."""
        metrics = {"loss": self.loss / self.samples}
        if self.accuracy:
            metrics["accuracy"] = self.correct / self.decisions
        return metrics


def count_correct(loss_fn, pred: np.ndarray, y: np.ndarray) -> int | None:
    """The loss's own count of right decisions (``Loss.count_correct``); a loss that is not a
    ``Loss`` and has none counts arg-max hits for class targets, and nothing for values."""
    if hasattr(loss_fn, "count_correct"):
        return loss_fn.count_correct(pred, y)
    if getattr(loss_fn, "targets", "classes") == "classes":
        return int(np.count_nonzero(pred.argmax(axis=-1) == y))
    return None

"""fit, evaluate, predict: the training loop, with tqdm progress bars."""
from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from ..layers.base import check_size
from ..layers.flat import flat_buffers
from .checkpoint import load, read_extra, save
from .data import batch_bounds, minibatches
from .schedule import LRScheduler, checked_max_norm
from .schedule import clip_grad_norm as clip_gradients


def fit(model, loss_fn, optimizer, X, y, *, epochs: int, batch_size: int = 64,
        validation: tuple | None = None, seed: int = 0, shuffle: bool = True,
        progress: bool = True, on_epoch_end: Callable[[dict], None] | None = None,
        checkpoint: str | os.PathLike | None = None, resume: bool = False,
        scheduler: LRScheduler | None = None, clip_grad_norm: float | None = None) -> dict[str, list]:
    """Train ``model`` on (X, y) with minibatch steps of ``optimizer``.

    For each epoch: train on shuffled minibatches, validate, record, save a checkpoint.

    Parameters
    ----------
    model : Layer
        Put in training mode; its first layer computes no gradient for the data.
    loss_fn : Loss
        ``SoftmaxCrossEntropy`` or another loss with ``forward(pred, target)`` and ``backward()``.
    optimizer : SGD, Adam, AdamW, RMSprop, or an object with ``step()``
        Built for this ``model`` (after which the model's params are views of its flat buffer).
    X, y : array-like
        Inputs (N, ...) and targets (N,). Any real-valued X (a list, integers, float64) is
        converted once to the model's dtype, as Keras does; the layers themselves stay strict.
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
        generator's state.
    resume : bool
        Continue from ``checkpoint`` if it exists: the run ends with weights bit-for-bit
        identical to a run that was never interrupted. A killed run loses at most the epoch
        it was in. Without the file, training starts at epoch 1 (with a warning).
    scheduler : StepLR, CosineAnnealingLR, LinearLR or SequentialLR, optional
        Built on ``optimizer``; stepped once after each epoch (PyTorch's convention). The
        history then records each epoch's ``lr``.
    clip_grad_norm : float, optional
        Clip the gradients' global L2 norm to this before every step (``clip_grad_norm``).

    Returns
    -------
    dict of lists, one entry per epoch (like Keras' ``History.history``): ``epoch``, ``loss``,
    ``accuracy`` (running averages over the epoch's steps), ``val_loss`` and
    ``val_accuracy`` (with ``validation``), ``seconds``.

    Raises
    ------
    FloatingPointError
        If the loss turns NaN or infinite; the step that produced it is not applied.
    """
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
                scores = evaluate(model, loss_fn, *validation)
                logs.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
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
                 fit=extra)
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
    the first epoch still to run and the history so far. All or nothing."""
    if checkpoint is None:
        raise ValueError("fit: resume=True needs checkpoint=PATH to resume from")
    if not os.path.exists(checkpoint):
        warnings.warn(f"fit: no checkpoint at {checkpoint} to resume from; starting at "
                      f"epoch 1", stacklevel=3)
        return 1, {}
    saved = read_extra(checkpoint)["fit"].get("scheduler")
    before = None if scheduler is None else scheduler.state_dict()
    _load_scheduler(checkpoint, scheduler, saved)  # checked first: it rolls back cheaply
    try:
        state = load(checkpoint, model, optimizer)["fit"]
    except Exception:
        if scheduler is not None and before is not None:
            scheduler.load_state_dict(before)
        raise
    rng.bit_generator.state = state["rng"]
    return state["epoch"] + 1, state["history"]


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
    """One pass over the data; the running mean loss and accuracy of its steps."""
    total_loss, correct, seen = 0.0, 0, 0
    with np.errstate(over="ignore", invalid="ignore"):  # a bad loss is reported below
        for step, (xb, yb) in enumerate(minibatches(X, y, batch_size, rng), 1):
            logits = model.forward(xb)
            loss = loss_fn.forward(logits, yb)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"fit: the loss became {loss} at epoch {epoch}, step {step}; training "
                    f"stopped before applying that step. Try a smaller learning rate"
                    + (f" than lr={optimizer.lr:g}" if hasattr(optimizer, "lr") else ""))
            model.param_backward(loss_fn.backward())
            if clip_grad_norm is not None:
                clip_gradients(model, clip_grad_norm)
            optimizer.step()
            batch_loss, batch_correct = _batch_totals(loss_fn, loss, logits, yb)
            total_loss += batch_loss
            correct += batch_correct
            seen += len(yb)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
            bar.update()
    return {"loss": total_loss / seen, "accuracy": correct / seen}


def evaluate(model, loss_fn, X, y, batch_size: int = 1024) -> dict[str, float]:
    """Loss (mean per sample) and accuracy of ``model`` on (X, y), in eval mode.

    X and y are converted as ``fit`` converts them. The model is put back in the mode it was in.
    """
    X, y = as_data("evaluate", model, loss_fn, X, y)
    was_training = model.training
    model.eval()
    try:
        total_loss, correct = 0.0, 0
        for xb, yb in minibatches(X, y, batch_size):
            logits = model.forward(xb)
            loss = loss_fn.forward(logits, yb)
            batch_loss, batch_correct = _batch_totals(loss_fn, loss, logits, yb)
            total_loss += batch_loss
            correct += batch_correct
    finally:
        model.train(was_training)
    return {"loss": total_loss / len(y), "accuracy": correct / len(y)}


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
    once, up front: real-valued and not empty."""
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise TypeError(f"{who}: expected real-valued inputs X, got an array of dtype {X.dtype}")
    if X.ndim == 0 or len(X) == 0:
        raise ValueError(f"{who}: expected at least one sample in X, got an array of shape "
                         f"{X.shape}")
    dtype = model_dtype(model) or (X.dtype if X.dtype.kind == "f" else np.dtype(np.float64))
    return X.astype(dtype, copy=False)


def as_data(who: str, model, loss_fn, X, y) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) as ``as_inputs`` gives X, and y as the loss wants its targets: whole-number
    class labels as int64, or values in the model's dtype."""
    X = as_inputs(who, model, X)
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != len(X):
        raise ValueError(f"{who}: X has {len(X)} samples but y has "
                         f"{len(y) if y.ndim else 'none (a scalar)'}")
    if getattr(loss_fn, "targets", "classes") == "values":
        if y.dtype.kind not in "fiu":
            raise TypeError(f"{who}: expected real-valued targets y, got dtype {y.dtype}")
        return X, y.astype(X.dtype, copy=False)
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


def _batch_totals(loss_fn, loss: float, logits: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """A batch's summed per-sample loss and its number of correct predictions."""
    total = loss * len(y) if getattr(loss_fn, "reduction", "mean") == "mean" else loss
    return total, int(np.count_nonzero(logits.argmax(axis=1) == y))

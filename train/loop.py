"""fit, evaluate, predict: the training loop, with tqdm progress bars."""
from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from .checkpoint import load, save
from .data import batch_bounds, minibatches


def fit(model, loss_fn, optimizer, X: np.ndarray, y: np.ndarray, *, epochs: int,
        batch_size: int = 64, validation: tuple[np.ndarray, np.ndarray] | None = None,
        seed: int = 0, shuffle: bool = True, progress: bool = True,
        on_epoch_end: Callable[[dict], None] | None = None,
        checkpoint: str | os.PathLike | None = None, resume: bool = False) -> dict[str, list]:
    """Train ``model`` on (X, y) with minibatch steps of ``optimizer``.

    Parameters
    ----------
    model : Layer
        Put in training mode; its first layer computes no gradient for the data.
    loss_fn : SoftmaxCrossEntropy or a loss with the same interface
    optimizer : SGD or an object with ``step()``
    X, y : ndarray
        Inputs (N, ...) and integer targets (N,).
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
        optimizer's state, the history so far and the shuffling generator's state.
    resume : bool
        Continue from ``checkpoint`` if it exists: the run ends with weights bit-for-bit
        identical to a run that was never interrupted. A killed run loses at most the epoch
        it was in. Without the file, training starts at epoch 1 (with a warning).

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
    if len(X) != len(y):
        raise ValueError(f"fit: X has {len(X)} samples but y has {len(y)}")
    if len(X) == 0:
        raise ValueError("fit: expected at least one training sample, got none")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"fit: expected epochs to be an int >= 1, got {epochs!r}")
    steps = len(batch_bounds(len(X), batch_size))
    rng = np.random.default_rng(seed)
    history: dict[str, list] = {}
    first = 1
    if resume:
        if checkpoint is None:
            raise ValueError("fit: resume=True needs checkpoint=PATH to resume from")
        if os.path.exists(checkpoint):
            state = load(checkpoint, model, optimizer)["fit"]
            first, history = state["epoch"] + 1, state["history"]
            rng.bit_generator.state = state["rng"]
        else:
            warnings.warn(f"fit: no checkpoint at {checkpoint} to resume from; starting at "
                          f"epoch 1", stacklevel=2)
    model.train()
    for epoch in range(first, epochs + 1):
        started = time.perf_counter()
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch",
                   disable=not progress, leave=True, dynamic_ncols=True)
        batches = minibatches(X, y, batch_size, rng if shuffle else None)
        with bar, np.errstate(over="ignore", invalid="ignore"):  # a bad loss is reported below
            for step, (xb, yb) in enumerate(batches, 1):
                logits = model.forward(xb)
                loss = loss_fn.forward(logits, yb)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"fit: the loss became {loss} at epoch {epoch}, step {step}; training "
                        f"stopped before applying that step. Try a smaller learning rate"
                        + (f" than lr={optimizer.lr:g}" if hasattr(optimizer, "lr") else ""))
                model.param_backward(loss_fn.backward())
                optimizer.step()
                batch_loss, batch_correct = _batch_totals(loss_fn, loss, logits, yb)
                total_loss += batch_loss
                correct += batch_correct
                seen += len(yb)
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
                bar.update()
            logs = {"epoch": epoch, "loss": total_loss / seen, "accuracy": correct / seen}
            if validation is not None:
                scores = evaluate(model, loss_fn, *validation)
                logs.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
            logs["seconds"] = time.perf_counter() - started
            bar.set_postfix_str(format_metrics(logs, skip=("epoch", "seconds")))
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if checkpoint is not None:
            save(checkpoint, model, optimizer if hasattr(optimizer, "state_dict") else None,
                 fit={"epoch": epoch, "history": history, "rng": rng.bit_generator.state})
        if on_epoch_end is not None:
            on_epoch_end(logs)
    return history


def evaluate(model, loss_fn, X: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> dict[str, float]:
    """Loss (mean per sample) and accuracy of ``model`` on (X, y), in eval mode.

    The model is put back in the mode it was in.
    """
    if len(X) != len(y):
        raise ValueError(f"evaluate: X has {len(X)} samples but y has {len(y)}")
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


def predict(model, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The model's outputs for X (logits, for a classifier), computed in eval mode, batched.

    The model is put back in the mode it was in.
    """
    was_training = model.training
    model.eval()
    try:
        return np.concatenate([model.forward(X[start:stop])
                               for start, stop in batch_bounds(len(X), batch_size)])
    finally:
        model.train(was_training)


def format_metrics(logs: dict, skip: tuple[str, ...] = ()) -> str:
    """``key=value`` pairs, floats to 4 digits, for progress bars and log lines."""
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in logs.items() if k not in skip)


def _batch_totals(loss_fn, loss: float, logits: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """A batch's summed per-sample loss and its number of correct predictions."""
    total = loss * len(y) if getattr(loss_fn, "reduction", "mean") == "mean" else loss
    return total, int(np.count_nonzero(logits.argmax(axis=1) == y))

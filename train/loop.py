"""fit, evaluate, predict: the training loop. Its parts live beside it: what it is given is
checked and converted in ``inputs``, what a pass measures in ``metrics``, resuming in
``resume``, clipping in ``clip``."""
from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from tqdm import tqdm

from .checkpoint import save
from .clip import clip_grad_norm as clip_gradients
from .data import batch_bounds, minibatches
from .inputs import (
    FitArguments,
    as_data,
    as_inputs,
    blas_for,
    check_finite,
    check_fit_arguments,
    check_targets,
    checked_batch_size,
    model_dtype,
)
from .metrics import Totals, count_correct, epoch_line, format_metrics
from .protocols import SavesState, Steps
from .resume import fit_state, generators, is_number
from .resume import resume as resume_from
from .schedule import LRScheduler

# importable from here as before (the CLI, L-BFGS and scripts use them)
__all__ = ["fit", "evaluate", "predict", "as_data", "as_inputs", "check_finite", "model_dtype",
           "Totals", "count_correct", "format_metrics", "fit_state"]


def fit(model, loss_fn, optimizer: Steps, X, y, *, epochs: int, batch_size: int = 64,
        validation: tuple | None = None, seed: int = 0, shuffle: bool = True,
        progress: bool = True, on_epoch_end: Callable[[dict], None] | None = None,
        checkpoint: str | os.PathLike | None = None, resume: bool = False,
        scheduler: LRScheduler | None = None, clip_grad_norm: float | None = None,
        checkpoint_extra: dict | None = None, workers: int = 1) -> dict[str, list]:
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
        Class labels must be whole numbers (``3.0`` is accepted, ``3.9`` is an error); they
        may have more axes than one ((N, T) for a sequence model with logits (N, T, C):
        accuracy then counts every position). For a model that takes token ids
        (``model.takes_ids``) X stays integers, each id checked against the size of the
        first id-taking layer's table, never cast to float.
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
        On a terminal, a tqdm bar per epoch with the running loss, replaced at the epoch's
        end by one line of its figures (at most 80 columns, the validation figures
        included); elsewhere (a log file, CI) only that line, once per epoch. Written to
        stderr. ``False`` is silent.
    on_epoch_end : callable, optional
        Called with the epoch's metrics (a dict) after each epoch, after its checkpoint.
    checkpoint : path, optional
        Saved (atomically) at the end of every epoch: weights, running statistics, the
        optimizer's and the schedule's state, the history so far, the shuffling generator's
        state and that of every generator the model's layers own (Dropout's). Its folder is checked before the first epoch.
    resume : bool
        Continue from ``checkpoint`` if it exists: the run ends with weights bit-for-bit
        identical to a run that was never interrupted (same machine, same BLAS thread count
        and ``workers``).
        A killed run loses at most the epoch it was in. Without the file, training starts at
        epoch 1 (with a warning). The whole checkpoint is checked before anything is loaded;
        one written by ``checkpoint.save`` by hand holds no epoch to resume from (an error).
        An optimizer without ``load_state_dict`` resumes with the model alone. Resuming a
        run that already holds ``epochs`` epochs trains nothing and says so (a warning).
    scheduler : StepLR, CosineAnnealingLR, LinearLR or SequentialLR, optional
        Built on ``optimizer``; stepped once after each epoch (PyTorch's convention). The
        history then records each epoch's ``lr``.
    clip_grad_norm : float, optional
        Clip the gradients' global L2 norm to this before every step (``clip_grad_norm``).
    checkpoint_extra : dict, optional
        More plain JSON data saved in every checkpoint beside fit's own ``"fit"`` entry
        (the command line keeps its settings there); ``checkpoint.read_extra`` reads it back.
    workers : int
        Split every batch between this many copies of the model on threads
        (``handprop.layers.DataParallel``, BatchNorm's statistics taken over the whole batch),
        so that every elementwise pass runs on every core; BLAS runs one thread in each
        meanwhile. It pays where a layer's arrays are large (a CNN's: the reference CNN's step,
        batch 64, took 10.7 ms against 12.7 with two BLAS threads in the best runs on a 2-core
        machine, bench/RESULTS.md) and costs where they are small (a small MLP's). The
        gradients are the same sums taken in another order, so a run agrees with
        ``workers=1`` to rounding, not bit for bit.

    Returns
    -------
    dict of lists, one entry per epoch (like Keras' ``History.history``): ``epoch``, ``loss``,
    ``accuracy`` (running averages over the epoch's steps), ``val_loss`` and
    ``val_accuracy`` (with ``validation``; NaN for the epochs of a resumed run that had
    none), ``seconds``. Accuracy is there only where it
    means something (``Loss.count_correct``): class indices (arg-max) and binary logits
    (logit > 0 against a 0/1 target); a regression loss's history has no accuracy keys.
    With labels (N, T) every position is a decision, except those equal to the loss's
    ``ignore_index``.

    Raises
    ------
    ValueError
        If X (or y, for values) holds NaN or infinity, naming the first such row, or a token
        id is outside the model's table, naming its position; if a class label is not one of
        the model's outputs, naming its position in ``y``; if the model's output for the
        first sample does not fit the targets' shape: all checked before anything changes
        state (the model's output is computed once in eval mode), for the validation data
        too. Errors name the data as passed (``X``, ``y``, ``X_val``, ``y_val``).
    FloatingPointError
        If the loss turns NaN or infinite; the step that produced it is not applied.
    """
    args = check_fit_arguments(model, loss_fn, optimizer, X, y, epochs=epochs, batch_size=batch_size,
                               validation=validation, checkpoint=checkpoint, scheduler=scheduler,
                               clip_grad_norm=clip_grad_norm, checkpoint_extra=checkpoint_extra,
                               seed=seed, shuffle=shuffle, progress=progress, resume=resume,
                               on_epoch_end=on_epoch_end, workers=workers)
    rng = np.random.default_rng(seed)
    history: dict[str, list] = {}
    first = 1
    if resume:
        first, history = resume_from(checkpoint, model, optimizer, rng, scheduler, args.epochs)
    args.runner.train()
    with blas_for(args.workers):
        for epoch in range(first, args.epochs + 1):
            logs = _epoch(args, loss_fn, optimizer, scheduler, batch_size, rng if shuffle else None,
                          epoch, progress)
            record(history, logs)
            if scheduler is not None:
                scheduler.step()
            if checkpoint is not None:
                _save(checkpoint, model, optimizer, scheduler, epoch, history, rng, checkpoint_extra)
            if on_epoch_end is not None:
                on_epoch_end(logs)
    return history


def _epoch(args: FitArguments, loss_fn, optimizer: Steps, scheduler: LRScheduler | None, batch_size: int,
           rng: np.random.Generator | None, epoch: int, progress: bool) -> dict:
    """One epoch of ``fit``: train, validate, and the epoch's figures (shown as its line)."""
    started = time.perf_counter()
    with EpochProgress(epoch, args.epochs, args.steps, enabled=progress) as bar:
        logs = {"epoch": epoch, **_train_epoch(args.runner, loss_fn, optimizer, args.X, args.y,
                                               batch_size, rng, epoch, bar, args.clip_grad_norm)}
        if args.validation is not None:
            scores = _evaluate(args.runner, loss_fn, *args.validation, who="fit: validation",
                               names=("X_val", "y_val"))
            logs.update({f"val_{name}": value for name, value in scores.items()})
        if scheduler is not None:
            logs["lr"] = scheduler.optimizer.lr  # the epoch's lr, before the schedule moves it
        logs["seconds"] = time.perf_counter() - started
        bar.finish(logs)
    return logs


def record(history: dict[str, list], logs: dict) -> None:
    """Append one epoch's figures to ``history``, every list kept one entry per epoch: a
    figure the epoch lacks (validation switched off on a resume) is NaN, and one it adds
    (validation switched on) is NaN for the epochs before, so the history of a resumed run
    always holds ``epoch`` numbers per metric and its checkpoint resumes again."""
    done = len(history.get("epoch", []))
    for key in [*history, *(k for k in logs if k not in history)]:
        history.setdefault(key, [math.nan] * done).append(logs.get(key, math.nan))


def _save(checkpoint, model, optimizer, scheduler, epoch: int, history: dict,
          rng: np.random.Generator, checkpoint_extra: dict | None) -> None:
    """The end-of-epoch checkpoint: the model, the optimizer's state where it has one, and
    fit's own entry (epoch, history, the shuffling generator, the state of every generator
    the model's layers own, the schedule)."""
    extra = {"epoch": epoch, "history": history, "rng": rng.bit_generator.state,
             "generators": {key: g.bit_generator.state for key, g in generators(model).items()}}
    if scheduler is not None:
        extra["scheduler"] = {"class": type(scheduler).__name__, "state": scheduler.state_dict()}
    save(checkpoint, model, optimizer if isinstance(optimizer, SavesState) else None,
         fit=extra, **(checkpoint_extra or {}))


class EpochProgress:
    """One epoch's progress on stderr. On a terminal: a tqdm bar with the running loss while
    the epoch runs, then one line of the epoch's figures (``epoch_line``). Elsewhere (a log
    file, CI): that line alone, since a bar's carriage-return frames would fill the file."""

    def __init__(self, epoch: int, epochs: int, steps: int, *, enabled: bool) -> None:
        self.epochs, self.enabled = epochs, enabled
        self.stream = sys.stderr  # looked up now, so a redirected stderr is the one used
        live = enabled and _is_terminal(self.stream)
        self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch", file=self.stream,
                        disable=not live, leave=False, dynamic_ncols=True)

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def update(self, running_loss: float) -> None:
        self.bar.set_postfix(loss=f"{running_loss:.4f}", refresh=False)
        self.bar.update()

    def finish(self, logs: dict) -> None:
        """Close the bar and write the epoch's line."""
        self.bar.close()
        if self.enabled:
            print(epoch_line(logs, self.epochs), file=self.stream, flush=True)


@contextmanager
def naming(who: str, name: str, data: np.ndarray) -> Iterator[None]:
    """A ValueError from a layer or the loss (which see one batch) prefixed with the data as
    the caller passed it: ``fit: X of shape (180, 3): Linear(2, 8): expected ... got (16, 3)``."""
    try:
        yield
    except ValueError as err:
        raise ValueError(f"{who}: {name} of shape {data.shape}: {err}") from err


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _train_epoch(model, loss_fn, optimizer: Steps, X, y, batch_size: int, rng, epoch: int,
                 bar: EpochProgress, clip_grad_norm: float | None = None) -> dict[str, float]:
    """One pass over the data; the running mean loss (and accuracy) of its steps."""
    totals = Totals()
    with np.errstate(over="ignore", invalid="ignore"):  # a bad loss is reported below
        for step, (xb, yb) in enumerate(minibatches(X, y, batch_size, rng, who="fit"), 1):
            with naming("fit", "X", X):
                logits = model.forward(xb)
            with naming("fit", "y", y):
                loss = loss_fn.forward(logits, yb)
            if not math.isfinite(loss):
                raise FloatingPointError(_diverged(loss, epoch, step, optimizer))
            model.param_backward(loss_fn.backward())
            if clip_grad_norm is not None:
                clip_gradients(model, clip_grad_norm)
            optimizer.step()
            totals.add(loss_fn, loss, logits, yb)
            bar.update(totals.loss / totals.samples)
    return totals.metrics()


def _diverged(loss: float, epoch: int, step: int, optimizer) -> str:
    """Why a loss turned non-finite: the data were checked finite, so the steps diverged."""
    settings = {name: getattr(optimizer, name) for name in ("lr", "momentum", "weight_decay")
                if is_number(getattr(optimizer, name, None))}
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
    batch_size = checked_batch_size("evaluate", batch_size)
    X, y = as_data("evaluate", model, loss_fn, X, y)
    check_targets("evaluate", model, loss_fn, X, y)
    return _evaluate(model, loss_fn, X, y, batch_size)


def _evaluate(model, loss_fn, X: np.ndarray, y: np.ndarray, batch_size: int = 1024,
              who: str = "evaluate", names: tuple[str, str] = ("X", "y")) -> dict[str, float]:
    """``evaluate`` on data already converted and checked by ``as_data`` (fit's validation
    data, checked once before the first epoch rather than again at every epoch)."""
    was_training = model.training
    model.eval()
    try:
        totals = Totals()
        for xb, yb in minibatches(X, y, batch_size, who="evaluate"):
            with naming(who, names[0], X):
                logits = model.forward(xb)
            with naming(who, names[1], y):
                loss = loss_fn.forward(logits, yb)
            totals.add(loss_fn, loss, logits, yb)
    finally:
        model.train(was_training)
    return totals.metrics()


def predict(model, X, batch_size: int = 1024) -> np.ndarray:
    """The model's outputs for X (logits, for a classifier), computed in eval mode, batched.

    X is converted as ``fit`` converts it (token ids stay integers). The model is put back in
    the mode it was in.
    """
    batch_size = checked_batch_size("predict", batch_size)
    X = as_inputs("predict", model, X)
    was_training = model.training
    model.eval()
    try:
        with naming("predict", "X", X):
            return np.concatenate([model.forward(X[start:stop])
                                   for start, stop in batch_bounds(len(X), batch_size, who="predict")])
    finally:
        model.train(was_training)

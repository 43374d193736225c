"""Training by iterations over random windows of a running text, nanoGPT's way: each
iteration draws ``batch_size`` windows of ``block_size`` ids from the training ids, takes one
optimizer step (gradients clipped, the schedule stepped after it), and every
``eval_interval`` iterations (and at the end) the mean loss over ``eval_iters`` batches of
validation windows is measured and a checkpoint written.

A checkpoint holds everything random: the window generator's state and the state of every
generator the model's layers own (dropout's), so a run resumed after ``kill -9`` ends
bit-for-bit where an uninterrupted one does (same machine, same BLAS thread count).
"""
from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable

import numpy as np

from ..layers import validate
from ..layers.data_parallel import MAX_WORKERS
from .checkpoint import save
from .clip import checked_max_norm
from .clip import clip_grad_norm as clip_gradients
from .data.text import random_windows
from .files import writable_target
from .inputs import batch_runner, blas_for
from .protocols import SavesState
from .resume import (
    checked_generator_state,
    checked_generator_states,
    generator_states,
    is_number,
    load_run,
    set_generator_states,
)
from .schedule import LRScheduler

WHO = "fit_iterations"


def fit_iterations(model, loss_fn, optimizer, train_ids, val_ids, *, block_size: int,
                   batch_size: int, max_iters: int, eval_interval: int = 250,
                   eval_iters: int = 200, scheduler: LRScheduler | None = None,
                   clip_grad_norm: float | None = None, seed: int = 0,
                   checkpoint: str | os.PathLike | None = None, resume: bool = False,
                   checkpoint_extra: dict | None = None,
                   on_eval: Callable[[dict], None] | None = None, workers: int = 1) -> dict[str, list]:
    """Train ``model`` (token ids (N, T) -> logits (N, T, V)) for ``max_iters`` iterations.

    Parameters
    ----------
    model : Layer
        Takes token ids (``takes_ids``); put in training mode (eval mode to evaluate).
    loss_fn : SoftmaxCrossEntropy
        The mean loss over every position of a batch.
    optimizer : AdamW (or another optimizer of handprop.train)
        Built for ``model``.
    train_ids, val_ids : 1-D integer arrays
        The running text's ids; windows ``x = ids[i:i+T]``, ``y = ids[i+1:i+T+1]``.
    block_size, batch_size : int
        T and N of a batch.
    max_iters : int
        Iterations in all (a resumed run counts those already done).
    eval_interval, eval_iters : int
        Evaluate (and checkpoint) after every ``eval_interval`` iterations and after the
        last, each time on ``eval_iters`` batches of validation windows drawn from a
        generator of their own (seeded by ``seed`` and the iteration: the training windows
        do not depend on how often one evaluates).
    scheduler : LRScheduler, optional
        Stepped after every optimizer step (``WarmupCosineLR``: nanoGPT's shape).
    clip_grad_norm : float, optional
        Clip the gradients' global L2 norm to this before every step.
    seed : int
        Seeds the training windows.
    checkpoint, resume, checkpoint_extra
        As ``fit``'s: a checkpoint (atomic) after every evaluation; ``resume`` continues
        from it; ``checkpoint_extra`` is more JSON data saved beside the run's own entry
        (``"iterations"``: the iteration, the history, the generators, the schedule).
    on_eval : callable, optional
        Called with each evaluation's figures (a dict), after its checkpoint.
    workers : int
        Split every batch between this many copies of the model on threads
        (``handprop.layers.DataParallel``): every elementwise pass on every core. BLAS runs
        one thread in each meanwhile (two copies that each ask for every core wait on each
        other). The gradients are the same sums taken in another order, so a run agrees with
        ``workers=1`` to rounding, not bit for bit; a resumed run needs the same count.

    Returns
    -------
    dict of lists, one entry per evaluation: ``iteration`` (iterations done), ``train_loss``
    (the mean loss of the training batches since the previous evaluation), ``val_loss``,
    ``lr`` (the last step's), ``seconds`` (since the previous evaluation).

    Raises
    ------
    FloatingPointError
        If the loss turns NaN or infinite; the step that produced it is not applied.
    """
    sizes = _checked_sizes(block_size=block_size, batch_size=batch_size, max_iters=max_iters,
                           eval_interval=eval_interval, eval_iters=eval_iters, seed=seed,
                           workers=workers)
    train_ids, val_ids = (_checked_ids(name, ids, block_size) for name, ids in
                          (("train_ids", train_ids), ("val_ids", val_ids)))
    if clip_grad_norm is not None:
        clip_grad_norm = checked_max_norm(WHO, clip_grad_norm, "clip_grad_norm")
    if checkpoint is not None:
        writable_target(checkpoint)
    # the model (saved, clipped, stepped), and what runs it: itself, or its copies on threads
    runner = batch_runner(WHO, model, workers)
    rng = np.random.default_rng(seed)
    done, history = 0, dict[str, list]()
    if resume:
        done, history = resume_iterations(checkpoint, model, optimizer, rng, scheduler)
    runner.train()
    run = _Run(model, runner, loss_fn, optimizer, scheduler, clip_grad_norm, rng, sizes)
    with blas_for(workers):
        return _iterate(run, done, history, train_ids, val_ids, seed, sizes, checkpoint,
                        checkpoint_extra, on_eval)


def _iterate(run: _Run, done: int, history: dict, train_ids: np.ndarray, val_ids: np.ndarray,
             seed: int, sizes: dict[str, int], checkpoint, checkpoint_extra: dict | None,
             on_eval: Callable[[dict], None] | None) -> dict[str, list]:
    """fit_iterations' loop: train to each evaluation, evaluate, checkpoint, report."""
    max_iters, eval_interval = sizes["max_iters"], sizes["eval_interval"]
    while done < max_iters:
        stop = min(max_iters, (done // eval_interval + 1) * eval_interval)
        logs = run.train(train_ids, done, stop)
        logs["val_loss"] = estimate_loss(run.runner, run.loss_fn, val_ids, run.block_size,
                                         run.batch_size, sizes["eval_iters"],
                                         np.random.default_rng([seed, 1, stop]))
        done = stop
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if checkpoint is not None:
            _save(checkpoint, run, done, history, checkpoint_extra)
        if on_eval is not None:
            on_eval(logs)
    return history


class _Run:
    """What every iteration uses: the model, loss, optimizer, schedule, clipping, window
    generator and sizes."""

    def __init__(self, model, runner, loss_fn, optimizer, scheduler, clip: float | None,
                 rng: np.random.Generator, sizes: dict[str, int]) -> None:
        self.model, self.runner, self.loss_fn = model, runner, loss_fn
        self.optimizer, self.scheduler = optimizer, scheduler
        self.clip, self.rng = clip, rng
        self.block_size, self.batch_size = sizes["block_size"], sizes["batch_size"]

    def train(self, ids: np.ndarray, start: int, stop: int) -> dict:
        """Iterations ``start`` .. ``stop - 1``; their mean loss, the last lr, the time."""
        started, total = time.perf_counter(), 0.0
        for it in range(start, stop):
            x, y = random_windows(ids, self.block_size, self.batch_size, self.rng)
            lr = self.optimizer.lr
            loss = self.step(x, y, it)
            total += loss
        return {"iteration": stop, "train_loss": total / (stop - start), "lr": lr,
                "seconds": time.perf_counter() - started}

    def step(self, x: np.ndarray, y: np.ndarray, it: int) -> float:
        """Forward, backward, clip, step, schedule: the loss of the batch."""
        with np.errstate(over="ignore", invalid="ignore"):  # a bad loss is reported below
            logits = self.runner.forward(x)
            loss = self.loss_fn.forward(logits, y)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"{WHO}: the loss became {loss} at iteration {it}; training stopped before "
                f"applying that step (lr={self.optimizer.lr:g}): try a smaller learning rate")
        self.runner.param_backward(self.loss_fn.backward())
        if self.clip is not None:
            clip_gradients(self.model, self.clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return float(loss)


def estimate_loss(model, loss_fn, ids: np.ndarray, block_size: int, batch_size: int,
                  batches: int, rng: np.random.Generator) -> float:
    """The mean loss over ``batches`` batches of random windows of ``ids``, in eval mode
    (nanoGPT's ``estimate_loss``); the model is put back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        total = 0.0
        for _ in range(batches):
            x, y = random_windows(ids, block_size, batch_size, rng)
            total += float(loss_fn.forward(model.forward(x), y))
    finally:
        model.train(was_training)
    return total / batches


# --- checkpoints ---------------------------------------------------------------------------
def _save(checkpoint, run: _Run, done: int, history: dict, checkpoint_extra: dict | None) -> None:
    """The checkpoint after an evaluation: the model, the optimizer, and the run's own entry."""
    entry = {"iteration": done, "history": history, "rng": run.rng.bit_generator.state,
             "generators": generator_states(run.model)}
    if run.scheduler is not None:
        entry["scheduler"] = {"class": type(run.scheduler).__name__,
                              "state": run.scheduler.state_dict()}
    optimizer = run.optimizer if isinstance(run.optimizer, SavesState) else None
    save(checkpoint, run.model, optimizer, iterations=entry, **(checkpoint_extra or {}))


def resume_iterations(checkpoint, model, optimizer, rng: np.random.Generator,
                      scheduler=None) -> tuple[int, dict]:
    """Load ``checkpoint`` into the model, optimizer, schedule, window generator and the
    model's own generators; return the iterations done and the history. All or nothing:
    the whole file is checked before anything is loaded. Without the file: 0 and {} (a
    warning)."""
    if checkpoint is None:
        raise ValueError(f"{WHO}: resume=True needs checkpoint=PATH to resume from")
    if not os.path.exists(checkpoint):
        warnings.warn(f"{WHO}: no checkpoint at {checkpoint} to resume from; starting at "
                      f"iteration 0", stacklevel=3)
        return 0, {}
    found = load_run(checkpoint, model, optimizer, scheduler,
                     lambda extra: iteration_state(checkpoint, extra, rng, model))
    rng.bit_generator.state = found["rng"]
    set_generator_states(model, found["generators"])
    return found["iteration"], found["history"]


def iteration_state(checkpoint, extra: dict, rng: np.random.Generator, model) -> dict:
    """The ``"iterations"`` entry of a checkpoint's extra, checked: iteration, history and a
    window generator state ``rng`` accepts; a ValueError naming the file otherwise."""
    state = extra.get("iterations")
    if not isinstance(state, dict):
        raise ValueError(f"{WHO}: {checkpoint} holds no iteration-based training state to "
                         f"resume from (it was not written by fit_iterations)")
    done, history = state.get("iteration"), state.get("history")
    if isinstance(done, bool) or not isinstance(done, int) or done < 1:
        raise ValueError(f"{WHO}: {checkpoint}: expected its iteration to be an int >= 1, "
                         f"got {done!r}")
    lengths = {len(v) for v in history.values()} if isinstance(history, dict) else set()
    if not isinstance(history, dict) or len(lengths) > 1 or not all(
            isinstance(v, list) and all(is_number(x) for x in v) for v in history.values()):
        raise ValueError(f"{WHO}: {checkpoint}: expected its history as lists of numbers of "
                         f"one length")
    checked_generator_state(WHO, checkpoint, rng, state.get("rng"))
    return {**state, "generators": checked_generator_states(WHO, checkpoint, state.get("generators"), model)}


def _checked_sizes(**sizes: object) -> dict[str, int]:
    return {name: validate.integer(WHO, name, value, low=0 if name == "seed" else 1,
                                   high=MAX_WORKERS if name == "workers" else None)
            for name, value in sizes.items()}


def _checked_ids(name: str, ids: object, block_size: int) -> np.ndarray:
    """A 1-D integer array long enough for one window and its next id."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise TypeError(f"{WHO}: expected {name} as a 1-D array of integer ids, got "
                        f"{ids.dtype} of shape {ids.shape}")
    if len(ids) < block_size + 1:
        raise ValueError(f"{WHO}: {name} holds {len(ids)} ids, no window of block_size="
                         f"{block_size} with its next id; expected at least {block_size + 1}")
    return ids

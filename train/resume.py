"""Resuming a run of ``fit`` from its checkpoint: all or nothing, checked first."""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from .checkpoint import check, copy
from .protocols import LoadsState, named_layers
from .schedule import MAX_EPOCHS


def resume(checkpoint, model, optimizer, rng: np.random.Generator, scheduler=None,
           epochs: int | None = None) -> tuple[int, dict]:
    """Load ``checkpoint`` into the model, optimizer, schedule and shuffling generator; return
    the first epoch still to run and the history so far. All or nothing: fit's own state is
    checked with the rest of the file before anything is loaded, and the schedule (loaded
    first, since its load checks it) is put back if the optimizer's load fails after it.
    A run that already holds ``epochs`` epochs is said to be finished (a warning)."""
    if checkpoint is None:
        raise ValueError("fit: resume=True needs checkpoint=PATH to resume from")
    if not os.path.exists(checkpoint):
        warnings.warn(f"fit: no checkpoint at {checkpoint} to resume from; starting at "
                      f"epoch 1", stacklevel=3)
        return 1, {}
    found = load_run(checkpoint, model, optimizer, scheduler,
                     lambda extra: fit_state(checkpoint, extra, rng, model))
    rng.bit_generator.state = found["rng"]
    set_generator_states(model, found["generators"])
    done = found["epoch"]
    if epochs is not None and done >= epochs:
        warnings.warn(f"fit: the run in {checkpoint} is finished: it holds {done} epochs and "
                      f"epochs={epochs}, so there is nothing to train; its history is returned "
                      f"as it is (to train further, pass a larger epochs=)", stacklevel=3)
    return done + 1, found["history"]


def load_run(checkpoint, model, optimizer, scheduler, read_state) -> dict:
    """What resuming ``fit`` and ``fit_iterations`` share: check the whole file, the run's own
    entry of its extra through ``read_state(extra)``, then load the schedule, the model and
    the optimizer, all or nothing (the schedule, loaded first since its load checks it, is put
    back if the optimizer's load fails after it). Returns what ``read_state`` gave."""
    found: dict = {}
    loads = optimizer if isinstance(optimizer, LoadsState) else None
    checked = check(checkpoint, model, loads, check_extra=lambda extra: found.update(read_state(extra)))
    before = None if scheduler is None else scheduler.state_dict()
    _load_scheduler(checkpoint, scheduler, found.get("scheduler"))
    try:
        copy(checked, model, loads)
    except Exception:
        if scheduler is not None and before is not None:
            scheduler.load_state_dict(before)
        raise
    return found


def fit_state(checkpoint, extra: dict, rng: np.random.Generator, model=None) -> dict:
    """The ``"fit"`` entry of a checkpoint's extra, checked: epoch, history, a generator
    state that ``rng`` accepts and (given the model) the state of every generator its layers
    own. A ValueError naming the file otherwise."""
    state = extra.get("fit")
    if not isinstance(state, dict):
        raise ValueError(f"fit: {checkpoint} holds no training state to resume from (it was "
                         f"written by checkpoint.save, not by fit): load it with "
                         f"checkpoint.load(path, model, optimizer) and call fit without resume")
    epoch, history = state.get("epoch"), state.get("history")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"fit: {checkpoint}: expected its epoch to be an int >= 1, got {epoch!r}")
    if epoch > MAX_EPOCHS:
        raise ValueError(f"fit: {checkpoint}: expected its epoch to be <= {MAX_EPOCHS:.0e}, got "
                         f"{_short(epoch)}")
    if not isinstance(history, dict) or not all(
            isinstance(v, list) and len(v) == epoch and all(is_number(x) for x in v)
            for v in history.values()):
        raise ValueError(f"fit: {checkpoint}: expected its history to hold {epoch} numbers "
                         f"per metric; its weights still load without the history: "
                         f"checkpoint.load(path, model, optimizer)")
    try:
        type(rng.bit_generator)().state = state["rng"]  # a throwaway generator checks it
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(f"fit: {checkpoint}: its shuffling generator state does not load "
                         f"({type(err).__name__}: {err})") from None
    saved = {} if model is None else _generator_states(checkpoint, state, model)
    return {**state, "epoch": epoch, "history": history, "generators": saved}


def generators(model) -> dict[str, np.random.Generator]:
    """Every random generator the model's layers own (Dropout's ``rng``), by the layer's
    path and attribute (``"2.rng"``), each generator once: the random state a bit-exact
    resume must restore besides fit's own shuffling generator."""
    found: dict[str, np.random.Generator] = {}
    seen: set[int] = set()
    for path, layer in named_layers(model):
        for attr, value in vars(layer).items():
            if isinstance(value, np.random.Generator) and id(value) not in seen:
                seen.add(id(value))
                found[f"{path}.{attr}" if path else attr] = value
    return found


def generator_states(model) -> dict[str, Any]:
    """The state of every generator the model's layers own, by ``generators``' keys: what a
    checkpoint keeps so that a resumed run draws what an uninterrupted one would."""
    return {key: g.bit_generator.state for key, g in generators(model).items()}


def set_generator_states(model, states: dict[str, Any]) -> None:
    """Put back what ``generator_states`` gave (checked by ``checked_generator_states``)."""
    for key, generator in generators(model).items():
        if key in states:
            generator.bit_generator.state = states[key]


def checked_generator_states(who: str, checkpoint, saved: object, model) -> dict:
    """``saved``, checked to hold one loadable state per generator of the model; a ValueError
    naming ``who`` and the file otherwise."""
    mine = generators(model)
    if not isinstance(saved, dict) or set(saved) != set(mine):
        got = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
        raise ValueError(f"{who}: {checkpoint}: expected the states of the model's random "
                         f"generators {sorted(mine)}, got {got}")
    for key, generator in mine.items():
        checked_generator_state(who, checkpoint, generator, saved[key], key)
    return saved


def checked_generator_state(who: str, checkpoint, generator: np.random.Generator, state: object,
                            key: str = "") -> None:
    """A ValueError naming ``who`` and the file unless ``generator`` would accept ``state``
    (tried on a throwaway generator of its kind)."""
    try:
        type(generator.bit_generator)().state = state  # type: ignore[assignment]
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(f"{who}: {checkpoint}: the state of the generator {key or 'rng'} does "
                         f"not load ({type(err).__name__}: {err})") from None


def _generator_states(checkpoint, state: dict, model) -> dict:
    """The saved states of the model's generators, checked to be one per generator, each
    loadable. A checkpoint of an older handprop holds none: resuming it draws differently
    from an uninterrupted run, which a warning says."""
    mine = generators(model)
    saved = state.get("generators")
    if saved is None:
        if mine:
            warnings.warn(f"fit: {checkpoint} holds no state of the model's random generators "
                          f"({', '.join(mine)}; written by an older handprop): the resumed "
                          f"run draws other dropout masks than an uninterrupted one would",
                          stacklevel=8)
        return {}
    return checked_generator_states("fit", checkpoint, saved, model)


def _short(value) -> str:
    """A value for a message: a huge int by its size, since printing it may itself fail."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an int of about {int(value.bit_length() * 0.30103) + 1} digits"
    return repr(value)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _load_scheduler(checkpoint, scheduler, saved: dict | None) -> None:
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

"""What a check will cost, said before the long work starts.

The element-wise check evaluates the objective twice per element of every checked tensor, so
its cost is ``2 * elements`` times the time of one evaluation: seconds for a small layer, hours
for a large one (a 10^7-parameter Linear takes about 4 h). gradcheck times one evaluation
before anything else and, when the estimate passes ``PROGRESS_AFTER``, says so on stderr, with
the fast mode's cost beside it, then shows each tensor as it finishes. Left to choose
(``fast=None``, the default), a check estimated over ``FAST_AFTER`` runs in the fast mode and
says so in the report; ``fast=False`` insists on every element.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from .objective import Objective

# A check expected to take longer than this (in seconds) shows its estimate and progress on
# stderr and suggests the fast mode.
PROGRESS_AFTER = 5.0
# Left to choose, a check whose every-element estimate passes this (in seconds) takes random
# directions instead: ten minutes is past anything a test or a quick look should wait for.
FAST_AFTER = 600.0


def evaluation_seconds(objective: Objective) -> float:
    """The time of one evaluation of the objective (a forward, and the change it makes to L)."""
    started = time.perf_counter()
    out = objective.forward()
    try:
        objective.change(out, out)
    except Exception:  # a forward that returns the wrong thing: the contract check says what
        pass
    return time.perf_counter() - started


def evaluations(tensors: dict[str, np.ndarray], fast: bool, directions: int) -> int:
    """How many evaluations the differences take: two per element, or per random direction."""
    return sum(2 * (directions if fast else t.size) for t in tensors.values())


def duration(seconds: float) -> str:
    """A time as a person reads it: "12 s", "4.2 min", "3.9 h"."""
    if seconds < 1:
        return "under 1 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def choose_mode(name: str, tensors: dict[str, np.ndarray], fast: bool | None, directions: int,
                each: float) -> tuple[bool, str | None]:
    """The mode to run (fast or not) and, when it was switched to fast, the report's warning."""
    if fast is not None:
        return fast, None
    full = evaluations(tensors, False, directions) * each
    if full <= FAST_AFTER:
        return False, None
    return True, (f"checked along {directions} random directions per tensor (fast=True), not every "
                  f"element: the full check would take about {duration(full)} "
                  f"({evaluations(tensors, False, directions)} evaluations of {each * 1e3:.3g} ms); "
                  f"pass fast=False (--full) to check every element anyway")


def progress(name: str, tensors: dict[str, np.ndarray], fast: bool, directions: int, each: float,
             wanted: bool | None, switched: str | None) -> Callable[[str, np.ndarray], None] | None:
    """Says the estimate on stderr now and returns a function that reports each tensor done, or
    None when the check is short (or ``wanted`` is False)."""
    total = evaluations(tensors, fast, directions)
    expected = total * each
    if wanted is False or (wanted is None and expected < PROGRESS_AFTER and switched is None):
        return None
    if switched:
        print(f"gradcheck {name}: {switched}", file=sys.stderr, flush=True)
    fast_cost = evaluations(tensors, True, directions) * each
    advice = "" if fast else (f"; fast=True (--fast) checks {directions} random directions per "
                              f"tensor instead, in {duration(fast_cost)}")
    print(f"gradcheck {name}: {total} evaluations, about {duration(expected)}{advice}",
          file=sys.stderr, flush=True)
    done = [0]

    def show(key: str, tensor: np.ndarray) -> None:
        done[0] += 2 * (directions if fast else tensor.size)
        print(f"gradcheck {name}: {key} {tensor.shape} done ({done[0]}/{total} evaluations)",
              file=sys.stderr, flush=True)
    return show

"""Minibatches: the (start, stop) bounds of each batch, and the batches themselves."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ...layers import validate


def batch_bounds(n: int, batch_size: int, *, who: str = "batch_bounds") -> list[tuple[int, int]]:
    """(start, stop) of each minibatch. A lone last sample joins the batch before it, since
    BatchNorm cannot train on a batch of one. A bad ``batch_size`` is an error naming ``who``,
    the function the user called with it (``fit``, ``predict``), not this helper."""
    batch_size = validate.integer(who, "batch_size", batch_size, low=1)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


def minibatches(X: np.ndarray, y: np.ndarray, batch_size: int,
                rng: np.random.Generator | None = None, *,
                who: str = "minibatches") -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (X_batch, y_batch) pairs covering every sample once.

    With ``rng`` the samples are shuffled by ``rng.permutation`` (one draw per call, so a seeded
    generator gives the same batches every run); without it they come in order, as views.
    Errors name ``who``, the function the user called (``evaluate``), as ``batch_bounds``'s do.
    """
    if len(X) != len(y):
        raise ValueError(f"{who}: X has {len(X)} samples but y has {len(y)}")
    order = None if rng is None else rng.permutation(len(X))
    for start, stop in batch_bounds(len(X), batch_size, who=who):
        if order is None:
            yield X[start:stop], y[start:stop]
        else:
            index = order[start:stop]
            yield X[index], y[index]

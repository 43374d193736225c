"""Data: the spiral toy problem and seeded minibatches."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def spiral(n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: int = 0,
           dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The classic two-dimensional toy problem: ``n_classes`` interleaved spiral arms.

    Point i of arm k sits at radius r = i / (n - 1) and angle 4 (k + r) plus Gaussian noise of
    standard deviation ``noise``, so no linear model separates the arms.

    Returns
    -------
    X : ndarray (n_per_class * n_classes, 2) of ``dtype``
    y : ndarray (n_per_class * n_classes,) of int64, the arm of each point
    """
    if n_per_class < 1 or n_classes < 2:
        raise ValueError(f"spiral: expected n_per_class >= 1 and n_classes >= 2, "
                         f"got {n_per_class} and {n_classes}")
    rng = np.random.default_rng(seed)
    r = np.linspace(0.0, 1.0, n_per_class)
    arms = []
    for k in range(n_classes):
        angle = 4 * (k + r) + noise * rng.standard_normal(n_per_class)
        arms.append(np.column_stack([r * np.sin(angle), r * np.cos(angle)]))
    X = np.concatenate(arms).astype(dtype)
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each minibatch. A lone last sample joins the batch before it, since
    BatchNorm cannot train on a batch of one."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"expected batch_size to be an int >= 1, got {batch_size!r}")
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


def minibatches(X: np.ndarray, y: np.ndarray, batch_size: int,
                rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (X_batch, y_batch) pairs covering every sample once.

    With ``rng`` the samples are shuffled by ``rng.permutation`` (one draw per call, so a seeded
    generator gives the same batches every run); without it they come in order, as views.
    """
    if len(X) != len(y):
        raise ValueError(f"minibatches: X has {len(X)} samples but y has {len(y)}")
    order = None if rng is None else rng.permutation(len(X))
    for start, stop in batch_bounds(len(X), batch_size):
        if order is None:
            yield X[start:stop], y[start:stop]
        else:
            index = order[start:stop]
            yield X[index], y[index]

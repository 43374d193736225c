"""Two in-place kernels of the update rules, rounded as torch's ``lerp_`` and ``addcmul_``
round them, so that a step agrees with PyTorch's to the last bit where it can."""
from __future__ import annotations

import numpy as np


def lerp(start: np.ndarray, end: np.ndarray, weight: float, scratch: np.ndarray) -> None:
    """start += weight * (end - start), in place, rounded as torch's ``lerp_`` rounds it
    (from the nearer end, so a weight near 1 loses nothing)."""
    np.subtract(end, start, out=scratch)
    if weight < 0.5:
        scratch *= weight
        start += scratch
    else:
        scratch *= 1 - weight
        np.subtract(end, scratch, out=start)


def addcmul(target: np.ndarray, a: np.ndarray, b: np.ndarray, value: float,
            scratch: np.ndarray) -> None:
    """target += value * a * b, in place, in torch's ``addcmul_`` order ((value * a) * b)."""
    np.multiply(a, value, out=scratch)
    scratch *= b
    target += scratch

"""scipy.special's sigmoid and normal CDF in the input's own dtype.

scipy's ufuncs have loops for float32 and float64 only: a float16 array goes to the float32
loop and comes back float32 (or float64), and the layers' "the input's dtype throughout" is
broken. Writing into an array of the input's dtype runs the nearest loop and rounds once, at
the end.
"""
from __future__ import annotations

import numpy as np
from scipy import special


def expit(x: np.ndarray) -> np.ndarray:
    """sigmoid(x) = 1 / (1 + exp(-x)), same shape and dtype as x, never overflowing."""
    return special.expit(x, out=np.empty_like(x))


def ndtr(x: np.ndarray) -> np.ndarray:
    """Phi(x), the standard normal CDF, same shape and dtype as x, accurate in both tails."""
    return special.ndtr(x, out=np.empty_like(x))

"""Dropout: zero each element with probability p while training. Derivation:
docs/derivations/dense.md#dropout."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import Layer, check_grad, check_input, non_default
from .validate import generator, real


class Saved(NamedTuple):
    """What the forward pass keeps for backward."""

    mask: np.ndarray | None   # (...) keep / (1 - p) or 0 per element; None: the identity
    shape: tuple[int, ...]    # the output's shape and dtype, to check dout against
    dtype: np.dtype


class Dropout(Layer):
    """Inverted dropout, with PyTorch's semantics.

    Training mode, elementwise (all of the input's shape)::

        keep = uniform(0, 1) >= p                draws from self.rng: P(keep) = 1 - p
        mask = keep / (1 - p)                    0 or 1 / (1 - p)
        out  = x * mask

    so ``E[out] = x`` and eval mode, the identity, needs no rescaling. ``p = 1`` drops
    everything (mask 0, no division by zero); ``p = 0`` is the identity in both modes. The
    identity returns a copy, never x itself: a caller that perturbs x in place and calls
    forward again (the gradient checker does) must not see the old output change.

    Local derivative: the mask is a constant of the draw, so ``dx = dout * mask``, the same
    elements dropped and the same scale. The cache keeps the mask.

    Every draw comes from ``self.rng``, the layer's own ``numpy.random.Generator``: a seed
    reproduces a run, and the gradient checker can replay the generator's state so that every
    evaluation of a check sees the same mask.

    Parameters
    ----------
    p : float
        Probability of zeroing an element, in [0, 1] (PyTorch's default 0.5).
    rng : int or numpy.random.Generator, optional
        Seed or generator for the masks.

    Examples
    --------
    >>> drop = Dropout(0.5, rng=0)
    >>> drop.forward(np.ones((1, 6)))
    array([[2., 0., 0., 0., 2., 2.]])
    >>> drop.eval().forward(np.ones((1, 3)))
    array([[1., 1., 1.]])
    """

    def __init__(self, p: float = 0.5, *, rng: int | np.random.Generator | None = None) -> None:
        super().__init__()
        # p is the probability of an element being zeroed
        self.p: float = real("Dropout", "p", p, low=0, high=1)
        self.rng: np.random.Generator = generator("Dropout", rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (...) -> out (...), same shape and dtype."""
        check_input(self, x)
        if not self.training or self.p == 0:
            self.cache = Saved(None, x.shape, x.dtype)
            return x.copy()               # a new array, as every layer's: never x itself
        scale = 0.0 if self.p == 1 else 1 / (1 - self.p)       # p = 1: all dropped, no 1/0
        keep = self.rng.random(x.shape, dtype=_draw_dtype(x.dtype)) >= self.p   # (...) bool
        mask = keep * x.dtype.type(scale)                       # (...) x's dtype
        self.cache = Saved(mask, x.shape, x.dtype)
        return x * mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (...) -> dx (...)."""
        mask, shape, dtype = self._saved()                      # a Saved
        check_grad(self, dout, shape, dtype)
        return dout.copy() if mask is None else dout * mask

    def extra_repr(self) -> str:
        return non_default(p=(self.p, 0.5))


def _draw_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype of the uniform draws: numpy's generator draws float32 and float64 only, and
    a float16 input's p is compared in float32 (its mask is float16 all the same)."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype

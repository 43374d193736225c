"""Sigmoid: out = 1 / (1 + exp(-x)). Derivation: docs/derivations/dense.md#sigmoid."""
from __future__ import annotations

import numpy as np

from .base import Layer, check_grad, check_input
from .special import expit


class Sigmoid(Layer):
    """Logistic sigmoid, elementwise ``out = 1 / (1 + exp(-x))``.

    Shapes: x and out of any shape, the same; no parameters.

    Local derivative: d sigma(x) / dx = sigma(x) * (1 - sigma(x)), a function of the output,
    so ``dx = dout * out * (1 - out)`` from the cached output, with no second exp.

    The forward pass is ``scipy.special.expit``, which never forms exp(-x) for large negative
    x: inputs of +-1e4 give exactly 0 and 1, in float32 and float64, with no overflow warning
    (the formula as written overflows exp(1e4) to inf on its way to the right answer).

    Examples
    --------
    >>> Sigmoid().forward(np.array([[-1e4, 0.0, 1e4]]))
    array([[0. , 0.5, 1. ]])
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (...) -> out (...), same shape and dtype."""
        check_input(self, x)
        out = expit(x)
        self.cache = out
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (...) -> dx (...)."""
        out = self._saved()
        check_grad(self, dout, out.shape, out.dtype)
        return dout * out * (1 - out)

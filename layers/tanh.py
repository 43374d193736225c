"""Tanh: out = tanh(x). Derivation: docs/derivations/dense.md#tanh."""
from __future__ import annotations

import numpy as np

from .base import Layer, check_grad, check_input


class Tanh(Layer):
    """Hyperbolic tangent, elementwise ``out = tanh(x)``.

    Shapes: x and out of any shape, the same; no parameters.

    Local derivative: d tanh(x) / dx = 1 - tanh(x)**2, which the cached output gives
    without a second call to tanh: ``dx = dout * (1 - out**2)``.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (...) -> out (...), same shape and dtype."""
        check_input(self, x)
        out = np.tanh(x)
        self.cache = out
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (...) -> dx (...)."""
        out = self._saved()
        check_grad(self, dout, out.shape, out.dtype)
        return dout * (1 - out * out)

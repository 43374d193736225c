"""GELU: out = x * Phi(x), Phi the standard normal CDF. Derivation: docs/derivations/dense.md#gelu."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .base import Layer, check_grad, check_input
from .special import ndtr
from .validate import choice

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
CUBIC = 0.044715  # the tanh approximation's constant (Hendrycks & Gimpel), as PyTorch


class Saved(NamedTuple):
    """What the forward pass keeps for backward."""

    x: np.ndarray             # (...) the input
    gate: np.ndarray          # (...) the factor that gates x: Phi(x), or t for the tanh form


class GELU(Layer):
    """Gaussian error linear unit, elementwise, with PyTorch's two forms.

    ``approximate="none"`` (exact)::

        Phi = ndtr(x)                          the standard normal CDF, (1 + erf(x / sqrt 2)) / 2
        out = x * Phi
        d out / dx = Phi + x * phi(x)          phi(x) = exp(-x**2 / 2) / sqrt(2 pi), the pdf

    ``approximate="tanh"``::

        u = sqrt(2 / pi) * (x + 0.044715 * x**3)
        t = tanh(u)
        out = 0.5 * x * (1 + t)
        d out / dx = 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * sqrt(2 / pi) * (1 + 3 * 0.044715 * x**2)

    Shapes: x and out of any shape, the same; no parameters. Phi comes from
    ``scipy.special.ndtr``, accurate in both tails (``1 - Phi`` is never computed by
    subtraction). The cache keeps x and the gate (Phi, or t).

    Parameters
    ----------
    approximate : {"none", "tanh"}
        Which form, as ``torch.nn.GELU(approximate=...)``.

    Examples
    --------
    >>> GELU().forward(np.array([[0.0, 1.0]])).round(6)
    array([[0.      , 0.841345]])
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = choice("GELU", "approximate", approximate, ("none", "tanh"))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (...) -> out (...), same shape and dtype."""
        check_input(self, x)
        if self.approximate == "none":
            gate = ndtr(x)                                      # Phi(x)
            out = x * gate
        else:
            gate = np.tanh(SQRT_2_OVER_PI * (x + CUBIC * (x * x * x)))    # t
            out = 0.5 * x * (1 + gate)
        self.cache = Saved(x, gate)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (...) -> dx (...)."""
        x, gate = self._saved()                                 # a Saved
        check_grad(self, dout, x.shape, x.dtype)
        if self.approximate == "none":
            pdf = INV_SQRT_2PI * np.exp(-0.5 * (x * x))         # phi(x)
            return dout * (gate + x * pdf)                      # product rule
        du_dx = SQRT_2_OVER_PI * (1 + 3 * CUBIC * (x * x))
        dt_dx = (1 - gate * gate) * du_dx                       # tanh' = 1 - t**2, chain rule
        return dout * (0.5 * (1 + gate) + 0.5 * x * dt_dx)      # product rule

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else "approximate='tanh'"

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

# float32's Phi from a table: ndtr is a scalar loop per element (about 45 times PyTorch's whole
# GELU on the GPT's (768, 512) activations), so float32 interpolates a grid of exact values
# instead: cubic Hermite between Phi and its slope phi at steps of 1/64. Its error is at most
# 6e-8 (float32's rounding near 1) and within one unit in the last place of ndtr's float32
# result for x > -4.3; further left the relative error grows to 1e-5 at -13, where x * Phi is
# below 1e-20. From -14.5 (where float32's Phi is 0) to 10 (where it is 1); float64 keeps ndtr.
STEPS, LOW, HIGH = 64, -14.5, 10.0
_GRID = np.arange(round(LOW * STEPS), round(HIGH * STEPS) + 2) / STEPS   # exact in binary
_PHI, _SLOPE = ndtr(_GRID), INV_SQRT_2PI * np.exp(-0.5 * _GRID ** 2) / STEPS
# per interval, the cubic c0 + c1 t + c2 t^2 + c3 t^3 in t = STEPS * x - k, in [0, 1)
_RISE = _PHI[1:] - _PHI[:-1]
_CUBIC_TABLE = np.stack([_PHI[:-1], _SLOPE[:-1], 3 * _RISE - 2 * _SLOPE[:-1] - _SLOPE[1:],
                         _SLOPE[:-1] + _SLOPE[1:] - 2 * _RISE]).astype(np.float32)


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x), elementwise: ``ndtr`` for float64; for float32 the interpolated table above
    (tests/test_gelu_table.py holds it to ndtr)."""
    if x.dtype != np.float32:
        return ndtr(x)
    s = np.clip(x, LOW, HIGH)
    s *= STEPS                                   # exact: a power of two
    scratch = np.floor(s)                        # the interval k, then each coefficient
    with np.errstate(invalid="ignore"):          # NaN: any row; t keeps it NaN
        row = scratch.astype(np.int32)
    row -= round(LOW * STEPS)
    t = np.subtract(s, scratch, out=s)           # exact: the interval's fraction
    c0, c1, c2, c3 = _CUBIC_TABLE
    out = np.take(c3, row, mode="clip")          # Horner: ((c3 t + c2) t + c1) t + c0
    for c in (c2, c1, c0):
        out *= t
        out += np.take(c, row, mode="clip", out=scratch)
    return out


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
    subtraction); in float32 from an interpolated table of its values (``normal_cdf``, as
    exact, four times faster). The cache keeps x and the gate (Phi, or t).

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
            gate = normal_cdf(x)                                # Phi(x)
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

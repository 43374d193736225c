"""GELU: out = x * Phi(x), Phi the standard normal CDF. Derivation: docs/derivations/dense.md#gelu."""
from __future__ import annotations

import math

import numpy as np

from .base import Layer, check_grad, check_input
from .special import ndtr
from .validate import choice

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
CUBIC = 0.044715  # the tanh approximation's constant (Hendrycks & Gimpel), as PyTorch

# float32's Phi in a few vector passes: ndtr is a scalar loop per element (about 45 times
# PyTorch's whole GELU on the GPT's (768, 512) activations). With a = |x|, the left tail is
#     Phi(-a) = exp(-a**2 / 2) * P(s),   s = p a / (1 + p a) in [0, 1),
# P of degree 8 fitted for the smallest largest relative error over 0 <= a <= 13.5, 8.2e-8
# (docs/derivations/normal_cdf_fit.py printed these), and Phi(x) = 1 - Phi(-x) right of 0,
# the one subtraction, where Phi >= 1/2 and float32 keeps an absolute error of 6e-8 anyway.
# The exponential is the pdf's, which the backward pass needs too. Within 1.4e-7 of ndtr, a
# relative 1e-5 in the far left tail (tests/test_gelu_float32.py); float64 keeps ndtr.
TAIL_SCALE = 0.4
TAIL_POLYNOMIAL = (0.5, -0.9973516, 0.5649937, 0.051751953, -0.1141043, -0.003175398,
                   -0.07912749, 0.116749726, -0.039748862)     # P's coefficients, s**0 first
BEYOND = 20.0               # |x| past which float32's Phi is 0 or 1; keeps inf out of s


def normal_cdf_and_pdf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Phi(x) and phi(x) = exp(-x**2 / 2) / sqrt(2 pi), elementwise, each shaped as x."""
    if x.dtype != np.float32:
        return ndtr(x), INV_SQRT_2PI * np.exp(-0.5 * (x * x))
    a = np.clip(x, -BEYOND, BEYOND)
    a = np.abs(a, out=a)
    s = a * TAIL_SCALE
    s /= s + 1
    cdf = s * TAIL_POLYNOMIAL[-1]                       # Horner: ((c8 s + c7) s + ...) s + c0
    cdf += TAIL_POLYNOMIAL[-2]
    for c in TAIL_POLYNOMIAL[-3::-1]:
        cdf *= s
        cdf += c
    pdf = np.multiply(a, a, out=a)
    pdf *= -0.5
    pdf = np.exp(pdf, out=pdf)                          # exp(-x**2 / 2)
    cdf *= pdf                                          # Phi(-|x|)
    right = (x > 0).astype(x.dtype)
    flip = np.multiply(right, -2, out=s)
    flip += 1                                           # -1 right of 0, 1 elsewhere
    cdf *= flip
    cdf += right                                        # 1 - Phi(-x) right of 0
    pdf *= INV_SQRT_2PI
    return cdf, pdf


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x), elementwise, as ``normal_cdf_and_pdf``."""
    return normal_cdf_and_pdf(x)[0]


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
    ``scipy.special.ndtr`` in float64, accurate in both tails; in float32 from the left tail's
    formula ``Phi(-|x|) = exp(-x**2 / 2) P(s)`` with a fitted polynomial P
    (``normal_cdf_and_pdf``, which shares its exponential with phi; docs/derivations/dense.md),
    keeping a relative accuracy of 1e-5 in the left tail, where ``(1 + erf) / 2`` would
    cancel. The forward pass has every factor of the local derivative at hand, so the cache
    keeps that derivative, d out / dx, and backward is one product.

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
            cdf, pdf = normal_cdf_and_pdf(x)                    # Phi(x), phi(x)
            out = x * cdf
            slope = np.multiply(x, pdf, out=pdf)
            slope += cdf                                        # Phi + x phi: product rule
        else:
            t = np.tanh(SQRT_2_OVER_PI * (x + CUBIC * (x * x * x)))
            out = 0.5 * x * (1 + t)
            du_dx = SQRT_2_OVER_PI * (1 + 3 * CUBIC * (x * x))
            dt_dx = (1 - t * t) * du_dx                         # tanh' = 1 - t**2, chain rule
            slope = 0.5 * (1 + t) + 0.5 * x * dt_dx             # product rule
        self.cache = slope                                      # (...) d out / dx
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (...) -> dx (...)."""
        slope = self._saved()
        check_grad(self, dout, slope.shape, slope.dtype)
        return dout * slope

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else "approximate='tanh'"

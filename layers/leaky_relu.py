"""LeakyReLU: out = x where x > 0, negative_slope * x elsewhere. Derivation:
docs/derivations/dense.md#leakyrelu."""
from __future__ import annotations

import numpy as np

from .base import Layer, check_grad, check_input, non_default
from .validate import real


class LeakyReLU(Layer):
    """Leaky rectified linear unit, elementwise ``out = x if x > 0 else negative_slope * x``.

    Shapes: x and out of any shape, the same; no parameters.

    Local derivative: 1 where x > 0 and ``negative_slope`` elsewhere, so
    ``dx = where(x > 0, dout, negative_slope * dout)``. At x == 0 exactly the slope is
    ``negative_slope``, as in PyTorch. The cache keeps x (a reference, not a copy): unlike
    ReLU's, the output's sign does not tell where x > 0 when the slope is negative.

    Parameters
    ----------
    negative_slope : float
        The slope for x <= 0 (PyTorch's default 0.01).

    Examples
    --------
    >>> LeakyReLU(0.1).forward(np.array([[-2.0, 0.0, 3.0]]))
    array([[-0.2,  0. ,  3. ]])
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope: float = real("LeakyReLU", "negative_slope", negative_slope)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (...) -> out (...), same shape and dtype."""
        check_input(self, x)
        self.cache = x
        return np.where(x > 0, x, self.negative_slope * x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (...) -> dx (...)."""
        x = self._saved()
        check_grad(self, dout, x.shape, x.dtype)
        return np.where(x > 0, dout, self.negative_slope * dout)

    def extra_repr(self) -> str:
        return non_default(negative_slope=(self.negative_slope, 0.01))

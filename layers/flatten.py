"""Flatten: (N, C, H, W) -> (N, C*H*W), as PyTorch's nn.Flatten() (start_dim=1)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import Layer, check_grad, check_input


class Saved(NamedTuple):
    """What the forward pass keeps for backward: no values, only what dx must look like."""

    x_shape: tuple            # (N, C, H, W)
    dtype: np.dtype           # the input's, which dout must have


class Flatten(Layer):
    """Flatten each sample: x (N, d1, d2, ...) -> out (N, d1*d2*...), in C order, so that a
    following Linear sees the features as PyTorch's ``nn.Flatten()`` lays them out.

    A reshape moves no value, so its derivative is the reshape back: ``dx =
    dout.reshape(x.shape)``. The cache keeps only the input's shape and dtype.

    Examples
    --------
    >>> Flatten().forward(np.zeros((2, 3, 4, 5), np.float32)).shape
    (2, 60)
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, ...) -> out (N, prod(...))."""
        check_input(self, x)
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected input of shape (N, ...) with at least 2 "
                             f"dimensions, got {x.shape}")
        self.cache = Saved(x.shape, x.dtype)
        out = x.reshape(x.shape[0], -1)   # a view of x if its memory is C-ordered, else a copy
        # never a view: whoever changes the output in place must not change x with it
        return out.copy() if np.may_share_memory(out, x) else out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, prod(...)) -> dx (N, ...)."""
        x_shape, dtype = self._saved()
        check_grad(self, dout, (x_shape[0], int(np.prod(x_shape[1:]))), dtype)
        dx = dout.reshape(x_shape)            # likewise never a view of dout
        return dx.copy() if np.may_share_memory(dx, dout) else dx

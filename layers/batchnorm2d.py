"""BatchNorm2d: BatchNorm1d over the (N, H, W) axes of NCHW images, one set of statistics per
channel. Derivation: docs/derivations/normalization.md#batchnorm2d.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import batchnorm
from .base import check_grad
from .batchnorm import BatchNorm1d
from .windows import channels_outer, check_images


class Saved(NamedTuple):
    """What the forward pass keeps for backward."""

    flat: batchnorm.Saved     # BatchNorm1d's cache of the (N*H*W, C) reading: xhat, inv_std, ...
    shape: tuple              # (N, C, H, W)


class BatchNorm2d(BatchNorm1d):
    """Batch normalization of (N, C, H, W) images, with PyTorch's semantics.

    Every pixel of every image is one sample of its channel's C features: with the input
    read as ``x2d`` of shape (N*H*W, C), this is exactly ``BatchNorm1d(C)`` on x2d, forward
    and backward (mean and biased variance over the N*H*W rows, ``running_var`` from the
    unbiased one, ``momentum`` the weight of the new batch)::

        x2d = x.transpose(1, 0, 2, 3).reshape(C, N*H*W).T        # (N*H*W, C)
        out = BatchNorm1d.forward(x2d), reshaped and transposed back to (N, C, H, W)

    and ``dx`` is BatchNorm1d's dx of dout read the same way. The sums over rows of the
    derivation are sums over N, H and W. On (C, N, H, W) memory (what Conv2d outputs) both
    readings are views, without a copy, and x2d is column-major: each channel's N*H*W values
    are one contiguous run, so the per-channel broadcasts run along long rows.

    Parameters
    ----------
    num_features : int
        C, the number of channels.
    eps : float
        Added to the variance before the square root; > 0.
    momentum : float
        Weight of the new batch in the running statistics, in [0, 1].
    dtype : numpy dtype
        Floating-point type of parameters, buffers, outputs and gradients.

    Examples
    --------
    >>> bn = BatchNorm2d(3, dtype=np.float64)
    >>> x = np.random.default_rng(0).normal(5.0, 2.0, (4, 3, 6, 6))
    >>> out = bn.forward(x)                                # each channel over N, H and W
    >>> bool(np.allclose(out.mean(axis=(0, 2, 3)), 0) and np.allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-5))
    True
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) -> out (N, C, H, W)."""
        check_images(self, x, self.num_features, self.dtype)
        n, c, h, w = x.shape
        if self.training and n * h * w < 2 and self.shards is None:   # split: the batch's count
            raise ValueError(f"{self!r}: expected more than 1 value per channel when training, "
                             f"got input of shape {x.shape}; the batch variance of one value "
                             f"is undefined (call eval() to use the running statistics)")
        out2d = super().forward(channels_outer(x).reshape(c, n * h * w).T)   # (N*H*W, C)
        self.cache = Saved(self.cache, x.shape)
        return channels_outer(out2d.T.reshape(c, n, h, w))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, H, W) -> dx (N, C, H, W); fills grads["gamma"] and grads["beta"], (C,)."""
        saved = self._saved()
        check_grad(self, dout, saved.shape, self.dtype)
        n, c, h, w = saved.shape
        self.cache = saved.flat                  # BatchNorm1d.backward reads its own cache
        try:
            dx2d = super().backward(channels_outer(dout).reshape(c, n * h * w).T)
        finally:
            self.cache = saved
        return channels_outer(dx2d.T.reshape(c, n, h, w))

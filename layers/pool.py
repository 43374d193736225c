"""MaxPool2d and AvgPool2d: the largest or the mean value of each window, channel by channel.

Derivation: docs/derivations.md#pooling. The layers work on all windows at once (im2col
columns); ``staged_max_pool``, ``staged_avg_pool`` and their ``_backward`` loop over output positions and read as the
definition, kept for reading and for the tests, which hold the two equal.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import Layer, check_grad
from .windows import Pair, channels_first, check_images, col2im, im2col, output_size, pair, show


class Saved(NamedTuple):
    """What the forward pass keeps for backward."""

    argmax: np.ndarray        # (N*OH*OW, C) which of the kh*kw taps held each window's max;
                              # None for AvgPool2d
    x_shape: tuple            # (N, C, H, W), for dx
    out_hw: Pair              # (OH, OW)


class _Pool2d(Layer):
    """The window arguments and checks MaxPool2d and AvgPool2d share; no parameters."""

    def __init__(self, kernel_size: int | Pair, stride: int | Pair | None = None,
                 padding: int | Pair = 0) -> None:
        super().__init__()
        who = type(self).__name__
        self.kernel_size = pair(who, "kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else pair(who, "stride", stride, 1)
        self.padding = pair(who, "padding", padding, 0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{who}: expected padding at most half the kernel size "
                             f"{show(self.kernel_size)}, got {show(self.padding)}")

    def _windows(self, x: np.ndarray, fill: float) -> tuple[np.ndarray, Pair]:
        """x (N, C, H, W) -> the windows (N*OH*OW, C, kh*kw) and (OH, OW)."""
        check_images(self, x, None)
        geometry = (self.kernel_size, self.stride, self.padding, (1, 1))
        out_hw = output_size(self, x.shape, *geometry)
        cols = im2col(x, *geometry, out_hw, fill)
        return cols.reshape(cols.shape[0], x.shape[1], -1), out_hw

    def _col2im(self, dcols: np.ndarray, x_shape: tuple, out_hw: Pair) -> np.ndarray:
        return col2im(dcols, x_shape, self.kernel_size, self.stride, self.padding, (1, 1), out_hw)

    def _output(self, out2d: np.ndarray, x_shape: tuple, out_hw: Pair) -> np.ndarray:
        return channels_first(out2d.reshape(x_shape[0], *out_hw, x_shape[1]))

    def _dout2d(self, dout: np.ndarray, x_shape: tuple, out_hw: Pair, dtype) -> np.ndarray:
        check_grad(self, dout, (*x_shape[:2], *out_hw), dtype)
        return dout.transpose(0, 2, 3, 1).reshape(-1, x_shape[1])    # (N*OH*OW, C)

    def extra_repr(self) -> str:
        shown = [str(show(self.kernel_size))]
        if self.stride != self.kernel_size:
            shown.append(f"stride={show(self.stride)}")
        if self.padding != (0, 0):
            shown.append(f"padding={show(self.padding)}")
        return ", ".join(shown)


class MaxPool2d(_Pool2d):
    """Max pooling: ``out[n, c, i, j] = max_{p, q} xp[n, c, i*sh + p, j*sw + q]``, xp the
    input padded with -inf (so padding never wins), as PyTorch.

    Shapes: x (N, C, H, W), out (N, C, OH, OW), OH = (H + 2*ph - kh) // sh + 1 (likewise OW);
    ``stride`` defaults to ``kernel_size``.

    Local derivative: the max is a selection, so each output's gradient goes to the one input
    element that was the max of its window, and nowhere else. Where windows overlap, an input
    element that won several windows gets the sum of their gradients. Ties go where PyTorch
    (2.13, CPU) sends them: to the first of the tied elements in row-major window order (the
    top-left one), found by ``argmax``.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) -> out (N, C, OH, OW)."""
        cols, out_hw = self._windows(x, -np.inf)                   # (N*OH*OW, C, kh*kw)
        argmax = cols.argmax(axis=2)                                  # (N*OH*OW, C)
        out = np.take_along_axis(cols, argmax[:, :, None], axis=2)[:, :, 0]
        self.cache = Saved(argmax, x.shape, out_hw)
        return self._output(out, x.shape, out_hw)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, OH, OW) -> dx (N, C, H, W)."""
        argmax, x_shape, out_hw = self._saved()
        dout2d = self._dout2d(dout, x_shape, out_hw, dout.dtype)   # (N*OH*OW, C)
        taps = np.arange(self.kernel_size[0] * self.kernel_size[1])
        dcols = (argmax[:, :, None] == taps) * dout2d[:, :, None]   # (N*OH*OW, C, kh*kw)
        return self._col2im(dcols, x_shape, out_hw)


class AvgPool2d(_Pool2d):
    """Average pooling: ``out[n, c, i, j] = mean_{p, q} xp[n, c, i*sh + p, j*sw + q]``, xp the
    input zero-padded; the padding counts in the mean (PyTorch's ``count_include_pad=True``),
    so every window divides by kh*kw.

    Shapes as MaxPool2d. Local derivative: each of a window's kh*kw inputs gets
    ``dout / (kh*kw)``; where windows overlap, the shares add.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) -> out (N, C, OH, OW)."""
        cols, out_hw = self._windows(x, 0.0)                       # (N*OH*OW, C, kh*kw)
        out = cols.mean(axis=2, dtype=x.dtype)
        self.cache = Saved(None, x.shape, out_hw)
        return self._output(out, x.shape, out_hw)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, OH, OW) -> dx (N, C, H, W)."""
        _, x_shape, out_hw = self._saved()
        dout2d = self._dout2d(dout, x_shape, out_hw, dout.dtype)
        taps = self.kernel_size[0] * self.kernel_size[1]
        dcols = np.repeat(dout2d[:, :, None] / taps, taps, axis=2)   # (N*OH*OW, C, kh*kw)
        return self._col2im(dcols, x_shape, out_hw)


def _padded(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, fill: float):
    """The padded input (N, C, Hp, Wp), (OH, OW), and the rows and columns of window (i, j)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    out_hw = ((xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1)
    return xp, out_hw, lambda i, j: (slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw))


def staged_max_pool(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair = (0, 0)
                    ) -> np.ndarray:
    """The definition, one output position at a time: x (N, C, H, W) -> out (N, C, OH, OW)."""
    xp, (oh, ow), window = _padded(x, kernel, stride, padding, -np.inf)
    out = np.empty((*x.shape[:2], oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = xp[(..., *window(i, j))].max(axis=(2, 3))
    return out


def staged_max_pool_backward(x: np.ndarray, dout: np.ndarray, kernel: Pair, stride: Pair,
                             padding: Pair = (0, 0)) -> np.ndarray:
    """dx one output position at a time: each output's gradient goes to its window's first
    maximum (``argmax``), and adds to what the element got from other windows."""
    (n, c, h, w), (ph, pw) = x.shape, padding
    xp, (oh, ow), window = _padded(x, kernel, stride, padding, -np.inf)
    dxp = np.zeros_like(xp)
    for i in range(oh):
        for j in range(ow):
            flat = xp[(..., *window(i, j))].reshape(n, c, -1)          # (N, C, kh*kw)
            winner = flat.argmax(axis=2)[:, :, None]                   # (N, C, 1)
            dflat = np.zeros_like(flat)
            np.put_along_axis(dflat, winner, dout[:, :, i, j, None], axis=2)
            dxp[(..., *window(i, j))] += dflat.reshape(n, c, *kernel)
    return dxp[:, :, ph:ph + h, pw:pw + w]


def staged_avg_pool(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair = (0, 0)
                    ) -> np.ndarray:
    """The definition, one output position at a time: x (N, C, H, W) -> out (N, C, OH, OW)."""
    xp, (oh, ow), window = _padded(x, kernel, stride, padding, 0.0)
    out = np.empty((*x.shape[:2], oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = xp[(..., *window(i, j))].sum(axis=(2, 3)) / (kernel[0] * kernel[1])
    return out


def staged_avg_pool_backward(x: np.ndarray, dout: np.ndarray, kernel: Pair, stride: Pair,
                             padding: Pair = (0, 0)) -> np.ndarray:
    """dx one output position at a time: each of a window's kh*kw inputs (padding included)
    gets ``dout / (kh*kw)``, and adds to what it got from other windows."""
    (h, w), (ph, pw) = x.shape[2:], padding
    xp, (oh, ow), window = _padded(x, kernel, stride, padding, 0.0)
    dxp = np.zeros_like(xp)
    for i in range(oh):
        for j in range(ow):
            dxp[(..., *window(i, j))] += dout[:, :, i, j, None, None] / (kernel[0] * kernel[1])
    return dxp[:, :, ph:ph + h, pw:pw + w]

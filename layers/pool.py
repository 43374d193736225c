"""MaxPool2d and AvgPool2d: the largest or the mean value of each window, channel by channel.

Derivation: docs/derivations/convolution.md#pooling. The layers work on all windows at once, one kernel
tap at a time; ``staged_max_pool``, ``staged_avg_pool`` and their ``_backward`` twins loop over
output positions and read as the definition, kept for reading and for the tests, which hold
the two equal.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import Layer, check_grad
from .windows import Pair, channels_outer, check_images, output_size, pad, pair, show, taps, unpad


class Saved(NamedTuple):
    """What the forward pass keeps for backward."""

    argmax: np.ndarray | None  # (C, N, OH, OW) which tap held each window's max (MaxPool2d)
    x_shape: tuple             # (N, C, H, W), for dx
    out_hw: Pair               # (OH, OW)
    dtype: np.dtype            # the input's, which dout must have


class _Pool2d(Layer):
    """The window arguments and checks MaxPool2d and AvgPool2d share; no parameters.

    Both work tap by tap: tap (p, q) of all N*OH*OW windows at once is one strided view
    ``xp[:, :, rows, cols]`` (C, N, OH, OW) of the padded input, so the loops run over the
    kh*kw taps, never over pixels.
    """

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

    def _taps(self, x: np.ndarray, fill: float) -> tuple[list[np.ndarray], Pair]:
        """x (N, C, H, W) -> the kh*kw taps of every window, each (C, N, OH, OW), and (OH, OW)."""
        check_images(self, x, None)
        out_hw = output_size(self, x.shape, self.kernel_size, self.stride, self.padding)
        xp = pad(x, self.padding, fill)                             # (C, N, Hp, Wp)
        return [xp[:, :, rows, cols] for _, _, rows, cols in self._slices(out_hw)], out_hw

    def _slices(self, out_hw: Pair) -> list[tuple[int, int, slice, slice]]:
        return taps(self.kernel_size, self.stride, (1, 1), out_hw)

    def _overlapping(self) -> bool:
        """Whether windows overlap (stride < kernel), so that a pixel can be in several."""
        return self.stride[0] < self.kernel_size[0] or self.stride[1] < self.kernel_size[1]

    def _start_backward(self, dout: np.ndarray) -> tuple[Saved, np.ndarray, np.ndarray]:
        """The cache, dout as (C, N, OH, OW), and the padded dx (C, N, Hp, Wp) to fill: zeros,
        unless the windows tile it and every pixel gets written."""
        saved = self._saved()
        (n, c, h, w), (ph, pw), (oh, ow) = saved.x_shape, self.padding, saved.out_hw
        check_grad(self, dout, (n, c, oh, ow), saved.dtype)
        shape = (c, n, h + 2 * ph, w + 2 * pw)
        tiled = self.stride == self.kernel_size and shape[2:] == (oh * self.stride[0], ow * self.stride[1])
        return saved, channels_outer(dout), (np.empty if tiled else np.zeros)(shape, dout.dtype)

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
    ``stride`` defaults to ``kernel_size``; padding at most half the kernel.

    Local derivative: the max is a selection, so each output's gradient goes to the one input
    element that was the max of its window, and nowhere else. Where windows overlap, an input
    element that won several windows gets the sum of their gradients. Ties go where PyTorch
    (2.13, CPU) sends them: to the first of the tied elements in row-major window order (the
    top-left one). The cache keeps which tap won each window (``argmax``), not the input.

    Examples
    --------
    >>> pool = MaxPool2d(2)
    >>> pool.forward(np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 1.0, 3.0]]]]))
    array([[[[3., 3.]]]])
    >>> pool.backward(np.array([[[[10.0, 20.0]]]]))       # each window ties: its first 3 wins
    array([[[[ 0., 10., 20.,  0.],
             [ 0.,  0.,  0.,  0.]]]])
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) -> out (N, C, OH, OW)."""
        window_taps, out_hw = self._taps(x, -np.inf)
        out = window_taps[0].copy()                                 # (C, N, OH, OW)
        index = np.min_scalar_type(len(window_taps) - 1).type      # uint8 up to 256 taps
        argmax = np.zeros(out.shape, index)
        for k, tap in enumerate(window_taps[1:], start=1):
            wins = tap > out                     # strictly: a tie stays with the earlier tap
            argmax *= ~wins                      # argmax = where(wins, k, argmax), as arithmetic:
            argmax += wins * index(k)            # np.where branches per element, 10x slower here
            np.maximum(out, tap, out=out)        # (a NaN propagates, as in PyTorch)
        self.cache = Saved(argmax, x.shape, out_hw, x.dtype)
        return channels_outer(out)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, OH, OW) -> dx (N, C, H, W)."""
        (argmax, _, out_hw, _), dout, dxp = self._start_backward(dout)
        for k, (_, _, rows, cols) in enumerate(self._slices(out_hw)):
            if self._overlapping():               # a pixel in several windows: gradients add
                dxp[:, :, rows, cols] += dout * (argmax == k)
            else:                                 # in one window at most: write, in place
                np.multiply(dout, argmax == k, out=dxp[:, :, rows, cols])
        return unpad(dxp, self.padding)


class AvgPool2d(_Pool2d):
    """Average pooling: ``out[n, c, i, j] = mean_{p, q} xp[n, c, i*sh + p, j*sw + q]``, xp the
    input zero-padded; the padding counts in the mean (PyTorch's ``count_include_pad=True``),
    so every window divides by kh*kw.

    Shapes as MaxPool2d. Local derivative: each of a window's kh*kw inputs gets
    ``dout / (kh*kw)``; where windows overlap, the shares add.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) -> out (N, C, OH, OW)."""
        window_taps, out_hw = self._taps(x, 0.0)
        total = window_taps[0].copy()                               # (C, N, OH, OW)
        for tap in window_taps[1:]:
            total += tap
        total /= len(window_taps)                                   # now the mean
        self.cache = Saved(None, x.shape, out_hw, x.dtype)
        return channels_outer(total)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, OH, OW) -> dx (N, C, H, W)."""
        (_, _, out_hw, _), dout, dxp = self._start_backward(dout)
        share = dout / (self.kernel_size[0] * self.kernel_size[1])  # (C, N, OH, OW)
        for _, _, rows, cols in self._slices(out_hw):
            if self._overlapping():               # a pixel in several windows: shares add
                dxp[:, :, rows, cols] += share
            else:
                dxp[:, :, rows, cols] = share
        return unpad(dxp, self.padding)


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

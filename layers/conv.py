"""Conv2d: a 2-D convolution (PyTorch's, a cross-correlation) of NCHW images.

Derivation: docs/derivations/convolution.md#conv2d. ``Conv2d`` does the work as matrix products over
im2col columns; ``staged_forward`` and ``staged_backward`` loop over output positions and read
as the definition, kept for reading and for the tests, which hold the two equal.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import Layer, batch_sum, check_grad, check_size, float_dtype, non_default
from .validate import flag, generator, parameter_budget
from .windows import Pair, channels_outer, check_images, col2im, im2col, output_size, pair, show


class Saved(NamedTuple):
    """What the forward pass keeps for backward."""

    x: np.ndarray             # (N, C, H, W) the input itself, not a copy: backward rebuilds
                              # its im2col columns, 9x its size for a 3x3 kernel, from it
    out_hw: Pair              # (OH, OW)


class Conv2d(Layer):
    """2-D convolution over (N, C, H, W) images, with PyTorch's semantics and weight layout.

    Forward, xp the input zero-padded by ``padding`` on each side::

        out[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] * xp[n, c, i*sh + p*dh, j*sw + q*dw]

    Shapes: x (N, C, H, W), W (O, C, kh, kw), b (O,), out (N, O, OH, OW) with
    ``OH = (H + 2*ph - dh*(kh - 1) - 1) // sh + 1`` (likewise OW). With the windows as the
    columns of ``cols`` (kh*kw*C, N*OH*OW) and W as the matching matrix W2d (O, kh*kw*C), this
    is one matrix product, ``out2d = W2d @ cols + b``: a Linear layer applied to every window.

    Local derivatives, with dout = dL/dout (N, O, OH, OW) read as dout2d (O, N*OH*OW)::

        dW2d = dout2d @ cols.T          (O, kh*kw*C)  a correlation of the input with dout
        db = dout2d.sum(axis=1)         (O,)          b was broadcast over every pixel
        dcols = W2d.T @ dout2d          (kh*kw*C, N*OH*OW), summed back onto the pixels each
                                        window copied (col2im, one slice-add per tap): dx, a
                                        full convolution of dout with the flipped kernel

    The cache keeps x, not cols: backward builds cols again for dW (one copy, about a third
    of the forward's time) instead of holding kh*kw copies of the input from forward to
    backward, the largest memory of a CNN's step.

    The output is an NCHW view of (O, N, OH, OW) memory, the matrix product's layout; the next
    BatchNorm2d or Conv2d reads it without a copy.

    Initialisation is PyTorch's: W and b uniform in [-k, k], k = 1/sqrt(C*kh*kw).

    Parameters
    ----------
    in_channels, out_channels : int
        C and O.
    kernel_size, stride, padding, dilation : int or (int, int)
        Window size, step, zero padding on each side, and spacing between taps.
    bias : bool
        Whether to learn the additive bias ``b``.
    rng : int or numpy.random.Generator, optional
        Seed or generator for the initial weights.
    dtype : numpy dtype
        Floating-point type of parameters, outputs and gradients (float32 by default).

    Examples
    --------
    >>> conv = Conv2d(1, 4, 3, padding=1, rng=0)
    >>> conv
    Conv2d(1, 4, kernel_size=3, padding=1)
    >>> conv.forward(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 4, 28, 28)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Pair,
                 stride: int | Pair = 1, padding: int | Pair = 0, dilation: int | Pair = 1,
                 bias: bool = True, *, rng: int | np.random.Generator | None = None,
                 dtype=np.float32) -> None:
        super().__init__()
        self.in_channels = check_size("Conv2d", "in_channels", in_channels)
        self.out_channels = check_size("Conv2d", "out_channels", out_channels)
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = pair("Conv2d", "stride", stride, 1)
        self.padding = pair("Conv2d", "padding", padding, 0)
        self.dilation = pair("Conv2d", "dilation", dilation, 1)
        self.dtype = float_dtype("Conv2d", dtype)
        kh, kw = self.kernel_size
        parameter_budget("Conv2d", self.out_channels * (self.in_channels * kh * kw + 1), self.dtype)
        rng = generator("Conv2d", rng)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        k = 1.0 / np.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        self.params["W"] = rng.uniform(-k, k, shape).astype(self.dtype)
        if flag("Conv2d", "bias", bias):
            self.params["b"] = rng.uniform(-k, k, self.out_channels).astype(self.dtype)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) -> out (N, O, OH, OW)."""
        check_images(self, x, self.in_channels, self.dtype)
        n, o = x.shape[0], self.out_channels
        oh, ow = output_size(self, x.shape, self.kernel_size, self.stride, self.padding, self.dilation)
        cols = self._im2col(x, (oh, ow))                      # (kh*kw*C, N*OH*OW)
        out = self._weight_matrix() @ cols                    # (O, N*OH*OW)
        del cols                                              # backward builds it again
        if "b" in self.params:
            out += self.params["b"][:, None]
        self.cache = Saved(x, (oh, ow))
        return channels_outer(out.reshape(o, n, oh, ow))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, O, OH, OW) -> dx (N, C, H, W); fills grads["W"] and grads["b"]."""
        dout2d = self._param_grads(dout)                      # (O, N*OH*OW)
        x, out_hw = self.cache
        dcols = self._weight_matrix().T @ dout2d              # (kh*kw*C, N*OH*OW)
        # tap (p, q) of every window was copied from x's pixels (or the padding): its gradient
        # goes back there, and adds where windows overlap (col2im)
        return col2im(dcols, x.shape, self.kernel_size, self.stride, self.padding,
                      self.dilation, out_hw)

    def param_backward(self, dout: np.ndarray) -> None:
        """dW and db only: the first layer of a model needs no gradient for its data."""
        self._param_grads(dout)

    def _param_grads(self, dout: np.ndarray) -> np.ndarray:
        """Fill grads["W"] and grads["b"]; return dout as (O, N*OH*OW)."""
        x, (oh, ow) = self._saved()
        check_grad(self, dout, (x.shape[0], self.out_channels, oh, ow), self.dtype)
        dout2d = channels_outer(dout).reshape(self.out_channels, -1)   # a view, as Conv2d lays it out
        cols = self._im2col(x, (oh, ow))                      # (kh*kw*C, N*OH*OW), again
        # dW = dout2d @ cols.T; OpenBLAS runs this long-K product 10-40% faster with the
        # larger matrix on the left (the same sums)
        dW = (cols @ dout2d.T).T if len(cols) > len(dout2d) else dout2d @ cols.T   # (O, kh*kw*C)
        self.grads["W"][...] = dW.reshape(self.out_channels, *self.kernel_size, -1).transpose(0, 3, 1, 2)
        if "b" in self.params:
            batch_sum(dout2d.T, out=self.grads["b"])          # b was broadcast over every pixel
        return dout2d

    def _im2col(self, x: np.ndarray, out_hw: Pair) -> np.ndarray:
        return im2col(x, self.kernel_size, self.stride, self.padding, self.dilation, out_hw)

    def _weight_matrix(self) -> np.ndarray:
        """W (O, C, kh, kw) as W2d (O, kh*kw*C), its columns in the order of im2col's rows."""
        return self.params["W"].transpose(0, 2, 3, 1).reshape(self.out_channels, -1)

    def extra_repr(self) -> str:
        options = non_default(kernel_size=(show(self.kernel_size), None),
                              stride=(show(self.stride), 1), padding=(show(self.padding), 0),
                              dilation=(show(self.dilation), 1), bias=("b" in self.params, True),
                              dtype=(self.dtype, np.float32))
        return f"{self.in_channels}, {self.out_channels}, {options}"


def staged_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, stride: Pair = (1, 1),
                   padding: Pair = (0, 0), dilation: Pair = (1, 1)) -> np.ndarray:
    """The definition, one output position at a time: x (N, C, H, W) -> out (N, O, OH, OW)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = W.shape[2:], stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.empty((x.shape[0], W.shape[0], oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            out[:, :, i, j] = np.tensordot(window, W, axes=([1, 2, 3], [1, 2, 3]))   # (N, O)
    return out if b is None else out + b[:, None, None]


def staged_backward(x: np.ndarray, W: np.ndarray, dout: np.ndarray, stride: Pair = (1, 1),
                    padding: Pair = (0, 0), dilation: Pair = (1, 1)
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The backward pass one output position at a time: returns (dx, dW, db).

    Output (i, j) of sample n is ``W . window + b``, like a Linear layer on its window. So it
    adds ``dout[n, :, i, j] (x) window`` to dW (W is shared by every position: the positions'
    contributions add), and ``dout[n, :, i, j] @ W`` to the window's pixels of dx (windows
    overlap: a pixel seen by several outputs gets the sum).
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = W.shape[2:], stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp, dW = np.zeros_like(xp), np.zeros_like(W)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
            cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
            g = dout[:, :, i, j]                                          # (N, O)
            dW += np.tensordot(g, xp[:, :, rows, cols], axes=([0], [0]))  # (O, C, kh, kw)
            dxp[:, :, rows, cols] += np.tensordot(g, W, axes=([1], [0]))  # (N, C, kh, kw)
    db = dout.sum(axis=(0, 2, 3))                                         # (O,)
    return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], dW, db

"""Sliding windows over images, shared by Conv2d and the pooling layers.

Images are NCHW, ``(N, C, H, W)``, as in PyTorch. A window of ``kernel`` ``(kh, kw)`` taps,
``dilation`` ``(dh, dw)`` apart, moves by ``stride`` ``(sh, sw)`` over the input padded by
``padding`` ``(ph, pw)`` on each side; output position (i, j) sees the padded input at rows
``i*sh + p*dh`` and columns ``j*sw + q*dw`` for taps p < kh, q < kw. Derivation:
docs/derivations.md#convolutional-layers.

``im2col`` copies every window into one row of a matrix, so that a convolution is a single
matrix product; ``col2im`` is its adjoint, the scatter-add of window gradients back onto the
input, done as one strided slice-add per tap (kh*kw of them), never a loop over pixels.

Memory is channels-last, as PyTorch's ``channels_last`` format: the arrays these return are
NCHW *views* of (N, H, W, C) memory, because a matrix product over windows produces one row
of C (or O) values per pixel. A layer that reads such a view channels-last (the next Conv2d,
BatchNorm2d) then gets it for free; any numpy code sees ordinary NCHW arrays.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import check_input, check_size

Pair = tuple[int, int]


def pair(who: str, name: str, value: object, minimum: int) -> Pair:
    """An int or a pair of ints (height, width), each >= minimum, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{who}: expected {name} as an int or a pair of ints, got {value!r}")
        return (check_size(who, name, value[0], minimum), check_size(who, name, value[1], minimum))
    size = check_size(who, name, value, minimum)
    return (size, size)


def show(value: Pair) -> int | Pair:
    """A pair as its constructor argument reads best: one int when both sides agree."""
    return value[0] if value[0] == value[1] else value


def check_images(who: object, x: object, channels: int | None, dtype: np.dtype | None = None
                 ) -> np.ndarray:
    """Check that x is a non-empty float array (N, channels, H, W) (any C for ``None``)."""
    check_input(who, x, None, dtype)
    c = "C" if channels is None else channels
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        hint = "; for one image use x[None]" if x.ndim == 3 and x.shape[0] == c else ""
        raise ValueError(f"{who!r}: expected input of shape (N, {c}, H, W), got {x.shape}{hint}")
    if x.size == 0:
        raise ValueError(f"{who!r}: expected a non-empty input (N, {c}, H, W), got {x.shape}")
    return x


def output_size(who: object, shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair,
                dilation: Pair = (1, 1)) -> Pair:
    """(OH, OW) = ((H + 2*ph - dh*(kh - 1) - 1) // sh + 1, likewise for W), or a ValueError
    when the (dilated) kernel is larger than the padded input and the output would be empty."""
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]   # the dilated kernel's extent
    padded = [size + 2 * p for size, p in zip(shape[2:], padding)]
    if padded[0] < spans[0] or padded[1] < spans[1]:
        need = " x ".join(str(max(span - 2 * p, 1)) for span, p in zip(spans, padding))
        raise ValueError(f"{who!r}: expected an input of at least {need} pixels (the kernel "
                         f"spans {spans[0]} x {spans[1]}, the padding is {padding[0]}, "
                         f"{padding[1]}), got {shape[2]} x {shape[3]}: the output would be empty")
    sizes = [(size - span) // s + 1 for size, span, s in zip(padded, spans, stride)]
    return (sizes[0], sizes[1])


def channels_last(a: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> its (N, H, W, C) view (no copy)."""
    return a.transpose(0, 2, 3, 1)


def channels_first(a: np.ndarray) -> np.ndarray:
    """(N, H, W, C) -> its (N, C, H, W) view (no copy)."""
    return a.transpose(0, 3, 1, 2)


def pad(x: np.ndarray, padding: Pair, fill: float = 0.0) -> np.ndarray:
    """x (N, C, H, W) -> (N, Hp, Wp, C) channels-last, padded with ``fill``; x itself when
    there is no padding and it is channels-last already."""
    (ph, pw), (n, c, h, w) = padding, x.shape
    if ph == pw == 0:
        return channels_last(x)
    xp = np.full((n, h + 2 * ph, w + 2 * pw, c), fill, x.dtype)
    xp[:, ph:ph + h, pw:pw + w, :] = channels_last(x)
    return xp


def windows(xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out_hw: Pair
            ) -> np.ndarray:
    """The windows of a padded channels-last input, as a view: xp (N, Hp, Wp, C) ->
    (N, OH, OW, C, kh, kw), ``windows[n, i, j, c, p, q] = xp[n, i*sh + p*dh, j*sw + q*dw, c]``."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    spans = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    view = sliding_window_view(xp, spans, axis=(1, 2))
    return view[:, :sh * (oh - 1) + 1:sh, :sw * (ow - 1) + 1:sw, :, ::dh, ::dw]


def im2col(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
           out_hw: Pair, fill: float = 0.0) -> np.ndarray:
    """x (N, C, H, W) -> cols (N*OH*OW, C*kh*kw): row (n, i, j) holds the window that output
    (i, j) sees, its columns ordered (c, p, q) as a PyTorch weight (O, C, kh, kw) is."""
    xp = pad(x, padding, fill)
    cols = np.ascontiguousarray(windows(xp, kernel, stride, dilation, out_hw))
    return cols.reshape(-1, x.shape[1] * kernel[0] * kernel[1])


def col2im(dcols: np.ndarray, x_shape: tuple[int, ...], kernel: Pair, stride: Pair,
           padding: Pair, dilation: Pair, out_hw: Pair) -> np.ndarray:
    """The adjoint of im2col: dcols (N*OH*OW, C*kh*kw) -> dx (N, C, H, W).

    Each input pixel receives the sum of the gradients of every window entry that copied it.
    Entry (p, q) of all windows together covers the padded input on the strided grid
    ``p*dh + sh*i``, ``q*dw + sw*j``: one slice-add per tap."""
    (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = (
        x_shape, kernel, stride, padding, dilation, out_hw)
    dcols = dcols.reshape(n, oh, ow, c, kh, kw)
    dxp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dcols.dtype)
    for p in range(kh):
        for q in range(kw):
            dxp[:, p * dh:p * dh + sh * (oh - 1) + 1:sh, q * dw:q * dw + sw * (ow - 1) + 1:sw, :] \
                += dcols[:, :, :, :, p, q]
    return channels_first(dxp[:, ph:ph + h, pw:pw + w, :])

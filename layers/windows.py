"""Sliding windows over images, shared by Conv2d and the pooling layers.

Images are NCHW, ``(N, C, H, W)``, as in PyTorch. A window of ``kernel`` ``(kh, kw)`` taps,
``dilation`` ``(dh, dw)`` apart, moves by ``stride`` ``(sh, sw)`` over the input padded by
``padding`` ``(ph, pw)`` on each side; output position (i, j) sees the padded input at rows
``i*sh + p*dh`` and columns ``j*sw + q*dw`` for taps p < kh, q < kw. Derivation:
docs/derivations/convolution.md.

``taps`` gives, for each of the kh*kw taps of the kernel, the strided slice of the padded
input that the tap reads in every window at once. ``im2col`` copies the windows, tap by tap,
into the columns of one matrix, so that a convolution is a single matrix product; a backward
pass scatter-adds its gradients with one slice-add per tap, never a loop over pixels; pooling
works tap by tap.

Memory is channels-outermost, (C, N, H, W): the arrays the layers return are NCHW *views* of
it. A matrix product ``W2d @ cols`` produces one row of N*H*W values per output channel, and
BatchNorm2d, reading a channel's N*H*W values as one contiguous run, broadcasts its per-channel
statistics over long rows instead of 16 values at a time (3x faster). Any numpy code sees
ordinary NCHW arrays.
"""
from __future__ import annotations

import numpy as np

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
    x = check_input(who, x, None, dtype)
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


def channels_outer(a: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> its (C, N, H, W) view (no copy); its own inverse."""
    return a.transpose(1, 0, 2, 3)


def pad(x: np.ndarray, padding: Pair, fill: float = 0.0) -> np.ndarray:
    """x (N, C, H, W) -> (C, N, Hp, Wp), padded with ``fill`` (a view of x without padding)."""
    (ph, pw), (n, c, h, w) = padding, x.shape
    if ph == pw == 0:
        return channels_outer(x)
    shape = (c, n, h + 2 * ph, w + 2 * pw)
    xp = np.zeros(shape, x.dtype) if fill == 0 else np.full(shape, fill, x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = channels_outer(x)
    return xp


def unpad(xp: np.ndarray, padding: Pair) -> np.ndarray:
    """The inverse of ``pad``: (C, N, Hp, Wp) -> the (N, C, H, W) view of its interior."""
    (ph, pw), (hp, wp) = padding, xp.shape[2:]
    return channels_outer(xp[:, :, ph:hp - ph, pw:wp - pw])


def taps(kernel: Pair, stride: Pair, dilation: Pair, out_hw: Pair
         ) -> list[tuple[int, int, slice, slice]]:
    """For each tap (p, q) of the kernel, the rows and columns of the padded input it reads in
    every window at once: ``rows = p*dh + sh*i`` for i < OH, ``cols = q*dw + sw*j`` for j < OW.
    ``xp[:, :, rows, cols]`` is then tap (p, q) of all N*OH*OW windows, (C, N, OH, OW)."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    return [(p, q, slice(p * dh, p * dh + sh * (oh - 1) + 1, sh),
             slice(q * dw, q * dw + sw * (ow - 1) + 1, sw)) for p in range(kh) for q in range(kw)]


def clipped_taps(kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, in_hw: Pair,
                 out_hw: Pair) -> list[tuple[int, int, slice, slice, slice, slice]]:
    """``taps`` without the padding: for each tap (p, q), the outputs ``(out_rows, out_cols)``
    whose tap lands inside the input, and the input pixels ``(in_rows, in_cols)`` they read
    there (the unpadded input, no padded copy needed). Outputs outside ``out_rows`` x
    ``out_cols`` read padding: zeros for a convolution."""
    per_axis = [[_clip(t * d - pad, s, size, out) for t in range(k)]
                for k, s, pad, d, size, out in zip(kernel, stride, padding, dilation, in_hw, out_hw)]
    return [(p, q, rows[0], cols[0], rows[1], cols[1])
            for p, rows in enumerate(per_axis[0]) for q, cols in enumerate(per_axis[1])]


def _clip(offset: int, stride: int, size: int, out: int) -> tuple[slice, slice]:
    """Along one axis, output i reads input ``i*stride + offset``: the outputs for which that
    is inside [0, size), and the input indices they read, as slices."""
    first = max(0, -(offset // stride))                 # ceil(-offset / stride), at least 0
    stop = min(out, (size - 1 - offset) // stride + 1)
    if stop <= first:
        return slice(0, 0), slice(0, 0)
    start = first * stride + offset
    return slice(first, stop), slice(start, start + stride * (stop - first - 1) + 1, stride)


def im2col(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
           out_hw: Pair) -> np.ndarray:
    """x (N, C, H, W) -> cols (kh*kw*C, N*OH*OW): column (n, i, j) holds the window that
    output (i, j) of image n sees, zero-padded, its entries ordered (p, q, c).

    Built tap by tap: rows (p, q, :) of cols are tap (p, q) of every window, one strided slice
    of the input; where the tap falls on the padding, zeros (no padded copy of x is made)."""
    (kh, kw), (oh, ow), (n, c, h, w) = kernel, out_hw, x.shape
    cols = np.empty((kh, kw, c, n, oh, ow), x.dtype)
    xc = channels_outer(x)                                      # (C, N, H, W), a view
    shifts = flat_shifts(kernel, stride, padding, dilation, (h, w), out_hw)
    if shifts is not None:
        _copy_shifted(cols, np.ascontiguousarray(xc), shifts)   # a copy only if x is not CNHW
    else:
        for p, q, out_rows, out_cols, in_rows, in_cols in clipped_taps(
                kernel, stride, padding, dilation, (h, w), out_hw):
            tap = cols[p, q]                                    # (C, N, OH, OW)
            tap[:, :, out_rows, out_cols] = xc[:, :, in_rows, in_cols]
            tap[:, :, :out_rows.start] = tap[:, :, out_rows.stop:] = 0      # the padding
            tap[:, :, out_rows, :out_cols.start] = tap[:, :, out_rows, out_cols.stop:] = 0
    return cols.reshape(kh * kw * c, n * oh * ow)


def col2im(dcols: np.ndarray, x_shape: tuple[int, ...], kernel: Pair, stride: Pair,
           padding: Pair, dilation: Pair, out_hw: Pair) -> np.ndarray:
    """The adjoint of ``im2col``: dcols (kh*kw*C, N*OH*OW) -> dx (N, C, H, W), each entry
    added back onto the pixel it was copied from (where windows overlap, the entries add;
    those copied from the padding are dropped, and may be zeroed in dcols, which is
    scratch). One slice-add per tap; dx is the NCHW view of (C, N, H, W) memory."""
    (kh, kw), (oh, ow), (n, c, h, w) = kernel, out_hw, x_shape
    dcols = dcols.reshape(kh, kw, c, n, oh, ow)
    dxc = np.zeros((c, n, h, w), dcols.dtype)
    shifts = flat_shifts(kernel, stride, padding, dilation, (h, w), out_hw)
    if shifts is not None:
        _add_shifted(dcols, dxc, shifts)
    else:
        for p, q, out_rows, out_cols, in_rows, in_cols in clipped_taps(
                kernel, stride, padding, dilation, (h, w), out_hw):
            dxc[:, :, in_rows, in_cols] += dcols[p, q, :, :, out_rows, out_cols]
    return channels_outer(dxc)


# ---------------------------------------------------------------- "same" convolutions, faster
# With stride 1 and the output as large as the input (padding d*(k - 1)/2: a "same"
# convolution), tap (p, q) reads x[n, i + a, j + b] for output (n, i, j), offsets a = p*dh - ph,
# b = q*dw - pw. Laid out as one run of N*H*W pixels per channel (CNHW, as the layers return
# images), that pixel is the output's own flat index shifted by a*W + b, so a tap moves as one
# slice per channel: C runs of N*H*W values, instead of N*C*OH strided rows of OW (numpy's
# per-row overhead dominated: the col2im of Conv2d(16, 32) on 14x14 images, batch 64, went
# 0.88 -> 0.37 ms). The price: where the window reads padding, the shifted slice reads the
# neighbouring row (the |b| columns at the left or right edge) or the neighbouring image (the
# |a| rows at the top or bottom); those entries are set to zero.

def flat_shifts(kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, in_hw: Pair,
                out_hw: Pair) -> list[tuple[int, int, int, int]] | None:
    """For a "same" convolution, each tap's offsets (p, q, a, b); otherwise None."""
    if stride != (1, 1) or in_hw != out_hw:
        return None
    return [(p, q, p * dilation[0] - padding[0], q * dilation[1] - padding[1])
            for p in range(kernel[0]) for q in range(kernel[1])]


def _shifted(shift: int, size: int) -> tuple[slice, slice]:
    """In runs of ``size`` pixels, the outputs whose pixel shifted by ``shift`` lies in the
    run, and those pixels. The outputs left out read padding (``_zero_padding_reads``)."""
    lo = max(0, -shift)
    hi = max(lo, size - max(0, shift))
    return slice(lo, hi), slice(lo + shift, hi + shift)


def _zero_padding_reads(tap: np.ndarray, a: int, b: int) -> None:
    """Zero the outputs of a tap (C, n, H, W), offsets (a, b), whose window reads padding."""
    h, w = tap.shape[2:]
    tap[:, :, :max(0, -a)] = tap[:, :, max(0, h - a):] = 0            # rows above or below
    tap[:, :, :, :max(0, -b)] = tap[:, :, :, max(0, w - b):] = 0      # columns left or right


def _copy_shifted(cols: np.ndarray, xc: np.ndarray, shifts: list) -> None:
    """im2col of a "same" convolution: cols (kh, kw, C, n, H, W), xc (C, n, H, W) contiguous."""
    c, w, flat = xc.shape[0], xc.shape[3], xc.reshape(xc.shape[0], -1)  # (C, n*H*W), a view
    for p, q, a, b in shifts:
        tap, (outs, pixels) = cols[p, q], _shifted(a * w + b, flat.shape[1])
        tap.reshape(c, -1)[:, outs] = flat[:, pixels]
        _zero_padding_reads(tap, a, b)   # also every output outside ``outs``


def _add_shifted(dcols: np.ndarray, dxc: np.ndarray, shifts: list) -> None:
    """col2im of a "same" convolution: dcols (kh, kw, C, n, H, W) into dxc (C, n, H, W),
    contiguous."""
    c, w, flat = dxc.shape[0], dxc.shape[3], dxc.reshape(dxc.shape[0], -1)  # (C, n*H*W), a view
    for p, q, a, b in shifts:
        tap, (outs, pixels) = dcols[p, q], _shifted(a * w + b, flat.shape[1])
        _zero_padding_reads(tap, a, b)                                # dropped, as in im2col
        flat[:, pixels] += tap.reshape(c, -1)[:, outs]

"""Diagnosis: what a failing row's mistake probably is, in one sentence.

Its own module so new patterns can join: each is a test on the whole analytic and numeric
arrays that must explain the error to within FIT times the row's pass threshold.
"""
from __future__ import annotations

import numpy as np

# A diagnosis must explain the error to within this multiple of the row's pass threshold.
FIT = 10.0


def diagnose(analytic: np.ndarray, numeric: np.ndarray, checked: np.ndarray, limit: float,
             sizes: tuple, shaped: bool = True) -> tuple[str, str]:
    """The kind of a failing row and a one-sentence hint, decided on the whole arrays.

    ``checked`` masks the elements that did not cross a kink; ``limit`` is the row's pass
    threshold (tol times its scale); a pattern must explain the error to within FIT * limit.
    ``sizes`` is the input's shape ((N, D) or (N, T, D)), to name a scale factor. ``shaped=False`` (directional
    derivatives in the fast mode) leaves out the kinds that need the element layout.
    """
    a, n = analytic, numeric
    fit = FIT * limit

    def explains(residual: np.ndarray, mask: np.ndarray = checked) -> bool:
        return float(np.max(np.abs(residual)[mask], initial=0.0)) <= fit

    if explains(n):
        return "mismatch", ("the numeric gradient is zero (the output does not depend on this "
                            "tensor) but backward gave a nonzero one.")
    if explains(a):
        return "zero", ("the analytic gradient is all zero: it was never written (fill "
                        "grads[name][...] in backward, or return dx).")
    if explains(a + n):
        return "sign", "analytic = -numeric: the sign is flipped (a minus lost or added)."
    if shaped and a.ndim >= 2 and a.shape[-1] == a.shape[-2] > 1 and explains(
            a - np.swapaxes(n, -1, -2), checked & np.swapaxes(checked, -1, -2)):
        if a.ndim == 2:
            return "transpose", ("analytic = numeric.T: the gradient is transposed (x.T @ dout, not "
                                 "dout.T @ x).")
        return "transpose", ("analytic = numeric transposed over its last two axes: each matrix of "
                             "the batch is transposed (swap the matmul's operands, or "
                             ".swapaxes(-1, -2) where it was missed).")
    k = float(np.dot(a[checked], n[checked]) / np.dot(n[checked], n[checked]))
    if (shaped or n.size > 1) and explains(a - k * n):  # one direction fits any k
        return "scale", _scale_hint(k, sizes)
    if not shaped:
        return "mismatch", ("no simple pattern fits the random directions; run with fast=False "
                            "to see which elements are wrong.")
    e = np.where(checked, a - n, 0.0)
    for axis in range(a.ndim):
        if a.shape[axis] < 2:
            continue
        counts = checked.sum(axis=axis, keepdims=True)
        common = np.divide(e.sum(axis=axis, keepdims=True), counts, out=np.zeros(counts.shape),
                           where=counts > 0)
        if explains(e - common):
            along = ("in every element" if a.ndim == 1 else
                     {0: "in every row", 1: "in every column"}.get(axis, f"at every index of axis {axis}"))
            return "offset", (f"the error is the same {along} (constant along axis {axis}): a term "
                              f"broadcast along axis {axis} is missing, typically a branch through a "
                              f"mean or sum over axis {axis}; gradients add at branches.")
    bad = checked & (np.abs(a - n) > limit)
    if bad.sum() <= max(1, checked.sum() // 4):
        where = [tuple(int(i) for i in index) for index in np.argwhere(bad)[:5]]
        listed = ", ".join(map(str, where)) + (", ..." if bad.sum() > 5 else "")
        return "elements", (f"{int(bad.sum())} of {int(checked.sum())} elements are wrong and the "
                            f"rest right: {listed}; look at an edge case (a boundary, a tie, a "
                            f"mask, index arithmetic).")
    return "mismatch", ("no simple pattern (zero, sign, scale, transpose, offset, a few elements) "
                        "fits: rederive this gradient gate by gate.")


def _factors(n: int, t: int | None, d: int | None) -> list[tuple[str, float, str]]:
    """The known scale factors for an input of batch N, length T (3-D) and features D."""
    known = [("2", 2.0, "a factor 2 too many (a branch counted twice?)"),
             ("1/2", 0.5, "a factor 2 missing (d(u*u)/du = 2u, or one of two equal branches dropped)")]
    if n > 1:
        known += [("N", n, "the forward took a mean over the batch and the backward lacks its 1/N"),
                  ("1/N", 1 / n, "the backward divides by N (a mean) where the forward took a sum"),
                  ("N/(N-1)", n / (n - 1), "the backward divides by N-1 (unbiased variance) where "
                                           "the forward divides by N (biased)"),
                  ("(N-1)/N", (n - 1) / n, "the backward divides by N (biased variance) where the "
                                           "forward divides by N-1 (unbiased)")]
    if d is not None and d > 1:
        known += [("D", d, "the forward took a mean over the features and the backward lacks its 1/D"),
                  ("1/D", 1 / d, "the backward divides by D where the forward took a sum over the "
                                 "features")]
    if t is not None and t > 1:
        known += [("T", t, "the forward took a mean over the T axis and the backward lacks its 1/T"),
                  ("1/T", 1 / t, "the backward divides by T where the forward took a sum over the "
                                 "T axis"),
                  ("N*T", n * t, "the forward took a mean over every position (N*T of them) and "
                                 "the backward lacks its 1/(N*T)"),
                  ("1/(N*T)", 1 / (n * t), "the backward divides by N*T (a mean over every "
                                           "position) where the forward took a sum")]
    if d is not None and d > 1:
        known += [("sqrt(D)", np.sqrt(d), "the forward scales by 1/sqrt(D) (attention scores "
                                          "q @ k.T / sqrt(d)) and the backward lacks it"),
                  ("1/sqrt(D)", 1 / np.sqrt(d), "the backward divides by sqrt(D) twice, or where "
                                                "the forward does not")]
    return known


def _scale_hint(k: float, sizes: tuple) -> str:
    """'analytic = k x numeric' with what k is when it is a known factor of the input's shape."""
    dims = [s for s in sizes if s is not None]
    n = dims[0] if dims else 1
    d = dims[-1] if len(dims) > 1 else None
    t = dims[1] if len(dims) == 3 else None
    matches = [(label, what) for label, value, what in _factors(n, t, d)
               if abs(abs(k) - value) <= 1e-6 * value]
    if not matches:
        return f"analytic = {k:.6g} x numeric for every element: a constant factor is wrong."
    sign = "-" if k < 0 else ""
    labels = " = ".join(f"{sign}{label}" for label, _ in matches)
    names = [f"k = {k:.6g}"]
    names += [f"N = {n} the batch size"] if any("N" in label for label, _ in matches) else []
    names += [f"T = {t} the sequence length"] if any("T" in label for label, _ in matches) else []
    names += [f"D = {d} the feature count"] if any("D" in label for label, _ in matches) else []
    flipped = ", and the sign is flipped" if k < 0 else ""
    return (f"analytic = {labels} x numeric for every element ({', '.join(names)}): "
            + "; or ".join(what for _, what in matches) + flipped + ".")


def repeated_ids_hint(key: str, analytic: np.ndarray, numeric: np.ndarray, ids: np.ndarray,
                      rel_err: float) -> str | None:
    """When the wrong rows of a table are exactly rows whose id repeats in the input: the
    gradient of a repeated id is the sum over its uses, and ``W[ids] = ...`` (or ``+=``, which
    numpy buffers) keeps only one of them. None when the pattern does not hold."""
    if analytic.ndim < 1 or analytic.shape != numeric.shape:
        return None
    error = np.abs(analytic - numeric)
    bad = error > 1e-3 * float(error.max(initial=0.0))
    rows = sorted({int(index[0]) for index in np.argwhere(bad)})
    values, counts = np.unique(ids, return_counts=True)
    repeated = {int(v) for v, c in zip(values, counts) if c > 1}
    if not rows or not set(rows) <= repeated:
        return None
    listed = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
    return (f"the wrong rows of {key} ({listed}) are the ids that occur more than once in the "
            f"input: a repeated id's gradient is the sum over its uses, and {key}[ids] = dout or "
            f"{key}[ids] += dout keeps only one of them; accumulate with "
            f"np.add.at(self.grads[{key!r}], ids, dout) after zeroing it.")

"""Diagnosis: what a failing row's mistake probably is, in one sentence.

Its own module so new patterns can join: each is a test on the whole analytic and numeric
arrays that must explain the error to within FIT times the row's pass threshold.
"""
from __future__ import annotations

import numpy as np

# A diagnosis must explain the error to within this multiple of the row's pass threshold.
FIT = 10.0


def diagnose(analytic: np.ndarray, numeric: np.ndarray, checked: np.ndarray, limit: float,
             sizes: tuple[int, int | None], shaped: bool = True) -> tuple[str, str]:
    """The kind of a failing row and a one-sentence hint, decided on the whole arrays.

    ``checked`` masks the elements that did not cross a kink; ``limit`` is the row's pass
    threshold (tol times its scale); a pattern must explain the error to within FIT * limit.
    ``sizes`` is (N, D) of the input, to name a scale factor. ``shaped=False`` (directional
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
    if shaped and a.ndim == 2 and a.shape[0] == a.shape[1] > 1 and explains(a - n.T, checked & checked.T):
        return "transpose", "analytic = numeric.T: the gradient is transposed (x.T @ dout, not dout.T @ x)."
    k = float(np.dot(a[checked], n[checked]) / np.dot(n[checked], n[checked]))
    if (shaped or n.size > 1) and explains(a - k * n):  # one direction fits any k
        return "scale", _scale_hint(k, *sizes)
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


def _scale_hint(k: float, n: int, d: int | None) -> str:
    """'analytic = k x numeric' with what k is when it is a known factor."""
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
    matches = [(label, what) for label, value, what in known if abs(abs(k) - value) <= 1e-6 * value]
    if not matches:
        return f"analytic = {k:.6g} x numeric for every element: a constant factor is wrong."
    sign = "-" if k < 0 else ""
    labels = " = ".join(f"{sign}{label}" for label, _ in matches)
    names = [f"k = {k:.6g}"]
    names += [f"N = {n} the batch size"] if any("N" in label for label, _ in matches) else []
    names += [f"D = {d} the feature count"] if any("D" in label for label, _ in matches) else []
    flipped = ", and the sign is flipped" if k < 0 else ""
    return (f"analytic = {labels} x numeric for every element ({', '.join(names)}): "
            + "; or ".join(what for _, what in matches) + flipped + ".")


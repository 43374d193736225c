"""Finite-difference gradient checker for any layer or loss, ours or a user's.

    report = gradcheck(layer, x)            # dL/dx and every entry of layer.params
    report = gradcheck(loss, logits, y)     # d loss / d logits (targets are not differentiated)
    print(report); assert report.ok

For a layer the scalar checked is L = sum(forward(x) * dout) with a random, seeded ``dout``
(never all ones, which hides errors that sum to zero over a row or column); for a loss it is
``dloss * loss`` with a random scalar ``dloss``. Numeric gradients are central differences in
float64. The checked object is deep-copied first, so its parameters, buffers and cache are
never touched.

Errors are normwise: a tensor's error is its worst ``|analytic - numeric|`` divided by its
largest gradient entry. Tiny entries (BatchNorm's dx sums to zero over the batch) then raise
no false alarm, while an error of 0.1% anywhere in a tensor still reads as 1e-3. An element
whose perturbation crosses a kink (ReLU at 0) shows it through its two one-sided differences
disagreeing; it is skipped and counted, not failed.

Rounding in the evaluations moves a central difference by about ``noise = eps * sum|out *
dout| / step``; no check can resolve less. A tensor therefore passes when its worst error is
within ``tol`` times its largest entry or within that noise, like ``np.allclose`` with
``atol=noise``; the relative error reported is the worst error over ``max(largest entry,
noise / tol)``. The floor matters only for a tensor whose whole gradient is at the noise
level, such as BatchNorm's dx at batch 2, where the output barely depends on x.

This module needs only numpy and the Layer contract: importing it loads no training code.
``python -m handprop.train.gradcheck`` checks every built-in layer, loss and model.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

# A perturbation whose two one-sided slopes differ by more than this fraction of the
# tensor's largest gradient has crossed a kink. Smooth functions differ by about
# step * f'' (~1e-6 here), kinks by the size of the jump in slope.
KINK_GAP = 1e-3


@dataclass
class Row:
    """One checked tensor."""

    name: str
    shape: tuple
    abs_err: float
    rel_err: float
    checked: int
    skipped: int
    ok: bool


@dataclass
class GradcheckReport:
    """What gradcheck found: ``ok`` and one Row per tensor; ``print`` shows a table."""

    subject: str
    rows: list[Row] = field(default_factory=list)
    tol: float = 1e-7
    fast: bool = False

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def worst(self) -> float:
        """The largest relative error over all tensors."""
        return max((row.rel_err for row in self.rows), default=0.0)

    def __str__(self) -> str:
        mode = "random directions" if self.fast else "every element"
        head = (f"gradcheck {self.subject}: {'ok' if self.ok else 'FAILED'} "
                f"(tol {self.tol:.0e}, {mode})")
        return head + "\n" + format_table([self])


def format_table(reports: list[GradcheckReport]) -> str:
    """One table of the rows of several reports, a column naming each report."""
    header = ("check", "tensor", "shape", "max abs err", "rel err", "checked", "skipped", "")
    lines = [header]
    for report in reports:
        for row in report.rows:
            lines.append((report.subject, row.name, str(row.shape), f"{row.abs_err:.2e}",
                          f"{row.rel_err:.2e}", str(row.checked), str(row.skipped),
                          "ok" if row.ok else "FAIL"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in lines)


def gradcheck(subject, x: np.ndarray, targets: np.ndarray | None = None, *, seed: int = 0,
              step: float = 1e-6, tol: float = 1e-7, fast: bool = False,
              directions: int = 3) -> GradcheckReport:
    """Compare a layer's or a loss's analytic gradients with central differences.

    Parameters
    ----------
    subject : Layer or loss
        A float64 layer (``forward(x)``, ``backward(dout)``, ``params``, ``grads``) or a
        loss (``forward(logits, targets)``, ``backward(dloss)``). It is not modified.
    x : ndarray, float64
        The input (for a loss, the logits).
    targets : ndarray, optional
        Given for a loss: the targets, passed through but not differentiated.
    seed : int
        Seed of the random upstream gradient and of the fast mode's directions.
    step : float
        Perturbation size of the central differences.
    tol : float
        Largest relative error that passes.
    fast : bool
        Check each tensor along ``directions`` random unit directions instead of element by
        element: the cost no longer grows with the tensor's size. A single wrong element
        among many can then go unseen; use the full check to find one.

    Returns
    -------
    GradcheckReport
    """
    name = repr(subject)
    _require_float64(subject, x, name)
    subject = copy.deepcopy(subject)
    x = np.array(x, dtype=np.float64, copy=True)
    rng = np.random.default_rng(seed)

    if targets is None:
        out = subject.forward(x)
        dout = rng.standard_normal(np.shape(out))
        dx = subject.backward(dout.copy())

        def change(a, b):  # L(a) - L(b) for L = sum(out * dout), without forming L
            return float(np.sum((a - b) * dout))
        magnitude = float(np.sum(np.abs(out * dout)))
    else:
        targets = np.array(targets, copy=True)
        loss = subject.forward(x, targets)
        dloss = rng.uniform(0.5, 2.0)
        magnitude = abs(loss * dloss)
        dx = subject.backward(dloss)

        def change(a, b):
            return (a - b) * dloss

    def evaluate():
        return subject.forward(x) if targets is None else subject.forward(x, targets)

    input_name = "x" if targets is None else "logits"
    tensors = {input_name: x, **getattr(subject, "params", {})}
    analytic = {input_name: dx, **{k: np.array(g) for k, g in getattr(subject, "grads", {}).items()}}
    # below this, rounding in the evaluations hides an error of relative size tol
    floor = np.finfo(np.float64).eps * magnitude / step / tol
    base = evaluate()  # the unperturbed output, for the one-sided differences
    report = GradcheckReport(name, tol=tol, fast=fast)
    for key, tensor in tensors.items():
        grad = analytic.get(key)
        if grad is None or np.shape(grad) != tensor.shape:
            what = "nothing" if grad is None else f"shape {np.shape(grad)}"
            raise ValueError(f"gradcheck {name}: expected a gradient for {key} of shape "
                             f"{tensor.shape}, backward gave {what}")
        probe = (key, tensor, grad, evaluate, change, base, step, floor, tol)
        report.rows.append(_check_directions(*probe, directions, rng) if fast
                           else _check_elements(*probe))
    return report


def _check_elements(key, tensor, grad, evaluate, change, base, step, floor, tol) -> Row:
    numeric = np.empty(tensor.size)
    gap = np.empty(tensor.size)
    for i, index in enumerate(np.ndindex(tensor.shape)):  # writes reach any memory layout
        orig = tensor[index]
        tensor[index] = orig + step
        plus = evaluate()
        tensor[index] = orig - step
        minus = evaluate()
        tensor[index] = orig
        numeric[i] = change(plus, minus) / (2 * step)
        gap[i] = abs(change(plus, base) - change(base, minus)) / step
    grad = np.reshape(grad, -1)  # C order, as np.ndindex walks
    scale = max(np.max(np.abs(grad), initial=0.0), np.max(np.abs(numeric), initial=0.0), floor)
    kink = gap > KINK_GAP * scale
    abs_err = float(np.max(np.abs(grad - numeric)[~kink], initial=0.0))
    return _row(key, tensor.shape, abs_err, scale, int((~kink).sum()), int(kink.sum()), tol)


def _check_directions(key, tensor, grad, evaluate, change, base, step, floor, tol, directions,
                      rng) -> Row:
    saved = tensor.copy()
    # the largest directional derivative along a unit step
    scale = max(float(np.linalg.norm(grad)), floor)
    abs_err, checked, skipped = 0.0, 0, 0
    for _ in range(directions):
        v = rng.standard_normal(tensor.shape)
        v /= np.linalg.norm(v)
        tensor += step * v
        plus = evaluate()
        tensor[...] = saved - step * v
        minus = evaluate()
        tensor[...] = saved
        numeric = change(plus, minus) / (2 * step)
        gap = abs(change(plus, base) - change(base, minus)) / step
        if gap > KINK_GAP * max(scale, abs(numeric)):
            skipped += 1
            continue
        checked += 1
        abs_err = max(abs_err, abs(float(np.sum(grad * v)) - numeric))
    return _row(key, tensor.shape, abs_err, scale, checked, skipped, tol)


def _row(key, shape, abs_err, scale, checked, skipped, tol) -> Row:
    if scale > 0:
        rel_err = float(abs_err / scale)
    else:
        rel_err = 0.0 if abs_err == 0 else float("inf")
    return Row(key, tuple(shape), abs_err, rel_err, checked, skipped, bool(rel_err <= tol))


def _require_float64(subject, x, name: str) -> None:
    how = "build it with dtype=np.float64 and pass x.astype(np.float64)"
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"gradcheck {name}: differences need float64 to resolve errors far "
                        f"below 1e-7, got an input of {got}; {how}")
    for key, p in getattr(subject, "params", {}).items():
        if p.dtype != np.float64:
            raise TypeError(f"gradcheck {name}: differences need float64 to resolve errors far "
                            f"below 1e-7, but parameter {key} is {p.dtype}; {how}")

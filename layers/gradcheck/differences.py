"""Central differences of the objective, element by element or along random directions.

An element whose perturbation crosses a kink (ReLU at 0) shows it through its two one-sided
differences disagreeing; it is skipped and counted, not failed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .diagnosis import diagnose
from .kinks import check_kinks
from .objective import Objective
from .report import Row

KINK_GAP = 1e-3


@dataclass(frozen=True)
class Differences:
    """How one check takes central differences of its objective, around the output ``base``."""

    objective: Objective
    base: Any                      # the unperturbed output
    step: float
    tol: float
    floor: float                   # below this scale, rounding noise hides an error of size tol
    sizes: tuple[int, ...]         # the input's shape, to name a scale factor or an axis

    def slope(self, plus: Any, minus: Any) -> tuple[float, float]:
        """The central difference of two outputs a step either side of base, and the gap between
        the two one-sided differences (large where the step crossed a kink)."""
        change, step = self.objective.change, self.step
        gap = abs(change(plus, self.base) - change(self.base, minus)) / step
        return change(plus, minus) / (2 * step), gap


def check_elements(differences: Differences, key: str, tensor: np.ndarray, grad: np.ndarray) -> Row:
    forward, step, tol = differences.objective.forward, differences.step, differences.tol
    change, base = differences.objective.change, differences.base
    numeric, up, down = np.empty(tensor.shape), np.empty(tensor.shape), np.empty(tensor.shape)
    for index in np.ndindex(tensor.shape):  # writes reach any memory layout, views included
        orig = tensor[index]
        tensor[index] = orig + step
        plus = forward()
        tensor[index] = orig - step
        minus = forward()
        tensor[index] = orig
        numeric[index] = change(plus, minus) / (2 * step)
        up[index], down[index] = change(plus, base) / step, change(base, minus) / step
    gap = np.abs(up - down)
    scale = max(np.max(np.abs(grad), initial=0.0), np.max(np.abs(numeric), initial=0.0),
                differences.floor)
    checked = ~(gap > KINK_GAP * scale)
    err = np.where(checked, np.abs(grad - numeric), -1.0)
    worst = np.unravel_index(int(np.argmax(err)), tensor.shape) if tensor.size else ()
    row = _row(key, tensor.shape, max(float(err.max(initial=0.0)), 0.0), scale,
               int(checked.sum()), int((~checked).sum()), tol)
    row.analytic, row.numeric = grad, numeric
    if row.checked:
        row.worst = tuple(int(i) for i in worst)
        row.worst_analytic, row.worst_numeric = float(grad[worst]), float(numeric[worst])
    if not row.ok and row.checked:
        row.kind, row.hint = diagnose(grad, numeric, checked, tol * scale, differences.sizes)
    elif row.ok and row.skipped:
        check_kinks(differences, tensor, grad, (up, down), ~checked, scale, row)
    return row


def check_directions(differences: Differences, key: str, tensor: np.ndarray, grad: np.ndarray,
                      directions: int, rng: np.random.Generator) -> Row:
    forward, step, tol = differences.objective.forward, differences.step, differences.tol
    saved = tensor.copy()
    # the largest directional derivative along a unit step
    scale = max(float(np.linalg.norm(grad)), differences.floor)
    along, numerics, skipped = [], [], 0
    for _ in range(directions):
        v = rng.standard_normal(tensor.shape)
        v /= np.linalg.norm(v)
        tensor += step * v
        plus = forward()
        tensor[...] = saved - step * v
        minus = forward()
        tensor[...] = saved
        numeric, gap = differences.slope(plus, minus)
        if gap > KINK_GAP * max(scale, abs(numeric)):
            skipped += 1
            continue
        along.append(float(np.sum(grad * v)))
        numerics.append(numeric)
    along_a, numeric_a = np.array(along), np.array(numerics)
    err = np.abs(along_a - numeric_a)
    row = _row(key, tensor.shape, float(err.max(initial=0.0)), scale, len(along), skipped, tol)
    if row.checked:
        i = int(np.argmax(err))
        row.worst_analytic, row.worst_numeric = along[i], numerics[i]
    if not row.ok and row.checked:
        row.kind, row.hint = diagnose(along_a, numeric_a, np.ones(len(along), bool), tol * scale,
                                      differences.sizes, shaped=False)
    return row


def _row(key, shape, abs_err, scale, checked, skipped, tol) -> Row:
    if scale > 0:
        rel_err = float(abs_err / scale)
    else:
        rel_err = 0.0 if abs_err == 0 else float("inf")
    ok = bool(rel_err <= tol) and checked > 0
    hint = None if checked else "every element crossed a kink: nothing was verified"
    return Row(key, tuple(shape), abs_err, rel_err, checked, skipped, ok, hint=hint)


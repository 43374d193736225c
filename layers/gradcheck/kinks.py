"""Evidence at kinks and ties: the elements central differences had to skip.

A central difference across a kink (ReLU at 0, a max with two equal entries) means nothing, so
those elements are skipped by the differences. They are not trusted either:

- each one's gradient must lie between its two one-sided slopes (a valid subgradient: ReLU's
  0 or 1 at x = 0, anything between);
- elements that move the output together rather than each on its own (a tie: raising two
  tied maxima together raises the max once, while raising each alone raises it each time)
  form a group, and the group's gradients must sum to the slope along all of them at once.
  A max that sends the gradient to every tied maximum fails; the first maximum (PyTorch's
  choice), or any split of it, passes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .differences import Differences
    from .report import Row

# At most this many skipped elements are examined in pairs (a pair costs one evaluation).
MOST_PAIRED = 32
# A gradient may stray outside its one-sided slopes by this fraction of the tensor's scale
# (the slopes carry a step's curvature and rounding).
KINK_TOL = 1e-5
# Two skipped elements are tied when moving both changes the output by more than this fraction
# of the scale beyond the sum of moving each (a kink's jump in slope is of the order of the scale).
KINK_GAP_SCALE = 1e-3


def check_kinks(differences: Differences, tensor: np.ndarray, grad: np.ndarray,
                slopes: tuple[np.ndarray, np.ndarray], skipped: np.ndarray, scale: float,
                row: Row) -> None:
    """Fail ``row`` (kind ``kink`` or ``tie``) when a skipped element's gradient is not a valid one."""
    up, down = slopes
    slack = KINK_TOL * scale
    indices = [tuple(int(i) for i in index) for index in np.argwhere(skipped)]
    outside = [i for i in indices
               if not min(up[i], down[i]) - slack <= grad[i] <= max(up[i], down[i]) + slack]
    if outside:
        first = outside[0]
        listed = ", ".join(map(str, outside[:5])) + (", ..." if len(outside) > 5 else "")
        _fail(row, "kink", first, grad[first], up[first], (
            f"{len(outside)} of {len(indices)} elements at a kink have a gradient outside their "
            f"two one-sided slopes: {listed}; at a kink the gradient must be one of the slopes "
            f"either side (or between them), as ReLU's 0 or 1 at x = 0."))
        return
    for group in _groups(differences, tensor, indices[:MOST_PAIRED], up, KINK_GAP_SCALE * scale):
        together = _slopes_together(differences, tensor, group)
        total = float(sum(grad[i] for i in group))
        low, high = min(together), max(together)
        if low - slack * len(group) <= total <= high + slack * len(group):
            continue
        listed = ", ".join(map(str, group[:5])) + (", ..." if len(group) > 5 else "")
        _fail(row, "tie", group[0], total, together[0], (
            f"{len(group)} elements are tied ({listed}: they move the output as one, as the "
            f"entries of a max or a sort do) and their gradients sum to {total:.6g}, but the "
            f"output moves at {together[0]:.6g} when all of them move; send the gradient to one "
            f"of the tied elements (the first, as PyTorch does), not to each."))
        return


def _groups(differences: Differences, tensor: np.ndarray, indices: list[tuple],
            up: np.ndarray, limit: float) -> list[list[tuple]]:
    """The skipped elements that move the output together, in groups of two or more."""
    objective, step = differences.objective, differences.step
    parent = list(range(len(indices)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for a in range(len(indices)):
        for b in range(a + 1, len(indices)):
            i, j = indices[a], indices[b]
            saved = tensor[i], tensor[j]
            tensor[i] += step
            tensor[j] += step
            joint = objective.change(objective.forward(), differences.base) / step
            tensor[i], tensor[j] = saved
            if abs(joint - up[i] - up[j]) > limit:
                parent[root(a)] = root(b)
    groups: dict[int, list[tuple]] = {}
    for a, index in enumerate(indices):
        groups.setdefault(root(a), []).append(index)
    return [group for group in groups.values() if len(group) > 1]


def _slopes_together(differences: Differences, tensor: np.ndarray, group: list[tuple]) -> tuple:
    """The one-sided slopes of the objective when every element of the group moves at once."""
    objective, step, base = differences.objective, differences.step, differences.base
    saved = [tensor[i] for i in group]
    outputs = []
    for sign in (1.0, -1.0):
        for i, value in zip(group, saved):
            tensor[i] = value + sign * step
        outputs.append(objective.forward())
    for i, value in zip(group, saved):
        tensor[i] = value
    return (objective.change(outputs[0], base) / step, objective.change(base, outputs[1]) / step)


def _fail(row: Row, kind: str, worst: tuple, analytic: float, numeric: float, hint: str) -> None:
    row.ok, row.kind, row.hint = False, kind, hint
    row.worst, row.worst_analytic, row.worst_numeric = worst, float(analytic), float(numeric)

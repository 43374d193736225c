"""The check itself: ``gradcheck`` and ``assert_gradcheck``, gluing the other modules."""
from __future__ import annotations

from typing import Any

import numpy as np

from .contract import check_contract
from .differences import Differences, check_directions, check_elements
from .objective import layer_objective, loss_objective
from .report import GradcheckReport, Problem

# The check


def gradcheck(subject: Any, x: np.ndarray, targets: np.ndarray | None = None, *, seed: int = 0,
              step: float = 1e-6, tol: float = 1e-7, fast: bool = False,
              directions: int = 3) -> GradcheckReport:
    """Compare a layer's or a loss's analytic gradients with central differences.

    Parameters
    ----------
    subject : Layer or loss
        A float64 layer (``forward(x)``, ``backward(dout)``, ``params``, ``grads``) or a
        loss (``forward(pred, targets)``, ``backward(dloss)``). It is not modified.
    x : ndarray, float64
        The input (for a loss, the prediction: logits or real values).
    targets : ndarray, optional
        Given for a loss: the targets (class indices or real values), not differentiated.
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
        ``ok``, ``rows`` (one per tensor, with ``kind`` and ``hint`` when failed) and
        ``problems`` (broken contracts, each with ``kind`` and ``message``).
    """
    name = repr(subject)
    _require_float64(subject, x, name)
    # not default_rng(seed): dout would equal a user's x = default_rng(0).standard_normal(shape),
    # making x.T @ dout symmetric and a transposed dW invisible
    rng = np.random.default_rng([seed, 11])
    objective = (layer_objective(subject, x, rng) if targets is None
                 else loss_objective(subject, x, targets, rng))
    report = GradcheckReport(name, tol=tol, fast=fast)
    found = check_contract(objective, report.problems)
    if found is None:  # stochastic: differences of a random function mean nothing
        return report
    base, analytic = found
    floor = np.finfo(np.float64).eps * objective.magnitude(base) / step / tol
    differences = Differences(objective, base, step, tol, floor, _sizes(objective.x))
    tensors = {objective.input_name: objective.x, **getattr(objective.subject, "params", {})}
    for key, tensor in tensors.items():
        if key not in analytic:  # a dtype or shape problem says why
            continue
        row = (check_directions(differences, key, tensor, analytic[key], directions, rng) if fast
               else check_elements(differences, key, tensor, analytic[key]))
        report.rows.append(row)
        if not row.checked:
            what = "random direction" if fast else "element"
            report.problems.append(Problem("unchecked", (
                f"every {what} of {key} ({row.skipped}) crossed a kink, so nothing was verified; "
                f"move the input off the kinks (ReLU at exactly 0: use a random x)")))
    return report


def assert_gradcheck(subject: Any, x: np.ndarray, targets: np.ndarray | None = None,
                     **options: Any) -> GradcheckReport:
    """``gradcheck``, raising AssertionError whose message is the whole report unless it is ok.

    For a user's own pytest files: ``assert_gradcheck(MyLayer(dtype=np.float64), x)``.
    """
    report = gradcheck(subject, x, targets, **options)
    if not report.ok:
        raise AssertionError("\n" + str(report))
    return report


def _sizes(x: np.ndarray) -> tuple[int, int | None]:
    """N and D of an input, to name a scale factor: its first and last axes."""
    if x.ndim == 0:
        return 1, None
    return x.shape[0], (x.shape[-1] if x.ndim > 1 else None)


def _require_float64(subject, x, name: str) -> None:
    how = "build it with dtype=np.float64 and pass x.astype(np.float64)"
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"gradcheck {name}: differences need float64 to resolve errors far "
                        f"below 1e-7, got an input of {got}; {how}")
    for key, p in getattr(subject, "params", {}).items():
        if getattr(p, "dtype", None) != np.float64:
            raise TypeError(f"gradcheck {name}: differences need float64 to resolve errors far "
                            f"below 1e-7, but parameter {key} is {getattr(p, 'dtype', type(p).__name__)}; "
                            f"{how}")

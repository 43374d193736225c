"""The check itself: ``gradcheck`` and ``assert_gradcheck``, gluing the other modules."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import cost
from .arguments import check_arguments
from .contract import check_contract
from .cost import choose_mode, evaluation_seconds
from .diagnosis import repeated_ids_hint
from .differences import Differences, check_directions, check_elements
from .objective import Objective, is_ids, layer_objective, loss_objective
from .report import GradcheckReport, Problem, Row

SQUARE_WARNING = ("equal sizes hide broadcasting and transposes: check again with distinct sizes")


def gradcheck(subject: Any, x: np.ndarray | Sequence[np.ndarray], targets: np.ndarray | None = None, *,
              seed: int = 0, step: float = 1e-6, tol: float = 1e-7, fast: bool | None = None,
              directions: int = 3, not_differentiated: Sequence[int] = (),
              progress: bool | None = None) -> GradcheckReport:
    """Compare a layer's or a loss's analytic gradients with central differences.

    Parameters
    ----------
    subject : Layer, any object with forward and backward, or a loss
        A float64 layer (``forward(x)``, ``backward(dout)``, ``params``, ``grads``) or a
        loss (``forward(pred, targets)``, ``backward(dloss)``). It is not modified.
    x : ndarray, or a tuple of ndarrays
        The input (for a loss, the prediction: logits or real values). A tuple is several
        inputs: ``forward(*x)``, and ``backward(dout)`` returns a tuple with one gradient per
        input. Float inputs are float64 and checked; integer inputs (token ids) are passed
        through unperturbed, and what backward returns for them (None) is not read.
    targets : ndarray, optional
        Given for a loss: the targets (class indices or real values), not differentiated.
    seed : int
        Seed of the random upstream gradient and of the fast mode's directions.
    step : float
        Perturbation size of the central differences.
    tol : float
        Largest relative error that passes.
    fast : bool, optional
        Check each tensor along ``directions`` random unit directions instead of element by
        element: the cost no longer grows with the tensor's size. A single wrong element
        among many can then go unseen; use the full check to find one. By default (None) every
        element is checked unless that is estimated to take over 10 minutes
        (``cost.FAST_AFTER``): then the fast mode runs and a warning in the report says so.
        False checks every element however long it takes.
    not_differentiated : sequence of int
        Positions of float inputs to pass through like token ids (a mask, a constant).
    progress : bool, optional
        Show the estimated cost and the progress on stderr; by default only for a check
        expected to take over 5 s (``cost.PROGRESS_AFTER``).

    Returns
    -------
    GradcheckReport
        ``ok``, ``rows`` (one per tensor, with ``kind`` and ``hint`` when failed),
        ``problems`` (broken contracts, each with ``kind`` and ``message``) and ``warnings``.
    """
    inputs = check_arguments(subject, x, targets, seed=seed, step=step, tol=tol, fast=fast,
                             directions=directions, not_differentiated=not_differentiated,
                             progress=progress)
    name = repr(subject)
    several = len(inputs) > 1  # one input: backward returns dx
    # not default_rng(seed): dout would equal a user's x = default_rng(0).standard_normal(shape),
    # making x.T @ dout symmetric and a transposed dW invisible
    rng = np.random.default_rng([seed, 11])
    objective = (layer_objective(subject, inputs, rng, several=several,
                                 not_differentiated=tuple(not_differentiated))
                 if targets is None else loss_objective(subject, inputs[0], targets, rng))
    tensors = {**objective.checked_inputs(), **getattr(objective.subject, "params", {})}
    each = evaluation_seconds(objective)  # before the long work: its estimate comes first
    fast, switched = choose_mode(name, tensors, fast, directions, each)
    report = GradcheckReport(name, tol=tol, fast=fast)
    square = _square_warnings(objective)
    report.warnings += square + ([switched] if switched else [])
    show = cost.progress(name, tensors, fast, directions, each, progress, switched)
    found = check_contract(objective, report.problems)
    if found is None:  # stochastic or a wrong dtype: differences would only mislead
        return report
    base, analytic = found
    floor = np.finfo(np.float64).eps * objective.magnitude(base) / step / tol
    differences = Differences(objective, base, step, tol, floor, tuple(objective.x.shape))
    if not tensors:
        report.problems.append(Problem("unchecked", (
            "nothing to check: every input is integer (token ids) or marked not differentiated, "
            "and there are no params; pass float64 inputs to check their gradients")))
    for key, tensor in tensors.items():
        if key not in analytic:  # a dtype or shape problem says why
            continue
        row = (check_directions(differences, key, tensor, analytic[key], directions, rng) if fast
               else check_elements(differences, key, tensor, analytic[key]))
        _name_repeated_ids(objective, key, row)
        report.rows.append(row)
        if show:
            show(key, tensor)
        if not row.checked:
            what = "random direction" if fast else "element"
            report.problems.append(Problem("unchecked", (
                f"every {what} of {key} ({row.skipped}) crossed a kink, so nothing was verified; "
                f"move the input off the kinks (ReLU at exactly 0: use a random x)")))
    if square:
        for row in report.rows:
            if not row.ok and row.kind == "mismatch" and row.hint:
                row.hint += f" The input has equal sizes ({SQUARE_WARNING})."
    return report


def assert_gradcheck(subject: Any, x: np.ndarray | Sequence[np.ndarray],
                     targets: np.ndarray | None = None, **options: Any) -> GradcheckReport:
    """``gradcheck``, raising AssertionError unless it is ok: the first line names what failed
    (pytest's short summary shows it), the whole report follows.

    For a user's own pytest files: ``assert_gradcheck(MyLayer(dtype=np.float64), x)``.
    """
    report = gradcheck(subject, x, targets, **options)
    if not report.ok:
        raise AssertionError(report.summary() + "\n" + str(report))
    return report


def _square_warnings(objective: Objective) -> list[str]:
    """A warning for each checked input with two equal axis sizes (above 1)."""
    warnings = []
    for key, x in objective.checked_inputs().items():
        sizes = [n for n in x.shape if n > 1]
        if len(set(sizes)) < len(sizes):
            warnings.append(f"{key} has the shape {x.shape}: {SQUARE_WARNING}")
    return warnings


def _name_repeated_ids(objective: Objective, key: str, row: Row) -> None:
    """A table whose wrong rows are the token ids that repeat: the lost accumulation."""
    ids = [x for x, d in zip(objective.inputs, objective.differentiated) if not d and is_ids(x)]
    if row.ok or row.kind not in ("elements", "mismatch") or not ids or row.analytic is None \
            or row.numeric is None:
        return
    hint = repeated_ids_hint(key, row.analytic, row.numeric, ids[0], row.rel_err)
    if hint:
        row.kind, row.hint = "accumulate", hint

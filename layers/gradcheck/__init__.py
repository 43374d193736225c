"""Finite-difference gradient checker for any layer or loss, ours or a user's.

    report = gradcheck(layer, x)            # dL/dx and every entry of layer.params
    report = gradcheck(loss, pred, targets) # d loss / d pred (targets are not differentiated)
    report = gradcheck(attention, (q, k))   # several inputs: forward(q, k) -> (dq, dk)
    report = gradcheck(embedding, ids)      # integer token ids pass through: only W is checked
    print(report); assert report.ok         # or: assert_gradcheck(layer, x)

For a layer the scalar checked is L = sum(forward(x) * dout) with a random, seeded ``dout``
(never all ones, which hides errors that sum to zero over a row or column); for a loss it is
``dloss * loss`` with a random scalar ``dloss``. Numeric gradients are central differences in
float64. The checked object is deep-copied first, so its parameters, buffers and cache are
never touched.

Before any differencing the checker tests the contract and lists what breaks it in
``report.problems`` (kinds: ``stochastic``, ``unchecked``, ``not-repeatable``,
``modifies-input``, ``dtype``, ``shape``, ``unregistered``, ``replaced-grads``). Any object
with ``forward`` and ``backward`` is checked, a Layer or a plain class: float arrays it keeps
outside ``params`` that change the output are ``unregistered``. ``report.ok`` needs evidence:
every tensor had elements checked, every row passed, and no problem was found. A failing row
says what the mistake probably is (``row.kind``: zero, sign, scale, transpose, offset,
elements, mismatch, tie, kink, accumulate) in one sentence (``row.hint``), with its worst
element. ``report.warnings`` says when an input's equal sizes could hide a mistake.

Errors are normwise: a tensor's error is its worst ``|analytic - numeric|`` divided by its
largest gradient entry. Tiny entries (BatchNorm's dx sums to zero over the batch) then raise
no false alarm, while an error of 0.1% anywhere in a tensor still reads as 1e-3. An element
whose perturbation crosses a kink (ReLU at 0) shows it through its two one-sided differences
disagreeing; it is skipped by the differences and counted, but not trusted: its gradient must
lie between its one-sided slopes, and tied elements (the entries of a max) must share theirs
(``kinks``).

Rounding in the evaluations moves a central difference by about ``noise = eps * sum|out *
dout| / step``; no check can resolve less. A tensor therefore passes when its worst error is
within ``tol`` times its largest entry or within that noise, like ``np.allclose`` with
``atol=noise``; the relative error reported is the worst error over ``max(largest entry,
noise / tol)``. The floor matters only for a tensor whose whole gradient is at the noise
level, such as BatchNorm's dx at batch 2, where the output barely depends on x.

A layer that draws from its own ``np.random.Generator`` (``self.rng``, in any sub-layer) is
evaluated with the same draws every time: the checker replays the generators' states.

This package needs only numpy and the Layer contract: importing it loads no training code.
``python -m handprop.train.gradcheck`` checks every built-in layer, loss and model.

Its modules, in the order a check runs: ``arguments`` (gradcheck's own arguments and the
values it is given: a bad option, a NaN, an empty x are named before any evaluation), ``objective`` (the scalar differentiated), ``contract``
(the problems found before differencing), ``differences`` (element-wise and directional
checks), ``kinks`` (evidence at the elements the differences skip), ``diagnosis`` (what a failing row's mistake probably is), ``report`` (what is found
and how it prints), ``check`` (``gradcheck`` itself) and ``members`` (the attribute walk).
"""
from .arguments import check_arguments
from .check import assert_gradcheck, gradcheck
from .contract import check_contract
from .diagnosis import FIT, diagnose
from .differences import KINK_GAP, Differences
from .members import SAME
from .objective import Objective, layer_objective, loss_objective
from .report import PROBLEM_KINDS, ROW_KINDS, GradcheckReport, Problem, Row, format_details, format_table

__all__ = ["FIT", "KINK_GAP", "PROBLEM_KINDS", "ROW_KINDS", "SAME", "Differences", "GradcheckReport",
           "Objective", "Problem", "Row", "assert_gradcheck", "check_arguments", "check_contract", "diagnose",
           "format_details", "format_table", "gradcheck", "layer_objective", "loss_objective"]

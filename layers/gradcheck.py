"""Finite-difference gradient checker for any layer or loss, ours or a user's.

    report = gradcheck(layer, x)            # dL/dx and every entry of layer.params
    report = gradcheck(loss, pred, targets) # d loss / d pred (targets are not differentiated)
    print(report); assert report.ok         # or: assert_gradcheck(layer, x)

For a layer the scalar checked is L = sum(forward(x) * dout) with a random, seeded ``dout``
(never all ones, which hides errors that sum to zero over a row or column); for a loss it is
``dloss * loss`` with a random scalar ``dloss``. Numeric gradients are central differences in
float64. The checked object is deep-copied first, so its parameters, buffers and cache are
never touched.

Before any differencing the checker tests the contract and lists what breaks it in
``report.problems`` (kinds: ``stochastic``, ``unchecked``, ``not-repeatable``,
``modifies-input``, ``dtype``, ``shape``, ``unregistered``). ``report.ok`` needs evidence:
every tensor had elements checked, every row passed, and no problem was found. A failing row
says what the mistake probably is (``row.kind``: zero, sign, scale, transpose, offset,
elements, mismatch) in one sentence (``row.hint``), with its worst element.

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

A layer that draws from its own ``np.random.Generator`` (``self.rng``, in any sub-layer) is
evaluated with the same draws every time: the checker replays the generators' states.

This module needs only numpy and the Layer contract: importing it loads no training code.
``python -m handprop.train.gradcheck`` checks every built-in layer, loss and model.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A perturbation whose two one-sided slopes differ by more than this fraction of the
# tensor's largest gradient has crossed a kink. Smooth functions differ by about
# step * f'' (~1e-6 here), kinks by the size of the jump in slope.
KINK_GAP = 1e-3
# A diagnosis must explain the error to within this multiple of the row's pass threshold.
FIT = 10.0
# Two evaluations of deterministic code agree to the last bits; a random draw differs by O(1).
SAME = 1e-12

PROBLEM_KINDS = ("stochastic", "unchecked", "not-repeatable", "modifies-input", "dtype", "shape",
                 "unregistered")
ROW_KINDS = ("zero", "sign", "scale", "transpose", "offset", "elements", "mismatch")
RANDOM_STATES = (np.random.Generator, np.random.RandomState)


@dataclass(frozen=True)
class Problem:
    """A broken contract found before differencing: ``kind`` (one of PROBLEM_KINDS), ``message``."""

    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass
class Row:
    """One checked tensor, and when it failed, what the mistake probably is.

    ``worst`` is the index of the element with the largest error, ``worst_analytic`` and
    ``worst_numeric`` its two values; in the fast mode ``worst`` is None and the values are the
    derivatives along the worst random direction. ``analytic`` and ``numeric`` are the whole
    arrays in the element-wise mode (None in the fast mode).
    """

    name: str
    shape: tuple
    abs_err: float
    rel_err: float
    checked: int
    skipped: int
    ok: bool
    kind: str | None = None
    hint: str | None = None
    worst: tuple | None = None
    worst_analytic: float = 0.0
    worst_numeric: float = 0.0
    analytic: np.ndarray | None = field(default=None, repr=False)
    numeric: np.ndarray | None = field(default=None, repr=False)


@dataclass
class GradcheckReport:
    """What gradcheck found: ``ok``, one Row per tensor and the ``problems``; ``print`` shows all."""

    subject: str
    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    tol: float = 1e-7
    fast: bool = False

    @property
    def ok(self) -> bool:
        """True only with evidence: rows, each with elements checked and passing; no problem."""
        return bool(self.rows) and not self.problems and all(row.ok for row in self.rows)

    @property
    def worst(self) -> float:
        """The largest relative error over all tensors."""
        return max((row.rel_err for row in self.rows), default=0.0)

    def __str__(self) -> str:
        mode = "random directions" if self.fast else "every element"
        head = (f"gradcheck {self.subject}: {'ok' if self.ok else 'FAILED'} "
                f"(tol {self.tol:.0e}, {mode})")
        return "\n".join(filter(None, [head, format_table([self]), format_details(self)]))


def format_table(reports: list[GradcheckReport], named: bool | None = None) -> str:
    """One table of the rows of several reports; a first column names each report when
    ``named`` (by default, when there are several)."""
    header = ("check", "tensor", "shape", "max abs err", "rel err", "checked", "skipped", "")
    lines: list[tuple[str, ...]] = [header]
    for report in reports:
        for row in report.rows:
            verdict = "ok" if row.ok else "UNCHECKED" if not row.checked else f"FAIL {row.kind}"
            lines.append((report.subject, row.name, str(row.shape), f"{row.abs_err:.2e}",
                          f"{row.rel_err:.2e}", str(row.checked), str(row.skipped), verdict))
        if not report.rows:
            lines.append((report.subject, "-", "-", "-", "-", "0", "0", "NOT CHECKED"))
    if not (len(reports) > 1 if named is None else named):
        lines = [line[1:] for line in lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in lines)


def format_details(report: GradcheckReport) -> str:
    """What each failing row probably got wrong and where, then every problem."""
    lines = []
    for row in report.rows:
        if row.ok or not row.checked:
            continue
        where = f"worst at {row.worst}" if row.worst is not None else "worst direction"
        lines += [f"{row.name}: {row.kind}: {row.hint}",
                  f"    {where}: analytic {row.worst_analytic:.6g}, numeric {row.worst_numeric:.6g}"]
    lines += [f"problem {problem}" for problem in report.problems]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# The objective: the scalar that is differentiated, for a layer or for a loss


@dataclass(frozen=True)
class Objective:
    """The scalar gradcheck differentiates, as a function of the input and the parameters.

    A layer's is ``sum(forward(x) * dout)``, a loss's ``dloss * forward(pred, targets)``. Built
    by ``layer_objective`` or ``loss_objective``, which make the checker's own copies.
    """

    subject: Any                  # the checker's deep copy of the layer or loss
    input_name: str               # "x", "logits" (integer targets) or "pred"
    x: np.ndarray                 # the checker's copy of the input, perturbed in place
    targets: np.ndarray | None    # a loss's targets, passed through, never differentiated
    upstream: Any                 # dout (an array of the output's shape) or dloss (a float)
    replays: tuple                # (generator, state): restored before every forward

    @property
    def is_loss(self) -> bool:
        return self.targets is not None

    def forward(self, x: np.ndarray | None = None) -> Any:
        """The output at the current values, with the same random draws every time.

        The subject gets a copy of x, so a forward that writes into its input (a problem that
        ``check_contract`` reports) cannot corrupt the differences; the output is copied, so a
        layer that reuses its own memory for it cannot overwrite an earlier evaluation.
        """
        for generator, state in self.replays:
            _set_state(generator, state)
        x = self.x.copy() if x is None else x
        if self.targets is not None:  # a loss
            return self.subject.forward(x, self.targets.copy())
        out = self.subject.forward(x)
        return out.copy() if isinstance(out, np.ndarray) else out

    def backward(self, upstream: Any = None) -> Any:
        """What backward returns for the upstream gradient (a copy of ours by default)."""
        if self.is_loss:
            return self.subject.backward(self.upstream)
        return self.subject.backward(self.upstream.copy() if upstream is None else upstream)

    def change(self, a: Any, b: Any) -> float:
        """L(a) - L(b) for two outputs, without forming L (no cancellation)."""
        if self.is_loss:
            return float((a - b) * self.upstream)
        return float(np.sum((np.asarray(a, np.float64) - b) * self.upstream))

    def magnitude(self, out: Any) -> float:
        """The size of the terms of L, which sets the rounding noise of a difference."""
        if self.is_loss:
            return abs(float(out) * self.upstream)
        return float(np.sum(np.abs(np.asarray(out, np.float64) * self.upstream)))


def layer_objective(layer: Any, x: np.ndarray, rng: np.random.Generator) -> Objective:
    """L = sum(forward(x) * dout) for a layer, with a random dout drawn from ``rng``."""
    layer = copy.deepcopy(layer)
    x = np.array(x, dtype=np.float64, copy=True)
    replays = tuple((g, _get_state(g)) for g in _random_states(layer))
    probe = Objective(layer, "x", x, None, None, replays)
    dout = rng.standard_normal(np.shape(probe.forward()))
    return Objective(layer, "x", x, None, dout, replays)


def loss_objective(loss: Any, pred: np.ndarray, targets: np.ndarray,
                   rng: np.random.Generator) -> Objective:
    """L = dloss * forward(pred, targets) for a loss, with a random scalar dloss."""
    loss = copy.deepcopy(loss)
    targets = np.array(targets, copy=True)
    name = "logits" if targets.dtype.kind in "iu" else "pred"
    replays = tuple((g, _get_state(g)) for g in _random_states(loss))
    return Objective(loss, name, np.array(pred, dtype=np.float64, copy=True), targets,
                     float(rng.uniform(0.5, 2.0)), replays)


# ---------------------------------------------------------------------------------------
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
        row = (_check_directions(differences, key, tensor, analytic[key], directions, rng) if fast
               else _check_elements(differences, key, tensor, analytic[key]))
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


def check_contract(objective: Objective, problems: list[Problem]) -> tuple[Any, dict] | None:
    """Run forward and backward the way the differences will, appending what breaks the contract.

    Returns the unperturbed output and the analytic gradients that can be compared (float64,
    the tensor's shape), or None when forward is random in a way the checker cannot replay.
    """
    subject, x, what = objective.subject, objective.x, objective.input_name
    x_in = x.copy()
    out = objective.forward(x_in)
    changed = _differs(x_in, x)
    if changed:
        problems.append(Problem("modifies-input", (
            f"forward changed its input {what} in place ({changed} of {x.size} elements); a value "
            f"that feeds two branches must survive the first: write the result to a new array "
            f"(y = x * m, not x *= m)")))
    again = objective.forward()
    if _differs(out, again):
        replayed = f" (it replayed {len(objective.replays)} generator(s))" if objective.replays else ""
        problems.append(Problem("stochastic", (
            f"forward gave different outputs for the same {what}{replayed}: it draws random numbers "
            f"the checker cannot replay (np.random.*, a fresh default_rng()); draw them from a "
            f"np.random.Generator kept as an attribute (self.rng = np.random.default_rng(seed))")))
        return None
    if not objective.is_loss and not _is_float_array(out, x.dtype):
        problems.append(Problem("dtype", (f"forward returned {_describe(out)} for a float64 {what}; "
                                          f"expected a float64 ndarray")))

    params = getattr(subject, "params", {})
    for grad in getattr(subject, "grads", {}).values():
        if isinstance(grad, np.ndarray) and grad.flags.writeable:
            grad[...] = 0  # a gradient backward never writes then reads as zero, not as stale
    dout = None if objective.is_loss else objective.upstream.copy()
    dx = objective.backward(dout)
    if dout is not None and _differs(dout, objective.upstream):
        problems.append(Problem("modifies-input", (
            f"backward changed dout in place ({_differs(dout, objective.upstream)} of {dout.size} "
            f"elements); the same dout may feed another branch: write dx to a new array "
            f"(dx = dout * mask, not dout *= mask)")))
    first = {what: dx, **{k: getattr(subject, "grads", {}).get(k) for k in params}}
    first = {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in first.items()}
    analytic = {}
    for key, tensor in {what: x, **params}.items():
        grad = _usable_gradient(key, first[key], tensor, "dx" if key == what else "grads", problems)
        if grad is not None:
            analytic[key] = grad

    _check_repeatable(objective, first, out, problems)
    if hasattr(subject, "params"):
        _check_unregistered(objective, out, problems)
    return out, analytic


def _usable_gradient(key: str, grad: Any, tensor: np.ndarray, source: str,
                     problems: list[Problem]) -> np.ndarray | None:
    """``grad`` as float64 of the tensor's shape for the differences, or None; problems noted."""
    name = "dx" if source == "dx" else f"grads[{key!r}]"
    if grad is None:
        got = "backward returned None" if source == "dx" else f"grads has no entry {key!r}"
        problems.append(Problem("dtype", f"{got}; expected a {tensor.dtype} array of shape {tensor.shape}"))
        return None
    if not isinstance(grad, np.ndarray):
        problems.append(Problem("dtype", (f"{name} is {_describe(grad)}, not an ndarray; backward must "
                                          f"give {tensor.dtype} arrays (np.asarray does it)")))
    elif grad.dtype != tensor.dtype:
        problems.append(Problem("dtype", (
            f"{name} is {grad.dtype} for a {tensor.dtype} {key}; a gradient has its tensor's dtype "
            f"(look for an astype or an array made with another dtype)")))
    try:
        grad = np.array(grad, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if grad.shape != tensor.shape:
        problems.append(Problem("shape", (f"{name} has shape {grad.shape} but {key} has shape "
                                          f"{tensor.shape}{_shape_cause(grad.shape, tensor.shape)}")))
        return None
    return grad


def _shape_cause(got: tuple, want: tuple) -> str:
    """Why a gradient of shape ``got`` was computed for a tensor of shape ``want``, where it shows."""
    if len(got) == len(want) + 1 and got[1:] == want:
        return (f": {want} was broadcast over the batch in forward, so backward must sum over "
                f"axis 0 (.sum(axis=0))")
    if len(got) == 2 and got == want[::-1]:
        return ": the gradient is transposed (x.T @ dout, not dout.T @ x)"
    if tuple(n for n in got if n != 1) == tuple(n for n in want if n != 1):
        return ": a reduction lost or gained a size-1 axis (keepdims=True, or reshape)"
    return ""


def _check_repeatable(objective: Objective, first: dict, out: Any, problems: list[Problem]) -> None:
    """A second backward with the same dout gives the same gradients; forward is unchanged."""
    what, grads = objective.input_name, getattr(objective.subject, "grads", {})
    try:
        second = {what: objective.backward(), **{k: grads.get(k) for k in first if k != what}}
    except Exception as err:  # any error of a second backward is the finding, not a crash
        problems.append(Problem("not-repeatable", (
            f"a second backward with the same dout raised {type(err).__name__}: {err}")))
        return
    for key, before in first.items():
        after = second[key]
        if not isinstance(before, np.ndarray) or not isinstance(after, np.ndarray):
            continue
        if before.shape == after.shape and not _differs(before, after):
            continue
        name = "dx" if key == what else f"grads[{key!r}]"
        if before.shape == after.shape and np.allclose(after, 2 * before, rtol=1e-9, atol=0) \
                and np.any(before):
            problems.append(Problem("not-repeatable", (
                f"a second backward with the same dout doubled {name}: backward adds into it (+=) "
                f"instead of overwriting it (grads[{key!r}][...] = ..., or out=)")))
        else:
            problems.append(Problem("not-repeatable", (
                f"a second backward with the same dout changed {name}: backward must depend only "
                f"on forward's cache and dout, and overwrite grads")))
    if _differs(objective.forward(), out):
        problems.append(Problem("not-repeatable", (
            "forward gave another output after backward: backward changed state that forward "
            "reads (params, buffers or attributes)")))


def _check_unregistered(objective: Objective, out: Any, problems: list[Problem]) -> None:
    """Float arrays kept as attributes that change the output but are not in params."""
    subject = objective.subject
    layers = [subject] + [v for _, v in _walk(subject, "", set(), layers=True) if v is not subject]
    exempt = []
    for layer in layers:
        for kind in ("params", "grads", "buffers"):
            exempt += [a for a in getattr(layer, kind, {}).values() if isinstance(a, np.ndarray)]
        exempt += [a for _, a in _walk(getattr(layer, "cache", None), "", set())
                   if isinstance(a, np.ndarray)]
    noise = np.random.default_rng(12345)
    for path, array in _walk(subject, "", set()):
        if (not isinstance(array, np.ndarray) or array.dtype.kind != "f" or not array.size
                or not array.flags.writeable or any(np.may_share_memory(array, e) for e in exempt)):
            continue
        saved = array.copy()
        array += 1e-3 * (1 + np.abs(array)) * noise.standard_normal(array.shape)
        try:
            moved = _differs(objective.forward(), out)
        finally:
            array[...] = saved
        if moved:
            problems.append(Problem("unregistered", (
                f"the attribute {path} {array.shape} changes the output but is not in params, so it "
                f"is neither trained nor checked; put it in self.params (its gradient in "
                f"self.grads), or in self.buffers if it is state that is not trained")))


# ---------------------------------------------------------------------------------------
# Differencing


@dataclass(frozen=True)
class Differences:
    """How one check takes central differences of its objective, around the output ``base``."""

    objective: Objective
    base: Any                      # the unperturbed output
    step: float
    tol: float
    floor: float                   # below this scale, rounding noise hides an error of size tol
    sizes: tuple[int, int | None]  # (N, D) of the input, to name a scale factor

    def slope(self, plus: Any, minus: Any) -> tuple[float, float]:
        """The central difference of two outputs a step either side of base, and the gap between
        the two one-sided differences (large where the step crossed a kink)."""
        change, step = self.objective.change, self.step
        gap = abs(change(plus, self.base) - change(self.base, minus)) / step
        return change(plus, minus) / (2 * step), gap


def _check_elements(differences: Differences, key: str, tensor: np.ndarray, grad: np.ndarray) -> Row:
    forward, step, tol = differences.objective.forward, differences.step, differences.tol
    numeric = np.empty(tensor.shape)
    gap = np.empty(tensor.shape)
    for index in np.ndindex(tensor.shape):  # writes reach any memory layout, views included
        orig = tensor[index]
        tensor[index] = orig + step
        plus = forward()
        tensor[index] = orig - step
        minus = forward()
        tensor[index] = orig
        numeric[index], gap[index] = differences.slope(plus, minus)
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
    return row


def _check_directions(differences: Differences, key: str, tensor: np.ndarray, grad: np.ndarray,
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


# ---------------------------------------------------------------------------------------
# Diagnosis: what a failing row's mistake probably is


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


# ---------------------------------------------------------------------------------------
# Helpers


def _walk(value: Any, path: str, seen: set, layers: bool = False) -> Iterator[tuple[str, Any]]:
    """(path, member) for the arrays and random generators of a layer, its sub-layers (in
    attributes, lists, tuples and dicts, at any depth) and their containers; the ``cache``
    attribute is left out. With ``layers=True``, the layer objects themselves instead."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, (np.ndarray, *RANDOM_STATES)):
        if not layers:
            yield path, value
        return
    if isinstance(value, dict):
        items = [(f"{path}[{k!r}]", v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    elif _is_layer(value):
        if layers:
            yield path, value
        items = [(f"{path}.{k}" if path else k, v) for k, v in vars(value).items() if k != "cache"]
    else:
        return
    for sub_path, sub in items:
        yield from _walk(sub, sub_path, seen, layers)


def _is_layer(value: Any) -> bool:
    return (hasattr(value, "__dict__") and callable(getattr(value, "forward", None))
            and callable(getattr(value, "backward", None)) and not isinstance(value, type))


def _random_states(subject: Any) -> list:
    return [v for _, v in _walk(subject, "", set()) if isinstance(v, RANDOM_STATES)]


def _get_state(generator: Any) -> Any:
    if isinstance(generator, np.random.Generator):
        return copy.deepcopy(generator.bit_generator.state)
    return generator.get_state()


def _set_state(generator: Any, state: Any) -> None:
    if isinstance(generator, np.random.Generator):
        generator.bit_generator.state = state
    else:
        generator.set_state(state)


def _differs(a: Any, b: Any) -> int:
    """How many elements of a and b differ beyond the last bits (all of them if shapes differ)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return max(a.size, b.size, 1)
    size = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return int(np.count_nonzero(~(np.abs(a - b) <= SAME * size)))


def _is_float_array(value: Any, dtype: np.dtype) -> bool:
    return isinstance(value, np.ndarray) and value.dtype == dtype


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} ndarray"
    return f"a {type(value).__name__}"


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

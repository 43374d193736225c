"""Reading a graph of gates: ``trace`` prints it, ``compare`` sets a staged backward beside it.

``handprop.layers.gates`` re-exports both. This module reads Vars through their attributes
(``name``, ``shape``, ``grad``, ``op``, ``parents``, ``serial``) and never imports the engine at
its top, because the engine imports it.

``reference`` holds the Vars of a staged forward written with ``handprop.layers.gates`` (a dict
by name, or Vars that have names), after ``backward``; ``mine`` holds the learner's gradients by
the same names (``mine["xc"]`` is the learner's ``dxc``). The report lists them in backward
order (the reverse of the order the forward made them), so the first wrong row is the mistake
itself: every gradient it was computed from comes earlier and agrees. A wrong row gets the
checker's diagnosis (``handprop.layers.gradcheck.diagnose``: sign, scale, transpose, offset,
...), and a gradient of the wrong shape is a row of kind "shape", never an exception.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from .gradcheck import diagnose

# A gradient that is zero up to rounding (the max-shift of a softmax) is measured against this
# fraction of the largest gradient compared, not against its own rounding noise.
FLOOR = 1e-6


@dataclass
class GateRow:
    """One intermediate: its name and shape, the learner's shape, errors, and when wrong, why."""

    name: str
    shape: tuple
    got_shape: tuple
    abs_err: float            # max |mine - reference|; nan when the shapes differ
    rel_err: float            # abs_err over the reference's largest entry
    ok: bool
    kind: str | None = None
    hint: str | None = None


@dataclass
class GateReport:
    """What ``compare`` found: ``rows`` in backward order, ``first_wrong`` (a name or None) and
    a one-sentence ``hint`` about it; ``print(report)`` shows the table."""

    rows: list[GateRow] = field(default_factory=list)
    first_wrong: str | None = None
    hint: str | None = None
    tol: float = 1e-7

    @property
    def ok(self) -> bool:
        return self.first_wrong is None

    def __str__(self) -> str:
        head = ("compare: all gradients agree" if self.ok else
                f"compare: first wrong: {self.first_wrong}")
        table = [("name", "shape", "yours", "max abs err", "rel err", "")]
        for row in self.rows:
            errors = (f"{row.abs_err:.1e}", f"{row.rel_err:.1e}") if row.shape == row.got_shape \
                else ("-", "-")
            yours = "" if row.shape == row.got_shape else str(row.got_shape)
            verdict = "ok" if row.ok else f"WRONG {row.kind}"
            table.append((row.name, str(row.shape), yours, *errors, verdict))
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
        return "\n".join([f"{head} (tol {self.tol:.0e})", *lines]
                         + ([f"hint: {self.hint}"] if self.hint else []))


def trace(root: Any) -> str:
    """The graph behind ``root``, one gate a line in the order the forward made them: name,
    shape, gate and inputs. Unnamed intermediates show as ``_1``, ``_2``, ...; a constant as its
    value (one element) or its shape."""
    labels: dict[int, str] = {}
    lines, unnamed = [], itertools.count(1)
    for var in sorted(_reachable([root]), key=lambda v: v.serial):
        if not var.op and not var.name:
            labels[id(var)] = f"{var.data.item():g}" if var.size == 1 else f"const{var.shape}"
            continue
        labels[id(var)] = var.name or f"_{next(unnamed)}"
        made = f"{var.op}({', '.join(labels[id(p)] for p in var.parents)})" if var.op else "input"
        lines.append(f"{labels[id(var)]:<10} {str(var.shape):<10} {made}")
    return "\n".join(lines)


def compare(reference: Mapping[str, Any] | Iterable[Any], mine: Mapping[str, Any], *,
            tol: float = 1e-7) -> GateReport:
    """Compare a learner's gradients with the engine's, intermediate by intermediate.

    Parameters
    ----------
    reference : dict of name -> Var, or Vars with names
        The staged forward, after ``backward(dout)`` on its output.
    mine : dict of name -> array
        The learner's gradient of each name (a subset is fine), computed for the same dout.
    tol : float
        Largest relative error (max abs error over the reference's largest entry) that agrees.

    Returns
    -------
    GateReport
        ``rows`` in backward order, ``first_wrong`` (None when all agree) and its ``hint``.
    """
    named = _named(reference)
    unknown = sorted(set(mine) - set(named))
    if unknown:
        raise ValueError(f"compare: no Var in the reference is named {', '.join(map(repr, unknown))}; "
                         f"the reference has {', '.join(map(repr, named))}")
    for name in mine:
        if named[name].grad is None:
            raise ValueError(f"compare: {name!r} has no gradient; call backward(dout) on the "
                             f"reference's output first")
    order = sorted(mine, key=lambda name: -named[name].serial)   # made last, differentiated first
    largest = max((float(np.max(np.abs(named[n].grad), initial=0.0)) for n in order), default=0.0)
    biggest = max((named[n] for n in order), key=lambda var: var.size, default=None)
    sizes = _sizes(biggest.shape if biggest is not None else ())
    rows = [_row(name, named[name].grad, mine[name], tol, FLOOR * largest, sizes) for name in order]
    report = GateReport(rows, tol=tol)
    wrong = next((row for row in rows if not row.ok), None)
    if wrong is not None:
        report.first_wrong = wrong.name
        report.hint = _where(wrong, _consumers(named[wrong.name], named))
    return report


def _named(reference: Mapping[str, Any] | Iterable[Any]) -> dict[str, Any]:
    if isinstance(reference, Mapping):
        return dict(reference)
    named: dict[str, Any] = {}
    for var in cast(Iterable[Any], reference):
        if not getattr(var, "name", None) or var.name in named:
            raise ValueError(f"compare: every reference Var needs a name of its own, got {var!r}; "
                             f"pass a dict of name -> Var instead")
        named[var.name] = var
    return named


def _row(name: str, reference: np.ndarray, given: Any, tol: float, floor: float,
         sizes: tuple[int, int | None]) -> GateRow:
    got = np.asarray(given, dtype=np.float64)
    if got.shape != reference.shape:
        return GateRow(name, reference.shape, got.shape, float("nan"), float("nan"), False,
                       "shape", _shape_hint(got, reference))
    abs_err = float(np.max(np.abs(got - reference), initial=0.0))
    scale = max(float(np.max(np.abs(reference), initial=0.0)), floor) or 1.0
    row = GateRow(name, reference.shape, got.shape, abs_err, abs_err / scale, abs_err <= tol * scale)
    if not np.isfinite(got).all():
        row.ok, row.kind, row.hint = False, "nan", "your gradient has NaN or infinite entries."
    elif not row.ok:
        kind, hint = diagnose(got, reference, np.ones(got.shape, bool), tol * scale, sizes)
        row.kind, row.hint = kind, _yours(hint)
    return row


def _yours(hint: str) -> str:
    """The checker's words (analytic against numeric) for a learner against the engine."""
    return (hint.replace("the analytic gradient", "your gradient").replace("numeric gradient", "engine's gradient")
            .replace("analytic", "yours").replace("numeric", "engine"))


def _shape_hint(got: np.ndarray, reference: np.ndarray) -> str:
    from .gates import sum_to_shape  # here, not at the top: gates imports this module

    want = reference.shape
    expected = f"expected shape {want}, got {got.shape}"
    if got.size == reference.size and np.allclose(got.reshape(want), reference):
        return (f"{expected} with the right values: a size-1 axis was lost or gained, "
                f"typically a sum or mean without keepdims=True.")
    try:
        stretched = np.broadcast_shapes(got.shape, want) == got.shape
    except ValueError:
        stretched = False
    if stretched:
        right = np.allclose(sum_to_shape(got, want), reference)
        return (f"{expected}: the forward broadcast this value, so its gradient must be summed "
                f"over the broadcast axes (sum_to_shape)" + (", which makes it right." if right else "."))
    return f"{expected}: a product or a reduction over the wrong axes."


def _reachable(roots: Iterable[Any]) -> list[Any]:
    """The roots and every Var they were made from, each once."""
    found: dict[int, Any] = {}
    stack = list(roots)
    while stack:
        var = stack.pop()
        if id(var) not in found:
            found[id(var)] = var
            stack.extend(var.parents)
    return list(found.values())


def _consumers(var: Any, named: dict[str, Any]) -> list[str]:
    """The named Vars that read ``var``, directly or through unnamed gates."""
    names = {id(v): n for n, v in named.items()}
    children: dict[int, list[Any]] = {}
    for node in _reachable(named.values()):
        for parent in node.parents:
            children.setdefault(id(parent), []).append(node)
    found: list[str] = []
    stack, seen = list(children.get(id(var), [])), set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if id(node) in names:
            found.append(names[id(node)])
        else:
            stack.extend(children.get(id(node), []))
    return sorted(found, key=lambda n: named[n].serial)


def _where(row: GateRow, consumers: list[str]) -> str:
    """Where the mistake is: the line that makes d<name> from the gradients that agree."""
    if not consumers:
        return f"d{row.name} is wrong at the start: it is the upstream gradient itself; {row.hint}"
    sources = " and ".join(f"d{c}" for c in consumers)
    adds = (f" ({row.name} feeds {len(consumers)} gates: their gradients add)"
            if len(consumers) > 1 else "")
    agree = "agree" if len(consumers) > 1 else "agrees"
    return (f"d{row.name} is the first wrong gradient while {sources} {agree}, so the mistake is in "
            f"the line that makes d{row.name} from {sources}{adds}: {row.hint}")


def _sizes(shape: tuple) -> tuple[int, int | None]:
    """N and D for the checker's names of a scale factor: the largest Var's first and last axes."""
    if not shape:
        return 1, None
    return shape[0], (shape[-1] if len(shape) > 1 else None)

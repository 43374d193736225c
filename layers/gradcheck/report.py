"""What gradcheck found: the problems, one row per tensor, and how they print."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PROBLEM_KINDS = ("stochastic", "unchecked", "not-repeatable", "modifies-input", "dtype", "shape",
                 "unregistered", "replaced-grads")
ROW_KINDS = ("zero", "sign", "scale", "transpose", "offset", "elements", "mismatch", "tie", "kink",
             "accumulate")


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
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True only with evidence: rows, each with elements checked and passing; no problem."""
        return bool(self.rows) and not self.problems and all(row.ok for row in self.rows)

    @property
    def worst(self) -> float:
        """The largest relative error over all tensors."""
        return max((row.rel_err for row in self.rows), default=0.0)

    def summary(self) -> str:
        """One line: the verdict, then each failing row with its kind and each problem's kind."""
        failing = [f"{row.name} ({'unchecked' if not row.checked else row.kind})"
                   for row in self.rows if not row.ok]
        problems = [problem.kind for problem in self.problems]
        parts = ([f"failing {', '.join(failing)}"] if failing else []) + \
                ([f"problems {', '.join(problems)}"] if problems else [])
        what = "; ".join(parts) if parts else "nothing was checked"
        return f"gradcheck {self.subject}: {'ok' if self.ok else 'FAILED'}" + ("" if self.ok else f": {what}")

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
    lines += [f"warning {warning}" for warning in report.warnings]
    return "\n".join(lines)


"""python -m handprop.train.gradcheck: every built-in layer, loss and model on random float64 inputs.

The checker itself is ``handprop.layers.gradcheck``; the registry of built-in checks is this
package's families. ``--target my_module:make`` (or ``path/to/file.py:make``) checks ``make()``'s
layer or loss instead: ``make`` returns the arguments of one gradcheck call, ``(layer, x)``,
``(layer, (q, k))`` for several inputs, or ``(loss, pred, targets)``, optionally followed by a
dict of gradcheck's options (``{"not_differentiated": [1]}``).

Every check runs and is reported: one that raises is a failed entry naming its exception and
where it was raised, in one line. The exit status is 0 when every check passed, 1 when any
failed (the last line counts them), and 2 for a usage error, its message on stderr: a bad
option, or a target gradcheck cannot take (no such module or factory, a class or a factory
that needs arguments, a module that fails to import, a factory returning something other
than a layer and its float64 inputs). A count as the status would read as a usage error when
exactly two checks fail, and wrap past 255.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from textwrap import indent
from types import ModuleType

from ...layers import validate
from ...layers.gradcheck import (
    GradcheckReport,
    Problem,
    check_arguments,
    format_details,
    format_table,
    gradcheck,
)
from . import builtin_checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handprop.train.gradcheck",
                                     description="Check every built-in layer, or your own, against "
                                                 "finite differences.",
                                     epilog="Exit status: 0 when every check passes, 1 when any fails "
                                            "(the last line counts them), 2 for a usage error (its "
                                            "message on stderr).")
    parser.add_argument("--layer", help="check only the built-in layers whose name starts with this")
    parser.add_argument("--target", action="append", metavar="MODULE:FACTORY",
                        help="check what FACTORY() returns, (layer, x), (layer, (q, k)) or (loss, pred, "
                             "targets), from your module (my_pkg.my_layers:make) or file "
                             "(path/to/file.py:make) instead of the built-ins; repeatable")
    parser.add_argument("--seed", type=seed, default=0, help="seeds the inputs, the layers and the "
                        "random directions (default 0)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true", help="random directions, not every element")
    mode.add_argument("--full", action="store_true", help="every element, even of a check estimated "
                      "over 10 minutes (which otherwise takes random directions and says so)")
    args = parser.parse_args(argv)
    if args.target and args.layer:
        parser.error("--layer selects built-in layers and --target your own: give one or the other")
    checks = ([(spec, load_target(parser, spec)) for spec in args.target] if args.target
              else select_builtins(parser, args.layer, args.seed))

    reports = [run_one(parser, label, make, args) for label, make in checks]
    print(format_table(reports, named=True))
    for report in reports:
        if not report.ok:
            print(f"\n{report.subject}:\n" + indent(format_details(report), "  "))
    failed = [r.subject for r in reports if not r.ok]
    worst = max(r.worst for r in reports)
    print(f"\n{len(reports) - len(failed)} of {len(reports)} checks passed; "
          f"worst relative error {worst:.1e} (tol {reports[0].tol:.0e})"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return FAILED if failed else 0


# The exit status when any check failed; 2 is argparse's usage error, 0 a pass.
FAILED = 1


def run_one(parser: argparse.ArgumentParser, label: str, make: Callable[[], tuple],
            args: argparse.Namespace) -> GradcheckReport:
    """One check's report. What the factory returns is checked first: for ``--target`` a call
    gradcheck refuses (not a layer, another dtype, a NaN, an unknown option) is a usage error
    saying so; a factory or a check that raises is a failed entry naming its exception and
    where it was raised, so the other checks still run."""
    try:
        made = make()
    except Exception as err:  # the user's factory is broken: a finding, not a crash
        return raised(label, err, f"{label.rpartition(':')[2] or 'make'}() raised ")
    options = made[-1] if isinstance(made[-1], dict) else {}
    arguments = made[:-1] if options else made
    mode = True if args.fast else False if args.full else None  # None: gradcheck chooses
    options = {"seed": args.seed, "fast": mode, **options}
    try:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise TypeError(f"gradcheck has no option {', '.join(map(repr, unknown))}; its options "
                            f"are {', '.join(OPTIONS)}")
        check_arguments(*arguments, **options)
    except (TypeError, ValueError) as err:
        if args.target:
            parser.error(f"--target {label}: {err}")
        return raised(label, err)
    try:
        report = gradcheck(*arguments, **options)
    except Exception as err:  # the check's own failure is the finding: report it, go on
        return raised(label, err)
    report.subject = label
    return report


# gradcheck's keyword options, which a factory's trailing dict may set
OPTIONS = tuple(name for name, p in inspect.signature(gradcheck).parameters.items()
                if p.kind is p.KEYWORD_ONLY)


def raised(label: str, err: Exception, what: str = "") -> GradcheckReport:
    """A failed entry for a check that raised instead of returning a report: one line, the
    exception and the innermost place it was raised (file, line, function)."""
    report = GradcheckReport(label)
    report.problems.append(Problem("raised", f"{what}{type(err).__name__}: {err}{raised_at(err)}"))
    return report


def raised_at(err: BaseException) -> str:
    """" (at file.py:12, in forward)" for the innermost frame of err's traceback, or ""."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f" (at {Path(frame.filename).name}:{frame.lineno}, in {frame.name})"


def seed(text: str) -> int:
    """An argparse type: a seed, a whole number >= 0 (numpy refuses negative seeds)."""
    try:
        return validate.integer("--seed", "seed", int(text), low=0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text}") from None


def select_builtins(parser: argparse.ArgumentParser, layer: str | None, seed: int) -> list:
    """The built-in checks whose name starts with ``layer`` (all of them for None)."""
    checks = builtin_checks(seed)
    if layer:
        checks = [(n, make) for n, make in checks if n.lower().startswith(layer.lower())]
        if not checks:
            names = sorted({n.split()[0] for n, _ in builtin_checks(seed)})
            parser.error(f"no built-in layer named {layer!r}; choose from {', '.join(names)}")
    return checks


EXPECTED = "expected --target MODULE:FACTORY (my_pkg.my_layers:make) or path/to/file.py:FACTORY"
RETURNS = "a function FACTORY() that returns (layer, x) or (loss, pred, targets)"


def load_target(parser: argparse.ArgumentParser, spec: str) -> Callable[[], tuple]:
    """``make()`` for ``--target``: imports the module or file, finds the factory, and checks
    what it returns. Every mistake in the spec is a usage error (exit 2) saying what was expected."""
    where, _, name = spec.rpartition(":")
    if not where or not name.isidentifier():
        parser.error(f"{EXPECTED}, got {spec!r}")
    is_file = where.endswith(".py") or "/" in where or "\\" in where
    try:
        module = import_file(where) if is_file else importlib.import_module(where)
    except FileNotFoundError:
        parser.error(f"--target {spec}: no file {where!r}; {EXPECTED}")
    except ModuleNotFoundError as err:
        if err.name is None or not where.startswith(err.name):
            parser.error(f"--target {spec}: importing {where} raised {broken_import(err)}")
        parser.error(f"--target {spec}: no module named {err.name!r} (run from the folder that holds "
                     f"it, or give a file path); {EXPECTED}")
    except Exception as err:  # the user's module is broken: one line says where, not a traceback
        parser.error(f"--target {spec}: importing {where} raised {broken_import(err)}")
    factory = getattr(module, name, None)
    if not callable(factory):
        got = "nothing by that name" if factory is None else f"a {type(factory).__name__}"
        parser.error(f"--target {spec}: expected {RETURNS} in {where}, found {got}")
    if isinstance(factory, type):
        parser.error(f"--target {spec}: {name} is a class, not a factory; expected {RETURNS}, e.g. "
                     f"def make(): return {name}(...), x")
    needed = required_parameters(factory)
    if needed:
        parser.error(f"--target {spec}: {name}() needs arguments ({', '.join(needed)}); expected "
                     f"{RETURNS}, called with none")

    def make() -> tuple:
        made = factory()
        if not isinstance(made, (tuple, list)) or len(made) not in (2, 3, 4):
            got = f"a {len(made)}-tuple" if isinstance(made, (tuple, list)) else f"a {type(made).__name__}"
            parser.error(f"--target {spec}: expected {RETURNS}, but {name}() returned {got}")
        return tuple(made)
    return make


def broken_import(err: Exception) -> str:
    """An import's failure in one line: a SyntaxError names its file and line itself."""
    return f"{type(err).__name__}: {err}" + ("" if isinstance(err, SyntaxError) else raised_at(err))


def required_parameters(factory: Callable) -> list[str]:
    """The parameters a call with no arguments would leave without a value."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: calling it will tell
        return []
    return [p.name for p in parameters if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def import_file(path: str) -> ModuleType:
    """Import a Python file by its path, its folder first on sys.path while it runs (so it can
    import the files beside it)."""
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(path)
    name = file.stem if file.stem not in sys.modules else f"gradcheck_target_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.parent))
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(file.parent))
    return module


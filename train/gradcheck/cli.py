"""python -m handprop.train.gradcheck: every built-in layer, loss and model on random float64 inputs.

The checker itself is ``handprop.layers.gradcheck``; the registry of built-in checks is this
package's families. ``--target my_module:make`` (or ``path/to/file.py:make``) checks ``make()``'s
layer or loss instead: ``make`` returns the arguments of one gradcheck call.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from textwrap import indent
from types import ModuleType

from ...layers import validate
from ...layers.gradcheck import format_details, format_table, gradcheck
from . import builtin_checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handprop.train.gradcheck",
                                     description="Check every built-in layer, or your own, against "
                                                 "finite differences.")
    parser.add_argument("--layer", help="check only the built-in layers whose name starts with this")
    parser.add_argument("--target", action="append", metavar="MODULE:FACTORY",
                        help="check what FACTORY() returns, (layer, x) or (loss, pred, targets), from "
                             "your module (my_pkg.my_layers:make) or file (path/to/file.py:make) "
                             "instead of the built-ins; repeatable")
    parser.add_argument("--seed", type=seed, default=0, help="seeds the inputs, the layers and the "
                        "random directions (default 0)")
    parser.add_argument("--fast", action="store_true", help="random directions, not every element")
    args = parser.parse_args(argv)
    if args.target and args.layer:
        parser.error("--layer selects built-in layers and --target your own: give one or the other")
    checks = ([(spec, load_target(parser, spec)) for spec in args.target] if args.target
              else select_builtins(parser, args.layer, args.seed))

    reports = []
    for label, make in checks:
        made = make()
        try:
            report = gradcheck(*made, seed=args.seed, fast=args.fast)
        except TypeError as err:  # a float32 target: the message says how to build it in float64
            if not args.target:
                raise
            parser.error(f"--target {label}: {err}")
        report.subject = label
        reports.append(report)
    print(format_table(reports, named=True))
    for report in reports:
        if not report.ok:
            print(f"\n{report.subject}:\n" + indent(format_details(report), "  "))
    failed = [r.subject for r in reports if not r.ok]
    worst = max(r.worst for r in reports)
    print(f"\n{len(reports) - len(failed)} of {len(reports)} checks passed; "
          f"worst relative error {worst:.1e} (tol {reports[0].tol:.0e})"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


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
            raise  # the user's module imports something missing: its traceback says what
        parser.error(f"--target {spec}: no module named {err.name!r} (run from the folder that holds "
                     f"it, or give a file path); {EXPECTED}")
    factory = getattr(module, name, None)
    if not callable(factory):
        got = "nothing by that name" if factory is None else f"a {type(factory).__name__}"
        parser.error(f"--target {spec}: expected {RETURNS} in {where}, found {got}")

    def make() -> tuple:
        made = factory()
        if not isinstance(made, (tuple, list)) or len(made) not in (2, 3):
            got = f"a {len(made)}-tuple" if isinstance(made, (tuple, list)) else f"a {type(made).__name__}"
            parser.error(f"--target {spec}: expected {RETURNS}, but {name}() returned {got}")
        return tuple(made)
    return make


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


"""python -m handprop.train.gradcheck: every built-in layer, loss and model on random float64 inputs.

The checker itself is ``handprop.layers.gradcheck``; this module is its registry of built-in
checks and the command line around it. ``--target my_module:make`` (or ``path/to/file.py:make``)
checks ``make()``'s layer or loss instead: ``make`` returns the arguments of one gradcheck call.
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

import numpy as np

from ..layers import (
    GELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Layer,
    LayerNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    mlp,
)
from ..layers.gradcheck import format_details, format_table, gradcheck
from ..losses import BCEWithLogitsLoss, HuberLoss, L1Loss, MSELoss, SoftmaxCrossEntropy


def builtin_checks(seed: int = 0):
    """(name, make) pairs; ``make()`` returns the arguments of one gradcheck call."""
    f64 = np.float64

    def data(n, d, s=0):
        return np.random.default_rng(seed + s).standard_normal((n, d))

    def relu_input():
        x = data(4, 5, 3)
        x[0, :2] = 0.0  # exactly at the kink: skipped, not failed
        return (ReLU(), x)

    def batchnorm(n, d, s, training):
        bn = BatchNorm1d(d, dtype=f64)
        rng = np.random.default_rng(seed + s)
        bn.params["gamma"][...] = rng.uniform(0.5, 2.0, d)
        bn.params["beta"][...] = rng.standard_normal(d)
        for _ in range(3):  # running statistics away from their initial 0 and 1
            bn.forward(2 + 3 * rng.standard_normal((8, d)))
        return (bn.train(training), 2 + 3 * rng.standard_normal((n, d)))

    def values(n, d, s):
        return data(n, d, s), data(n, d, s + 100)

    def binary(n, c, s, soft=False):
        rng = np.random.default_rng(seed + s)
        targets = rng.uniform(size=(n, c)) if soft else rng.integers(0, 2, (n, c)).astype(f64)
        return 3 * rng.standard_normal((n, c)), targets

    def some_ties(n, d, s):  # a few predictions exactly at their targets (the kink), most not
        pred, target = values(n, d, s)
        target[0] = pred[0]
        return pred, target

    def per_element(loss, pred, target):
        return (PerElement(loss, target), pred)

    def classes(n, c, s):
        rng = np.random.default_rng(seed + s)
        return 3 * rng.standard_normal((n, c)), rng.integers(0, c, n)

    return [
        ("Linear", lambda: (Linear(5, 3, rng=seed, dtype=f64), data(4, 5))),
        ("Linear batch 1", lambda: (Linear(6, 2, rng=seed, dtype=f64), data(1, 6, 1))),
        ("Linear bias=False", lambda: (Linear(4, 3, bias=False, rng=seed, dtype=f64), data(3, 4, 2))),
        ("ReLU", relu_input),
        ("ReLU batch 1", lambda: (ReLU(), data(1, 7, 4))),
        ("Tanh", lambda: (Tanh(), data(4, 5, 5))),
        ("Tanh batch 1", lambda: (Tanh(), data(1, 7, 6))),
        ("BatchNorm1d train", lambda: batchnorm(6, 4, 7, True)),
        ("BatchNorm1d train batch 2", lambda: batchnorm(2, 3, 8, True)),
        ("BatchNorm1d eval", lambda: batchnorm(5, 4, 9, False)),
        ("BatchNorm1d eval batch 1", lambda: batchnorm(1, 3, 10, False)),
        ("SoftmaxCrossEntropy mean", lambda: (SoftmaxCrossEntropy(), *classes(6, 4, 11))),
        ("SoftmaxCrossEntropy sum", lambda: (SoftmaxCrossEntropy(reduction="sum"), *classes(5, 3, 12))),
        ("SoftmaxCrossEntropy smoothing", lambda: (SoftmaxCrossEntropy(label_smoothing=0.1),
                                                   *classes(6, 4, 13))),
        ("SoftmaxCrossEntropy batch 1", lambda: (SoftmaxCrossEntropy(), *classes(1, 5, 14))),
        ("Sequential train", lambda: (mlp(4, [6, 5], 3, seed=seed, dtype=f64).train(), data(5, 4, 15))),
        ("Sequential eval", lambda: (mlp(4, [6, 5], 3, seed=seed, dtype=f64).eval(), data(3, 4, 16))),
        # elementwise losses: pred and target of one shape; "none" as a layer of pred (PerElement)
        ("MSELoss mean", lambda: (MSELoss(), *values(5, 3, 40))),
        ("MSELoss sum", lambda: (MSELoss(reduction="sum"), *values(5, 3, 41))),
        ("MSELoss none", lambda: per_element(MSELoss(reduction="none"), *values(4, 3, 42))),
        ("L1Loss mean", lambda: (L1Loss(), *values(5, 3, 43))),
        ("L1Loss sum", lambda: (L1Loss(reduction="sum"), *values(5, 3, 44))),
        ("L1Loss none", lambda: per_element(L1Loss(reduction="none"), *values(4, 3, 45))),
        ("L1Loss some pred == target", lambda: (L1Loss(), *some_ties(4, 2, 46))),
        ("HuberLoss mean", lambda: (HuberLoss(), *values(5, 3, 47))),
        ("HuberLoss delta=0.3", lambda: (HuberLoss(delta=0.3), *values(5, 3, 48))),
        ("HuberLoss sum delta=2", lambda: (HuberLoss(reduction="sum", delta=2.0), *values(5, 3, 49))),
        ("HuberLoss none", lambda: per_element(HuberLoss(reduction="none", delta=0.5), *values(4, 3, 50))),
        ("BCEWithLogitsLoss mean", lambda: (BCEWithLogitsLoss(), *binary(6, 2, 51))),
        ("BCEWithLogitsLoss sum", lambda: (BCEWithLogitsLoss(reduction="sum"), *binary(6, 2, 52))),
        ("BCEWithLogitsLoss pos_weight", lambda: (BCEWithLogitsLoss(pos_weight=[3.0, 0.5]),
                                                  *binary(6, 2, 53))),
        ("BCEWithLogitsLoss soft targets", lambda: (BCEWithLogitsLoss(pos_weight=2.0),
                                                    *binary(5, 1, 54, soft=True))),
        ("BCEWithLogitsLoss none", lambda: per_element(
            BCEWithLogitsLoss(reduction="none", pos_weight=[2.0, 1.0, 0.5]), *binary(4, 3, 55))),
        ("BCEWithLogitsLoss batch 1", lambda: (BCEWithLogitsLoss(), *binary(1, 1, 56))),
        *new_layer_checks(seed),
        *convolutional_checks(seed),
    ]


def convolutional_checks(seed: int = 0):
    """(name, make) pairs for Conv2d, the pools, BatchNorm2d, Flatten and a small CNN."""
    f64 = np.float64

    def images(shape, s):
        return np.random.default_rng(seed + s).standard_normal(shape)

    def distinct(shape, s):  # values 0.1 apart: no window's max is tied, or changed by a step
        return np.random.default_rng(seed + s).permutation(np.prod(shape)).reshape(shape) / 10

    def conv(c, o, kernel, s, **options):
        return Conv2d(c, o, kernel, **options, rng=seed + s, dtype=f64)

    def batchnorm2d(shape, s, training):
        bn = BatchNorm2d(shape[1], dtype=f64)
        rng = np.random.default_rng(seed + s)
        bn.params["gamma"][...] = rng.uniform(0.5, 2.0, shape[1])
        bn.params["beta"][...] = rng.standard_normal(shape[1])
        bn.forward(2 + 3 * rng.standard_normal((4, *shape[1:])))  # running statistics move
        return (bn.train(training), 2 + 3 * rng.standard_normal(shape))

    def cnn():
        return Sequential(conv(1, 2, 3, 37, padding=1), BatchNorm2d(2, dtype=f64), ReLU(),
                          MaxPool2d(2), conv(2, 3, (2, 3), 38, stride=(1, 2)), Flatten(),
                          Linear(3, 4, rng=seed + 39, dtype=f64))

    return [
        ("Conv2d", lambda: (conv(2, 3, 3, 20), images((2, 2, 5, 4), 21))),
        ("Conv2d stride 2 padding 1", lambda: (conv(2, 2, (3, 2), 22, stride=2, padding=1),
                                               images((2, 2, 6, 5), 23))),
        ("Conv2d dilation 2", lambda: (conv(1, 2, (2, 3), 24, stride=(2, 1), padding=(0, 1),
                                            dilation=2), images((2, 1, 7, 5), 25))),
        ("Conv2d batch 1 odd sizes bias=False", lambda: (conv(3, 2, 3, 26, bias=False),
                                                         images((1, 3, 5, 3), 27))),
        ("MaxPool2d", lambda: (MaxPool2d(2), distinct((2, 2, 5, 4), 28))),
        ("MaxPool2d stride 2 padding 1", lambda: (MaxPool2d((3, 2), stride=2, padding=1),
                                                  distinct((2, 2, 5, 5), 29))),
        ("MaxPool2d batch 1 overlapping", lambda: (MaxPool2d(3, stride=1), distinct((1, 2, 5, 4), 30))),
        ("AvgPool2d", lambda: (AvgPool2d(2), images((2, 2, 5, 4), 31))),
        ("AvgPool2d stride 1 padding 1", lambda: (AvgPool2d((3, 2), stride=1, padding=1),
                                                  images((2, 2, 5, 3), 32))),
        ("BatchNorm2d train", lambda: batchnorm2d((2, 3, 3, 2), 33, True)),
        ("BatchNorm2d train batch 1", lambda: batchnorm2d((1, 2, 3, 1), 34, True)),
        ("BatchNorm2d eval batch 1", lambda: batchnorm2d((1, 2, 3, 3), 35, False)),
        ("Flatten", lambda: (Flatten(), images((2, 3, 2, 3), 36))),
        ("Sequential CNN train", lambda: (cnn().train(), images((2, 1, 4, 6), 40))),
        ("Sequential CNN eval batch 1", lambda: (cnn().eval(), images((1, 1, 4, 6), 41))),
    ]


def new_layer_checks(seed: int):
    """Sigmoid, LeakyReLU, GELU, Softmax, Dropout, LayerNorm, Residual (issue 12): train and
    eval mode where they differ, batch 1, inputs away from kinks."""
    f64 = np.float64

    def data(*shape, s=0, scale=1.0):
        return scale * np.random.default_rng(seed + 100 + s).standard_normal(shape)

    def away_from_zero(x):  # LeakyReLU's kink: no element within 0.1 of it
        return x + 0.1 * np.where(x >= 0, 1, -1)

    def layernorm(shape, s, affine=True, bias=True):
        ln = LayerNorm(shape[-1], elementwise_affine=affine, bias=bias, dtype=f64)
        rng = np.random.default_rng(seed + 100 + s)
        for p in ln.params.values():
            p[...] = rng.uniform(0.5, 2.0, p.shape) * rng.choice([-1, 1], p.shape)
        return (ln, 2 + 3 * rng.standard_normal(shape))

    def residual():
        return Residual(Sequential(Linear(4, 4, rng=seed, dtype=f64), BatchNorm1d(4, dtype=f64), Tanh()))

    def small_mlp():
        return mlp(4, [6, 5], 3, activation="gelu", norm="layer", dropout=0.5, seed=seed, dtype=f64)

    return [
        ("Sigmoid", lambda: (Sigmoid(), data(4, 5, s=1, scale=2))),
        ("Sigmoid batch 1", lambda: (Sigmoid(), data(1, 6, s=2, scale=2))),
        ("LeakyReLU", lambda: (LeakyReLU(), away_from_zero(data(4, 5, s=3)))),
        ("LeakyReLU negative_slope=-0.2 batch 1", lambda: (LeakyReLU(-0.2), away_from_zero(data(1, 6, s=4)))),
        ("GELU", lambda: (GELU(), data(4, 5, s=5, scale=2))),
        ("GELU batch 1", lambda: (GELU(), data(1, 6, s=6, scale=2))),
        ("GELU tanh", lambda: (GELU(approximate="tanh"), data(4, 5, s=7, scale=2))),
        ("GELU tanh batch 1", lambda: (GELU(approximate="tanh"), data(1, 6, s=8, scale=2))),
        ("Softmax", lambda: (Softmax(), data(4, 5, s=9, scale=3))),
        ("Softmax batch 1", lambda: (Softmax(), data(1, 6, s=10, scale=3))),
        ("Softmax (N, T, C)", lambda: (Softmax(), data(2, 3, 4, s=11, scale=3))),
        # Dropout in training mode draws a new mask at every evaluation: gradcheck replays the
        # layer's generator state before each one, so the same mask is differenced
        ("Dropout train", lambda: (Dropout(0.5, rng=seed).train(), data(4, 5, s=23))),
        ("Sequential gelu layernorm dropout train", lambda: (small_mlp().train(), data(3, 4, s=24))),
        ("Dropout eval", lambda: (Dropout(0.5, rng=seed).eval(), data(4, 5, s=12))),
        ("Dropout eval batch 1", lambda: (Dropout(0.5, rng=seed).eval(), data(1, 6, s=13))),
        # LayerNorm is the same in both modes: no running statistics
        ("LayerNorm", lambda: layernorm((5, 4), 14)),
        ("LayerNorm batch 1", lambda: layernorm((1, 6), 15)),
        ("LayerNorm bias=False (N, T, D)", lambda: layernorm((2, 3, 4), 16, bias=False)),
        ("LayerNorm elementwise_affine=False", lambda: layernorm((4, 5), 17, affine=False)),
        ("Residual train", lambda: (residual().train(), data(5, 4, s=18))),
        ("Residual eval", lambda: (residual().eval(), data(3, 4, s=19))),
        ("Residual eval batch 1", lambda: (residual().eval(), data(1, 4, s=20))),
        ("Sequential gelu layernorm dropout eval", lambda: (small_mlp().eval(), data(3, 4, s=21))),
        ("Sequential gelu layernorm dropout eval batch 1", lambda: (small_mlp().eval(), data(1, 4, s=22))),
    ]


class PerElement(Layer):
    """A loss with reduction="none" as a layer of its prediction, for ``gradcheck(layer, x)``:
    its per-element losses are the output, checked against a random per-element upstream
    gradient; the target is held fixed."""

    def __init__(self, loss, target: np.ndarray) -> None:
        super().__init__()
        self.loss = loss
        self.buffers["target"] = target  # held fixed: state, not a parameter

    def forward(self, pred: np.ndarray) -> np.ndarray:
        return self.loss.forward(pred, self.buffers["target"])

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.loss.backward(dout)

    def __repr__(self) -> str:
        return f"{self.loss!r} per element"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handprop.train.gradcheck",
                                     description="Check every built-in layer, or your own, against "
                                                 "finite differences.")
    parser.add_argument("--layer", help="check only the built-in layers whose name starts with this")
    parser.add_argument("--target", action="append", metavar="MODULE:FACTORY",
                        help="check what FACTORY() returns, (layer, x) or (loss, pred, targets), from "
                             "your module (my_pkg.my_layers:make) or file (path/to/file.py:make) "
                             "instead of the built-ins; repeatable")
    parser.add_argument("--seed", type=int, default=0)
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


if __name__ == "__main__":
    sys.exit(main())

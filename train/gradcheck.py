"""python -m handprop.train.gradcheck: every built-in layer, loss and model on random float64 inputs.

The checker itself is ``handprop.layers.gradcheck``; this module is its registry of built-in
checks and the command line around it.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from ..layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    Tanh,
)
from ..layers.gradcheck import format_table, gradcheck
from ..losses import SoftmaxCrossEntropy


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

    def mlp():
        return Sequential(Linear(4, 6, rng=seed, dtype=f64), BatchNorm1d(6, dtype=f64), ReLU(),
                          Linear(6, 5, rng=seed + 1, dtype=f64), Tanh(),
                          Linear(5, 3, rng=seed + 2, dtype=f64))

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
        ("Sequential train", lambda: (mlp().train(), data(5, 4, 15))),
        ("Sequential eval", lambda: (mlp().eval(), data(3, 4, 16))),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handprop.train.gradcheck",
                                     description="Check every built-in layer against finite differences.")
    parser.add_argument("--layer", help="check only the layers whose name starts with this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="random directions, not every element")
    args = parser.parse_args(argv)

    checks = builtin_checks(args.seed)
    if args.layer:
        checks = [(n, make) for n, make in checks if n.lower().startswith(args.layer.lower())]
        if not checks:
            names = sorted({n.split()[0] for n, _ in builtin_checks(args.seed)})
            parser.error(f"no built-in layer named {args.layer!r}; choose from {', '.join(names)}")
    reports = []
    for label, make in checks:
        report = gradcheck(*make(), seed=args.seed, fast=args.fast)
        report.subject = label
        reports.append(report)
    print(format_table(reports))
    failed = [r.subject for r in reports if not r.ok]
    worst = max(r.worst for r in reports)
    print(f"\n{len(reports) - len(failed)} of {len(reports)} checks passed; "
          f"worst relative error {worst:.1e} (tol {reports[0].tol:.0e})"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

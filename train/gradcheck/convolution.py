"""The convolution family's checks: Conv2d (stride, padding, dilation), MaxPool2d and AvgPool2d,
BatchNorm2d, Flatten and a small CNN."""
from __future__ import annotations

import numpy as np

from ...layers import AvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from .common import Checks, normal

f64 = np.float64


def convolution_checks(seed: int = 0) -> Checks:
    """(name, make) pairs for Conv2d, the pools, BatchNorm2d, Flatten and a small CNN."""
    def images(shape, s):
        return normal(seed + s, shape)

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

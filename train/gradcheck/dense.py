"""The dense family's checks: Linear, the activations, Dropout, the normalizations (BatchNorm1d,
LayerNorm), Residual and the MLP, each in training and evaluation mode where they differ, at
batch 1, with inputs away from kinks."""
from __future__ import annotations

import numpy as np

from ...layers import (
    GELU,
    BatchNorm1d,
    Dropout,
    LayerNorm,
    LeakyReLU,
    Linear,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    mlp,
)
from .common import Checks, normal

f64 = np.float64


def dense_checks(seed: int = 0) -> Checks:
    """(name, make) pairs for every dense layer, normalization and the MLP."""
    return [*linear_and_activation_checks(seed), *normalization_checks(seed),
            *dropout_residual_mlp_checks(seed)]


def linear_and_activation_checks(seed: int = 0) -> Checks:
    """Linear (with and without bias) and each activation."""
    def data(n, d, s=0):
        return normal(seed + s, (n, d))

    def later(*shape, s=0, scale=1.0):  # a second stream of draws, far from the first one's seeds
        return normal(seed + 100 + s, shape, scale)

    def relu_input():
        x = data(4, 5, 3)
        x[0, :2] = 0.0  # exactly at the kink: skipped, not failed
        return (ReLU(), x)

    def away_from_zero(x):  # LeakyReLU's kink: no element within 0.1 of it
        return x + 0.1 * np.where(x >= 0, 1, -1)

    return [
        ("Linear", lambda: (Linear(5, 3, rng=seed, dtype=f64), data(4, 5))),
        ("Linear batch 1", lambda: (Linear(6, 2, rng=seed, dtype=f64), data(1, 6, 1))),
        ("Linear bias=False", lambda: (Linear(4, 3, bias=False, rng=seed, dtype=f64), data(3, 4, 2))),
        ("ReLU", relu_input),
        ("ReLU batch 1", lambda: (ReLU(), data(1, 7, 4))),
        ("Tanh", lambda: (Tanh(), data(4, 5, 5))),
        ("Tanh batch 1", lambda: (Tanh(), data(1, 7, 6))),
        ("Sigmoid", lambda: (Sigmoid(), later(4, 5, s=1, scale=2))),
        ("Sigmoid batch 1", lambda: (Sigmoid(), later(1, 6, s=2, scale=2))),
        ("LeakyReLU", lambda: (LeakyReLU(), away_from_zero(later(4, 5, s=3)))),
        ("LeakyReLU negative_slope=-0.2 batch 1", lambda: (LeakyReLU(-0.2), away_from_zero(later(1, 6, s=4)))),
        ("GELU", lambda: (GELU(), later(4, 5, s=5, scale=2))),
        ("GELU batch 1", lambda: (GELU(), later(1, 6, s=6, scale=2))),
        ("GELU tanh", lambda: (GELU(approximate="tanh"), later(4, 5, s=7, scale=2))),
        ("GELU tanh batch 1", lambda: (GELU(approximate="tanh"), later(1, 6, s=8, scale=2))),
        ("Softmax", lambda: (Softmax(), later(4, 5, s=9, scale=3))),
        ("Softmax batch 1", lambda: (Softmax(), later(1, 6, s=10, scale=3))),
        ("Softmax (N, T, C)", lambda: (Softmax(), later(2, 3, 4, s=11, scale=3))),
    ]


def normalization_checks(seed: int = 0) -> Checks:
    """BatchNorm1d (its running statistics moved away from 0 and 1) and LayerNorm (the same in
    both modes: no running statistics)."""
    def batchnorm(n, d, s, training):
        bn = BatchNorm1d(d, dtype=f64)
        rng = np.random.default_rng(seed + s)
        bn.params["gamma"][...] = rng.uniform(0.5, 2.0, d)
        bn.params["beta"][...] = rng.standard_normal(d)
        for _ in range(3):  # running statistics away from their initial 0 and 1
            bn.forward(2 + 3 * rng.standard_normal((8, d)))
        return (bn.train(training), 2 + 3 * rng.standard_normal((n, d)))

    def layernorm(shape, s, affine=True, bias=True):
        ln = LayerNorm(shape[-1], elementwise_affine=affine, bias=bias, dtype=f64)
        rng = np.random.default_rng(seed + 100 + s)
        for p in ln.params.values():
            p[...] = rng.uniform(0.5, 2.0, p.shape) * rng.choice([-1, 1], p.shape)
        return (ln, 2 + 3 * rng.standard_normal(shape))

    return [
        ("BatchNorm1d train", lambda: batchnorm(6, 4, 7, True)),
        ("BatchNorm1d train batch 2", lambda: batchnorm(2, 3, 8, True)),
        ("BatchNorm1d eval", lambda: batchnorm(5, 4, 9, False)),
        ("BatchNorm1d eval batch 1", lambda: batchnorm(1, 3, 10, False)),
        ("LayerNorm", lambda: layernorm((5, 4), 14)),
        ("LayerNorm batch 1", lambda: layernorm((1, 6), 15)),
        ("LayerNorm bias=False (N, T, D)", lambda: layernorm((2, 3, 4), 16, bias=False)),
        ("LayerNorm elementwise_affine=False", lambda: layernorm((4, 5), 17, affine=False)),
    ]


def dropout_residual_mlp_checks(seed: int = 0) -> Checks:
    """Dropout, Residual and MLPs (Sequential) in both modes."""
    def data(n, d, s=0):
        return normal(seed + s, (n, d))

    def later(*shape, s=0):
        return normal(seed + 100 + s, shape)

    def residual():
        return Residual(Sequential(Linear(4, 4, rng=seed, dtype=f64), BatchNorm1d(4, dtype=f64), Tanh()))

    def small_mlp():
        return mlp(4, [6, 5], 3, activation="gelu", norm="layer", dropout=0.5, seed=seed, dtype=f64)

    return [
        # Dropout in training mode draws a new mask at every evaluation: gradcheck replays the
        # layer's generator state before each one, so the same mask is differenced
        ("Dropout train", lambda: (Dropout(0.5, rng=seed).train(), later(4, 5, s=23))),
        ("Dropout eval", lambda: (Dropout(0.5, rng=seed).eval(), later(4, 5, s=12))),
        ("Dropout eval batch 1", lambda: (Dropout(0.5, rng=seed).eval(), later(1, 6, s=13))),
        ("Residual train", lambda: (residual().train(), later(5, 4, s=18))),
        ("Residual eval", lambda: (residual().eval(), later(3, 4, s=19))),
        ("Residual eval batch 1", lambda: (residual().eval(), later(1, 4, s=20))),
        ("Sequential train", lambda: (mlp(4, [6, 5], 3, seed=seed, dtype=f64).train(), data(5, 4, 15))),
        ("Sequential eval", lambda: (mlp(4, [6, 5], 3, seed=seed, dtype=f64).eval(), data(3, 4, 16))),
        ("Sequential gelu layernorm dropout train", lambda: (small_mlp().train(), later(3, 4, s=24))),
        ("Sequential gelu layernorm dropout eval", lambda: (small_mlp().eval(), later(3, 4, s=21))),
        ("Sequential gelu layernorm dropout eval batch 1", lambda: (small_mlp().eval(), later(1, 4, s=22))),
    ]

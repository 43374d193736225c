"""docs/gradcheck.md, "Reading a failed gradcheck": every report it quotes is what gradcheck prints.

Each case is the section's buggy line in a small layer; the lines gradcheck prints about the
mistake (the failing row, its hint and worst element, or the problem) must appear in the section
word for word, and the worked Linear example prints what the section shows.
"""
import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

from handprop.layers import Layer, Linear, ReLU, Tanh
from handprop.layers.gradcheck import PROBLEM_KINDS, ROW_KINDS, format_details, gradcheck

ROOT = Path(__file__).resolve().parents[1]
F64 = np.float64


def section():
    text = (ROOT / "docs" / "gradcheck.md").read_text()
    return text[text.index("## Reading a failed gradcheck"):]


def batch(n=4, d=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


class NoDW(Linear):
    def backward(self, dout):
        batch_b = dout.sum(axis=0)
        self.grads["b"][...] = batch_b
        return dout @ self.params["W"].T  # grads["W"] is never written


class TanhSign(Tanh):
    def backward(self, dout):
        return dout * (self.cache ** 2 - 1)


class MeanBias(Linear):
    def backward(self, dout):
        np.matmul(self.cache.T, dout, out=self.grads["W"])
        self.grads["b"][...] = dout.mean(axis=0)
        return dout @ self.params["W"].T


class TransposedW(Linear):
    def backward(self, dout):
        self.grads["W"][...] = dout.T @ self.cache
        self.grads["b"][...] = dout.sum(axis=0)
        return dout @ self.params["W"].T


class Centre(Layer):
    def forward(self, x):
        return x - x.mean(axis=0)

    def backward(self, dout):
        return dout.copy()


class Softplus(Layer):
    """out = log(1 + exp(x)), and out = x above 20 where exp would lose the 1."""

    def forward(self, x):
        self.cache = x
        return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))

    def backward(self, dout):
        x = self.cache
        sigmoid = 1 / (1 + np.exp(-x))
        return dout * np.where(x > 20, 0.0, sigmoid)


class TanhNoSquare(Tanh):
    def backward(self, dout):
        return dout * (1 - self.cache)


class GlobalDropout(Layer):
    def forward(self, x):
        self.cache = (np.random.random(x.shape) >= 0.5) * 2.0
        return x * self.cache

    def backward(self, dout):
        return dout * self.cache


class AccumulatingLinear(Linear):
    def backward(self, dout):
        self.grads["W"] += self.cache.T @ dout
        self.grads["b"][...] = dout.sum(axis=0)
        return dout @ self.params["W"].T


class ReLUInPlace(ReLU):
    def backward(self, dout):
        dout *= self.cache > 0
        return dout


class TanhFloat32(Tanh):
    def backward(self, dout):
        return (dout * (1 - self.cache ** 2)).astype(np.float32)


class BiasNotSummed(Linear):
    def backward(self, dout):
        np.matmul(self.cache.T, dout, out=self.grads["W"])
        self.grads["b"] = dout
        return dout @ self.params["W"].T


class Cs231nLinear(Layer):
    def __init__(self):
        super().__init__()
        self.W = np.random.default_rng(0).uniform(-1, 1, (3, 2))

    def forward(self, x):
        self.cache = x
        return x @ self.W

    def backward(self, dout):
        self.dW = self.cache.T @ dout
        return dout @ self.W.T


class MaxEveryTie(Layer):
    def forward(self, x):
        self.cache = x
        return x.max(axis=1)

    def backward(self, dout):
        x = self.cache
        return dout[:, None] * (x == x.max(axis=1, keepdims=True))


def tied_input():
    x = batch()
    x[1, 0] = x[1, 2] = 2.0
    return x


class LeakyReLUBothMasks(Layer):
    def forward(self, x):
        self.cache = x
        return np.where(x > 0, x, 0.1 * x)

    def backward(self, dout):
        x = self.cache
        return dout * ((x >= 0) * 1.0 + (x <= 0) * 0.1)


def zeros_in_input():
    x = batch()
    x[0, 2] = x[3, 1] = 0.0
    return x


class EmbeddingAssign(Layer):
    takes_ids = True

    def __init__(self):
        super().__init__()
        self.params["W"] = np.random.default_rng(0).standard_normal((5, 2))
        self.grads["W"] = np.zeros((5, 2))

    def forward(self, ids):
        self.cache = ids
        return self.params["W"][ids]

    def backward(self, dout):
        self.grads["W"][...] = 0
        self.grads["W"][self.cache] = dout
        return None


class ReplacingLinear(Linear):
    def backward(self, dout):
        self.grads["W"] = self.cache.T @ dout
        self.grads["b"][...] = dout.sum(axis=0)
        return dout @ self.params["W"].T


class SequenceBias(Layer):
    """out = x + b for x (N, T, D)."""

    def __init__(self):
        super().__init__()
        self.params["b"] = np.zeros(3)
        self.grads["b"] = np.zeros(3)

    def forward(self, x):
        return x + self.params["b"]

    def backward(self, dout):
        self.grads["b"] = dout.sum(axis=0)
        return dout.copy()


class ScoresUnscaled(Layer):
    def forward(self, q, k):
        self.cache = (q, k)
        return q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])

    def backward(self, ds):
        q, k = self.cache
        d = q.shape[-1]
        return ds @ k, ds.swapaxes(-1, -2) @ q / np.sqrt(d)


class SoftmaxNoKeepdims(Layer):
    def forward(self, x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.cache = e / e.sum(axis=1, keepdims=True)
        return self.cache

    def backward(self, dout):
        y = self.cache
        return y * (dout - (dout * y).sum(axis=1))


def sequences(shape=(2, 5, 9)):
    rng = np.random.default_rng(0)
    return rng.standard_normal(shape), rng.standard_normal(shape)


def softplus_input():
    x = batch()
    x[0, 1], x[2, 0] = 25.0, 30.0
    return x


CASES = {
    "zero": lambda: (NoDW(3, 2, rng=0, dtype=F64), batch()),
    "sign": lambda: (TanhSign(), batch()),
    "scale": lambda: (MeanBias(3, 2, rng=0, dtype=F64), batch()),
    "transpose": lambda: (TransposedW(3, 3, rng=0, dtype=F64), batch()),
    "offset": lambda: (Centre(), batch()),
    "elements": lambda: (Softplus(), softplus_input()),
    "mismatch": lambda: (TanhNoSquare(), batch()),
    "stochastic": lambda: (GlobalDropout(), batch()),
    "unchecked": lambda: (ReLU(), np.zeros((2, 3))),
    "not-repeatable": lambda: (AccumulatingLinear(3, 2, rng=0, dtype=F64), batch()),
    "modifies-input": lambda: (ReLUInPlace(), batch()),
    "dtype": lambda: (TanhFloat32(), batch()),
    "shape": lambda: (BiasNotSummed(3, 2, rng=0, dtype=F64), batch()),
    "unregistered": lambda: (Cs231nLinear(), batch()),
    "tie": lambda: (MaxEveryTie(), tied_input()),
    "kink": lambda: (LeakyReLUBothMasks(), zeros_in_input()),
    "accumulate": lambda: (EmbeddingAssign(), np.array([[1, 3, 1], [0, 3, 3]])),
    "replaced-grads": lambda: (ReplacingLinear(3, 2, rng=0, dtype=F64), batch()),
}

# the diagnoses for (N, T, D) and square inputs, each under its heading
SHAPES = {
    "The T axis": lambda: (SequenceBias(), sequences((2, 5, 3))[0]),
    "sqrt(d)": lambda: (ScoresUnscaled(), sequences()),
    "Square shapes": lambda: (SoftmaxNoKeepdims(), batch(4, 4)),
}


def test_every_kind_and_problem_has_a_case():
    assert set(CASES) == set(ROW_KINDS) | set(PROBLEM_KINDS)


@pytest.mark.parametrize("kind", CASES)
def test_the_section_quotes_what_gradcheck_prints(kind):
    report = gradcheck(*CASES[kind]())
    assert not report.ok
    found = {row.kind for row in report.rows} | {problem.kind for problem in report.problems}
    assert kind in found
    text = section()
    assert f"### `{kind}`" in text
    for line in format_details(report).splitlines():
        assert line in text, line


@pytest.mark.parametrize("heading", SHAPES)
def test_the_section_quotes_the_sequence_and_square_diagnoses(heading):
    report = gradcheck(*SHAPES[heading]())
    assert not report.ok
    text = section()
    assert f"### {heading}" in text
    for line in format_details(report).splitlines():
        assert line in text, line


def test_the_worked_example_prints_what_the_section_shows():
    code, shown = re.search(r"```python\n([^`]*)```\n\nprints\n\n```text\n(.*?)```", section(),
                            flags=re.S).groups()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "the worked example", "exec"), {})
    assert printed.getvalue() == shown

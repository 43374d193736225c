"""handprop.layers.gates: every gate checked by finite differences with our own checker, and the
engine's rules (broadcast sums, uses that add, backward order, clear errors) one by one.

Each gate is wrapped as a tiny layer (``Gate``): its first input is the checker's x, its other
Var inputs are ``params``, so ``handprop.layers.gradcheck.gradcheck`` differences every input of
the gate against the ``.grad`` the engine gives.
"""
import numpy as np
import pytest

from handprop.layers.gates import Var, concatenate, maximum, sum_to_shape, topological_order, trace, where
from handprop.layers.gradcheck import gradcheck


class Gate:
    """A gate as a layer: forward(x) builds the gate on Var(x) and the params; backward runs the
    engine and hands the Vars' gradients to the checker."""

    def __init__(self, name, fn, **others):
        self.name, self.fn = name, fn
        self.params = {k: np.array(v, dtype=np.float64) for k, v in others.items()}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.cache = None

    def forward(self, x):
        inputs = {"x": Var(x), **{k: Var(v) for k, v in self.params.items()}}
        out = self.fn(**inputs)
        self.cache = (inputs, out)
        return out.data.copy()

    def backward(self, dout):
        inputs, out = self.cache
        out.backward(dout)
        for k in self.params:
            self.grads[k][...] = inputs[k].grad
        return inputs["x"].grad.copy()

    def __repr__(self):
        return f"Gate({self.name})"


def normal(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def positive(*shape, seed=0):
    return 0.5 + np.random.default_rng(seed).random(shape)


def rows_of(x):
    return x[np.array([2, 0, 2, 2])]


GATES = [   # (name, fn, x, other inputs)
    ("x + b, b broadcast over rows", lambda x, b: x + b, normal(3, 4), dict(b=normal(4, seed=1))),
    ("x + b, x broadcast over leading axes", lambda x, b: x + b, normal(4), dict(b=normal(2, 3, 4, seed=1))),
    ("2 + x", lambda x: 2.0 + x, normal(3, 4), {}),
    ("x - b, both stretched", lambda x, b: x - b, normal(2, 3, 1), dict(b=normal(3, 4, seed=1))),
    ("1 - x", lambda x: 1.0 - x, normal(3), {}),
    ("x * b, b a column", lambda x, b: x * b, normal(3, 4), dict(b=normal(3, 1, seed=1))),
    ("3 * x", lambda x: 3.0 * x, normal(2, 2), {}),
    ("x / b", lambda x, b: x / b, normal(3, 4), dict(b=positive(2, 1, 4, seed=1))),
    ("2 / x", lambda x: 2.0 / x, positive(3, 2), {}),
    ("-x", lambda x: -x, normal(3, 2), {}),
    ("x ** 1.5", lambda x: x ** 1.5, positive(3, 4), {}),
    ("x ** -1", lambda x: x ** -1, positive(5), {}),
    ("x @ W, W broadcast over the batch", lambda x, W: x @ W, normal(2, 3, 4), dict(W=normal(4, 5, seed=1))),
    ("x @ W, both batched", lambda x, W: x @ W, normal(2, 1, 3, 4), dict(W=normal(3, 4, 2, seed=1))),
    ("vector @ matrix", lambda x, W: x @ W, normal(4), dict(W=normal(4, 3, seed=1))),
    ("matrix @ vector", lambda x, v: x @ v, normal(3, 4), dict(v=normal(4, seed=1))),
    ("constant @ x", lambda x: normal(2, 3, seed=2) @ x, normal(3, 4), {}),
    ("exp", lambda x: x.exp(), normal(3, 4), {}),
    ("log", lambda x: x.log(), positive(3, 4), {}),
    ("tanh", lambda x: x.tanh(), normal(3, 4), {}),
    ("sum", lambda x: x.sum(), normal(3, 4), {}),
    ("sum over axis 0", lambda x: x.sum(axis=0), normal(3, 4), {}),
    ("sum over axes (0, 2), keepdims", lambda x: x.sum(axis=(0, 2), keepdims=True), normal(2, 3, 4), {}),
    ("mean over axis -1, keepdims", lambda x: x.mean(axis=-1, keepdims=True), normal(3, 4), {}),
    ("mean", lambda x: x.mean(), normal(3, 4), {}),
    ("max over axis 1", lambda x: x.max(axis=1), normal(3, 4), {}),
    ("max", lambda x: x.max(), normal(3, 4), {}),
    ("max over axes (0, 2), keepdims", lambda x: x.max(axis=(0, 2), keepdims=True), normal(2, 3, 4), {}),
    ("reshape", lambda x: x.reshape(4, 3) * normal(4, 3, seed=3), normal(3, 4), {}),
    (".T", lambda x: x.T, normal(3, 4), {}),
    ("transpose(1, 2, 0)", lambda x: x.transpose(1, 2, 0), normal(2, 3, 4), {}),
    ("x[1]", lambda x: x[1], normal(3, 4), {}),
    ("x[1:, ::2]", lambda x: x[1:, ::2], normal(3, 4), {}),
    ("x[ids], ids repeated", rows_of, normal(3, 4), {}),
    ("x[rows, cols]", lambda x: x[[0, 1, 1], [3, 3, 0]], normal(3, 4), {}),
    ("maximum(x, b)", lambda x, b: maximum(x, b), normal(3, 4), dict(b=normal(4, seed=1))),
    ("maximum(x, 0.1)", lambda x: maximum(x, 0.1), normal(3, 4), {}),
    ("where(c, x, b)", lambda x, b: where(normal(3, 4, seed=4) > 0, x, b), normal(3, 4),
     dict(b=normal(3, 1, seed=1))),
    ("concatenate([x, b], axis=1)", lambda x, b: concatenate([x, b, 2.0 * x], axis=1), normal(3, 2),
     dict(b=normal(3, 4, seed=1))),
]


@pytest.mark.parametrize("name, fn, x, others", GATES, ids=[g[0] for g in GATES])
def test_every_gate_agrees_with_finite_differences(name, fn, x, others):
    report = gradcheck(Gate(name, fn, **others), x)
    assert report.ok, report
    assert [row.name for row in report.rows] == ["x", *others]


def test_the_gates_cover_the_issue_list():
    names = " ".join(g[0] for g in GATES)
    for gate in ["+", "-", "*", "/", "**", "@", "exp", "log", "tanh", "sum", "mean", "max",
                 "reshape", ".T", "transpose", "x[1]", "::2", "ids", "maximum", "where", "concatenate"]:
        assert gate in names, gate


def test_sum_to_shape_sums_the_leading_axes_and_the_stretched_ones():
    grad = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(sum_to_shape(grad, (4,)), grad.sum(axis=(0, 1)))
    np.testing.assert_array_equal(sum_to_shape(grad, (3, 1)), grad.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(sum_to_shape(grad, (2, 1, 4)), grad.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(sum_to_shape(grad, (2, 3, 4)), grad)
    assert sum_to_shape(grad, ()).shape == () and sum_to_shape(grad, ()) == grad.sum()


def test_gradients_add_where_a_var_is_used_more_than_once():
    x = Var([1.0, 2.0, 3.0], name="x")
    y = x * x * x + x.exp() + x[np.array([0, 0, 2])].sum()   # x in five places
    y.sum().backward()         # the picked sum, a scalar, is broadcast to all 3 elements of y
    np.testing.assert_allclose(x.grad, 3 * x.data**2 + np.exp(x.data) + 3 * np.array([2, 0, 1]))


def test_backward_fills_every_var_with_a_gradient_of_its_shape_and_keeps_names():
    x, b = Var(normal(4, 3), name="x"), Var(normal(3), name="b")
    h = x + b
    h.name = "h"
    loss = (h * h).mean(axis=0).sum()
    loss.backward()
    for var in topological_order([loss]):
        assert var.grad is not None and var.grad.dtype == np.float64 and var.grad.shape == var.shape
    assert (x.name, x.shape, b.shape, h.name) == ("x", (4, 3), (3,), "h")
    np.testing.assert_allclose(b.grad, (2 * h.data / 4).sum(axis=0))


def test_a_second_backward_overwrites_instead_of_adding():
    x = Var(normal(3))
    y = (x * x).sum()
    y.backward()
    first = x.grad.copy()
    y.backward()
    np.testing.assert_array_equal(x.grad, first)


def test_backward_takes_dout_of_the_output_shape_and_needs_it_unless_one_element():
    x = Var(normal(2, 3))
    y = x.tanh()
    with pytest.raises(ValueError, match=r"dout = 1 needs a Var of one element; pass dout of shape \(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"expected dout of shape \(2, 3\), got \(3,\)"):
        y.backward(np.ones(3))
    dout = normal(2, 3, seed=5)
    y.backward(dout)
    np.testing.assert_allclose(x.grad, dout * (1 - np.tanh(x.data) ** 2))


def test_max_sends_the_gradient_to_the_first_maximum_and_maximum_splits_a_tie():
    x = Var([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 0], [1, 0, 0]])
    a, b = Var([1.0, 2.0, 3.0]), Var([1.0, 0.0, 3.0])
    maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 1, 0.5])      # as torch.maximum
    np.testing.assert_array_equal(b.grad, [0.5, 0, 0.5])


def test_constants_mix_with_vars_on_either_side():
    x = Var([1.0, 2.0])
    for y in [np.ones(2) + x, x + np.ones(2), np.float64(2.0) * x, 3 - x, np.ones((2, 2)) @ x]:
        assert isinstance(y, Var)
    (np.array([2.0, 3.0]) * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 3.0])


def test_the_data_is_a_float64_copy():
    data = np.arange(3, dtype=np.float32)
    x = Var(data)
    data[0] = 99
    assert x.data.dtype == np.float64 and x.data[0] == 0


@pytest.mark.parametrize("make, error, message", [
    (lambda: Var(np.ones((2, 3))) + Var(np.ones(4)), ValueError,
     r"shapes \(2, 3\) and \(4,\) do not broadcast"),
    (lambda: Var(np.ones((2, 3))) @ Var(np.ones((2, 3))), ValueError,
     r"expected \(\.\.\., M, K\) @ \(\.\.\., K, P\), got \(2, 3\) @ \(2, 3\)"),
    (lambda: Var(np.ones((2, 3, 4))) @ Var(np.ones((3, 4, 5))), ValueError,
     r"the leading axes: shapes \(2,\) and \(3,\) do not broadcast"),
    (lambda: Var(np.ones(2)) ** Var(2.0), TypeError, "expected a constant number as the exponent"),
    (lambda: Var(np.ones(3))[Var(1.0)], TypeError, "not a Var"),
    (lambda: Var(np.ones(3), name="v")[5], IndexError, r"Var\('v', shape=\(3,\)\)\[5\]"),
    (lambda: Var(np.ones(6)).reshape(4, 2), ValueError, "6 elements do not fit shape"),
    (lambda: Var(np.ones((2, 3))).sum(axis=2), ValueError, "axis 2 is out of range for 2 axes"),
    (lambda: concatenate([Var(np.ones((2, 3))), Var(np.ones((3, 2)))], axis=0), ValueError,
     r"concatenate\(\[\(2, 3\), \(3, 2\)\], axis=0\)"),
    (lambda: where(np.ones(3) > 0, Var(np.ones((2, 2))), 0.0), ValueError, "do not broadcast"),
])
def test_a_mistake_in_the_forward_is_a_clear_error_not_a_numpy_one(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_trace_lists_the_graph_gate_by_gate_in_forward_order():
    x, gamma = Var(normal(4, 3), name="x"), Var(np.ones(3), name="gamma")
    mu = x.mean(axis=0)
    mu.name = "mu"
    y = (x - mu) * gamma * 2.0 + np.zeros((4, 3))
    assert trace(y).splitlines() == [
        "x          (4, 3)     input",
        "gamma      (3,)       input",
        "mu         (3,)       mean(x)",
        "_1         (4, 3)     -(x, mu)",
        "_2         (4, 3)     *(_1, gamma)",
        "_3         (4, 3)     *(_2, 2)",
        "_4         (4, 3)     +(_3, const(4, 3))",
    ]

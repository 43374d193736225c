"""Linear, ReLU, Tanh: gradients, worked examples, dtypes and the errors users see."""
import re

import numpy as np
import pytest

from handprop.layers import Layer, Linear, ReLU, Tanh
from handprop.layers.gradcheck import gradcheck

F64 = np.float64


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n,d_in,d_out", [(1, 3, 2), (4, 5, 3), (7, 2, 6)])
def test_linear_gradcheck(seed, n, d_in, d_out):
    x = np.random.default_rng(seed).standard_normal((n, d_in))
    for bias in (True, False):
        report = gradcheck(Linear(d_in, d_out, bias=bias, rng=seed, dtype=F64), x, seed=seed)
        assert report.ok, report
        assert report.worst < 1e-8


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("layer", [ReLU, Tanh])
@pytest.mark.parametrize("shape", [(1, 4), (5, 3), (2, 3, 4)])
def test_elementwise_gradcheck(seed, layer, shape):
    x = np.random.default_rng(seed).standard_normal(shape)
    report = gradcheck(layer(), x, seed=seed)
    assert report.ok, report
    assert report.worst < 1e-8


def test_linear_by_hand():
    lin = Linear(2, 3, dtype=F64)
    lin.params["W"][...] = [[1, 2, 3], [4, 5, 6]]
    lin.params["b"][...] = [0.5, -1, 2]
    x = np.array([[1.0, -1.0], [2.0, 0.5]])
    out = lin.forward(x)
    np.testing.assert_array_equal(out, [[-2.5, -4, -1], [4.5, 5.5, 11]])
    dout = np.array([[1.0, 0, -1], [2, 1, 0]])
    dx = lin.backward(dout)
    np.testing.assert_array_equal(dx, [[1 - 3, 4 - 6], [2 + 2, 8 + 5]])
    np.testing.assert_array_equal(lin.grads["W"], [[1 + 4, 2, -1], [-1 + 1, 0.5, 1]])
    np.testing.assert_array_equal(lin.grads["b"], [3, 1, -1])


def test_relu_and_tanh_by_hand():
    x = np.array([[-2.0, 0.0, 3.0]])
    relu = ReLU()
    np.testing.assert_array_equal(relu.forward(x), [[0, 0, 3]])
    # the gradient at exactly 0 is 0, as in PyTorch
    np.testing.assert_array_equal(relu.backward(np.array([[5.0, 6.0, 7.0]])), [[0, 0, 7]])
    tanh = Tanh()
    out = tanh.forward(np.array([[0.0, np.log(3.0)]]))  # tanh(log 3) = 0.8
    np.testing.assert_allclose(out, [[0, 0.8]], rtol=1e-15)
    np.testing.assert_allclose(tanh.backward(np.array([[2.0, 1.0]])), [[2, 0.36]], rtol=1e-14)


def test_tanh_backward_uses_the_cached_output(monkeypatch):
    tanh = Tanh()
    tanh.forward(np.array([[0.3, -1.2]]))
    monkeypatch.setattr(np, "tanh", lambda *a, **k: pytest.fail("backward recomputed tanh"))
    tanh.backward(np.ones((1, 2)))


def test_linear_init_is_seeded_and_pytorch_scaled():
    a, b = Linear(100, 50, rng=3), Linear(100, 50, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert not np.array_equal(a.params["W"], Linear(100, 50, rng=4).params["W"])
    assert np.abs(a.params["W"]).max() <= 0.1 and np.abs(a.params["W"]).max() > 0.09
    assert a.params["W"].shape == (100, 50) and a.params["b"].shape == (50,)
    assert "b" not in Linear(3, 2, bias=False).params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype, rng):
    x = rng.standard_normal((4, 3)).astype(dtype)
    for layer in (Linear(3, 3, rng=0, dtype=dtype), ReLU(), Tanh()):
        out = layer.forward(x)
        assert out.dtype == dtype
        assert layer.backward(np.ones_like(out)).dtype == dtype
        for name, g in layer.grads.items():
            assert g.dtype == dtype and g.shape == layer.params[name].shape


def test_backward_overwrites_grads(rng):
    lin = Linear(3, 2, rng=0, dtype=F64)
    x = rng.standard_normal((4, 3))
    lin.forward(x)
    lin.backward(np.ones((4, 2)))
    lin.backward(np.ones((4, 2)))
    np.testing.assert_allclose(lin.grads["b"], [4, 4])


def test_train_eval_and_repr():
    lin = Linear(784, 256)
    assert lin.training and lin.eval() is lin and not lin.training
    assert lin.train().training
    assert repr(lin) == "Linear(784, 256)"
    assert repr(Linear(3, 2, bias=False, dtype=F64)) == "Linear(3, 2, bias=False, dtype=float64)"
    assert repr(ReLU()) == "ReLU()" and repr(Tanh()) == "Tanh()"


@pytest.mark.parametrize("layer", [Linear(3, 2), ReLU(), Tanh()])
def test_backward_before_forward(layer):
    with pytest.raises(RuntimeError, match=r"backward called before forward"):
        layer.backward(np.ones((1, 2), np.float32))


@pytest.mark.parametrize("x,error,message", [
    (np.ones((32, 785), np.float32), ValueError,
     r"Linear\(784, 256\): expected input of shape \(\.\.\., 784\), got \(32, 785\)"),
    (np.ones(784, np.float32), ValueError, r"got \(784,\); for one sample use x\[None, :\]"),
    (np.ones((2, 3, 785), np.float32), ValueError, r"expected input of shape \(\.\.\., 784\), got \(2, 3, 785\)"),
    (np.ones((2, 784), np.int64), TypeError, r"Linear\(784, 256\): expected a floating-point"),
    (np.ones((2, 784)), TypeError, r"expected float32 input .* got float64"),
    ([[1.0] * 784], TypeError, r"Linear\(784, 256\): expected a numpy array, got list"),
])
def test_linear_bad_input(x, error, message):
    with pytest.raises(error, match=message):
        Linear(784, 256).forward(x)


@pytest.mark.parametrize("layer", [Linear(3, 2), ReLU(), Tanh()])
def test_bad_upstream_gradient(layer):
    out = layer.forward(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}.*shape {re.escape(str(out.shape))}.*got \(4, 5\)"):
        layer.backward(np.ones((4, 5), np.float32))
    with pytest.raises(TypeError, match=r"dtype float32 .*got float64"):
        layer.backward(np.ones(out.shape))


@pytest.mark.parametrize("layer", [ReLU(), Tanh()])
def test_elementwise_bad_input(layer):
    with pytest.raises(TypeError, match=rf"{type(layer).__name__}\(\): expected a floating-point"):
        layer.forward(np.ones((2, 2), dtype=np.int32))


@pytest.mark.parametrize("args,error,message", [
    ((0, 4), ValueError, r"Linear: expected in_features >= 1, got 0"),
    ((4, -1), ValueError, r"expected out_features >= 1, got -1"),
    ((2.5, 4), TypeError, r"expected in_features to be an int, got 2.5"),
    ((True, 4), TypeError, r"in_features to be an int"),
])
def test_linear_bad_sizes(args, error, message):
    with pytest.raises(error, match=message):
        Linear(*args)


def test_linear_bad_dtype():
    with pytest.raises(TypeError, match=r"Linear: expected a floating-point dtype, got int64"):
        Linear(3, 2, dtype=np.int64)


def test_base_layer_says_what_is_missing():
    with pytest.raises(NotImplementedError, match="Layer does not define forward"):
        Layer().forward(np.ones((1, 1)))

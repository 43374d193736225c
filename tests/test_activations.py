"""Sigmoid, LeakyReLU, GELU, Softmax: against PyTorch, gradcheck, stability, dtypes, errors."""
import re
import warnings

import numpy as np
import pytest

from handprop.layers import GELU, LeakyReLU, Sigmoid, Softmax
from handprop.layers.gradcheck import gradcheck
from handprop.layers.softmax import staged_backward

F64 = np.float64

# Reference values: torch 2.13.0+cpu, float64, made by /work/venvs/torch/bin/python running
#   x = torch.tensor(X, requires_grad=True); out = f(x); out.backward(torch.tensor(DOUT))
# and printing out.tolist() and x.grad.tolist(), for each f named below.
X = [[-2.5, -0.75, 0.5, 1.25], [3.0, -1.5, 0.25, -0.125]]
XL = [[-2.5, 0.0, 0.5, -0.125], [3.0, -1.5, 0.0, 1.25]]   # LeakyReLU's: zeros included
DOUT = [[0.5, -1.0, 2.0, 0.25], [-0.75, 1.5, -0.5, 1.0]]
TORCH = {
    "torch.sigmoid(x)": (Sigmoid, X,
        [[0.07585818002124355, 0.320821300824607, 0.6224593312018546, 0.7772998611746911],
         [0.9525741268224334, 0.18242552380635635, 0.5621765008857981, 0.46879062662624377]],
        [[0.035051858272554075, -0.21789499376181404, 0.470007424403189, 0.04327619674812427],
         [-0.033882494798184004, 0.22371967810549928, -0.12306704136879917, 0.24902597501361745]]),
    "F.leaky_relu(x, 0.01)": (lambda: LeakyReLU(0.01), XL,
        [[-0.025, 0.0, 0.5, -0.00125], [3.0, -0.015, 0.0, 1.25]],
        [[0.005, -0.01, 2.0, 0.0025], [-0.75, 0.015, -0.005, 1.0]]),
    "F.leaky_relu(x, -0.2)": (lambda: LeakyReLU(-0.2), XL,
        [[0.5, -0.0, 0.5, 0.025], [3.0, 0.30000000000000004, -0.0, 1.25]],
        [[-0.1, 0.2, 2.0, -0.05], [-0.75, -0.30000000000000004, 0.1, 1.0]]),
    "F.gelu(x)": (GELU, X,
        [[-0.015524163314440398, -0.16997051428265111, 0.34573123063700656, 1.117937782916431],
         [2.99595030590511, -0.10021080190328704, 0.14967658142073093, -0.056282721896235885]],
        [[-0.018805542954072597, -0.0007742782607648296, 1.7349902493123257, 0.28066539576735555],
         [-0.7589592354031379, -0.1912037883449694, -0.347686677441818, 0.4007820643017934]]),
    "F.gelu(x, approximate='tanh')": (lambda: GELU(approximate="tanh"), X,
        [[-0.015084266089998577, -0.17003944483437966, 0.34571400982514394, 1.1177142029697147],
         [2.996362607918227, -0.10042842301976707, 0.149675350701685, -0.05628280137577661]],
        [[-0.01897578810633309, -0.001061743862585618, 1.7347398070692848, 0.2806231580624121],
         [-0.7586881249732271, -0.19156618972714962, -0.3476770475755302, 0.40078459383720855]]),
    "torch.softmax(x, dim=-1)": (Softmax, X,
        [[0.014417277795042809, 0.08296570538007135, 0.28957876548418604, 0.6130382513406997],
         [0.8936759803615525, 0.009927843372146786, 0.057130794036321646, 0.039265382229979086]],
        [[-0.0022586111332658105, -0.1374459677416548, 0.3890027309139459, -0.24929815203902517],
         [-0.09413514937652252, 0.021291900538779558, 0.008264839745065394, 0.06457840909267759]]),
}
ALL = [Sigmoid, LeakyReLU, GELU, lambda: GELU(approximate="tanh"), Softmax]
NAMES = ["Sigmoid", "LeakyReLU", "GELU", "GELU-tanh", "Softmax"]


@pytest.mark.parametrize("call", TORCH)
def test_agrees_with_pytorch(call):
    make, x, out_ref, dx_ref = TORCH[call]
    layer = make()
    out = layer.forward(np.array(x))
    dx = layer.backward(np.array(DOUT))
    np.testing.assert_allclose(out, out_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("make", ALL, ids=NAMES)
@pytest.mark.parametrize("shape", [(1, 5), (4, 3), (2, 3, 4)])
def test_gradcheck(make, shape):
    x = 1.5 * np.random.default_rng(shape[-1]).standard_normal(shape)
    report = gradcheck(make(), x, seed=shape[0])
    assert report.ok, report
    assert report.worst < 1e-8


@pytest.mark.parametrize("make", ALL, ids=NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extremes_stay_finite_without_warnings(make, dtype):
    x = np.array([[-1e4, -40.0, 0.0, 40.0, 1e4]], dtype)
    layer = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = layer.forward(x)
        dx = layer.backward(np.ones_like(x))
    assert out.dtype == dx.dtype == dtype
    assert np.isfinite(out).all() and np.isfinite(dx).all()


def test_extreme_values_are_the_limits():
    x = np.array([[-1e4, 1e4]])
    np.testing.assert_array_equal(Sigmoid().forward(x), [[0, 1]])
    np.testing.assert_array_equal(GELU().forward(x), [[0, 1e4]])
    np.testing.assert_array_equal(GELU(approximate="tanh").forward(x), [[0, 1e4]])
    np.testing.assert_array_equal(Softmax().forward(x), [[0, 1]])
    # GELU's exact form keeps the left tail, where 1 + erf(x / sqrt 2) would round to 0
    np.testing.assert_allclose(GELU().forward(np.array([[-10.0]])), [[-7.619853024160527e-23]], rtol=1e-12)


@pytest.mark.parametrize("make", ALL, ids=NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_and_dout_unchanged(make, dtype):
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    x0, dout0 = x.copy(), dout.copy()
    layer = make()
    out = layer.forward(x)
    dx = layer.backward(dout)
    assert out.dtype == dx.dtype == dtype
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dout, dout0)


def test_sigmoid_backward_uses_the_cached_output(monkeypatch):
    import handprop.layers.sigmoid as module
    layer = Sigmoid()
    layer.forward(np.array([[0.3, -1.2]]))
    monkeypatch.setattr(module, "expit", lambda *a, **k: pytest.fail("backward recomputed expit"))
    monkeypatch.setattr(np, "exp", lambda *a, **k: pytest.fail("backward called exp"))
    layer.backward(np.ones((1, 2)))


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 3, 4)])
def test_softmax_staged_and_fused_backward_agree(shape):
    rng = np.random.default_rng(len(shape))
    layer = Softmax()
    p = layer.forward(3 * rng.standard_normal(shape))
    dout = rng.standard_normal(shape)
    np.testing.assert_allclose(layer.backward(dout), staged_backward(p, dout), rtol=1e-12, atol=1e-15)


def test_softmax_rows_sum_to_one_and_dx_rows_to_zero():
    rng = np.random.default_rng(0)
    layer = Softmax()
    p = layer.forward(5 * rng.standard_normal((4, 6)) + 100)
    np.testing.assert_allclose(p.sum(axis=-1), 1, rtol=1e-15)
    # shifting a row of x leaves p unchanged: dx is orthogonal to ones
    np.testing.assert_allclose(layer.backward(rng.standard_normal((4, 6))).sum(axis=-1), 0, atol=1e-15)


def test_softmax_dim_is_the_last_axis_only():
    x = np.ones((2, 3))
    np.testing.assert_allclose(Softmax(dim=1).forward(x), 1 / 3)
    assert repr(Softmax(dim=1)) == "Softmax(dim=1)" and repr(Softmax()) == "Softmax()"
    with pytest.raises(ValueError, match=r"Softmax\(dim=0\): normalizes the last axis only; "
                                         r"expected dim=-1 or 1 for input of shape \(2, 3\)"):
        Softmax(dim=0).forward(x)
    with pytest.raises(ValueError, match=r"at least one value along the last axis, got .*\(2, 0\)"):
        Softmax().forward(np.ones((2, 0)))
    with pytest.raises(TypeError, match=r"Softmax: expected dim to be an int, got 'x'"):
        Softmax(dim="x")


def test_leaky_relu_slope_and_repr():
    assert repr(LeakyReLU()) == "LeakyReLU()" and repr(LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert LeakyReLU().negative_slope == 0.01
    with pytest.raises(TypeError, match=r"LeakyReLU: expected negative_slope as a real number, got '0.1'"):
        LeakyReLU("0.1")
    with pytest.raises(ValueError, match=r"LeakyReLU: expected a finite negative_slope, got nan"):
        LeakyReLU(float("nan"))
    with pytest.raises(TypeError, match=r"LeakyReLU: expected negative_slope as a real number, got True"):
        LeakyReLU(True)


def test_gelu_forms_and_repr():
    assert repr(GELU()) == "GELU()" and repr(GELU(approximate="tanh")) == "GELU(approximate='tanh')"
    with pytest.raises(ValueError, match=r"GELU: expected approximate as one of 'none', 'tanh', got 'erf'"):
        GELU(approximate="erf")
    # the two forms agree to about 1e-3 (the approximation's error), not exactly
    x = np.linspace(-4, 4, 81)[None]
    gap = np.abs(GELU().forward(x) - GELU(approximate="tanh").forward(x)).max()
    assert 1e-5 < gap < 1e-3


@pytest.mark.parametrize("make", ALL, ids=NAMES)
def test_errors(make):
    layer = make()
    name = re.escape(repr(layer))
    with pytest.raises(RuntimeError, match=rf"{name}: backward called before forward"):
        layer.backward(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match=rf"{name}: expected a floating-point input, got dtype int64"):
        layer.forward(np.ones((2, 3), np.int64))
    with pytest.raises(TypeError, match=rf"{name}: expected a numpy array, got list"):
        layer.forward([[1.0, 2.0]])
    layer.forward(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=rf"{name}: expected an upstream gradient of shape \(2, 3\)"):
        layer.backward(np.ones((3, 2), np.float32))
    with pytest.raises(TypeError, match=rf"{name}: expected an upstream gradient of dtype float32"):
        layer.backward(np.ones((2, 3)))

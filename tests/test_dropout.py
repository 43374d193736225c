"""Dropout: inverted scaling, seeded masks, PyTorch's p=0 and p=1, gradients, modes, errors."""
import warnings

import numpy as np
import pytest

from handprop.layers import Dropout
from handprop.layers.gradcheck import gradcheck

F64 = np.float64


def test_training_zeroes_and_rescales_the_rest():
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 2, (200, 50))
    drop = Dropout(0.3, rng=1)
    out = drop.forward(x)
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / 0.7, rtol=1e-15)
    assert abs(kept.mean() - 0.7) < 0.01      # 10,000 draws: the standard error is 0.005
    assert abs(out.mean() / x.mean() - 1) < 0.02  # inverted dropout keeps the expectation


def test_backward_is_the_same_mask_times_dout():
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    drop = Dropout(0.4, rng=3)
    out = drop.forward(x)
    mask = out / x                            # 0 or 1 / (1 - p) per element
    assert set(np.round(np.unique(mask), 12)) == {0.0, round(1 / 0.6, 12)}
    dx = drop.backward(dout)
    np.testing.assert_allclose(dx, mask * dout, rtol=1e-14)
    np.testing.assert_array_equal(dx == 0, out == 0)


def test_a_seed_reproduces_the_masks_and_draws_move_on():
    x = np.ones((4, 5), np.float32)
    a, b = Dropout(rng=7), Dropout(rng=np.random.default_rng(7))
    first = a.forward(x)
    np.testing.assert_array_equal(first, b.forward(x))
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    assert not np.array_equal(first, a.forward(x))   # each call draws a new mask
    assert isinstance(a.rng, np.random.Generator)


def test_eval_is_the_identity_and_passes_gradcheck():
    x = np.random.default_rng(0).standard_normal((3, 4))
    drop = Dropout(0.5, rng=0).eval()
    state = drop.rng.bit_generator.state
    np.testing.assert_array_equal(drop.forward(x), x)
    np.testing.assert_array_equal(drop.backward(2 * x), 2 * x)
    assert drop.rng.bit_generator.state == state      # no draws in eval mode
    report = gradcheck(drop, x)
    assert report.ok, report
    assert report.worst < 1e-9


@pytest.mark.parametrize("training", [True, False])
def test_p_zero_and_p_one_behave_as_pytorch(training):
    # torch 2.13: F.dropout(x, p=1.0, training=True) is all zeros with zero gradients, and
    # F.dropout(x, p=0.0, training=True) is x with gradient dout
    x = np.array([[-2.5, -0.75, 0.5, 1.25], [3.0, -1.5, 0.25, -0.125]])
    dout = np.array([[0.5, -1.0, 2.0, 0.25], [-0.75, 1.5, -0.5, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ones = Dropout(1.0, rng=0).train(training)
        out, dx = ones.forward(x), ones.backward(dout)
    expect_out, expect_dx = (np.zeros_like(x), np.zeros_like(x)) if training else (x, dout)
    np.testing.assert_array_equal(out, expect_out)
    np.testing.assert_array_equal(dx, expect_dx)
    zero = Dropout(0.0, rng=0).train(training)
    np.testing.assert_array_equal(zero.forward(x), x)
    np.testing.assert_array_equal(zero.backward(dout), dout)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_dtype_is_kept_and_inputs_unchanged(dtype, training):
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((3, 2, 4)).astype(dtype), rng.standard_normal((3, 2, 4)).astype(dtype)
    x0, dout0 = x.copy(), dout.copy()
    drop = Dropout(0.25, rng=0).train(training)
    out = drop.forward(x)
    dx = drop.backward(dout)
    assert out.dtype == dx.dtype == dtype
    assert all(a.dtype == dtype for a in (drop.cache.mask,) if a is not None)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dout, dout0)


def test_repr_and_no_params():
    assert repr(Dropout()) == "Dropout()" and repr(Dropout(0.1)) == "Dropout(p=0.1)"
    assert Dropout().params == {} and Dropout().buffers == {}


@pytest.mark.parametrize("p,error,message", [
    (-0.1, ValueError, r"Dropout: expected p in \[0, 1\], got -0.1"),
    (1.5, ValueError, r"in \[0, 1\], got 1.5"),
    (float("nan"), ValueError, r"Dropout: expected a finite p, got nan"),
    ("0.5", TypeError, r"Dropout: expected p as a real number, got '0.5'"),
    (True, TypeError, r"expected p as a real number, got True"),
])
def test_bad_p(p, error, message):
    with pytest.raises(error, match=message):
        Dropout(p)


@pytest.mark.parametrize("training", [True, False])
def test_bad_input(training):
    drop = Dropout(rng=0).train(training)
    with pytest.raises(RuntimeError, match=r"Dropout\(\): backward called before forward"):
        drop.backward(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match=r"Dropout\(\): expected a floating-point input, got dtype int64"):
        drop.forward(np.ones((2, 3), np.int64))
    drop.forward(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"Dropout\(\): expected an upstream gradient of shape \(2, 3\)"):
        drop.backward(np.ones((3, 2), np.float32))
    with pytest.raises(TypeError, match=r"Dropout\(\): expected an upstream gradient of dtype float32"):
        drop.backward(np.ones((2, 3)))

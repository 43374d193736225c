"""BatchNorm1d: both backward passes, both modes, running statistics, numerics, errors."""
import numpy as np
import pytest

from handprop.layers import BatchNorm1d
from handprop.layers.batchnorm import staged_backward
from handprop.layers.gradcheck import gradcheck

F64 = np.float64


def make_bn(d, seed, training=True, dtype=F64):
    rng = np.random.default_rng(seed)
    bn = BatchNorm1d(d, dtype=dtype)
    bn.params["gamma"][...] = rng.uniform(0.5, 2.0, d)
    bn.params["beta"][...] = rng.standard_normal(d)
    for _ in range(2):
        bn.forward((1 + 2 * rng.standard_normal((16, d))).astype(dtype))
    return bn.train(training)


class StagedBatchNorm(BatchNorm1d):
    """BatchNorm1d whose backward is the gate-by-gate one, so gradcheck can check it too."""

    def forward(self, x):
        self.x = x
        return super().forward(x)

    def backward(self, dout):
        dx, self.grads["gamma"][...], self.grads["beta"][...] = staged_backward(
            self.x, self.params["gamma"], self.eps, dout)
        return dx


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n,d", [(2, 3), (5, 4), (16, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_both_modes(seed, n, d, training, assert_same_state):
    bn = make_bn(d, seed, training)
    x = 3 + 2 * np.random.default_rng(seed + 10).standard_normal((n, d))
    before = bn.state_dict()
    report = gradcheck(bn, x, seed=seed)
    assert report.ok, report
    assert report.worst < 1e-7
    assert_same_state(before, bn.state_dict())  # running statistics untouched


def test_eval_mode_takes_one_sample():
    bn = make_bn(3, 0, training=False)
    report = gradcheck(bn, np.random.default_rng(0).standard_normal((1, 3)))
    assert report.ok, report


@pytest.mark.parametrize("seed", [0, 1])
def test_staged_backward_passes_gradcheck(seed):
    staged = StagedBatchNorm(4, dtype=F64)
    staged.params["gamma"][...] = [0.5, 1.5, 2.0, -1.0]
    report = gradcheck(staged, np.random.default_rng(seed).standard_normal((6, 4)), seed=seed)
    assert report.ok, report


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n,d", [(2, 3), (7, 5), (64, 10)])
def test_staged_and_fused_backward_agree(seed, n, d):
    rng = np.random.default_rng(seed)
    bn = make_bn(d, seed)
    x = rng.standard_normal((n, d)) * rng.uniform(0.1, 10, d) + rng.standard_normal(d)
    dout = rng.standard_normal((n, d))
    bn.forward(x)
    dx = bn.backward(dout)
    dx_s, dgamma_s, dbeta_s = staged_backward(x, bn.params["gamma"], bn.eps, dout)
    # dx is a difference of terms of size |gamma * inv_std * dout|; at N = 2 they nearly cancel
    terms = np.abs(dout * bn.params["gamma"] / np.sqrt(x.var(axis=0) + bn.eps)).max()
    np.testing.assert_allclose(dx, dx_s, rtol=1e-12, atol=1e-12 * terms)
    np.testing.assert_allclose(bn.grads["gamma"], dgamma_s, rtol=1e-12)
    np.testing.assert_allclose(bn.grads["beta"], dbeta_s, rtol=1e-12)


@pytest.mark.parametrize("path", ["mean", "var", "xhat"])
def test_dropping_one_of_the_three_paths_is_caught(path, monkeypatch):
    """Each of the paths from x to the loss matters: gradcheck fails without any one of them."""
    class Wrong(BatchNorm1d):
        def backward(self, dout):
            xhat, inv_std, _ = self.cache
            BatchNorm1d.backward(self, dout)
            n, g, (db, dg) = dout.shape[0], self.params["gamma"], (self.grads["beta"], self.grads["gamma"])
            terms = {"xhat": dout, "mean": -db / n, "var": -xhat * dg / n}
            del terms[path]
            return g * inv_std * sum(terms.values())
    bn = Wrong(3, dtype=F64)
    bn.params["gamma"][...] = [1.0, 2.0, 0.5]
    report = gradcheck(bn, np.random.default_rng(0).standard_normal((5, 3)))
    assert not report.ok and [r.name for r in report.rows if not r.ok] == ["x"]


def test_running_statistics_follow_pytorch_rule(assert_same_state):
    rng = np.random.default_rng(0)
    bn = BatchNorm1d(3, momentum=0.3, dtype=F64)
    mean, var = np.zeros(3), np.ones(3)
    for n in (4, 9, 2):
        x = rng.standard_normal((n, 3)) * [1, 2, 3] + [0, 5, -5]
        bn.forward(x)
        mean = 0.7 * mean + 0.3 * x.mean(axis=0)
        var = 0.7 * var + 0.3 * x.var(axis=0, ddof=1)  # unbiased, as PyTorch
        np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(bn.running_var, var, rtol=1e-14)
    out = bn.eval().forward(x)
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-12, atol=1e-12)
    before = bn.state_dict()
    bn.forward(x)
    assert_same_state(before, bn.state_dict())  # eval mode leaves them alone


def test_training_normalizes_with_the_biased_batch_variance():
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    out = BatchNorm1d(2, eps=1e-5, dtype=F64).forward(x)
    np.testing.assert_allclose(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-14)


def test_momentum_bounds_are_inclusive():
    x = np.random.default_rng(0).standard_normal((4, 2))
    frozen, replaced = BatchNorm1d(2, momentum=0.0, dtype=F64), BatchNorm1d(2, momentum=1.0, dtype=F64)
    frozen.forward(x), replaced.forward(x)
    np.testing.assert_array_equal(frozen.running_mean, 0)
    np.testing.assert_allclose(replaced.running_var, x.var(0, ddof=1), rtol=1e-15)


def test_constant_feature_stays_finite():
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    x[:, 1] = 7.0
    bn = BatchNorm1d(3)
    out = bn.forward(x)
    dx = bn.backward(np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32))
    assert np.isfinite(out).all() and np.isfinite(dx).all()
    assert all(np.isfinite(g).all() for g in bn.grads.values())
    np.testing.assert_array_equal(out[:, 1], 0)


@pytest.mark.parametrize("training", [True, False])
def test_float32_in_float32_out(training):
    rng = np.random.default_rng(0)
    bn = BatchNorm1d(5).train(training)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    out = bn.forward(x)
    dx = bn.backward(rng.standard_normal((6, 5)).astype(np.float32))
    assert out.dtype == dx.dtype == np.float32
    assert all(a.dtype == np.float32 for a in [*bn.params.values(), *bn.grads.values(), *bn.buffers.values()])


def test_large_batch_variance_keeps_its_precision():
    # a large offset over a small spread: E[x^2] - E[x]^2 would cancel catastrophically in float32
    rng = np.random.default_rng(0)
    x = (1000 + 0.1 * rng.standard_normal((4096, 4))).astype(np.float32)
    bn = BatchNorm1d(4, momentum=1.0)
    out = bn.forward(x)
    var = x.astype(F64).var(axis=0)
    # float32 sums of 4096 terms carry up to ~4096 * 6e-8 = 2.4e-4; the cancelling formula is
    # off by more than 100% here
    np.testing.assert_allclose(bn.running_var, var * 4096 / 4095, rtol=1e-3)
    np.testing.assert_allclose(out.std(axis=0, dtype=F64), np.sqrt(var / (var + 1e-5)), rtol=1e-3)


def test_repr():
    assert repr(BatchNorm1d(256)) == "BatchNorm1d(256)"
    assert repr(BatchNorm1d(4, eps=1e-3, momentum=0.2, dtype=F64)) == \
        "BatchNorm1d(4, eps=0.001, momentum=0.2, dtype=float64)"


def test_one_sample_in_training_is_refused():
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): expected more than 1 value per "
                                         r"channel when training, got input of shape \(1, 3\)"):
        BatchNorm1d(3).forward(np.ones((1, 3), np.float32))


@pytest.mark.parametrize("call,error,message", [
    (lambda bn: bn.forward(np.ones((4, 5), np.float32)), ValueError,
     r"BatchNorm1d\(3\): expected input of shape \(N, 3\), got \(4, 5\)"),
    (lambda bn: bn.backward(np.ones((4, 3), np.float32)), RuntimeError,
     r"BatchNorm1d\(3\): backward called before forward"),
    (lambda bn: (bn.forward(np.ones((4, 3), np.float32)), bn.backward(np.ones((3, 3), np.float32))),
     ValueError, r"BatchNorm1d\(3\): expected an upstream gradient of shape \(4, 3\)"),
    (lambda bn: bn.forward(np.ones((4, 3))), TypeError, r"expected float32 input"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call(BatchNorm1d(3))


@pytest.mark.parametrize("kwargs,error,message", [
    ({"num_features": 0}, ValueError, r"num_features >= 1, got 0"),
    ({"num_features": 3.0}, TypeError, r"num_features to be an int"),
    ({"num_features": 3, "momentum": 1.5}, ValueError, r"momentum in \[0, 1\], got 1.5"),
    ({"num_features": 3, "momentum": -0.1}, ValueError, r"momentum in \[0, 1\], got -0.1"),
    ({"num_features": 3, "eps": 0.0}, ValueError, r"eps > 0, got 0.0"),
    ({"num_features": 3, "eps": -1e-5}, ValueError, r"eps > 0"),
    ({"num_features": 3, "eps": True}, TypeError, r"^BatchNorm1d: expected eps as a real number, got True$"),
    ({"num_features": 3, "momentum": "0.1"}, TypeError, r"expected momentum as a real number, got '0.1'"),
    ({"num_features": 3, "momentum": float("nan")}, ValueError, r"expected a finite momentum, got nan"),
])
def test_bad_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        BatchNorm1d(**kwargs)

"""SoftmaxCrossEntropy, softmax and log_softmax: values, gradients, stability, errors."""
import numpy as np
import pytest

from handprop.layers.gradcheck import gradcheck
from handprop.losses import SoftmaxCrossEntropy, log_softmax, softmax
from handprop.losses.softmax_cross_entropy import staged_backward

SETTINGS = [("mean", 0.0), ("sum", 0.0), ("mean", 0.1), ("sum", 0.3)]


def batch(n, c, seed, scale=3.0):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((n, c)), rng.integers(0, c, n)


def test_value_by_hand():
    logits = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    y = np.array([2, 0])
    lse0 = np.log(np.exp(1) + np.exp(2) + np.exp(3))
    nll = np.array([lse0 - 3, np.log(3)])
    assert SoftmaxCrossEntropy().forward(logits, y) == pytest.approx(nll.mean(), rel=1e-15)
    assert SoftmaxCrossEntropy(reduction="sum").forward(logits, y) == pytest.approx(nll.sum(), rel=1e-15)
    # PyTorch's smoothing: q = (1 - s) onehot + s / C
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    q = 0.8 * np.eye(3)[y] + 0.2 / 3
    smoothed = SoftmaxCrossEntropy(label_smoothing=0.2).forward(logits, y)
    assert smoothed == pytest.approx(-(q * logp).sum(1).mean(), rel=1e-14)


# F.cross_entropy(logits, y, **settings) and the gradient's last row, computed once with
# torch 2.13.0 in float64 outside this project (torch is not a dependency, even for tests)
TORCH_LOGITS = np.array([[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4], [-3.0, 4.0, 1.0, 2.0]])
TORCH_TARGETS = np.array([0, 3, 2])
TORCH_REFERENCE = [
    ("mean", 0.0, 1.5851667589113838,
     [0.00025628320547704575, 0.28104866107446225, -0.31934074442972243, 0.038035800149783125]),
    ("sum", 0.0, 4.755500276734152,
     [0.0007688496164311373, 0.8431459832233869, -0.9580222332891674, 0.11410740044934937]),
    ("mean", 0.1, 1.6443334255780506,
     [-0.008077050127856287, 0.272715327741129, -0.29434074442972247, 0.029702466816449797]),
    ("sum", 0.3, 5.288000276734151,
     [-0.07423115038356887, 0.7681459832233868, -0.7330222332891673, 0.039107400449349364]),
]


@pytest.mark.parametrize("reduction,smoothing,loss,grad_row", TORCH_REFERENCE)
def test_matches_pytorch(reduction, smoothing, loss, grad_row):
    fn = SoftmaxCrossEntropy(reduction=reduction, label_smoothing=smoothing)
    value = fn.forward(TORCH_LOGITS, TORCH_TARGETS)
    assert isinstance(value, float) and value == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(fn.backward()[2], grad_row, rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("reduction,smoothing", SETTINGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n,c", [(1, 2), (5, 3), (8, 10)])
def test_gradcheck(reduction, smoothing, seed, n, c):
    logits, y = batch(n, c, seed)
    report = gradcheck(SoftmaxCrossEntropy(reduction=reduction, label_smoothing=smoothing), logits, y, seed=seed)
    assert report.ok, report
    assert report.worst < 1e-7


@pytest.mark.parametrize("reduction,smoothing", SETTINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_staged_and_fused_backward_agree(reduction, smoothing, seed):
    logits, y = batch(7, 5, seed)
    loss = SoftmaxCrossEntropy(reduction=reduction, label_smoothing=smoothing)
    loss.forward(logits, y)
    np.testing.assert_allclose(loss.backward(0.7), staged_backward(logits, y, reduction, smoothing, 0.7),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction,smoothing", SETTINGS)
def test_staged_backward_passes_gradcheck(reduction, smoothing):
    class Staged(SoftmaxCrossEntropy):
        def forward(self, logits, targets):
            self.inputs = (logits, targets)
            return super().forward(logits, targets)

        def backward(self, dloss=1.0):
            return staged_backward(*self.inputs, self.reduction, self.label_smoothing, dloss)
    logits, y = batch(6, 4, 3)
    report = gradcheck(Staged(reduction=reduction, label_smoothing=smoothing), logits, y)
    assert report.ok, report


def test_max_shift_passes_no_gradient():
    logits, y = batch(6, 4, 5, scale=50)
    # the staged walk's max branch is zero: shifting every logit of a row changes nothing
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, y)
    shifted = SoftmaxCrossEntropy()
    shifted.forward(logits + np.arange(6)[:, None] * 1000.0, y)
    np.testing.assert_allclose(loss.backward(), shifted.backward(), atol=1e-15)
    np.testing.assert_allclose(loss.backward().sum(axis=1), 0, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_extreme_logits_stay_finite(dtype, smoothing):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [0.0, 0.0, 0.0]], dtype)
    y = np.array([1, 2, 0])
    loss = SoftmaxCrossEntropy(label_smoothing=smoothing)
    value = loss.forward(logits, y)
    dlogits = loss.backward()
    assert np.isfinite(value) and np.isfinite(dlogits).all()
    assert dlogits.dtype == dtype
    if not smoothing:  # row 0 misses by 2e4: its loss is 2e4, not inf
        assert value == pytest.approx((2e4 + 0 + np.log(3)) / 3, rel=1e-6)
    assert np.isfinite(log_softmax(logits)).all()
    np.testing.assert_allclose(softmax(logits).sum(axis=1), 1, rtol=1e-6)


def test_softmax_and_log_softmax():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0]], np.float32)
    p = softmax(z)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p[1], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(np.exp(log_softmax(z)), p, rtol=1e-6)
    np.testing.assert_allclose(softmax(z.T, axis=0), p.T, rtol=1e-6)


def test_backward_scales_with_dloss_and_reduction():
    logits, y = batch(4, 3, 0)
    mean, total = SoftmaxCrossEntropy(), SoftmaxCrossEntropy(reduction="sum")
    mean.forward(logits, y), total.forward(logits, y)
    np.testing.assert_allclose(total.backward(2.0), 4 * mean.backward(2.0), rtol=1e-15)
    np.testing.assert_allclose(mean.backward(0.5), 0.5 * mean.backward(), rtol=1e-15)
    p = softmax(logits)
    p[np.arange(4), y] -= 1
    np.testing.assert_allclose(mean.backward(), p / 4, rtol=1e-14)


def test_float32_in_float32_out():
    logits, y = batch(4, 3, 0)
    loss = SoftmaxCrossEntropy(label_smoothing=0.1)
    assert isinstance(loss.forward(logits.astype(np.float32), y), float)
    assert loss.backward(np.float64(1.0)).dtype == np.float32


def test_repr():
    assert repr(SoftmaxCrossEntropy()) == "SoftmaxCrossEntropy()"
    assert repr(SoftmaxCrossEntropy(reduction="sum", label_smoothing=0.1)) == "SoftmaxCrossEntropy(reduction='sum', label_smoothing=0.1)"


LOGITS = np.zeros((4, 3), np.float32)


@pytest.mark.parametrize("logits,targets,error,message", [
    (LOGITS, np.zeros((4, 1), np.int64), ValueError,
     r"SoftmaxCrossEntropy\(\): expected targets of shape \(4,\) to match logits "
     r"\(4, 3\) \(one class index per position\), got \(4, 1\); flatten them with targets.ravel\(\)"),
    (LOGITS, np.zeros(4), TypeError, r"expected integer class indices as targets, got dtype float64"),
    (LOGITS, np.array([0, 1, 3, 2]), ValueError,
     r"expected class indices in \[0, 3\) or -100 \(ignore_index\) for 3 classes, got 3 at "
     r"position 2 \(1 out of range in all\)"),
    (LOGITS, np.array([0, -1, 2, 2]), ValueError, r"got -1 at position 1"),
    (LOGITS, np.array([0, 1, 2]), ValueError, r"shape \(4,\) to match logits \(4, 3\) .*got \(3,\)"),
    (np.zeros((2, 3, 5)), np.zeros((2, 4), np.int64), ValueError,
     r"expected targets of shape \(2, 3\) to match logits \(2, 3, 5\) .*got \(2, 4\)"),
    (np.zeros((2, 3, 5)), np.array([[0, 1, -100], [4, 5, -99]]), ValueError,
     r"got 5 at position \(1, 1\) \(2 out of range in all\)"),
    (np.zeros(3, np.float32), np.array([1]), ValueError,
     r"expected logits of shape \(N, C\) or \(N, \.\.\., C\), got \(3,\); for one sample use logits\[None, :\]"),
    (np.zeros((0, 3), np.float32), np.array([], np.int64), ValueError, r"got an empty batch"),
    (np.zeros((4, 3), np.int64), np.zeros(4, np.int64), TypeError, r"expected a floating-point input"),
    (LOGITS, [0, 1, 2, 0], TypeError, r"expected targets as a numpy array"),
])
def test_bad_input(logits, targets, error, message):
    with pytest.raises(error, match=message):
        SoftmaxCrossEntropy().forward(logits, targets)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match=r"SoftmaxCrossEntropy\(\): backward called before forward"):
        SoftmaxCrossEntropy().backward()


@pytest.mark.parametrize("kwargs,message", [
    ({"reduction": "none"}, r"expected reduction as one of 'mean', 'sum', got 'none'"),
    ({"label_smoothing": 1.0}, r"label_smoothing in \[0, 1\), got 1.0"),
    ({"label_smoothing": -0.1}, r"label_smoothing in \[0, 1\)"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SoftmaxCrossEntropy(**kwargs)

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


# Logits (N, T, V) = (2, 4, 5) with ignored positions: torch 2.13.0+cpu, float64, printed by
# tests/torch_reference_sequence_seams.py as (loss, dlogits) of
# F.cross_entropy(logits.permute(0, 2, 1), SEQ_TARGETS, reduction=..., label_smoothing=...).
SEQ_LOGITS = 2.0 * np.sin(np.arange(40) * 0.9 + 0.2).reshape(2, 4, 5)
SEQ_TARGETS = np.array([[1, -100, 4, 0], [-100, 3, 2, -100]])
SCE = {}
SCE['mean', 0.0] = (1.542107744935193, [[[0.019194438177031432, -0.12331572887064633, 0.07950951904046466, 0.0208172205581491, 0.003794551095001146], [0.0, 0.0, 0.0, 0.0, 0.0], [0.08085802498317349, 0.01483180279451237, 0.007007174813404871, 0.015038909151934452, -0.11773591174302517], [-0.11275799171162629, 0.08531572791269354, 0.0215356874532081, 0.003977140572732148, 0.001929435772992479]], [[0.0, 0.0, 0.0, 0.0, 0.0], [0.006251397628940024, 0.0031148396881557384, 0.007042861924876093, -0.1610255340108644, 0.14461643476889255], [0.14629688952641395, 0.035658809747141626, -0.1933152811344908, 0.0034215780481580216, 0.00793800381277718], [0.0, 0.0, 0.0, 0.0, 0.0]]])
SCE['sum', 0.0] = (7.710538724675965, [[[0.09597219088515715, -0.6165786443532316, 0.3975475952023233, 0.1040861027907455, 0.01897275547500573], [0.0, 0.0, 0.0, 0.0, 0.0], [0.4042901249158674, 0.07415901397256185, 0.03503587406702435, 0.07519454575967226, -0.5886795587151259], [-0.5637899585581314, 0.42657863956346764, 0.1076784372660405, 0.01988570286366074, 0.009647178864962394]], [[0.0, 0.0, 0.0, 0.0, 0.0], [0.03125698814470012, 0.01557419844077869, 0.03521430962438046, -0.805127670054322, 0.7230821738444627], [0.7314844476320698, 0.17829404873570812, -0.966576405672454, 0.017107890240790107, 0.0396900190638859], [0.0, 0.0, 0.0, 0.0, 0.0]]])
SCE['mean', 0.1] = (1.6235755978697664, [[[0.015194438177031432, -0.10731572887064632, 0.07550951904046467, 0.0168172205581491, -0.00020544890499885385], [0.0, 0.0, 0.0, 0.0, 0.0], [0.07685802498317348, 0.01083180279451237, 0.003007174813404871, 0.011038909151934452, -0.10173591174302515], [-0.09675799171162627, 0.08131572791269354, 0.0175356874532081, -2.28594272678522e-05, -0.0020705642270075213]], [[0.0, 0.0, 0.0, 0.0, 0.0], [0.0022513976289400242, -0.0008851603118442619, 0.003042861924876093, -0.14502553401086438, 0.14061643476889255], [0.14229688952641395, 0.03165880974714162, -0.1773152811344908, -0.0005784219518419785, 0.00393800381277718], [0.0, 0.0, 0.0, 0.0, 0.0]]])

@pytest.mark.parametrize("reduction,smoothing", [("mean", 0.0), ("sum", 0.0), ("mean", 0.1)])
def test_a_sequence_with_ignored_positions_matches_pytorch(reduction, smoothing):
    loss_fn = SoftmaxCrossEntropy(reduction=reduction, label_smoothing=smoothing)
    loss, grad = SCE[reduction, smoothing]
    assert loss_fn.forward(SEQ_LOGITS, SEQ_TARGETS) == pytest.approx(loss, rel=0, abs=1e-10)
    np.testing.assert_allclose(loss_fn.backward(), grad, rtol=0, atol=1e-10)
    staged = staged_backward(SEQ_LOGITS, SEQ_TARGETS, reduction, smoothing)
    np.testing.assert_allclose(staged, grad, rtol=0, atol=1e-10)


def test_ignored_positions_are_left_out_of_the_mean_the_accuracy_and_the_range_check():
    loss_fn = SoftmaxCrossEntropy()
    keep = SEQ_TARGETS != -100
    kept_only = SoftmaxCrossEntropy().forward(SEQ_LOGITS[keep], SEQ_TARGETS[keep])
    assert loss_fn.forward(SEQ_LOGITS, SEQ_TARGETS) == pytest.approx(kept_only, rel=1e-14)
    everything_right = SEQ_LOGITS.copy()
    everything_right[..., 0] = 100.0     # arg-max 0 everywhere, ignored positions included
    assert loss_fn.count_correct(everything_right, SEQ_TARGETS) == 1    # only the one target 0
    # an ignore_index inside [0, C) ignores that class: its positions count in no accuracy
    assert SoftmaxCrossEntropy(ignore_index=0).count_correct(everything_right, SEQ_TARGETS) == 0
    custom = SoftmaxCrossEntropy(ignore_index=7)
    assert custom.forward(SEQ_LOGITS, np.where(keep, SEQ_TARGETS, 7)) == pytest.approx(kept_only)
    with pytest.raises(ValueError, match=r"got -100 at position \(0, 1\)"):
        custom.forward(SEQ_LOGITS, SEQ_TARGETS)
    assert repr(custom) == "SoftmaxCrossEntropy(ignore_index=7)"


@pytest.mark.parametrize("reduction,loss", [("mean", "nan"), ("sum", 0.0)])
def test_an_all_ignored_batch_is_nan_for_mean_and_0_for_sum_with_zero_gradient_as_pytorch(
        reduction, loss):
    # torch 2.13: F.cross_entropy with every target -100 gives nan ("mean") or 0.0 ("sum"),
    # and a gradient of zeros in both (tests/torch_reference_sequence_seams.py's setup)
    loss_fn = SoftmaxCrossEntropy(reduction=reduction)
    value = loss_fn.forward(SEQ_LOGITS, np.full((2, 4), -100))
    assert np.isnan(value) if loss == "nan" else value == 0.0
    np.testing.assert_array_equal(loss_fn.backward(), np.zeros_like(SEQ_LOGITS))


@pytest.mark.parametrize("bad", [True, 1.5, "x"])
def test_ignore_index_must_be_an_int(bad):
    with pytest.raises(TypeError, match=r"SoftmaxCrossEntropy: expected ignore_index to be an int"):
        SoftmaxCrossEntropy(ignore_index=bad)


def test_a_loss_value_is_a_float_whose_backward_points_to_the_loss_object():
    import json
    import pickle
    loss_fn = SoftmaxCrossEntropy()
    value = loss_fn.forward(TORCH_LOGITS, TORCH_TARGETS)
    assert isinstance(value, float) and value == pytest.approx(1.5851667589113838)
    assert json.loads(json.dumps({"loss": value}))["loss"] == value
    assert type(pickle.loads(pickle.dumps(value))) is float and type(value + 1.0) is float
    assert np.asarray([value]).dtype == np.float64 and f"{value:.3f}" == "1.585"
    with pytest.raises(AttributeError, match=r"call loss_fn.backward\(\) on the loss object, "
                                             r"which returns dL/dpred, then model.backward\(dpred\) "
                                             r"\(see 'Coming from PyTorch' in the README\)"):
        value.backward()

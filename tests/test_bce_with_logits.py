"""BCEWithLogitsLoss beyond the shared tests: stability, staged against fused, its own errors."""
import warnings

import numpy as np
import pytest

from handprop.layers.gradcheck import gradcheck
from handprop.losses import BCEWithLogitsLoss
from handprop.losses.bce_with_logits import staged_backward

SETTINGS = [("mean", None), ("sum", None), ("mean", [3.0, 0.5, 1.0]), ("none", [0.2, 1.0, 4.0])]


def batch(seed, shape=(7, 3), scale=4.0):
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal(shape)
    logits[0, 0] = 0.0  # the kink of max(z, 0) and |z|, which the staged walk must get right
    return logits, rng.integers(0, 2, shape).astype(float), rng.standard_normal(shape)


@pytest.mark.parametrize("reduction,pos_weight", SETTINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_staged_and_fused_backward_agree(reduction, pos_weight, seed):
    logits, y, upstream = batch(seed)
    y[1] = [0.25, 0.5, 1.0]  # soft labels too
    loss = BCEWithLogitsLoss(reduction=reduction, pos_weight=pos_weight)
    loss.forward(logits, y)
    dloss = upstream if reduction == "none" else 0.7
    p = None if pos_weight is None else np.array(pos_weight)
    np.testing.assert_allclose(loss.backward(dloss), staged_backward(logits, y, reduction, p, dloss),
                               rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("reduction,pos_weight", SETTINGS[:3])
def test_staged_backward_passes_gradcheck(reduction, pos_weight):
    class Staged(BCEWithLogitsLoss):
        def forward(self, logits, target):
            self.inputs = (logits, target)
            return super().forward(logits, target)

        def backward(self, dloss=1.0):
            p = None if self.pos_weight is None else self.pos_weight
            return staged_backward(*self.inputs, self.reduction, p, dloss)
    logits, y, _ = batch(2, scale=2.0)
    report = gradcheck(Staged(reduction=reduction, pos_weight=pos_weight), logits, y)
    assert report.ok, report


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pos_weight", [None, [2.0]])
def test_extreme_logits_stay_finite_and_exact(dtype, pos_weight):
    z = np.array([[1e4], [-1e4], [1e4], [-1e4], [0.0]], dtype)
    y = np.array([[1.0], [0.0], [0.0], [1.0], [1.0]], dtype)
    loss = BCEWithLogitsLoss(reduction="none", pos_weight=pos_weight)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no divide-by-zero, no invalid value
        losses = loss.forward(z, y)
        dz = loss.backward(np.ones_like(z))
    p = 1.0 if pos_weight is None else 2.0
    # right by 1e4: loss exp(-1e4), which is 0; wrong by 1e4: loss 1e4 (times p if positive)
    np.testing.assert_array_equal(losses[:4, 0], [0.0, 0.0, 1e4, p * 1e4])
    assert losses[4, 0] == pytest.approx(p * np.log(2), rel=1e-6)
    np.testing.assert_array_equal(dz[:4, 0], [0.0, 0.0, 1.0, -p])
    assert losses.dtype == dz.dtype == dtype


def test_small_losses_keep_their_relative_precision():
    # -log sigmoid(z) for z = 40 is exp(-40) ~ 4.2e-18: no cancellation against z anywhere
    z, y = np.array([40.0, -40.0]), np.array([1.0, 0.0])
    loss = BCEWithLogitsLoss(reduction="none")
    np.testing.assert_allclose(loss.forward(z, y), np.exp(-40.0), rtol=1e-15)
    np.testing.assert_allclose(loss.backward(np.ones(2)), [-np.exp(-40.0), np.exp(-40.0)], rtol=1e-14)


def test_the_naive_formula_fails_where_this_one_does_not():
    z, y = np.array([-800.0, 40.0]), np.array([1.0, 0.0])
    with np.errstate(all="ignore"):
        sig = 1 / (1 + np.exp(-z))  # 0 for z = -800 (exp overflows), 1 for z = 40 (rounding)
        naive = -y * np.log(sig) - (1 - y) * np.log(1 - sig)
    assert np.isinf(naive).all()
    losses = BCEWithLogitsLoss(reduction="none").forward(z, y)
    np.testing.assert_allclose(losses, [800.0, 40.0], rtol=1e-15)


def test_pos_weight_broadcasts_over_the_last_axis():
    logits, y, _ = batch(3, shape=(5, 2))
    weighted = BCEWithLogitsLoss(reduction="none", pos_weight=[3.0, 0.5]).forward(logits, y)
    plain = BCEWithLogitsLoss(reduction="none").forward(logits, y)
    # the positive term is scaled by its column's weight; the negative term is untouched
    expected = np.where(y == 1, plain * np.array([3.0, 0.5]), plain)
    np.testing.assert_allclose(weighted, expected, rtol=1e-14)


def test_count_correct_is_logit_sign_against_label():
    z = np.array([[2.0], [-1.0], [0.5], [-3.0], [0.0]])
    y = np.array([[1.0], [0.0], [0.0], [1.0], [0.0]])
    assert BCEWithLogitsLoss().count_correct(z, y) == 2 + 1  # z = 0 is "negative"


@pytest.mark.parametrize("logits,target,loss,message", [
    (np.zeros((4, 1)), np.array([[0.0], [1.0], [2.0], [1.0]]), BCEWithLogitsLoss(),
     r"^BCEWithLogitsLoss\(\): expected targets in \[0, 1\] \(the probability of the positive "
     r"class\), got 2.0 at flat position 2 \(1 outside in all\); for class indices use "
     r"SoftmaxCrossEntropy$"),
    (np.zeros((2, 1)), np.array([[np.nan], [1.0]]), BCEWithLogitsLoss(), r"got nan at flat position 0"),
    (np.zeros((4, 3)), np.zeros((4, 3)), BCEWithLogitsLoss(pos_weight=[1.0, 2.0]),
     r"^BCEWithLogitsLoss\(pos_weight=\[1.0, 2.0\]\): expected logits whose last axis matches "
     r"pos_weight's 2 entries \(one per output\), got logits of shape \(4, 3\)$"),
])
def test_bad_input(logits, target, loss, message):
    with pytest.raises(ValueError, match=message):
        loss.forward(logits, target)

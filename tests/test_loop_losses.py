"""fit and evaluate with the losses of values: accuracy only where it means something."""
import numpy as np
import pytest

from handprop.layers import Linear, ReLU, Sequential
from handprop.losses import BCEWithLogitsLoss, HuberLoss, L1Loss, MSELoss, SoftmaxCrossEntropy
from handprop.train import SGD, evaluate, fit
from handprop.train.data import moons, noisy_curve, spiral


def mlp(d_in, d_out, dtype=np.float32):
    return Sequential(Linear(d_in, 8, rng=0, dtype=dtype), ReLU(), Linear(8, d_out, rng=1, dtype=dtype))


@pytest.mark.parametrize("loss_fn", [MSELoss(), L1Loss(reduction="sum"), HuberLoss(delta=0.5)])
def test_regression_history_has_no_accuracy(loss_fn):
    X, y = noisy_curve(64, seed=0)
    model = mlp(1, 1)
    history = fit(model, loss_fn, SGD(model, lr=0.01), X, y, epochs=2, batch_size=16,
                  validation=noisy_curve(32, seed=1), progress=False)
    assert list(history) == ["epoch", "loss", "val_loss", "seconds"]
    assert set(evaluate(model, loss_fn, X, y)) == {"loss"}


def test_evaluate_regression_matches_one_big_batch():
    model = mlp(1, 1, np.float64)
    X, y = noisy_curve(50, dtype=np.float64)
    whole = MSELoss().forward(model.forward(X), y)
    assert evaluate(model, MSELoss(), X, y, batch_size=13)["loss"] == pytest.approx(whole, rel=1e-12)
    total = evaluate(model, MSELoss(reduction="sum"), X, y, batch_size=13)["loss"]
    assert total == pytest.approx(whole, rel=1e-12)  # one output: mean per sample = mean per element


def test_binary_accuracy_is_logit_sign_against_label():
    X, y = moons(40, seed=0)
    model = mlp(2, 1)
    scores = evaluate(model, BCEWithLogitsLoss(), X, y[:, None], batch_size=7)
    logits = model.eval().forward(X)
    assert scores["accuracy"] == np.mean((logits[:, 0] > 0) == (y == 1))


def test_multi_label_accuracy_counts_every_decision():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 2)), rng.integers(0, 2, (30, 3))
    model = mlp(2, 3)
    scores = evaluate(model, BCEWithLogitsLoss(), X, Y, batch_size=8)
    logits = model.eval().forward(X.astype(np.float32))
    assert scores["accuracy"] == pytest.approx(np.mean((logits > 0) == (Y == 1)))  # over 90 decisions


def test_a_flat_target_for_one_output_is_a_clear_error():
    X, y = moons(40, seed=0)
    model = mlp(2, 1)
    with pytest.raises(ValueError, match=r"^fit: y has shape \(40,\), but the model's outputs \(40, 1\) "
                                         r"need targets of shape \(40, 1\); .* use y.reshape\(40, 1\)"):
        fit(model, BCEWithLogitsLoss(), SGD(model, lr=0.1), X, y, epochs=1, batch_size=64, progress=False)


def test_a_loss_that_does_not_reduce_is_refused():
    X, y = noisy_curve(20)
    model = mlp(1, 1)
    with pytest.raises(ValueError, match=r"^fit: expected a loss that reduces to one number, got "
                                         r"MSELoss\(reduction='none'\); use reduction='mean' or 'sum'$"):
        fit(model, MSELoss(reduction="none"), SGD(model, lr=0.1), X, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"^evaluate: expected a loss that reduces"):
        evaluate(model, L1Loss(reduction="none"), X, y)


def test_a_loss_that_is_not_a_loss_subclass_keeps_arg_max_accuracy():
    class Plain:  # duck-typed: forward and backward only, as fit's docstring allows
        def __init__(self):
            self.inner = SoftmaxCrossEntropy()

        def forward(self, logits, targets):
            return self.inner.forward(logits, targets)

        def backward(self, dloss=1.0):
            return self.inner.backward(dloss)
    X, y = spiral(20, 3)
    model = mlp(2, 3)
    scores = evaluate(model, Plain(), X, y)
    assert scores == evaluate(model, SoftmaxCrossEntropy(), X, y)


@pytest.mark.parametrize("make,shape", [(moons, (50, 2)), (noisy_curve, (50, 1))])
def test_toy_data(make, shape):
    X, y = make(50, noise=0.1, seed=3, dtype=np.float64)
    assert X.shape == shape and X.dtype == np.float64
    X2, y2 = make(50, noise=0.1, seed=3, dtype=np.float64)
    np.testing.assert_array_equal(X, X2)
    if make is moons:
        assert y.dtype == np.int64 and np.bincount(y).tolist() == [25, 25]
        # noise-free: every point lies on its unit half-circle
        Xc, yc = moons(9, noise=0.0)
        centre = np.where(yc[:, None] == 0, [0.0, 0.0], [1.0, 0.5])
        np.testing.assert_allclose(np.linalg.norm(Xc - centre, axis=1), 1, rtol=1e-6)
        assert (Xc[yc == 0, 1] >= -1e-7).all() and (Xc[yc == 1, 1] <= 0.5 + 1e-7).all()
    else:
        assert y.shape == (50, 1) and np.abs(X).max() <= 1
        noise = y - np.sin(3 * X)
        assert 0.05 < noise.std() < 0.15
    with pytest.raises(ValueError, match=rf"^{make.__name__}: expected n_samples >= \d, got 0$"):
        make(0)
    with pytest.raises(TypeError, match=rf"^{make.__name__}: expected n_samples to be an int, got 5.0$"):
        make(5.0)

"""Non-finite numbers: data refused up front, BatchNorm never poisoned, a loss turning
non-finite named with the optimizer's settings."""
import numpy as np
import pytest

from handprop.layers import BatchNorm1d, mlp
from handprop.losses import Loss, SoftmaxCrossEntropy
from handprop.train import SGD, evaluate, fit, predict
from handprop.train.data import spiral


class Values(Loss):
    """Stands in for a regression loss: only its ``targets`` matters before training starts."""

    targets = "values"


@pytest.mark.parametrize("call", ["fit", "evaluate", "predict", "validation"])
@pytest.mark.parametrize("bad,shown", [(np.nan, "nan"), (np.inf, "inf"), (1e39, "inf")])
def test_non_finite_data_is_refused_before_it_touches_the_model(call, bad, shown, assert_same_state):
    X, y = spiral(20, 3, dtype=np.float64)
    X[[7, 11], 1] = bad  # 1e39 is finite in float64 but overflows the model's float32
    model = mlp(2, [8], 3)
    before = model.state_dict()
    who = {"validation": "fit: validation: X_val"}.get(call, f"{call}: X")  # the name the caller gave
    with pytest.raises(ValueError, match=rf"^{who} holds "
                                         rf"{shown} in row 7 \(2 such rows\); non-finite data would poison"):
        if call == "fit":
            fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1, progress=False)
        elif call == "validation":
            fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), *spiral(20, 3), epochs=1,
                progress=False, validation=(X, y))
        elif call == "evaluate":
            evaluate(model, SoftmaxCrossEntropy(), X, y)
        else:
            predict(model, X)
    assert_same_state(before, model.state_dict())


def test_non_finite_targets_of_a_regression_are_refused():
    model = mlp(2, [8], 1)
    X, y = spiral(10, 3)
    y = y.astype(np.float64)
    y[4] = np.nan
    with pytest.raises(ValueError, match=r"fit: y holds nan in row 4 \(1 such rows\)"):
        fit(model, Values(), SGD(model, lr=0.1), X, y, epochs=1, progress=False)


def test_batchnorm_running_statistics_ignore_a_non_finite_batch(rng):
    bn = BatchNorm1d(4, dtype=np.float64)
    bn.forward(rng.standard_normal((16, 4)))
    before = {k: v.copy() for k, v in bn.buffers.items()}
    for bad in (np.nan, np.inf, 1e308):
        x = rng.standard_normal((16, 4))
        x[3, 2] = bad
        with np.errstate(all="ignore"):
            bn.forward(x)
        for k, v in before.items():
            np.testing.assert_array_equal(bn.buffers[k], v, err_msg=k)
    bn.forward(rng.standard_normal((16, 4)))  # a finite batch still moves them
    assert not np.array_equal(bn.running_mean, before["running_mean"])


def test_evaluate_after_a_non_finite_batch_is_still_finite():
    """The issue's case: a NaN batch once reached BatchNorm; eval-mode results stay finite."""
    model = mlp(2, [8], 3)
    X, y = spiral(20, 3)
    fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1, progress=False)
    poisoned = X[:16].copy()
    poisoned[0, 0] = np.nan
    with np.errstate(all="ignore"):
        model.train().forward(poisoned)
    assert all(np.isfinite(v).all() for v in model.buffers.values())
    assert np.isfinite(evaluate(model, SoftmaxCrossEntropy(), X, y)["loss"])


def test_a_loss_turning_non_finite_names_the_optimizer_settings():
    class NanAtStep3(SoftmaxCrossEntropy):
        calls = 0

        def forward(self, logits, targets):
            self.calls += 1
            return float("nan") if self.calls == 3 else super().forward(logits, targets)
    model = mlp(2, [8], 3)
    opt = SGD(model, lr=0.1, momentum=0.9, weight_decay=1e-4)
    with pytest.raises(FloatingPointError, match=r"the loss became nan at epoch 1, step 3; training stopped "
                                                  r"before applying that step. The data are finite \(checked "
                                                  r"before training\), so the weights diverged under the "
                                                  r"optimizer's settings \(lr=0.1, momentum=0.9, "
                                                  r"weight_decay=0.0001\). Try a smaller learning rate than "
                                                  r"lr=0.1, less momentum, less weight decay"):
        fit(model, NanAtStep3(), opt, *spiral(20, 3), epochs=1, batch_size=16, progress=False)

"""fit, evaluate, predict, minibatches and the command line."""
import re
import subprocess
import sys

import numpy as np
import pytest

from handprop.layers import BatchNorm1d, Linear, ReLU, Sequential, mlp
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD, evaluate, fit, predict
from handprop.train.__main__ import main
from handprop.train.data import batch_bounds, minibatches, spiral


def small_problem(seed=0, n=60):
    X, y = spiral(n, 3, seed=seed)
    return X, y


def train_once(seed=0, epochs=3, **kwargs):
    X, y = small_problem()
    model = mlp(2, [16], 3, seed=seed)
    opt = SGD(model, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    history = fit(model, SoftmaxCrossEntropy(), opt, X, y, epochs=epochs, batch_size=16,
                  validation=small_problem(seed=1, n=20), seed=seed, progress=False, **kwargs)
    return model, opt, history


def test_same_seed_gives_bit_identical_weights():
    a, b = train_once()[0], train_once()[0]
    for name, p in a.params.items():
        np.testing.assert_array_equal(p, b.params[name], err_msg=name)
    for name, buf in a.buffers.items():
        np.testing.assert_array_equal(buf, b.buffers[name], err_msg=name)
    c = train_once(seed=1)[0]
    assert not np.array_equal(a.params["0.W"], c.params["0.W"])


def test_history_has_the_promised_fields():
    seen = []
    model, _, history = train_once(epochs=4, on_epoch_end=seen.append)
    assert list(history) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
    assert history["epoch"] == [1, 2, 3, 4]
    assert all(len(v) == 4 for v in history.values())
    assert all(0 <= a <= 1 for a in history["accuracy"] + history["val_accuracy"])
    assert all(s > 0 for s in history["seconds"])
    assert history["loss"][-1] < history["loss"][0]
    assert [logs["epoch"] for logs in seen] == [1, 2, 3, 4] and seen[-1]["loss"] == history["loss"][-1]
    assert model.training


def test_history_without_validation():
    X, y = small_problem()
    model = mlp(2, [8], 3)
    history = fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1, progress=False)
    assert list(history) == ["epoch", "loss", "accuracy", "seconds"]


def test_float32_stays_float32():
    model, opt, _ = train_once()
    assert all(p.dtype == np.float32 for p in [*model.params.values(), *model.grads.values(),
                                               *model.buffers.values(), *opt.momentum_buffers.values()])
    assert predict(model, small_problem()[0]).dtype == np.float32


@pytest.mark.parametrize("start_training", [True, False])
def test_evaluate_and_predict_restore_the_mode(start_training):
    model = mlp(2, [8], 3).train(start_training)
    X, y = small_problem()
    before = {k: v.copy() for k, v in model.buffers.items()}
    scores = evaluate(model, SoftmaxCrossEntropy(), X, y, batch_size=50)
    assert set(scores) == {"loss", "accuracy"} and isinstance(scores["loss"], float)
    assert model.training == start_training and model[1].training == start_training
    out = predict(model, X, batch_size=7)
    assert out.shape == (len(X), 3) and model.training == start_training
    for k, v in before.items():  # eval mode: running statistics untouched
        np.testing.assert_array_equal(model.buffers[k], v)
    np.testing.assert_allclose(out, model.eval().forward(X), rtol=1e-6)


def test_evaluate_matches_one_big_batch():
    model = mlp(2, [8], 3, dtype=np.float64).eval()
    X, y = spiral(40, 3, dtype=np.float64)
    loss_fn = SoftmaxCrossEntropy()
    whole = loss_fn.forward(model.forward(X), y)
    assert evaluate(model, loss_fn, X, y, batch_size=13)["loss"] == pytest.approx(whole, rel=1e-12)
    total = evaluate(model, SoftmaxCrossEntropy(reduction="sum"), X, y, batch_size=13)["loss"]
    assert total == pytest.approx(whole, rel=1e-12)  # mean per sample whatever the reduction


def test_a_nan_loss_stops_training_with_a_clear_error():
    class NanAtSecondEpoch(SoftmaxCrossEntropy):
        calls = 0

        def forward(self, logits, targets):
            self.calls += 1
            loss = super().forward(logits, targets)
            return float("nan") if self.calls == 4 + 3 else loss  # 4 steps an epoch
    X, y = spiral(20, 3)
    model = mlp(2, [8], 3)
    opt = SGD(model, lr=0.1)
    with pytest.raises(FloatingPointError, match=r"the loss became nan at epoch 2, step 3; training "
                                                  r"stopped .* Try a smaller learning rate than lr=0.1"):
        fit(model, NanAtSecondEpoch(), opt, X, y, epochs=3, batch_size=16, progress=False)


def test_a_diverging_run_stops_on_its_own():
    X, y = spiral(50, 3)
    model = mlp(2, [32, 32], 3, norm=None)
    with pytest.raises(FloatingPointError, match=r"the loss became (nan|inf)"):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=1e6, momentum=0.9), X * 100, y,
            epochs=5, progress=False)


def test_a_trailing_batch_of_one_never_reaches_batchnorm():
    X, y = spiral(65, 2)
    X, y = X[:129], y[:129]
    assert batch_bounds(129, 64) == [(0, 64), (64, 129)]
    model = Sequential(Linear(2, 4, rng=0), BatchNorm1d(4), ReLU(), Linear(4, 2, rng=1))
    fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=2, batch_size=64, progress=False)
    assert batch_bounds(1, 64) == [(0, 1)]  # a dataset of one sample stays one batch


def test_minibatches_cover_every_sample_once():
    X, y = np.arange(10.0)[:, None], np.arange(10)
    batches = list(minibatches(X, y, 4, np.random.default_rng(0)))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate([b[1] for b in batches])) == list(range(10))
    again = list(minibatches(X, y, 4, np.random.default_rng(0)))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches, again))
    ordered = list(minibatches(X, y, 4))
    assert np.shares_memory(ordered[0][0], X)  # in order: views, no copies
    with pytest.raises(ValueError, match="X has 10 samples but y has 9"):
        next(minibatches(X, y[:9], 4))
    with pytest.raises(ValueError, match=r"minibatches: expected batch_size >= 1, got 0"):
        next(minibatches(X, y, 0))


def test_fit_checks_its_arguments():
    X, y = small_problem()
    model = mlp(2, [8], 3)
    with pytest.raises(ValueError, match=r"fit: X has 180 samples but y has 179"):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y[:-1], epochs=1)
    with pytest.raises(ValueError, match=r"fit: expected epochs >= 1, got 0"):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=0)


def test_length_errors_name_the_arguments_as_the_caller_passed_them():
    X, y = small_problem()
    model = mlp(2, [8], 3)
    with pytest.raises(ValueError, match=r"^fit: validation: X_val has 180 samples but y_val has 9$"):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1, validation=(X, y[:9]))
    with pytest.raises(ValueError, match=r"^evaluate: X has 180 samples but y has none \(a scalar\)$"):
        evaluate(model, SoftmaxCrossEntropy(), X, 3)
    with pytest.raises(ValueError, match=r"^fit: validation: expected whole-number class labels y_val, "
                                         r"got 0.5 at y_val\[1, 0\]"):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1,
            validation=(X[:2], [[0.0], [0.5]]))


def test_shape_errors_from_a_batch_name_the_data_the_caller_passed():
    X, y = small_problem()
    model = mlp(2, [8], 3)
    wide = np.hstack([X, X[:, :1]])
    # found on the first sample, before training
    with pytest.raises(ValueError, match=r"^fit: X of shape \(180, 3\): Linear\(2, 8.*got \(1, 3\)"):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), wide, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"^fit: validation: X_val of shape \(180, 3\): Linear\(2, 8"):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1, progress=False,
            validation=(wide, y))
    with pytest.raises(ValueError, match=r"^evaluate: y\[\d+\] = [345] is not a class of the model's 3 outputs"):
        evaluate(model, SoftmaxCrossEntropy(), X, y + 3)  # labels past the 3 classes
    with pytest.raises(ValueError, match=r"^predict: X of shape \(180, 3\): Linear\(2, 8"):
        predict(model, wide)


def test_progress_bars_and_silence(capsys):
    X, y = small_problem()
    model = mlp(2, [8], 3)
    fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=2, progress=False)
    assert capsys.readouterr() == ("", "")
    fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=2, validation=(X, y))
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "val_acc=" in err


def test_spiral():
    X, y = spiral(50, 4, noise=0.1, seed=3, dtype=np.float64)
    assert X.shape == (200, 2) and X.dtype == np.float64 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [50] * 4
    np.testing.assert_array_equal(X, spiral(50, 4, noise=0.1, seed=3, dtype=np.float64)[0])
    assert np.abs(X).max() <= 1.0 + 1e-12


SUMMARY = re.compile(r"^val_accuracy=(\d\.\d{3}) val_loss=\d+\.\d{3} train_accuracy=\d\.\d{3} "
                     r"train_loss=\d+\.\d{3} epochs=(\d+) seconds=\d+\.\d$")


def test_cli_end_to_end(capsys):
    assert main(["--epochs", "2", "--hidden", "16,8", "--activation", "tanh", "--no-progress",
                 "--nesterov", "--weight-decay", "1e-4", "--batch-size", "128"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["#", "layer", "params"] and "Tanh()" in "\n".join(out)
    assert out[-3].startswith("epoch=1 loss=") and "val_accuracy=" in out[-3]
    match = SUMMARY.match(out[-1])
    assert match and match.group(2) == "2"


def test_cli_float64_without_batchnorm(capsys):
    assert main(["--epochs", "1", "--hidden", "8", "--no-batchnorm", "--dtype", "float64",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "BatchNorm1d" not in out and "dtype=float64" in out


@pytest.mark.parametrize("argv,message", [
    (["--lr", "0"], "expected a finite number > 0, got 0"),
    (["--lr", "nan"], "expected a finite number > 0, got nan"),
    (["--momentum", "inf"], "expected a finite number >= 0, got inf"),
    (["--weight-decay=-1e-4"], "expected a finite number >= 0, got -1e-4"),
    (["--seed", "-1"], "expected a finite number >= 0, got -1"),
    (["--batch-size", "many"], "invalid int value: 'many'"),
    (["--hidden", "100,x"], "expected comma-separated widths"),
    (["--activation", "softplus"], "invalid choice: 'softplus'"),
    (["--epochs", "-3"], "expected a finite number > 0"),
    (["--nesterov", "--momentum", "0"], "--nesterov needs --momentum > 0"),
])
def test_cli_bad_flags_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_python_dash_m_train_runs():
    done = subprocess.run([sys.executable, "-m", "handprop.train", "--epochs", "1", "--hidden", "8"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert SUMMARY.match(done.stdout.splitlines()[-1])
    assert "epoch 1/1" in done.stderr


def test_fit_meets_a_script_halfway():
    X, y = small_problem()
    model, strict = mlp(2, [8], 3), mlp(2, [8], 3)
    history = fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X.astype(np.float64).tolist(),
                  y.astype(np.float64), epochs=2, progress=False,
                  validation=(X.astype(np.float64), y.tolist()))
    expected = fit(strict, SoftmaxCrossEntropy(), SGD(strict, lr=0.1), X, y, epochs=2,
                   progress=False, validation=(X, y))
    assert history["val_loss"] == expected["val_loss"]  # converted once: the same run exactly
    assert model.params["0.W"].dtype == np.float32
    assert predict(model, X[:3].astype(np.float64)).dtype == np.float32
    assert evaluate(model, SoftmaxCrossEntropy(), X.tolist(), y)["loss"] > 0


@pytest.mark.parametrize("X,y,error,message", [
    ([], [], ValueError, r"fit: expected at least one sample in X, got an array of shape \(0,\)"),
    (np.zeros((4, 2)), [0, 1, 2.5, 1], ValueError,
     r"fit: expected whole-number class labels y, got 2.5 at y\[2\] \(1 such values\); they are never truncated"),
    (np.zeros((4, 2)), [0, 1, np.nan, 1], ValueError, r"got nan at y\[2\]"),
    (np.zeros((4, 2)), ["a", "b", "c", "d"], TypeError, r"expected integer class labels y, got dtype <U1"),
    ([["a", "b"]], [0], TypeError, r"fit: expected real-valued inputs X, got an array of dtype <U1"),
    (np.zeros((4, 2)), [0, 1], ValueError, r"fit: X has 4 samples but y has 2"),
])
def test_fit_refuses_bad_data_clearly(X, y, error, message):
    model = mlp(2, [8], 3)
    with pytest.raises(error, match=message):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1, progress=False)


def test_validation_without_labels_and_an_optimizer_of_another_model():
    X, y = small_problem()
    model = mlp(2, [8], 3)
    with pytest.raises(ValueError, match=r"fit: expected validation=\(X_val, y_val\), a pair, got an "
                                         r"array of shape \(180, 2\)"):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1, validation=X)
    other = mlp(2, [8], 3)
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"fit: the optimizer SGD\(.*\) was built for another model"):
        fit(model, SoftmaxCrossEntropy(), SGD(other, lr=0.1), X, y, epochs=1, progress=False)
    for k, v in before.items():
        np.testing.assert_array_equal(v, model.state_dict()[k])
    with pytest.raises(ValueError, match=r"evaluate: expected at least one sample"):
        evaluate(model, SoftmaxCrossEntropy(), np.zeros((0, 2)), [])
    with pytest.raises(ValueError, match=r"predict: expected at least one sample"):
        predict(model, [])

"""fit(workers=N): every batch split between N copies of the model on threads
(handprop.layers.DataParallel), BLAS on one thread meanwhile: the run of workers=1 to rounding,
checkpoints the bare model reads, and a bad count refused before anything changes."""
import numpy as np
import pytest
import threadpoolctl

from handprop.layers import (
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    mlp,
)
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD, fit
from handprop.train.checkpoint import load
from handprop.train.data import spiral

F64 = np.float64


def small_cnn():
    return Sequential(Conv2d(1, 3, 3, padding=1, rng=0, dtype=F64), BatchNorm2d(3, dtype=F64),
                      ReLU(), MaxPool2d(2), Flatten(), Linear(3 * 3 * 3, 2, rng=1, dtype=F64))


def train(build, X, y, workers, **kwargs):
    model = build()
    history = fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1, momentum=0.9), X, y, epochs=2,
                  batch_size=7, seed=3, progress=False, workers=workers, **kwargs)
    return model, history


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_two_workers_train_as_one_to_rounding(kind):
    """BatchNorm's statistics are the whole batch's on every shard (batches of 7, split 4 and
    3; the CNN's last has 8, a lone sample joining it), so the weights, running statistics and
    history follow workers=1's."""
    if kind == "mlp":
        (X, y), build = spiral(10, 2), lambda: mlp(2, [6], 2, seed=0, dtype=F64)
    else:
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((22, 1, 6, 6)), rng.integers(0, 2, 22)
        build = small_cnn
    whole, history = train(build, X, y, 1, validation=(X[:5], y[:5]))
    split, split_history = train(build, X, y, 2, validation=(X[:5], y[:5]))
    for name, value in whole.state_dict().items():
        np.testing.assert_allclose(split.state_dict()[name], value, rtol=0, atol=1e-12,
                                   err_msg=name)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(split_history[key], history[key], rtol=0, atol=1e-12)


class Rows(ReLU):
    """ReLU that notes how many rows each forward pass of this copy sees."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(len(x))
        return super().forward(x)


def test_each_copy_runs_its_shard_in_training_and_in_validation():
    X, y = spiral(8, 2)                                  # 16 rows: batches of 8, shards of 4
    spy = Rows()
    model = Sequential(Linear(2, 4, rng=0, dtype=F64), spy, Linear(4, 2, rng=1, dtype=F64))
    fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1, batch_size=8,
        validation=(X[:6], y[:6]), progress=False, workers=2)
    # fit's checks run one sample of X and of X_val first; then the module's own copy runs
    # shard 0 of each training batch and of the validation data
    assert spy.seen == [1, 1, 4, 4, 3]


def test_blas_runs_one_thread_while_the_workers_train_and_its_count_comes_back():
    seen = []
    before = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    X, y = spiral(10, 2)
    train(lambda: mlp(2, [6], 2, seed=0, dtype=F64), X, y, 2, on_epoch_end=lambda logs: seen.append(
        [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]))
    assert seen == [[1] * len(before)] * 2
    assert [p["num_threads"] for p in threadpoolctl.threadpool_info()
            if p["user_api"] == "blas"] == before


def test_the_checkpoint_holds_the_bare_models_names(tmp_path):
    X, y = spiral(10, 2)
    model, _ = train(lambda: mlp(2, [6], 2, seed=0, dtype=F64), X, y, 2,
                     checkpoint=tmp_path / "run.npz")
    fresh = mlp(2, [6], 2, seed=1, dtype=F64)
    load(tmp_path / "run.npz", fresh)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name], value, err_msg=name)


@pytest.mark.parametrize("workers, error, message", [
    (0, ValueError, r"^fit: expected workers in \[1, 256\], got 0$"),
    (300, ValueError, r"^fit: expected workers in \[1, 256\], got 300$"),
    (2.5, TypeError, r"^fit: expected workers to be an int, got 2.5$"),
    (True, TypeError, r"^fit: expected workers to be an int, got True$"),
])
def test_a_bad_worker_count_is_refused_before_anything_changes(assert_same_state, workers,
                                                                error, message):
    X, y = spiral(10, 2)
    model = mlp(2, [6], 2, seed=0)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(error, match=message):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1, progress=False,
            workers=workers)
    assert_same_state(before, model.state_dict())


class Counting(Linear):
    """A user's layer that keeps a buffer of its own: a split would count each shard apart."""

    def __init__(self):
        super().__init__(2, 2, rng=0, dtype=F64)
        self.buffers = {"rows_seen": np.zeros(1)}


def test_a_model_the_split_would_change_is_refused_naming_fit_and_the_layer(assert_same_state):
    X, y = spiral(10, 2)
    model = Sequential(Counting(), ReLU())
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"^fit: workers=2: DataParallel: expected a module whose "
                                         r"only buffers are BatchNorm's .* got Counting at '0'"):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1, progress=False,
            workers=2)
    assert_same_state(before, model.state_dict())

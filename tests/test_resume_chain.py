"""Resuming: every checkpoint fit writes resumes again, whatever changed between the runs
(validation switched on or off, the number of epochs), and all random state is in it."""
import math
import signal
import warnings

import numpy as np
import pytest

from handprop.layers import Dropout, Linear, ReLU, Residual, Sequential, mlp
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD, fit
from handprop.train.checkpoint import load, read_extra, save
from handprop.train.data import spiral

X, Y = spiral(20, 3)
VALIDATION = spiral(5, 3, seed=1)


def run(path=None, *, epochs, validation=None, resume=False):
    model = mlp(2, [8], 3, seed=0)
    opt = SGD(model, lr=0.1, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the run is finished" is tested elsewhere
        history = fit(model, SoftmaxCrossEntropy(), opt, X, Y, epochs=epochs, batch_size=16,
                      validation=validation, seed=3, progress=False, checkpoint=path,
                      resume=resume)
    return model, history


def test_a_resume_chain_that_switches_validation_and_epochs_stays_resumable(tmp_path, assert_same_state):
    path = tmp_path / "run.npz"
    run(path, epochs=1, validation=VALIDATION)
    run(path, epochs=3, resume=True)                          # validation off, more epochs
    run(path, epochs=2, validation=VALIDATION, resume=True)   # fewer epochs: finished
    model, history = run(path, epochs=4, validation=VALIDATION, resume=True)
    assert history["epoch"] == [1, 2, 3, 4]
    assert all(len(values) == 4 for values in history.values())
    val_loss = history["val_loss"]
    assert not math.isnan(val_loss[0]) and math.isnan(val_loss[1]) and math.isnan(val_loss[2])
    assert not math.isnan(val_loss[3])
    assert read_extra(path)["fit"]["epoch"] == 4
    straight, straight_history = run(epochs=4)
    assert_same_state(straight.state_dict(), model.state_dict())
    assert history["loss"] == straight_history["loss"]


def test_validation_switched_on_later_is_nan_for_the_epochs_before(tmp_path):
    path = tmp_path / "run.npz"
    run(path, epochs=2)
    _, history = run(path, epochs=3, validation=VALIDATION, resume=True)
    assert [math.isnan(v) for v in history["val_accuracy"]] == [True, True, False]
    _, again = run(path, epochs=4, resume=True)
    assert len(again["val_loss"]) == 4 and np.isnan(again["val_loss"][3])


def test_a_history_of_uneven_lengths_is_refused_with_the_way_to_load_the_weights(tmp_path):
    model, _ = run(epochs=1)
    path = tmp_path / "uneven.npz"
    save(path, model, SGD(model, lr=0.1, momentum=0.9), fit={"epoch": 2, "history": {"epoch": [1, 2], "val_loss": [0.5]},
                           "rng": np.random.default_rng(0).bit_generator.state})
    with pytest.raises(ValueError, match=r"history to hold 2 numbers per metric; its weights "
                                         r"still load .*checkpoint.load"):
        run(path, epochs=3, resume=True)


def dropout_model():
    """Two Dropout layers of p=0.3, one inside a Residual, and an SGD with momentum."""
    model = Sequential(Linear(2, 16, rng=0), ReLU(), Dropout(0.3, rng=1),
                       Residual(Sequential(Linear(16, 16, rng=2), Dropout(0.3, rng=3))),
                       Linear(16, 3, rng=4))
    return model, SGD(model, lr=0.05, momentum=0.9)


def run_fit(checkpoint=None, resume=False, epochs=4, loss_fn=None):
    """fit of ``dropout_model``, 8 steps an epoch (the kill -9 fixture's ``run_fit``)."""
    model, opt = dropout_model()
    X, y = spiral(40, 3)
    history = fit(model, loss_fn or SoftmaxCrossEntropy(), opt, X, y, epochs=epochs, batch_size=16,
                  validation=VALIDATION, seed=7, progress=False, checkpoint=checkpoint, resume=resume)
    return model, history


def test_resume_with_dropout_after_sigkill_is_bit_exact(tmp_path, assert_same_state, killed_mid_epoch_3):
    path = tmp_path / "run.npz"
    done = killed_mid_epoch_3(__file__, path)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert sorted(read_extra(path)["fit"]["generators"]) == ["2.rng", "3.layer.1.rng"]
    resumed, resumed_history = run_fit(path, resume=True)
    straight, straight_history = run_fit()
    assert_same_state(straight.state_dict(), resumed.state_dict())
    assert resumed_history["loss"] == straight_history["loss"]


def test_a_checkpoint_without_generator_states_resumes_with_a_warning(tmp_path):
    path = tmp_path / "old.npz"
    run_fit(path, epochs=1)
    extra = read_extra(path)
    del extra["fit"]["generators"]
    model, opt = dropout_model()
    load(path, model, opt)
    save(path, model, opt, **extra)
    with pytest.warns(UserWarning, match=r"holds no state of the model's random generators "
                                         r"\(2.rng, 3.layer.1.rng; written by an older"):
        run_fit(path, resume=True, epochs=2)
    extra["fit"]["generators"] = {"2.rng": extra["fit"]["rng"]}
    save(path, model, opt, **extra)
    with pytest.raises(ValueError, match=r"expected the states of the model's random generators "
                                         r"\['2.rng', '3.layer.1.rng'\], got \['2.rng'\]"):
        run_fit(path, resume=True, epochs=2)

"""Resuming: every checkpoint fit writes resumes again, whatever changed between the runs
(validation switched on or off, the number of epochs), and all random state is in it."""
import math
import warnings

import numpy as np
import pytest

from handprop.layers import mlp
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD, fit
from handprop.train.checkpoint import read_extra
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
    from handprop.train.checkpoint import save
    model, _ = run(epochs=1)
    path = tmp_path / "uneven.npz"
    save(path, model, SGD(model, lr=0.1, momentum=0.9), fit={"epoch": 2, "history": {"epoch": [1, 2], "val_loss": [0.5]},
                           "rng": np.random.default_rng(0).bit_generator.state})
    with pytest.raises(ValueError, match=r"history to hold 2 numbers per metric; its weights "
                                         r"still load .*checkpoint.load"):
        run(path, epochs=3, resume=True)

"""Everything fit can check before epoch 1 is checked before epoch 1, before anything changes
state: labels (at their position in the data as passed), validation data, the checkpoint's
name and checkpoint_extra."""
import numpy as np
import pytest

from handprop.layers import Linear, mlp
from handprop.losses import MSELoss, SoftmaxCrossEntropy
from handprop.train import SGD, fit
from handprop.train.data import spiral

X, Y = spiral(20, 3)
X_VAL, Y_VAL = spiral(5, 3, seed=1)


def fit_untouched(assert_same_state, error, match, *, y=Y, **kwargs):
    """fit raises ``error`` matching ``match`` and the model (weights and BatchNorm's running
    statistics) is as it was: nothing ran."""
    model = mlp(2, [8], 3, seed=0)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(error, match=match):
        fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y,
            **{"epochs": 2, "batch_size": 16, "progress": False, **kwargs})
    assert_same_state(before, model.state_dict())


@pytest.mark.parametrize("bad", [7, -1])
def test_a_bad_label_is_named_at_its_position_in_y_before_any_state_changes(assert_same_state, bad):
    y = Y.copy()
    y[41] = bad
    fit_untouched(assert_same_state, ValueError,
                  rf"^fit: y\[41\] = {bad} is not a class of the model's 3 outputs \(expected labels "
                  r"in \[0, 3\); 1 such labels\)", y=y)


def test_nan_labels_are_a_clear_error_naming_the_position(assert_same_state):
    y = Y.astype(float)
    y[5] = np.nan
    fit_untouched(assert_same_state, ValueError, r"^fit: expected whole-number class labels y, got nan at y\[5\]", y=y)


@pytest.mark.parametrize("validation,match", [
    ((X_VAL, np.where(np.arange(15) == 4, 9, Y_VAL)), r"^fit: validation: y_val\[4\] = 9 is not a class"),
    ((np.zeros((15, 3)), Y_VAL), r"^fit: validation: X_val of shape \(15, 3\): Linear\(2, 8"),
    ((X_VAL, Y_VAL[:, None]), r"^fit: validation: y_val has shape \(15, 1\), but the model's outputs "
                              r"\(15, 3\) need class labels of shape \(15,\)"),
])
def test_validation_data_problems_are_found_before_epoch_1(assert_same_state, validation, match, tmp_path):
    fit_untouched(assert_same_state, ValueError, match, validation=validation, checkpoint=tmp_path / "c.npz")
    assert not (tmp_path / "c.npz").exists()


def test_targets_of_another_shape_than_the_outputs_are_found_before_epoch_1():
    model = Linear(2, 1, rng=0)
    with pytest.raises(ValueError, match=r"^fit: y has shape \(60,\), but the model's outputs \(60, 1\) "
                                         r"need targets of shape \(60, 1\)"):
        fit(model, MSELoss(), SGD(model, lr=0.1), X, Y.astype(float), epochs=1, progress=False)


def test_a_checkpoint_name_whose_temporary_name_is_too_long_is_refused_before_epoch_1(assert_same_state, tmp_path):
    long = tmp_path / ("n" * 245 + ".npz")
    fit_untouched(assert_same_state, ValueError, r"a temporary file named \.NAME\.PID-XXXXXXXX\.tmp of "
                  r"\d+ bytes, more than the folder allows \(\d+\)", checkpoint=long)


@pytest.mark.parametrize("extra,error,match", [
    ({"weights": np.zeros(3)}, TypeError, r"^fit: checkpoint_extra must hold plain JSON data .*ndarray"),
    ([1, 2], TypeError, r"^fit: expected checkpoint_extra as a dict of plain JSON data, got list"),
    ({"fit": 1}, ValueError, r"checkpoint_extra cannot hold 'fit'"),
])
def test_checkpoint_extra_that_cannot_be_saved_is_refused_before_epoch_1(assert_same_state, tmp_path,
                                                                          extra, error, match):
    fit_untouched(assert_same_state, error, match, checkpoint=tmp_path / "c.npz", checkpoint_extra=extra)
    assert not (tmp_path / "c.npz").exists()


@pytest.mark.parametrize("kwargs,error,match", [
    ({"batch_size": 0}, ValueError, r"^fit: expected batch_size >= 1, got 0"),
    ({"batch_size": "8"}, TypeError, r"^fit: expected batch_size to be an int, got '8'"),
    ({"seed": -1}, ValueError, r"^fit: expected seed >= 0, got -1"),
    ({"seed": 1.5}, TypeError, r"^fit: expected seed to be an int, got 1.5"),
    ({"shuffle": "no"}, TypeError, r"^fit: expected shuffle to be True or False, got 'no'"),
    ({"progress": 1}, TypeError, r"^fit: expected progress to be True or False, got 1"),
    ({"resume": "yes"}, TypeError, r"^fit: expected resume to be True or False, got 'yes'"),
    ({"on_epoch_end": 3}, TypeError, r"^fit: expected on_epoch_end to be callable .*got int"),
    ({"checkpoint": 3}, TypeError, r"^fit: expected checkpoint as a path \(str or os.PathLike\), got int"),
])
def test_fits_own_arguments_are_checked_by_type_and_range_naming_the_argument(assert_same_state, kwargs,
                                                                                error, match):
    fit_untouched(assert_same_state, error, match, **kwargs)


def test_evaluate_and_predict_name_their_own_batch_size():
    from handprop.train import evaluate, predict
    model = mlp(2, [8], 3, seed=0)
    with pytest.raises(ValueError, match=r"^evaluate: expected batch_size >= 1, got 0"):
        evaluate(model, SoftmaxCrossEntropy(), X, Y, batch_size=0)
    with pytest.raises(TypeError, match=r"^predict: expected batch_size to be an int, got 'a'"):
        predict(model, X, batch_size="a")

"""state_dict / load_state_dict: params and buffers by name, checked before anything changes."""
import numpy as np
import pytest

from handprop.layers import BatchNorm1d, Linear, ReLU, Sequential
from handprop.losses import SoftmaxCrossEntropy


def model(seed=0, width=4):
    return Sequential(Linear(3, width, rng=seed), BatchNorm1d(width), ReLU(), Linear(width, 2, rng=seed + 1))


def test_names_are_pytorchs_and_values_are_copies():
    m = model()
    state = m.state_dict()
    assert list(state) == ["0.W", "0.b", "1.gamma", "1.beta", "1.running_mean", "1.running_var",
                           "3.W", "3.b"]
    assert all(not np.shares_memory(state[k], m.params[k]) for k in m.params)
    assert set(Linear(2, 2).state_dict()) == {"W", "b"}


def test_round_trip_loads_in_place(assert_same_state):
    source, target = model(seed=0), model(seed=5)
    source.forward(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
    arrays = {k: v for k, v in target.params.items()}
    assert target.load_state_dict(source.state_dict()) == ([], [])
    assert_same_state(source.state_dict(), target.state_dict())
    assert all(target.params[k] is arrays[k] for k in arrays)  # the same arrays, now equal


@pytest.mark.parametrize("change,error,message", [
    (lambda s: s.pop("3.b"), ValueError, r"missing 3.b \(strict=False loads the rest\)"),
    (lambda s: s.update(extra=np.zeros(2, np.float32)), ValueError, r"unexpected extra"),
    (lambda s: s.update({"3.W": np.zeros((5, 2), np.float32)}), ValueError,
     r"3.W has shape \(5, 2\) in the state dict but \(4, 2\) in the model"),
    (lambda s: s.update({"1.running_var": np.ones(4, np.int64)}), TypeError,
     r"expected 1.running_var in the state dict as a floating-point array, got int64"),
    (lambda s: s.update({"0.b": [0.0] * 4}), TypeError, r"got list"),
])
def test_a_state_that_does_not_fit_changes_nothing(change, error, message, assert_same_state):
    m = model()
    before = m.state_dict()
    state = model(seed=3).state_dict()
    change(state)
    with pytest.raises(error, match=message):
        m.load_state_dict(state)
    assert_same_state(before, m.state_dict())


def test_non_strict_reports_missing_and_unexpected():
    m = model()
    state = model(seed=3).state_dict()
    del state["3.b"]
    state["extra"] = np.zeros(1)
    keys = m.load_state_dict(state, strict=False)
    assert keys.missing == ["3.b"] and keys.unexpected == ["extra"]
    np.testing.assert_array_equal(m.params["3.W"], state["3.W"])


def test_loss_options_are_keyword_only():
    with pytest.raises(TypeError, match=r"positional"):
        SoftmaxCrossEntropy("sum")
    with pytest.raises(TypeError, match=r"positional"):
        Linear(2, 3, True, 0)  # rng and dtype are keyword-only


def test_load_state_dict_takes_any_mapping_an_npz_file_included(tmp_path):
    source = Sequential(Linear(3, 4, rng=0), BatchNorm1d(4), ReLU(), Linear(4, 2, rng=1))
    source.forward(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    np.savez(tmp_path / "state.npz", **source.state_dict())
    target = Sequential(Linear(3, 4, rng=7), BatchNorm1d(4), ReLU(), Linear(4, 2, rng=8))
    with np.load(tmp_path / "state.npz") as npz:    # an NpzFile: a Mapping, not a dict
        assert not isinstance(npz, dict)
        assert target.check_state_dict(npz, source="state.npz") == ([], [])
        assert target.load_state_dict(npz) == ([], [])
    for name, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[name], value)
    with pytest.raises(TypeError, match=r"expected a state dict \(a mapping of name -> array\), "
                                        r"got list"):
        target.load_state_dict(list(source.state_dict().items()))

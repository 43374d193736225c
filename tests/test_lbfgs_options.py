"""fit_lbfgs's options are checked for type and range, each a TypeError or ValueError naming
the argument, before any data is converted or the model changed (issue 24: they ended in
numpy's or Python's own message, or were silently accepted)."""
import math

import numpy as np
import pytest

from handprop.layers import Linear
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import fit_lbfgs

X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
Y = np.array([0, 1, 1, 0])
T, V = TypeError, ValueError

BAD = [
    ("max_iter", "5", T), ("max_iter", True, T), ("max_iter", 1.5, T), ("max_iter", 0, V),
    ("max_iter", 10 ** 30, V),
    ("max_eval", "5", T), ("max_eval", True, T), ("max_eval", 1.5, T), ("max_eval", 0, V),
    ("max_eval", -1, V), ("max_eval", 10 ** 30, V),
    ("tolerance_grad", "x", T), ("tolerance_grad", True, T), ("tolerance_grad", None, T),
    ("tolerance_grad", math.nan, V), ("tolerance_grad", math.inf, V), ("tolerance_grad", -1, V),
    ("tolerance_change", "x", T), ("tolerance_change", False, T), ("tolerance_change", math.nan, V),
    ("tolerance_change", math.inf, V), ("tolerance_change", -1e-9, V),
    ("history_size", "10", T), ("history_size", True, T), ("history_size", 1.5, T),
    ("history_size", 0, V), ("history_size", 10 ** 12, V),
    ("callback", 5, T), ("callback", "print", T),
]


@pytest.mark.parametrize("option,value,error", BAD, ids=[f"{o}={v!r}" for o, v, _ in BAD])
def test_a_bad_option_is_an_error_naming_it_and_the_model_is_unchanged(option, value, error):
    model = Linear(2, 2, rng=0, dtype=np.float64)
    before = model.state_dict()
    with pytest.raises(error, match=rf"^fit_lbfgs: expected (a finite )?{option}") as caught:
        fit_lbfgs(model, SoftmaxCrossEntropy(), X, Y, **{option: value})
    assert "\n" not in str(caught.value)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_the_options_at_their_bounds_are_accepted():
    seen = []
    result = fit_lbfgs(Linear(2, 2, rng=0, dtype=np.float64), SoftmaxCrossEntropy(), X, Y,
                       max_iter=2 ** 31 - 1, max_eval=3, tolerance_grad=0, tolerance_change=0.0,
                       history_size=1000, callback=seen.append)
    assert result.evaluations <= 4 and len(seen) == result.iterations

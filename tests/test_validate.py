"""handprop.layers.validate: the one home of argument checks, and the names its messages carry."""
import numpy as np
import pytest

from handprop.layers import mlp, validate
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD, evaluate, fit, predict


def test_an_int_past_the_largest_float_is_a_value_error_naming_the_argument_not_an_overflow():
    with pytest.raises(ValueError, match=r"^SGD: expected a finite lr, got an int of about 401 digits, "
                                         r"past the largest float$"):
        validate.real("SGD", "lr", 10**400)


def test_a_huge_int_is_shown_by_its_size_where_python_could_not_even_print_it():
    with pytest.raises(ValueError, match=r"^Linear: expected in_features <= 10, got an int of about "
                                         r"5001 digits$"):
        validate.integer("Linear", "in_features", 10**5000, high=10)


def test_a_bool_is_never_a_number():
    with pytest.raises(TypeError, match=r"^BatchNorm1d\(4\): expected eps as a real number, got True$"):
        validate.real("BatchNorm1d(4)", "eps", True)


@pytest.mark.parametrize("call", ["fit", "evaluate", "predict"])
def test_a_bad_batch_size_names_the_function_the_user_called(call):
    X, y = np.zeros((5, 2), np.float32), np.zeros(5, np.int64)
    model = mlp(2, [4], 3)
    with pytest.raises(ValueError, match=rf"^{call}: expected batch_size >= 1, got 0$"):
        if call == "fit":
            fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), X, y, epochs=1, batch_size=0,
                progress=False)
        elif call == "evaluate":
            evaluate(model, SoftmaxCrossEntropy(), X, y, batch_size=0)
        else:
            predict(model, X, batch_size=0)

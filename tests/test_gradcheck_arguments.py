"""gradcheck's own arguments and the values it is given are checked before any evaluation, each
with a message naming the argument (issue 24): a NaN input is not "modifies-input" and
"stochastic", an empty x did not "cross a kink", step=0 is not a ZeroDivisionError."""
import numpy as np
import pytest

from handprop.layers import Layer, Linear
from handprop.layers.gradcheck import gradcheck
from handprop.losses import MSELoss

F64 = np.float64


class CountingTanh(Layer):
    """A right Tanh that counts its forwards (its copy inside the checker counts into the class)."""

    forwards = 0

    def forward(self, x):
        CountingTanh.forwards += 1
        self.cache = np.tanh(x)
        return self.cache

    def backward(self, dout):
        return dout * (1 - self.cache ** 2)


def x_with(value=None, shape=(4, 3)):
    x = np.random.default_rng(0).standard_normal(shape)
    if value is not None:
        x[1, 2] = value
    return x


@pytest.mark.parametrize("options,error,message", [
    ({"step": 0}, ValueError, "expected step > 0, got 0"),
    ({"step": -1e-6}, ValueError, "expected step > 0, got -1e-06"),
    ({"step": "1e-6"}, TypeError, "expected step as a real number, got '1e-6'"),
    ({"tol": -1e-7}, ValueError, "expected tol > 0, got -1e-07"),
    ({"tol": float("nan")}, ValueError, "expected a finite tol, got nan"),
    ({"directions": 0, "fast": True}, ValueError, "expected directions >= 1, got 0"),
    ({"directions": 2.0}, TypeError, "expected directions to be an int, got 2.0"),
    ({"fast": 1}, TypeError, "expected fast to be True or False, got 1"),
    ({"seed": -1}, ValueError, "expected seed >= 0, got -1"),
    ({"progress": "yes"}, TypeError, "expected progress to be True or False, got 'yes'"),
    ({"not_differentiated": 0}, TypeError, "expected not_differentiated as a sequence of input positions, got int 0"),
    ({"not_differentiated": [1]}, ValueError, "expected each of not_differentiated in [0, 0], got 1"),
])
def test_a_bad_option_is_named_before_any_evaluation(options, error, message):
    CountingTanh.forwards = 0
    with pytest.raises(error) as caught:
        gradcheck(CountingTanh(), x_with(), **options)
    assert str(caught.value) == f"gradcheck CountingTanh(): {message}"
    assert CountingTanh.forwards == 0


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_input_is_named_not_called_stochastic(value):
    CountingTanh.forwards = 0
    with pytest.raises(ValueError) as caught:
        gradcheck(CountingTanh(), x_with(value))
    assert str(caught.value) == (f"gradcheck CountingTanh(): x has 1 of 12 elements NaN or infinite "
                                 f"(the first, {value}, at (1, 2)); differences need finite values: "
                                 f"check at finite ones")
    assert CountingTanh.forwards == 0


def test_a_non_finite_parameter_or_target_is_named():
    lin = Linear(3, 2, rng=0, dtype=F64)
    lin.params["W"][2, 1] = np.nan
    with pytest.raises(ValueError, match=r"parameter W has 1 of 6 elements NaN or infinite \(the first, "
                                         r"nan, at \(2, 1\)\)"):
        gradcheck(lin, x_with())
    with pytest.raises(ValueError, match=r"gradcheck MSELoss\(\): targets has 1 of 12 elements NaN"):
        gradcheck(MSELoss(), x_with(), x_with(np.nan))
    with pytest.raises(ValueError, match=r"gradcheck MSELoss\(\): pred has 1 of 12 elements NaN"):
        gradcheck(MSELoss(), x_with(np.nan), x_with())


@pytest.mark.parametrize("shape", [(0, 3), (4, 0)])
def test_an_empty_input_is_named_not_said_to_cross_a_kink(shape):
    with pytest.raises(ValueError) as caught:
        gradcheck(CountingTanh(), np.empty(shape))
    assert str(caught.value) == (f"gradcheck CountingTanh(): x has no elements (shape {shape}), so there "
                                 f"is nothing to difference; check with at least one sample")


@pytest.mark.parametrize("x,error,message", [
    (None, TypeError, "expected x as an ndarray or a tuple of ndarrays (several inputs), got NoneType None"),
    ([[1.0, 2.0]], TypeError, "got list [1.0, 2.0] as input 0; pass np.asarray(...) of float64"),
    ((), ValueError, "expected x as an ndarray or a tuple of ndarrays (several inputs), got an empty tuple"),
])
def test_an_input_that_is_not_an_array_is_named(x, error, message):
    with pytest.raises(error) as caught:
        gradcheck(CountingTanh(), x)
    assert str(caught.value).startswith("gradcheck CountingTanh(): ") and message in str(caught.value)


@pytest.mark.parametrize("subject", [3, "Linear"])
def test_something_that_is_not_a_layer_is_named(subject):
    with pytest.raises(TypeError) as caught:
        gradcheck(subject, x_with())
    assert str(caught.value).startswith("gradcheck: expected a layer or a loss (an object with forward and "
                                        f"backward methods) as the first argument, got {type(subject).__name__} ")


def test_a_layer_class_instead_of_a_layer_is_named():
    with pytest.raises(TypeError) as caught:
        gradcheck(Linear, x_with())
    assert str(caught.value) == ("gradcheck: expected a layer or a loss as the first argument, got the "
                                 "class Linear; pass an instance, Linear(...) with its arguments")


def test_a_forward_that_returns_none_is_said_so_not_called_stochastic():
    class Forgetful(CountingTanh):
        def forward(self, x):
            self.cache = np.tanh(x)  # the return statement is missing

    report = gradcheck(Forgetful(), x_with())
    assert not report.ok and [p.kind for p in report.problems] == ["dtype"]
    assert report.problems[0].message.startswith("forward returned None; expected a float64 ndarray (a "
                                                 "forward that ends without a return statement returns None)")

"""Sequential: composition, names, modes, the table, errors, a whole-model gradcheck."""
import numpy as np
import pytest

from handprop.layers import BatchNorm1d, Layer, Linear, ReLU, Sequential, Tanh
from handprop.layers.gradcheck import gradcheck

F64 = np.float64


def mlp(dtype=F64):
    return Sequential(Linear(4, 6, rng=0, dtype=dtype), BatchNorm1d(6, dtype=dtype), ReLU(),
                      Linear(6, 5, rng=1, dtype=dtype), Tanh(), Linear(5, 3, rng=2, dtype=dtype))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("training", [True, False])
def test_whole_model_gradcheck(seed, training, assert_same_state):
    model = mlp().train(training)
    before = model.state_dict()
    report = gradcheck(model, np.random.default_rng(seed).standard_normal((5, 4)), seed=seed)
    assert report.ok, report
    assert [row.name for row in report.rows] == ["x", "0.W", "0.b", "1.gamma", "1.beta",
                                                 "3.W", "3.b", "5.W", "5.b"]
    assert_same_state(before, model.state_dict())


def test_nested_sequential_gradcheck():
    model = Sequential(Sequential(Linear(3, 4, rng=0, dtype=F64), Tanh()), Linear(4, 2, rng=1, dtype=F64))
    assert "0.0.W" in model.params
    report = gradcheck(model, np.random.default_rng(0).standard_normal((3, 3)))
    assert report.ok, report


def test_params_are_the_layers_own_arrays():
    lin, bn = Linear(784, 256, rng=0), BatchNorm1d(256)
    model = Sequential(lin, bn, ReLU(), Linear(256, 10, rng=1))
    assert set(model.params) == {"0.W", "0.b", "1.gamma", "1.beta", "3.W", "3.b"}
    assert model.params.keys() == model.grads.keys()
    assert set(model.buffers) == {"1.running_mean", "1.running_var"}
    assert model.params["0.W"] is lin.params["W"] and model.buffers["1.running_var"] is bn.running_var
    with pytest.raises(AttributeError, match=r"its layers' own arrays, named through it"):
        model.params = {}
    model.params["0.W"][0, 0] = 42.0
    assert lin.params["W"][0, 0] == 42.0
    assert model[0] is lin and len(model) == 4 and list(model)[1] is bn
    assert isinstance(model[1:], Sequential) and model[1:][0] is bn


def test_train_and_eval_reach_every_layer():
    model = Sequential(Sequential(BatchNorm1d(2)), ReLU())
    model.eval()
    assert not model.training and not model[0][0].training and not model[1].training
    model.train()
    assert model[0][0].training


def test_param_backward_fills_the_same_grads_without_dx():
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    a, b = mlp(), mlp()
    a.forward(x), b.forward(x)
    a.backward(dout)
    assert b.param_backward(dout) is None
    for name in a.grads:
        np.testing.assert_array_equal(a.grads[name], b.grads[name])


def test_print_shows_a_table_with_the_total():
    model = Sequential(Linear(2, 100, bias=False), BatchNorm1d(100), ReLU(), Linear(100, 3))
    lines = str(model).splitlines()
    assert lines[0].split() == ["#", "layer", "params"]
    assert lines[1].split() == ["0", "Linear(2,", "100,", "bias=False)", "200"]
    assert lines[3].split() == ["2", "ReLU()", "0"]
    assert lines[-1].split() == ["total", "703"]
    assert repr(model) == "Sequential(Linear(2, 100, bias=False), BatchNorm1d(100), ReLU(), Linear(100, 3))"


def test_a_member_that_is_not_a_layer():
    with pytest.raises(TypeError, match=r"Sequential: expected every member to be a Layer, "
                                        r"got ufunc at position 1"):
        Sequential(Linear(2, 3), np.tanh)


def test_widths_that_do_not_fit_name_both_layers():
    model = Sequential(Linear(4, 256), ReLU(), Linear(128, 10))
    with pytest.raises(ValueError, match=r"^Sequential layer 2, fed by layer 1 \(ReLU\(\)\): "
                                         r"Linear\(128, 10\): expected input of shape "
                                         r"\(\.\.\., 128\), got \(8, 256\)$"):
        model.forward(np.ones((8, 4), np.float32))
    with pytest.raises(TypeError, match=r"^Sequential layer 2, fed by layer 1 \(ReLU\(\)\): "
                                        r"Linear\(128, 10\): expected float32 input"):
        Sequential(Linear(4, 128, dtype=F64), ReLU(), Linear(128, 10)).forward(np.ones((8, 4)))
    with pytest.raises(ValueError, match=r"^Linear\(4, 256\): expected input of shape \(\.\.\., 4\)"):
        model.forward(np.ones((8, 5), np.float32))


def test_a_custom_layer_fits_in():
    class Double(Layer):
        def forward(self, x):
            return 2 * x

        def backward(self, dout):
            return 2 * dout
    model = Sequential(Linear(3, 2, rng=0, dtype=F64), Double())
    report = gradcheck(model, np.ones((2, 3)))
    assert report.ok, report
    assert model.num_params() == 8


class TakesIds(Layer):
    takes_ids = True


def test_takes_ids_is_the_first_members_and_false_by_default():
    assert Layer.takes_ids is False and Linear(2, 2).takes_ids is False
    assert Sequential(TakesIds(), Linear(2, 2)).takes_ids is True
    assert Sequential(Linear(2, 2), TakesIds()).takes_ids is False
    assert Sequential(Sequential(TakesIds()), ReLU()).takes_ids is True
    assert Sequential().takes_ids is False
    from handprop.layers import Residual
    assert Residual(TakesIds()).takes_ids is True and Residual(ReLU()).takes_ids is False


@pytest.mark.parametrize("name,says", [
    ("parameters", r"^Sequential: there is no parameters\(\): layer.params is a dict of name -> "
                   r"array .* an optimizer takes the model itself, SGD\(model, lr=0.1\) \(see "
                   r"'Coming from PyTorch' in the README\)$"),
    ("zero_grad", r"^Sequential: there is no zero_grad\(\): backward overwrites layer.grads .* "
                  r"nothing to zero .*'Coming from PyTorch' in the README\)$"),
])
def test_pytorchs_names_say_the_handprop_way(name, says):
    model = Sequential(Linear(2, 3, rng=0), ReLU())
    with pytest.raises(AttributeError, match=says):
        getattr(model, name)()
    with pytest.raises(AttributeError, match=r"^ReLU: there is no "):
        getattr(ReLU(), name)
    assert not hasattr(model, name)     # still an AttributeError, for code that probes


def test_other_missing_names_and_calling_a_model_work_as_before():
    model = Sequential(Linear(2, 3, rng=0), ReLU())
    with pytest.raises(AttributeError, match=r"^'Sequential' object has no attribute 'layres'$"):
        getattr(model, "layres")  # noqa: B009 (the typo is the point)
    x = np.ones((4, 2), np.float32)
    np.testing.assert_array_equal(model(x), model.forward(x))

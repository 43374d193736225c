"""What an optimizer refuses instead of training wrongly or ending in Python's own message: a
dtype in which its eps means nothing (float16 for Adam, AdamW, RMSprop), a replaced parameter
or gradient array, an int past the largest float as a setting."""
import numpy as np
import pytest

from handprop.layers import Linear
from handprop.train import SGD, Adam, AdamW, CosineAnnealingLR, RMSprop, StepLR, clip_grad_norm


@pytest.mark.parametrize("cls", [Adam, AdamW, RMSprop])
def test_a_float16_model_is_refused_by_the_optimizers_that_divide_by_a_root(cls):
    layer = Linear(2, 1, rng=0, dtype=np.float16)
    with pytest.raises(TypeError, match=rf"{cls.__name__}: float16 parameters are refused: "
                                        r"eps=1e-08 rounds to 0 in float16 .*build the model in float32"):
        cls(layer)
    assert layer.params["W"].flags.writeable  # refused before the model was flattened


@pytest.mark.parametrize("cls", [Adam, AdamW, RMSprop])
def test_an_eps_that_rounds_to_zero_in_the_model_dtype_is_refused(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: eps=1e-50 rounds to 0 in float32"):
        cls(Linear(2, 1, rng=0), eps=1e-50)
    opt = cls(Linear(2, 1, rng=0))
    state = opt.state_dict()
    state["eps"] = 1e-50
    with pytest.raises(ValueError, match=r"eps=1e-50 rounds to 0 in float32"):
        opt.load_state_dict(state)
    assert opt.eps == 1e-8


@pytest.mark.parametrize("cls", [Adam, AdamW, RMSprop])
def test_a_zero_gradient_step_of_a_float32_model_keeps_the_weights(cls):
    layer = Linear(2, 1, rng=0)
    opt = cls(layer, lr=0.01)
    before = layer.params["W"].copy()
    layer.grads["W"][...] = 0
    layer.grads["b"][...] = 0
    opt.step()
    np.testing.assert_allclose(layer.params["W"], before * (1 - 0.01 * opt.weight_decay), rtol=1e-6)


def test_sgd_trains_a_float16_model():
    layer = Linear(2, 1, rng=0, dtype=np.float16)
    opt = SGD(layer, lr=0.5)
    layer.grads["W"][...] = 1
    opt.step()
    assert layer.params["W"].dtype == np.float16 and np.isfinite(layer.params["W"]).all()


class ReplacingLinear(Linear):
    """A Linear whose backward assigns a new gradient array instead of writing into it."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"] = self.grads["W"].copy()
        return dx


@pytest.mark.parametrize("cls", [SGD, Adam, RMSprop])
def test_a_step_after_a_parameter_was_replaced_names_the_layer_and_the_parameter(cls):
    from handprop.layers import mlp
    model = mlp(2, [4], 3, seed=0)
    opt = cls(model, lr=0.1)
    model.layers[3].params["W"] = model.layers[3].params["W"].copy()  # a hand-written loop's mistake
    with pytest.raises(ValueError, match=rf"{cls.__name__}: model.params\['3.W'\] of Linear\(4, 3\) "
                                         r"\(layer '3'\) was replaced after the optimizer was built"):
        opt.step()


@pytest.mark.parametrize("cls", [SGD, Adam, RMSprop])
def test_a_backward_that_replaces_its_gradient_array_fails_on_the_first_step(cls):
    from handprop.layers import ReLU, Sequential
    model = Sequential(Linear(2, 4, rng=0), ReLU(), ReplacingLinear(4, 1, rng=1))
    opt = cls(model, lr=0.1)
    model.forward(np.ones((3, 2), np.float32))
    model.backward(np.ones((3, 1), np.float32))
    with pytest.raises(ValueError, match=rf"{cls.__name__}: model.grads\['2.W'\] of ReplacingLinear\(4, 1\) "
                                         r"\(layer '2'\) is not the array the optimizer reads: its backward "
                                         r"replaced it"):
        opt.step()


def _sgd():
    return SGD(Linear(2, 1, rng=0), lr=0.1)


@pytest.mark.parametrize("build,name", [
    (lambda: SGD(Linear(2, 1, rng=0), lr=10**400), "SGD: expected a finite lr"),
    (lambda: Adam(Linear(2, 1, rng=0), eps=10**400), "Adam: expected a finite eps"),
    (lambda: Adam(Linear(2, 1, rng=0), betas=(0.9, 10**400)), r"Adam: expected a finite betas\[1\]"),
    (lambda: RMSprop(Linear(2, 1, rng=0), alpha=-10**400), "RMSprop: expected a finite alpha"),
    (lambda: setattr(_sgd(), "lr", 10**400), "SGD: expected a finite lr"),
    (lambda: StepLR(_sgd(), step_size=2, gamma=10**400),
     "StepLR: expected a finite gamma"),
    (lambda: CosineAnnealingLR(_sgd(), T_max=2, eta_min=10**400),
     "CosineAnnealingLR: expected a finite eta_min"),
    (lambda: clip_grad_norm(Linear(2, 1, rng=0), 10**400),
     "clip_grad_norm: expected a finite max_norm"),
])
def test_an_int_past_the_largest_float_is_a_value_error_naming_the_argument(build, name):
    with pytest.raises(ValueError, match=rf"^{name}, got an int of about 401 digits, past the largest float"):
        build()

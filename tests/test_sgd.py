"""SGD: torch.optim.SGD's update, checked against steps worked by hand."""
import numpy as np
import pytest

from handprop.layers import Layer, Linear
from handprop.train import SGD


class Params(Layer):
    """A layer with one parameter whose gradient the test sets."""

    def __init__(self, value, dtype=np.float64):
        super().__init__()
        self.params["p"] = np.array(value, dtype)
        self.grads["p"] = np.zeros_like(self.params["p"])


def run(settings, grads, start=1.0):
    layer = Params([start])
    opt = SGD(layer, **settings)
    values = []
    for g in grads:
        layer.grads["p"][...] = g
        opt.step()
        values.append(float(layer.params["p"][0]))
    return values


@pytest.mark.parametrize("settings,expected", [
    # p = 1, g = 0.5 every step, lr = 0.1
    ({"lr": 0.1}, [0.95, 0.9]),
    # b1 = 0.5, b2 = 0.9 * 0.5 + 0.5 = 0.95
    ({"lr": 0.1, "momentum": 0.9}, [0.95, 0.855]),
    # nesterov: g + m b; 0.5 + 0.45 = 0.95, then 0.5 + 0.9 * 0.95 = 1.355
    ({"lr": 0.1, "momentum": 0.9, "nesterov": True}, [0.905, 0.7695]),
    # weight decay: g + wd p; 0.5 + 0.1 = 0.6, then 0.5 + 0.1 * 0.94 = 0.594
    ({"lr": 0.1, "weight_decay": 0.1}, [0.94, 0.8806]),
    # all three: g1 = 0.6, b1 = 0.6, d1 = 0.6 + 0.54 = 1.14, p1 = 0.886;
    # g2 = 0.5886, b2 = 0.54 + 0.5886 = 1.1286, d2 = 0.5886 + 1.01574 = 1.60434, p2 = 0.725566
    ({"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}, [0.886, 0.725566]),
])
def test_steps_worked_by_hand(settings, expected):
    np.testing.assert_allclose(run(settings, [0.5, 0.5]), expected, rtol=1e-14)


def reference_sgd(p, grads, lr, momentum, nesterov, weight_decay):
    """torch.optim.SGD's loop, written out with fresh arrays."""
    p, b = p.copy(), None
    for g in grads:
        g = g + weight_decay * p
        if momentum:
            b = g.copy() if b is None else momentum * b + g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
    return p


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum,nesterov,weight_decay", [
    (0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 0.0), (0.5, False, 1e-2), (0.9, True, 1e-3)])
def test_matches_the_reference_loop(dtype, momentum, nesterov, weight_decay):
    rng = np.random.default_rng(0)
    lin = Linear(5, 4, rng=0, dtype=dtype)
    start = {k: v.copy() for k, v in lin.params.items()}
    grads = {k: [rng.standard_normal(v.shape).astype(dtype) for _ in range(4)] for k, v in start.items()}
    opt = SGD(lin, lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    for step in range(4):
        for k in lin.grads:
            lin.grads[k][...] = grads[k][step]
        opt.step()
    for k, p in lin.params.items():
        assert p.dtype == dtype
        expected = reference_sgd(start[k], grads[k], 0.05, momentum, nesterov, weight_decay)
        np.testing.assert_allclose(p, expected, rtol=1e-5 if dtype == np.float32 else 1e-13)


def test_updates_in_place_and_leaves_grads_alone():
    lin = Linear(3, 2, rng=0)
    opt = SGD(lin, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
    W, dW = lin.params["W"], lin.grads["W"]  # after building it: the flat buffer's views
    dW[...] = 1.0
    opt.step()
    assert lin.params["W"] is W
    np.testing.assert_array_equal(dW, 1.0)


def test_lr_can_change_between_steps():
    layer = Params([1.0])
    opt = SGD(layer, lr=0.1)
    layer.grads["p"][...] = 1.0
    opt.step()
    opt.lr = 0.01
    opt.step()
    assert layer.params["p"][0] == pytest.approx(1 - 0.1 - 0.01, rel=1e-15)


def test_momentum_buffers_are_state():
    layer = Params([1.0, 2.0])
    opt = SGD(layer, lr=0.1, momentum=0.9)
    layer.grads["p"][...] = [1.0, -1.0]
    opt.step()
    np.testing.assert_array_equal(opt.state_dict()["momentum_buffers"]["p"], [1.0, -1.0])
    assert opt.state_dict()["lr"] == 0.1


def test_a_learning_rate_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"SGD: expected lr as a real number, got '0.1'"):
        SGD(Params([1.0]), lr="0.1")
    opt = SGD(Params([1.0]), lr=0.1)
    with pytest.raises(TypeError, match=r"got '0.1'"):
        opt.lr = "0.1"


def test_options_after_lr_are_keyword_only():
    with pytest.raises(TypeError, match=r"positional"):
        SGD(Params([1.0]), 0.1, 0.9)  # torch.optim.SGD's third positional is momentum, ours none


@pytest.mark.parametrize("kwargs,message", [
    ({"lr": 0.0}, r"SGD: expected lr > 0, got 0.0"),
    ({"lr": -1}, r"lr > 0, got -1"),
    ({"lr": float("inf")}, r"a finite lr, got inf"),
    ({"lr": 0.1, "momentum": -0.5}, r"SGD: expected momentum >= 0, got -0.5"),
    ({"lr": 0.1, "nesterov": True}, r"SGD: Nesterov momentum needs momentum > 0"),
    ({"lr": 0.1, "weight_decay": -1e-4}, r"SGD: expected weight_decay >= 0"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SGD(Params([1.0]), **kwargs)
    opt = SGD(Params([1.0]), lr=0.1)
    with pytest.raises(ValueError, match="lr > 0"):
        opt.lr = 0

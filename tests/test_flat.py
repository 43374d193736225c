"""One flat buffer: params and grads are views, everything that copies in place keeps working."""
import numpy as np
import pytest

from handprop.layers import BatchNorm1d, Layer, Linear, ReLU, Sequential, flatten_params
from handprop.layers.flat_params import flat_layout
from handprop.layers.gradcheck import gradcheck
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD, Adam
from handprop.train.checkpoint import load, save


def mlp(dtype=np.float64):
    return Sequential(Linear(3, 4, rng=0, dtype=dtype), BatchNorm1d(4, dtype=dtype), ReLU(),
                      Linear(4, 2, rng=1, dtype=dtype))


def test_params_and_grads_become_views_of_two_buffers_in_order():
    model = mlp()
    before = {k: v.copy() for k, v in model.params.items()}
    flat_params, flat_grads = flatten_params(model)
    assert flat_params.shape == flat_grads.shape == (model.num_params(),)
    np.testing.assert_array_equal(flat_params, np.concatenate([v.ravel() for v in before.values()]))
    offset = 0
    for name, p in model.params.items():
        g = model.grads[name]
        assert p.base is flat_params and g.base is flat_grads, name
        assert p.ctypes.data == flat_params[offset:].ctypes.data, name
        assert g.ctypes.data == flat_grads[offset:].ctypes.data, name
        np.testing.assert_array_equal(p, before[name])
        offset += p.size
    layout = flat_layout(model, flat_params)
    assert layout["0.W"] == (0, 12, (3, 4)) and layout["3.b"] == (offset - 2, offset, (2,))


def test_backward_writes_into_the_flat_gradient_buffer():
    model = mlp()
    _, flat_grads = flatten_params(model)
    x = np.random.default_rng(0).standard_normal((5, 3))
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(x), np.array([0, 1, 1, 0, 1]))
    model.backward(loss_fn.backward())
    assert np.any(flat_grads != 0)
    np.testing.assert_array_equal(flat_grads, np.concatenate([g.ravel() for g in model.grads.values()]))
    assert np.linalg.norm(flat_grads) == pytest.approx(
        np.sqrt(sum(np.sum(g * g) for g in model.grads.values())), rel=1e-14)


def test_flattening_again_keeps_the_buffers_so_two_optimizers_share_them():
    model = mlp()
    sgd = SGD(model, lr=0.1)
    params = dict(model.params)
    adam = Adam(model, lr=0.1)
    assert adam.flat_params is sgd.flat_params and adam.flat_grads is sgd.flat_grads
    assert all(model.params[k] is v for k, v in params.items())  # nothing rebound the second time


def test_arrays_fetched_before_are_detached_and_read_only():
    lin = Linear(3, 2, rng=0, dtype=np.float64)
    W_before, dW_before = lin.params["W"], lin.grads["W"]
    dW_before[...] = 1.0
    opt = SGD(lin, lr=0.1)
    assert lin.params["W"] is not W_before
    np.testing.assert_array_equal(lin.grads["W"], 1.0)  # the gradient was carried over
    with pytest.raises(ValueError, match="read-only"):
        W_before[...] = 0.0  # a write that would otherwise vanish unnoticed
    with pytest.raises(ValueError, match="read-only"):
        np.matmul(np.ones((3, 1)), np.ones((1, 2)), out=dW_before)
    opt.step()
    np.testing.assert_array_equal(lin.params["W"], W_before - 0.1)


def test_load_state_dict_and_checkpoints_copy_into_the_views(tmp_path):
    model, other = mlp(), mlp()
    other.params["0.W"][...] = 7.0
    opt = Adam(model, lr=0.1)
    views = dict(model.params)
    model.load_state_dict(other.state_dict())
    assert all(model.params[k] is v for k, v in views.items())
    assert np.all(opt.flat_params[:12] == 7.0)
    save(tmp_path / "c.npz", model, opt)
    model.params["0.W"][...] = 0.0
    load(tmp_path / "c.npz", model, opt)
    assert all(model.params[k] is v for k, v in views.items())
    assert np.all(opt.flat_params[:12] == 7.0)


def test_gradcheck_works_on_a_flattened_model():
    model = mlp()
    SGD(model, lr=0.1)
    x = np.random.default_rng(1).standard_normal((6, 3))
    report = gradcheck(model, x)
    assert report.ok, report


def test_a_layer_used_twice_has_one_slot():
    lin = Linear(3, 3, rng=0, dtype=np.float64)
    model = Sequential(lin, ReLU(), lin)
    flat_params, _ = flatten_params(model)
    assert flat_params.size == 12 and model.params["0.W"] is model.params["2.W"]
    assert list(flat_layout(model, flat_params)) == ["0.W", "0.b"]


def test_mixed_dtypes_are_refused_and_change_nothing():
    model = Sequential(Linear(3, 4, rng=0), Linear(4, 2, rng=1, dtype=np.float64))
    params = dict(model.params)
    with pytest.raises(TypeError, match=r"one flat buffer holds one dtype, but the parameters have "
                                        r"several: float32 \(0.W\), float64 \(1.W\)"):
        SGD(model, lr=0.1)
    assert all(model.params[k] is v and v.flags.writeable for k, v in params.items())


class Pair(Layer):
    """A layer made of two layers that gathers their params but passes rebind on to only one."""

    def __init__(self):
        super().__init__()
        self.a, self.b = Linear(2, 2, rng=0), Linear(2, 2, rng=1)

    @property
    def params(self):
        return {f"a.{k}": v for k, v in self.a.params.items()} | {f"b.{k}": v for k, v in self.b.params.items()}

    @params.setter
    def params(self, value):
        pass

    @property
    def grads(self):
        return {f"a.{k}": v for k, v in self.a.grads.items()} | {f"b.{k}": v for k, v in self.b.grads.items()}

    @grads.setter
    def grads(self, value):
        pass

    def rebind(self, kind, name, array):
        if name.startswith("a."):
            self.a.rebind(kind, name[2:], array)


def test_a_container_that_cannot_rebind_is_refused_and_unchanged():
    pair = Pair()
    params = pair.params
    with pytest.raises(TypeError, match=r"could not move b.W into the flat buffer.*Layer.rebind"):
        SGD(pair, lr=0.1)
    assert all(pair.params[k] is v and v.flags.writeable for k, v in params.items())


def test_a_model_without_parameters():
    flat_params, flat_grads = flatten_params(ReLU())
    assert flat_params.size == flat_grads.size == 0
    SGD(ReLU(), lr=0.1).step()


def test_the_docs_say_why_a_stale_array_is_read_only():
    # numpy's message ("assignment destination is read-only") cannot be changed: the reason is
    # in the docstrings that a user reading about params, flatten_params or an optimizer meets
    import handprop.layers.flat_params as module
    for doc in (module.__doc__, flatten_params.__doc__, Layer.__doc__):
        text = " ".join(doc.split())
        assert "assignment destination is read-only" in text and "again" in text, doc

"""Residual: against PyTorch, gradcheck, names through it, modes, state, errors."""
import numpy as np
import pytest

from handprop.layers import (
    BatchNorm1d,
    Dropout,
    Layer,
    Linear,
    ReLU,
    Residual,
    Sequential,
    Tanh,
    flatten_params,
)
from handprop.layers.gradcheck import gradcheck

F64 = np.float64

# Reference values: torch 2.13.0+cpu, float64, made by /work/venvs/torch/bin/python with
#   lin = torch.nn.Linear(4, 4); lin.weight[...] = torch.tensor(W).T; lin.bias[...] = B
#   x = torch.tensor(X, requires_grad=True); out = x + torch.tanh(lin(x))
#   out.backward(torch.tensor(DOUT))
# printing out.tolist(), x.grad.tolist(), lin.weight.grad.tolist() (DW_T: PyTorch's weight is
# (out, in), the transpose of our W) and lin.bias.grad.tolist().
W = [[0.5, -0.25, 0.125, 1.0], [-0.5, 0.75, 0.25, -1.0], [0.25, 0.5, -0.75, 0.5], [1.0, -0.125, 0.5, 0.25]]
B = [0.1, -0.1, 0.2, 0.0]
X = [[-2.5, -0.75, 0.5, 1.25], [3.0, -1.5, 0.25, -0.125]]
DOUT = [[0.5, -1.0, 2.0, 0.25], [-0.75, 1.5, -0.5, 1.0]]
OUT = [[-1.9629504330019647, -0.6938092511832259, 0.45004162504212003, 0.4201980900140405],
       [3.9795976741184607, -2.450252309875549, 0.20004162504212003, 0.8747954002905484]]
DX = [[1.2543383283224636, -1.5046315076174928, 0.1331982780653025, 1.7473626664200839],
      [-0.863463206654568, 1.499196587192037, -0.0605387746611622, 0.7022435988797626]]
DW_T = [[-0.9803460961728578, -0.22140471450079388, 0.1703216162352366, 0.44852251382279884],
        [2.9286989634613527, 0.529335717764144, -0.4620385945326362, -1.264244602354797],
        [-6.4837770450151915, -0.748128120578676, 0.8728161406751219, 2.556104411977143],
        [-0.193415521191197, -0.0590066344962283, 0.03903088816242224, 0.09727035223765898]]
DB = [0.32549758364733494, -0.8513117783831344, 1.496256241157352, 0.07826635510377557]


def block(dtype=F64, seed=0):
    return Residual(Sequential(Linear(4, 4, rng=seed, dtype=dtype), BatchNorm1d(4, dtype=dtype), Tanh()))


def test_agrees_with_pytorch():
    lin = Linear(4, 4, dtype=F64)
    lin.params["W"][...], lin.params["b"][...] = W, B
    res = Residual(Sequential(lin, Tanh()))
    np.testing.assert_allclose(res.forward(np.array(X)), OUT, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(res.backward(np.array(DOUT)), DX, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(res.grads["layer.0.W"], np.array(DW_T).T, rtol=1e-13)
    np.testing.assert_allclose(res.grads["layer.0.b"], DB, rtol=1e-13)


@pytest.mark.parametrize("training,n", [(True, 5), (False, 5), (False, 1)])  # BatchNorm: n > 1 to train
def test_gradcheck(training, n, assert_same_state):
    res = block().train(training)
    res.forward(np.random.default_rng(1).standard_normal((8, 4)))  # running statistics move
    before = res.state_dict()
    report = gradcheck(res, np.random.default_rng(n).standard_normal((n, 4)), seed=n)
    assert report.ok, report
    assert report.worst < 1e-8
    assert [r.name for r in report.rows] == ["x", "layer.0.W", "layer.0.b", "layer.1.gamma", "layer.1.beta"]
    assert_same_state(before, res.state_dict())


def test_the_skip_path_adds_dout():
    """With a layer whose gradient is zero, dx is dout itself: the branches add."""
    class Zero(Layer):
        def forward(self, x):
            return np.zeros_like(x)

        def backward(self, dout):
            return np.zeros_like(dout)
    res = Residual(Zero())
    x, dout = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    np.testing.assert_array_equal(res.forward(x), x)
    np.testing.assert_array_equal(res.backward(dout), dout)


def test_names_modes_state_and_nesting(assert_same_state):
    inner = Sequential(Linear(3, 3, rng=0), BatchNorm1d(3), ReLU())
    res = Residual(inner)
    model = Sequential(Linear(2, 3, rng=1), res, Linear(3, 2, rng=2))
    assert list(res.params) == ["layer.0.W", "layer.0.b", "layer.1.gamma", "layer.1.beta"]
    assert res.params["layer.0.W"] is inner[0].params["W"] and res.grads.keys() == res.params.keys()
    assert set(res.buffers) == {"layer.1.running_mean", "layer.1.running_var"}
    assert list(model.state_dict()) == ["0.W", "0.b", "1.layer.0.W", "1.layer.0.b", "1.layer.1.gamma",
                                        "1.layer.1.beta", "1.layer.1.running_mean",
                                        "1.layer.1.running_var", "2.W", "2.b"]
    model.eval()
    assert not res.training and not inner[1].training
    model.train()
    assert inner[1].training
    other = Sequential(Linear(2, 3, rng=5), Residual(Sequential(Linear(3, 3, rng=6), BatchNorm1d(3), ReLU())),
                       Linear(3, 2, rng=7))
    other.load_state_dict(model.state_dict())
    assert_same_state(model.state_dict(), other.state_dict())
    assert repr(res) == "Residual(Sequential(Linear(3, 3), BatchNorm1d(3), ReLU()))"
    assert model.num_params() == 9 + 12 + 6 + 8
    with pytest.raises(AttributeError, match=r"Residual\(.*\): params, grads and buffers are its layers'"):
        res.grads = {}


def test_param_backward_fills_the_same_grads():
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    a, b = block(), block()
    a.forward(x), b.forward(x)
    a.backward(dout)
    assert b.param_backward(dout) is None
    for name in a.grads:
        np.testing.assert_array_equal(a.grads[name], b.grads[name])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept_and_inputs_unchanged(dtype):
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    x0, dout0 = x.copy(), dout.copy()
    res = Residual(Sequential(block(dtype), Dropout(0.2, rng=0)))
    out, dx = res.forward(x), res.backward(dout)
    assert out.dtype == dx.dtype == dtype
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dout, dout0)


def test_errors():
    with pytest.raises(TypeError, match=r"Residual: expected a Layer, got function"):
        Residual(lambda x: x)
    res = Residual(Linear(4, 3))
    with pytest.raises(ValueError, match=r"Residual\(Linear\(4, 3\)\): the inner layer must keep its "
                                         r"input's shape and dtype to be added to it; expected "
                                         r"\(2, 4\) float32, got \(2, 3\) float32"):
        res.forward(np.ones((2, 4), np.float32))
    with pytest.raises(RuntimeError, match=r"Residual\(Linear\(4, 3\)\): backward called before forward"):
        res.backward(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"Linear\(4, 4\): expected input of shape \(\.\.\., 4\)"):
        Residual(Linear(4, 4)).forward(np.ones((2, 5), np.float32))


def test_rebind_reaches_the_member_that_owns_the_entry():
    """What a flat parameter buffer needs: an entry replaced through the composite's name."""
    lin = Linear(3, 3, rng=0)
    model = Sequential(Residual(Sequential(lin, ReLU())), Linear(3, 2, rng=1))
    view = np.zeros((3, 3), np.float32)
    model.rebind("params", "0.layer.0.W", view)
    model.rebind("grads", "1.b", np.ones(2, np.float32))
    assert lin.params["W"] is view and model.params["0.layer.0.W"] is view
    assert model[1].grads["b"][0] == 1


def nested_model():
    """Linear, then a Residual around (BatchNorm1d, Dropout, a Residual around a Linear), then
    the first Linear again (one object used twice), then a Linear out."""
    first = Linear(4, 4, rng=0, dtype=np.float64)
    inner = Residual(Linear(4, 4, rng=1, dtype=np.float64))
    block = Residual(Sequential(BatchNorm1d(4, dtype=np.float64), Dropout(0.5, rng=0), inner))
    return Sequential(first, block, first, Linear(4, 2, rng=2, dtype=np.float64))


def test_the_tree_walk_reaches_layers_nested_in_a_residual_inside_a_sequential():
    model = nested_model()
    paths = [path for path, _ in model.named_modules()]
    assert paths == ["", "0", "1", "1.layer", "1.layer.0", "1.layer.1", "1.layer.2",
                     "1.layer.2.layer", "3"]      # "2" is "0" again: each layer once
    assert [name for name, _ in model.named_children()] == ["0", "1", "2", "3"]
    assert list(model.children()) == model.layers
    assert [name for name, _ in model[1].named_children()] == ["layer"]
    assert list(Linear(2, 2).named_children()) == []
    assert [m for _, m in model.named_modules()] == list(model.modules())
    assert [p for p, _ in model[1].named_modules(prefix="1")] == paths[2:8]
    # every params key is a module path plus the parameter's name
    modules = dict(model.named_modules()) | {"2": model[2]}
    for key in model.params:
        path, _, name = key.rpartition(".")
        assert name in modules[path].params, key


def test_eval_and_train_reach_every_nested_layer():
    model = nested_model()
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_flatten_params_moves_the_nested_layers_parameters_into_the_buffer():
    model = nested_model()
    flat_params, _ = flatten_params(model)
    assert flat_params.size == model.num_params() - 4 * 4 - 4   # the shared Linear once
    deep = model[1].layer[2].layer
    assert deep.params["W"].base is flat_params and deep.grads["W"].base is not None
    x = np.random.default_rng(0).standard_normal((5, 4))
    model.eval()
    before = model.forward(x)
    flat_params += 0.5
    assert not np.allclose(model.forward(x), before)

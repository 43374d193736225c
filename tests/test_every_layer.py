"""Every layer of handprop.layers, walked as one set: each keeps float16/float32/float64 as
given and refuses any other dtype with a clear error (issue 24)."""
import numpy as np
import pytest

from handprop import layers as L
from handprop.layers.gpt import Block, PositionEmbedding


def floats(*shape):
    return lambda dt, n=2: np.random.default_rng(0).standard_normal((n, *shape)).astype(dt)


def ids(vocab, t):
    return lambda dt, n=2: np.random.default_rng(0).integers(0, vocab, (n, t))


# name -> (make(dtype) -> layer, input(dtype, n) -> x)
LAYERS = {
    "Linear": (lambda dt: L.Linear(3, 2, rng=0, dtype=dt), floats(3)),
    "Linear3d": (lambda dt: L.Linear(3, 2, rng=0, dtype=dt), floats(4, 3)),
    "ReLU": (lambda dt: L.ReLU(), floats(3)),
    "LeakyReLU": (lambda dt: L.LeakyReLU(0.1), floats(3)),
    "Tanh": (lambda dt: L.Tanh(), floats(3)),
    "Sigmoid": (lambda dt: L.Sigmoid(), floats(3)),
    "GELU": (lambda dt: L.GELU(), floats(3)),
    "GELUtanh": (lambda dt: L.GELU(approximate="tanh"), floats(3)),
    "Softmax": (lambda dt: L.Softmax(), floats(3)),
    "BatchNorm1d": (lambda dt: L.BatchNorm1d(3, dtype=dt), floats(3)),
    "BatchNorm2d": (lambda dt: L.BatchNorm2d(2, dtype=dt), floats(2, 3, 3)),
    "LayerNorm": (lambda dt: L.LayerNorm(3, dtype=dt), floats(3)),
    "Dropout": (lambda dt: L.Dropout(0.5, rng=0), floats(3)),
    "Conv2d": (lambda dt: L.Conv2d(2, 3, 3, padding=1, rng=0, dtype=dt), floats(2, 4, 4)),
    "MaxPool2d": (lambda dt: L.MaxPool2d(2), floats(2, 4, 4)),
    "AvgPool2d": (lambda dt: L.AvgPool2d(2), floats(2, 4, 4)),
    "Flatten": (lambda dt: L.Flatten(), floats(2, 3)),
    "Embedding": (lambda dt: L.Embedding(5, 3, rng=0, dtype=dt), ids(5, 4)),
    "RNN": (lambda dt: L.RNN(3, 4, rng=0, dtype=dt), floats(5, 3)),
    "LSTM": (lambda dt: L.LSTM(3, 4, rng=0, dtype=dt), floats(5, 3)),
    "GRU": (lambda dt: L.GRU(3, 4, rng=0, dtype=dt), floats(5, 3)),
    "CausalSelfAttention": (lambda dt: L.CausalSelfAttention(4, 2, rng=0, dtype=dt), floats(3, 4)),
    "PositionEmbedding": (lambda dt: PositionEmbedding(4, 4, rng=0, dtype=dt), floats(3, 4)),
    "Block": (lambda dt: Block(4, 2, rng=0, dtype=dt), floats(3, 4)),
    "gpt": (lambda dt: L.gpt(7, block_size=4, n_layer=1, n_head=2, n_embd=4, dtype=dt), ids(7, 3)),
    "Sequential": (lambda dt: L.Sequential(L.Linear(3, 4, rng=0, dtype=dt), L.ReLU()), floats(3)),
    "Residual": (lambda dt: L.Residual(L.Linear(3, 3, rng=0, dtype=dt)), floats(3)),
    "mlp": (lambda dt: L.mlp(3, [4], 2, dropout=0.2, dtype=dt), floats(3)),
    "cnn": (lambda dt: L.cnn((1, 4, 4), 3, (2,), dtype=dt), floats(1, 4, 4)),
}

DTYPES = [np.float16, np.float32, np.float64]


def float_arrays(obj):
    """Every float array inside a layer's cache (arrays, tuples, NamedTuples, lists)."""
    if isinstance(obj, np.ndarray):
        return [obj] if obj.dtype.kind == "f" else []
    if isinstance(obj, (tuple, list)):
        return [a for item in obj for a in float_arrays(item)]
    return []


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_every_layer_keeps_its_dtype_through_forward_and_backward(name, dtype, training):
    make, data = LAYERS[name]
    layer = make(dtype).train(training)
    x = data(dtype)
    with np.errstate(all="ignore"):         # float16 may overflow; the dtype is the point here
        out = layer.forward(x)
        assert out.dtype == dtype
        for _, module in layer.named_modules():
            assert all(a.dtype == dtype for a in float_arrays(module.cache)), module
        dx = layer.backward(np.ones_like(out))
    if x.dtype.kind == "f":
        assert dx.dtype == dtype and dx.shape == x.shape
    assert all(g.dtype == dtype for g in layer.grads.values())
    assert all(b.dtype == dtype for b in layer.buffers.values())


@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_refuses_a_long_double_with_a_clear_type_error(name):
    make, data = LAYERS[name]
    with pytest.raises(TypeError, match=r"expected a floating-point (dtype|input), got (dtype )?float128; use float16, "
                                        r"float32 or float64"):
        layer = make(np.longdouble)
        x = data(np.longdouble)
        layer.forward(x)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_an_empty_batch_is_a_clear_error_naming_the_layer(name, training):
    make, data = LAYERS[name]
    layer = make(np.float32).train(training)
    x = data(np.float32, 0)
    with pytest.raises(ValueError, match=r"^\w+\(.*\): expected at least one sample, got an "
                                         r"empty batch of shape \(0,") as caught:
        layer.forward(x)
    assert "\n" not in str(caught.value)


RAGGED = [[[1.0, 2.0], [3.0]], [[1.0, 2.0], 3.0], [[[1.0]], [1.0, 2.0]]]


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("ragged", RAGGED, ids=["rows", "mixed", "depth"])
def test_a_ragged_list_is_a_clear_type_error(name, ragged):
    make, _ = LAYERS[name]
    with pytest.raises(TypeError, match=r"expected (a numpy array|the ids as a numpy integer array|token ids as a numpy)") as caught:
        make(np.float32).forward(ragged)
    assert "\n" not in str(caught.value)

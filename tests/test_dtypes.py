"""float32 stays float32 through a whole training step: no hidden upcasts anywhere."""
import numpy as np
import pytest

from handprop.layers import Linear, Residual, Sequential, Softmax, mlp
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD


def float_arrays(obj):
    """Every floating-point array in a cache (an array, a tuple of them, or None)."""
    items = obj if isinstance(obj, tuple) else (obj,)
    return [a for a in items if isinstance(a, np.ndarray) and a.dtype.kind == "f"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("activation,norm", [("relu", "batch"), ("tanh", "batch"), ("gelu", "layer"),
                                             ("sigmoid", None), ("leaky_relu", "layer")])
def test_a_training_step_keeps_the_dtype(dtype, training, activation, norm):
    model = Sequential(*mlp(20, [16, 16], 5, activation=activation, norm=norm, dropout=0.25,
                            dtype=dtype), Softmax(), Residual(Linear(5, 5, rng=3, dtype=dtype)))
    model.train(training)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=0.1)
    opt = SGD(model, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 20)).astype(dtype), rng.integers(0, 5, 8)
    h = x
    for layer in model:
        h = layer.forward(h)
        assert h.dtype == dtype, layer
        assert all(a.dtype == dtype for a in float_arrays(layer.cache)), layer
    loss_fn.forward(h, y)
    assert all(a.dtype == dtype for a in float_arrays(loss_fn.cache))
    d = loss_fn.backward(np.float64(1.0))
    assert d.dtype == dtype
    for layer in reversed(model.layers):
        d = layer.backward(d)
        assert d.dtype == dtype, layer
    opt.step()
    arrays = {**model.params, **model.grads, **model.buffers, **opt.momentum_buffers}
    assert {a.dtype for a in arrays.values()} == {np.dtype(dtype)}

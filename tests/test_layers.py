"""Linear, ReLU, Tanh: gradients, worked examples, dtypes and the errors users see."""
import re

import numpy as np
import pytest

from handprop.layers import Layer, Linear, ReLU, Tanh
from handprop.layers.gradcheck import gradcheck

F64 = np.float64


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n,d_in,d_out", [(1, 3, 2), (4, 5, 3), (7, 2, 6)])
def test_linear_gradcheck(seed, n, d_in, d_out):
    x = np.random.default_rng(seed).standard_normal((n, d_in))
    for bias in (True, False):
        report = gradcheck(Linear(d_in, d_out, bias=bias, rng=seed, dtype=F64), x, seed=seed)
        assert report.ok, report
        assert report.worst < 1e-8


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("layer", [ReLU, Tanh])
@pytest.mark.parametrize("shape", [(1, 4), (5, 3), (2, 3, 4)])
def test_elementwise_gradcheck(seed, layer, shape):
    x = np.random.default_rng(seed).standard_normal(shape)
    report = gradcheck(layer(), x, seed=seed)
    assert report.ok, report
    assert report.worst < 1e-8


def test_linear_by_hand():
    lin = Linear(2, 3, dtype=F64)
    lin.params["W"][...] = [[1, 2, 3], [4, 5, 6]]
    lin.params["b"][...] = [0.5, -1, 2]
    x = np.array([[1.0, -1.0], [2.0, 0.5]])
    out = lin.forward(x)
    np.testing.assert_array_equal(out, [[-2.5, -4, -1], [4.5, 5.5, 11]])
    dout = np.array([[1.0, 0, -1], [2, 1, 0]])
    dx = lin.backward(dout)
    np.testing.assert_array_equal(dx, [[1 - 3, 4 - 6], [2 + 2, 8 + 5]])
    np.testing.assert_array_equal(lin.grads["W"], [[1 + 4, 2, -1], [-1 + 1, 0.5, 1]])
    np.testing.assert_array_equal(lin.grads["b"], [3, 1, -1])


def test_relu_and_tanh_by_hand():
    x = np.array([[-2.0, 0.0, 3.0]])
    relu = ReLU()
    np.testing.assert_array_equal(relu.forward(x), [[0, 0, 3]])
    # the gradient at exactly 0 is 0, as in PyTorch
    np.testing.assert_array_equal(relu.backward(np.array([[5.0, 6.0, 7.0]])), [[0, 0, 7]])
    tanh = Tanh()
    out = tanh.forward(np.array([[0.0, np.log(3.0)]]))  # tanh(log 3) = 0.8
    np.testing.assert_allclose(out, [[0, 0.8]], rtol=1e-15)
    np.testing.assert_allclose(tanh.backward(np.array([[2.0, 1.0]])), [[2, 0.36]], rtol=1e-14)


def test_tanh_backward_uses_the_cached_output(monkeypatch):
    tanh = Tanh()
    tanh.forward(np.array([[0.3, -1.2]]))
    monkeypatch.setattr(np, "tanh", lambda *a, **k: pytest.fail("backward recomputed tanh"))
    tanh.backward(np.ones((1, 2)))


def test_linear_init_is_seeded_and_pytorch_scaled():
    a, b = Linear(100, 50, rng=3), Linear(100, 50, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert not np.array_equal(a.params["W"], Linear(100, 50, rng=4).params["W"])
    assert np.abs(a.params["W"]).max() <= 0.1 and np.abs(a.params["W"]).max() > 0.09
    assert a.params["W"].shape == (100, 50) and a.params["b"].shape == (50,)
    assert "b" not in Linear(3, 2, bias=False).params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype, rng):
    x = rng.standard_normal((4, 3)).astype(dtype)
    for layer in (Linear(3, 3, rng=0, dtype=dtype), ReLU(), Tanh()):
        out = layer.forward(x)
        assert out.dtype == dtype
        assert layer.backward(np.ones_like(out)).dtype == dtype
        for name, g in layer.grads.items():
            assert g.dtype == dtype and g.shape == layer.params[name].shape


def test_backward_overwrites_grads(rng):
    lin = Linear(3, 2, rng=0, dtype=F64)
    x = rng.standard_normal((4, 3))
    lin.forward(x)
    lin.backward(np.ones((4, 2)))
    lin.backward(np.ones((4, 2)))
    np.testing.assert_allclose(lin.grads["b"], [4, 4])


def test_train_eval_and_repr():
    lin = Linear(784, 256)
    assert lin.training and lin.eval() is lin and not lin.training
    assert lin.train().training
    assert repr(lin) == "Linear(784, 256)"
    assert repr(Linear(3, 2, bias=False, dtype=F64)) == "Linear(3, 2, bias=False, dtype=float64)"
    assert repr(ReLU()) == "ReLU()" and repr(Tanh()) == "Tanh()"


@pytest.mark.parametrize("layer", [Linear(3, 2), ReLU(), Tanh()])
def test_backward_before_forward(layer):
    with pytest.raises(RuntimeError, match=r"backward called before forward"):
        layer.backward(np.ones((1, 2), np.float32))


@pytest.mark.parametrize("x,error,message", [
    (np.ones((32, 785), np.float32), ValueError,
     r"Linear\(784, 256\): expected input of shape \(\.\.\., 784\), got \(32, 785\)"),
    (np.ones(784, np.float32), ValueError, r"got \(784,\); for one sample use x\[None, :\]"),
    (np.ones((2, 3, 785), np.float32), ValueError, r"expected input of shape \(\.\.\., 784\), got \(2, 3, 785\)"),
    (np.ones((2, 784), np.int64), TypeError, r"Linear\(784, 256\): expected a floating-point"),
    (np.ones((2, 784)), TypeError, r"expected float32 input .* got float64"),
    ([[1.0] * 784], TypeError, r"Linear\(784, 256\): expected a numpy array, got list"),
])
def test_linear_bad_input(x, error, message):
    with pytest.raises(error, match=message):
        Linear(784, 256).forward(x)


@pytest.mark.parametrize("layer", [Linear(3, 2), ReLU(), Tanh()])
def test_bad_upstream_gradient(layer):
    out = layer.forward(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}.*shape {re.escape(str(out.shape))}.*got \(4, 5\)"):
        layer.backward(np.ones((4, 5), np.float32))
    with pytest.raises(TypeError, match=r"dtype float32 .*got float64"):
        layer.backward(np.ones(out.shape))


@pytest.mark.parametrize("layer", [ReLU(), Tanh()])
def test_elementwise_bad_input(layer):
    with pytest.raises(TypeError, match=rf"{type(layer).__name__}\(\): expected a floating-point"):
        layer.forward(np.ones((2, 2), dtype=np.int32))


@pytest.mark.parametrize("args,error,message", [
    ((0, 4), ValueError, r"Linear: expected in_features >= 1, got 0"),
    ((4, -1), ValueError, r"expected out_features >= 1, got -1"),
    ((2.5, 4), TypeError, r"expected in_features to be an int, got 2.5"),
    ((True, 4), TypeError, r"in_features to be an int"),
])
def test_linear_bad_sizes(args, error, message):
    with pytest.raises(error, match=message):
        Linear(*args)


def test_linear_bad_dtype():
    with pytest.raises(TypeError, match=r"Linear: expected a floating-point dtype, got int64"):
        Linear(3, 2, dtype=np.int64)


def test_base_layer_says_what_is_missing():
    with pytest.raises(NotImplementedError, match="Layer does not define forward"):
        Layer().forward(np.ones((1, 1)))


# Linear on (N, T, D): torch 2.13.0+cpu, float64, printed by tests/torch_reference_sequence_seams.py
# (inputs rebuilt here from the same formulas; LINEAR_DW is torch's weight.grad transposed).
def wave(f, n, phase, shape, scale=1.0):
    return scale * f(np.arange(n) * phase[0] + phase[1]).reshape(shape)


LINEAR_OUT = [[[-0.7036815093991471, -0.5909369035723885, -0.43433836628293687, -0.23894167630219593, -0.013268335830837918], [0.45854064173431425, 0.47494780752465204, 0.43999659800781754, 0.3657418028113458, 0.26774908381558243], [-0.9373019003615448, -0.6925204343639935, -0.3948108826394084, -0.061834050614634484, 0.2855989351690876]], [[0.5308640029418945, 0.4416241735962514, 0.30400266991610647, 0.13922551312867604, -0.02905554192310733], [-0.8399708827632089, -0.5281403588531818, -0.17806533179634249, 0.18791574102657382, 0.5460435625387488], [0.2751257232919812, 0.1651826485104765, 0.03155159751807518, -0.10489786371203208, -0.2230444090140547]]]
LINEAR_DX = [[[0.1334272389896343, 0.27714145256115713, -0.09421881734903685, -0.29047100352857935], [0.06594648257091286, 0.181734153615824, -0.040235751622448995, -0.18742648256936106], [-0.004622201311549556, 0.07781719862558195, 0.015631343056336677, -0.07560576369335531]], [[-0.07497445177987902, -0.029743527122697955, 0.07076650402710502, 0.0397551760560656], [-0.14181604239639486, -0.1359115196926477, 0.12258804124146941, 0.15325458968334105], [-0.20201713248820352, -0.23571548952876048, 0.16866942425020912, 0.2595778956854855]]]
LINEAR_DW = [[0.3194468579689429, -0.3571758992630713, -0.5105351273005515, 0.08404080221386132, 0.55549675959831], [0.5899086344890445, -0.20477584794820897, -0.6994632334025485, -0.1694353432540908, 0.6088157217064003], [0.5829271626322734, 0.043933484367581765, -0.5594228514208238, -0.34322339928937545, 0.3757991368879086], [0.30178593770136913, 0.27198021250567145, -0.15627716119270335, -0.35558812762531544, -0.03396165403246304]]
LINEAR_DB = [4.794500539567878, -1.4995156511105077, -5.596737899920466, -1.494726013584609, 4.7970629844233015]

def test_linear_on_a_sequence_matches_pytorch_with_dw_and_db_summed_over_batch_and_time():
    lin = Linear(4, 5, rng=0, dtype=np.float64)
    lin.params["W"][...] = wave(np.cos, 20, (0.3, 0.0), (4, 5), 0.5)
    lin.params["b"][...] = 0.1 * np.arange(5) - 0.2
    x = wave(np.sin, 24, (0.7, 0.1), (2, 3, 4))
    out = lin.forward(x)
    dx = lin.backward(wave(np.cos, 30, (1.3, 0.0), (2, 3, 5)))
    assert out.shape == (2, 3, 5) and dx.shape == (2, 3, 4)
    np.testing.assert_allclose(out, LINEAR_OUT, rtol=0, atol=1e-10)
    np.testing.assert_allclose(dx, LINEAR_DX, rtol=0, atol=1e-10)
    np.testing.assert_allclose(lin.grads["W"], LINEAR_DW, rtol=0, atol=1e-10)
    np.testing.assert_allclose(lin.grads["b"], LINEAR_DB, rtol=0, atol=1e-10)


def test_linear_on_a_sequence_equals_linear_on_its_rows_without_copying_x():
    lin = Linear(4, 5, rng=0, dtype=np.float64)
    x = wave(np.sin, 24, (0.7, 0.1), (2, 3, 4))
    dout = wave(np.cos, 30, (1.3, 0.0), (2, 3, 5))
    out3, dx3 = lin.forward(x), lin.backward(dout)
    grads3 = {k: g.copy() for k, g in lin.grads.items()}
    out2, dx2 = lin.forward(x.reshape(6, 4)), lin.backward(dout.reshape(6, 5))
    np.testing.assert_array_equal(out3.reshape(6, 5), out2)
    np.testing.assert_array_equal(dx3.reshape(6, 4), dx2)
    for k in grads3:
        np.testing.assert_array_equal(grads3[k], lin.grads[k])
    lin.forward(x)
    assert lin.cache is x     # kept as given: the (M, in) rows are a view made in backward
    report = gradcheck(Linear(3, 2, rng=1, dtype=np.float64), x[..., :3].copy(), seed=0)
    assert report.ok, report


@pytest.mark.parametrize("shape", [(64, 16, 28, 28), (3, 70_000), (5,), ()])
def test_relu_against_zeros_of_any_trailing_block_is_max_with_nan_kept(shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    if x.size:
        x.flat[0] = np.nan
    np.testing.assert_array_equal(ReLU().forward(x), np.where(np.isnan(x), x, np.maximum(x, 0)))


def test_row_mean_is_the_mean_over_the_last_axis_kept_for_broadcasting():
    from handprop.layers.base import row_mean
    a = np.random.default_rng(2).standard_normal((3, 4, 5))
    for view in (a, a[:, ::2], a.transpose(1, 0, 2)):
        np.testing.assert_allclose(row_mean(view), view.mean(axis=-1, keepdims=True), rtol=1e-14)

"""BatchNorm2d: PyTorch's values, BatchNorm1d over N*H*W, gradcheck, dtypes, errors."""
import numpy as np
import pytest

from handprop.layers import BatchNorm1d, BatchNorm2d
from handprop.layers.gradcheck import gradcheck

F64 = np.float64

# Reference values from torch 2.13.0+cpu, float64, printed to 13 significant digits by
# tests/torch_reference_conv.py bn:
#     rng = np.random.default_rng(7)
#     x = 2 + 3 * rng.standard_normal((2, 2, 3, 2))
#     gamma = rng.uniform(0.5, 2, 2); beta = rng.standard_normal(2)
#     rm, rv = torch.zeros(2), torch.ones(2)
#     out = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-5)
#     dout = rng.standard_normal(out.shape); out.backward(dout)
#     eval_out = F.batch_norm(x, rm, rv, gamma, beta, training=False, eps=1e-5)
# and each flattened in C order (dx, dgamma, dbeta: the .grad of x, gamma, beta).
TORCH = {
        'out': [-2.174470096988, -1.889391405198, -2.43832721453, -3.029012283259, -2.611313534556,
                -3.125842725782, 0.1090741363147, 1.809657470012, -0.6247265189528, -0.7951318807354,
                0.6799312617763, 0.5032996413174, -2.074641088901, -3.067221590178, -2.20367786994,
                -1.509410590474, -3.463672725046, -2.614135404995, -2.496613546487, -1.68398612659,
                -2.41758375534, -0.2831470884689, -1.654637749129, 0.3895494061232],
        'dx': [0.1345228538187, 0.2026683931499, -0.3539483779982, -0.0519306441713, -0.1877524606329,
                -0.1632707020955, 0.4484376130795, -0.2112103941978, -0.1081562326802, 0.2810744380319,
                -0.2234905073381, -0.03194162437239, 0.1910614188943, 0.1188286963115,
                -0.2429548258309, 0.2127409439158, 0.5095687974987, -0.3695340928602, 0.1021512461752,
                -0.1453949642465, -0.5546835204744, 0.825797308492, 0.1422016515552, -0.5247850140242],
        'dgamma': [-1.200990197659, -3.401195063584],
        'dbeta': [-4.893428253342, 2.310583404097],
        'running_mean': [0.09320239811344, 0.07176594292629],
        'running_var': [1.227631957219, 1.800544132978],
        'eval_out': [-1.562334038655, -1.116443285158, -1.975032189533, -2.898920989222, -2.245599590051,
                -3.050373203019, 1.460733128112, 5.102006710422, -0.110474167503, -0.4753445798184,
                2.683047218241, 2.304845197421, -1.406191777171, -2.958684055151, -1.608017831463,
                -0.5221163969305, -3.57877212326, -2.250013269407, -4.118541662561, -2.378551214755,
                -3.949323791835, 0.6209126053977, -2.315710735598, 2.061284227378],
}


def test_matches_pytorch():
    rng = np.random.default_rng(7)
    x = 2 + 3 * rng.standard_normal((2, 2, 3, 2))
    bn = BatchNorm2d(2, dtype=F64)
    bn.params["gamma"][...], bn.params["beta"][...] = rng.uniform(0.5, 2, 2), rng.standard_normal(2)
    out = bn.forward(x)
    dx = bn.backward(rng.standard_normal(out.shape))
    got = {"out": out, "dx": dx, "dgamma": bn.grads["gamma"], "dbeta": bn.grads["beta"],
           "running_mean": bn.running_mean, "running_var": bn.running_var,
           "eval_out": bn.eval().forward(x)}
    for name, value in got.items():
        want = np.reshape(TORCH[name], value.shape)
        np.testing.assert_allclose(value, want, rtol=1e-11, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("training", [True, False])
def test_is_batchnorm1d_over_n_h_w(training):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 2)) * [[[1]], [[2]], [[3]], [[0.5]]] + 1
    dout = rng.standard_normal(x.shape)
    bn2, bn1 = BatchNorm2d(4, momentum=0.3, dtype=F64), BatchNorm1d(4, momentum=0.3, dtype=F64)
    for bn in (bn2, bn1):
        bn.params["gamma"][...] = [0.5, 1.5, 2.0, -1.0]
        bn.forward(x.transpose(0, 2, 3, 1).reshape(-1, 4) if bn is bn1 else x)   # running stats move
        bn.train(training)
    to2d = x.transpose(0, 2, 3, 1).reshape(-1, 4)
    np.testing.assert_allclose(bn2.forward(x).transpose(0, 2, 3, 1).reshape(-1, 4),
                               bn1.forward(to2d), rtol=1e-14, atol=1e-14)
    dx1 = bn1.backward(dout.transpose(0, 2, 3, 1).reshape(-1, 4))
    np.testing.assert_allclose(bn2.backward(dout).transpose(0, 2, 3, 1).reshape(-1, 4), dx1,
                               rtol=1e-14, atol=1e-14)
    for name in ("gamma", "beta"):
        np.testing.assert_allclose(bn2.grads[name], bn1.grads[name], rtol=1e-14)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(bn2.buffers[name], bn1.buffers[name], rtol=1e-14)


@pytest.mark.parametrize("shape,training", [((2, 3, 3, 2), True), ((1, 2, 1, 2), True),
                                            ((2, 3, 2, 3), False), ((1, 2, 1, 1), False)])
def test_gradcheck(shape, training, assert_same_state):
    rng = np.random.default_rng(1)
    bn = BatchNorm2d(shape[1], dtype=F64)
    bn.params["gamma"][...] = rng.uniform(0.5, 2.0, shape[1])
    bn.params["beta"][...] = rng.standard_normal(shape[1])
    bn.forward(2 + 3 * rng.standard_normal((4, shape[1], 3, 3)))
    bn.train(training)
    before = bn.state_dict()
    report = gradcheck(bn, 2 + 3 * rng.standard_normal(shape))
    assert report.ok, report
    assert_same_state(before, bn.state_dict())


def test_float32_stays_float32_and_inputs_are_not_changed():
    rng = np.random.default_rng(0)
    bn = BatchNorm2d(3)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    before = x.copy(), dout.copy()
    out, dx = bn.forward(x), bn.backward(dout)
    assert out.dtype == dx.dtype == np.float32
    arrays = [*bn.params.values(), *bn.grads.values(), *bn.buffers.values(), *bn.cache.flat[:2]]
    assert {a.dtype for a in arrays} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(dout, before[1])


def test_state_dict_names_are_pytorchs():
    assert list(BatchNorm2d(3).state_dict()) == ["gamma", "beta", "running_mean", "running_var"]
    assert repr(BatchNorm2d(16, eps=1e-3, dtype=F64)) == "BatchNorm2d(16, eps=0.001, dtype=float64)"


@pytest.mark.parametrize("shape,match", [
    ((4, 3, 5), r"expected input of shape \(N, 3, H, W\), got \(4, 3, 5\)"),
    ((4, 2, 5, 5), r"expected input of shape \(N, 3, H, W\), got \(4, 2, 5, 5\)"),
    ((1, 3, 1, 1), r"expected more than 1 value per channel when training, got input of "
                   r"shape \(1, 3, 1, 1\)"),
])
def test_bad_input_is_a_clear_error(shape, match):
    with pytest.raises(ValueError, match=r"^BatchNorm2d\(3\): " + match):
        BatchNorm2d(3).forward(np.zeros(shape, np.float32))


def test_bad_upstream_gradient_is_a_clear_error():
    bn = BatchNorm2d(3)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        bn.backward(np.zeros((2, 3, 2, 2), np.float32))
    bn.forward(np.random.default_rng(0).standard_normal((2, 3, 2, 4)).astype(np.float32))
    with pytest.raises(ValueError, match=r"expected an upstream gradient of shape \(2, 3, 2, 4\)"):
        bn.backward(np.zeros((2, 3, 4, 2), np.float32))
    bn.backward(np.zeros((2, 3, 2, 4), np.float32))   # the cache survives the failed call

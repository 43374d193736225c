"""LayerNorm: against PyTorch, staged equals fused, gradcheck, any leading dims, dtypes, errors."""
import numpy as np
import pytest

from handprop.layers import LayerNorm
from handprop.layers.gradcheck import gradcheck
from handprop.layers.layernorm import staged_backward

F64 = np.float64

# Reference values: torch 2.13.0+cpu, float64, made by /work/venvs/torch/bin/python with
#   ln = torch.nn.LayerNorm(4); ln.weight[...] = GAMMA; ln.bias[...] = BETA  (under no_grad)
#   x = torch.tensor(X, requires_grad=True); out = ln(x); out.backward(torch.tensor(DOUT))
# printing out.tolist(), x.grad.tolist(), ln.weight.grad.tolist(), ln.bias.grad.tolist();
# and the same with torch.nn.LayerNorm(4, elementwise_affine=False), and on the (2, 2, 4) X3.
GAMMA, BETA = [0.5, -1.25, 2.0, 1.5], [0.1, -0.2, 0.3, 0.0]
X = [[-2.5, -0.75, 0.5, 1.25], [3.0, -1.5, 0.25, -0.125]]
DOUT = [[0.5, -1.0, 2.0, 0.25], [-0.75, 1.5, -0.5, 1.0]]
AFFINE = dict(
    out=[[-0.6483814139290638, 0.13016827085105753, 1.5326282111772815, 1.7168750084254993],
         [0.8941205458667033, 1.2590769065623162, 0.10864565159838471, -0.4879535884241189]],
    dx=[[-0.28120044022654134, -0.05221316216430005, 1.5452228127190364, -1.2118092103281957],
        [-0.2536712901741087, -0.6656701020315224, -0.32685095002324294, 1.246192342228874]],
    dgamma=[-1.9395622327291187, -1.4867576711939334, 1.2804667982776854, -0.03915655754516273],
    dbeta=[-0.25, 0.5, 1.5, 1.25])
PLAIN = dict(
    out=[[-1.4967628278581275, -0.26413461668084603, 0.6163141055886407, 1.1445833389503328],
         [1.5882410917334067, -1.167261525249853, -0.09567717420080764, -0.32530239228274593]],
    dx=[[0.31668717990595474, -0.964398722881825, 0.9882871848046607, -0.34057564182879035],
        [0.13217240102029526, 0.15185244777272816, -0.5446765579879218, 0.2606517091948984]])
X3 = [[[1.0, 2.0, 4.0, -1.0], [0.5, 0.5, -0.5, 3.0]], [[-2.0, 1.0, 0.0, 0.25], [10.0, 11.0, 9.5, 12.0]]]
DOUT3 = [[[1.0, -0.5, 0.25, 2.0], [0.0, 1.0, -1.0, 0.5]], [[-0.25, 0.75, 1.5, -1.0], [2.0, 0.5, -0.5, 1.0]]]
AFFINE3 = dict(
    out=[[[-0.03867483571057029, -0.5466870892764257, 3.0734967142114056, -2.080122535658554],
          [-0.045010039682612996, 0.1625250992065325, -1.8268139153449903, 2.465170674604421]],
         [[-0.7169791264561146, -1.5381554657470842, 0.6380603281887371, 0.5916055743302899],
          [-0.22547051219305178, -0.6882057682895777, -2.043387687789973, 2.1481053804741417]]],
    dx=[[[-0.49602881386513165, -0.16267665576007695, 0.29601540688417693, 0.3626900627410323],
         [0.6920715890360315, -0.27466200884805514, -0.29815606066120526, -0.11925351952677121]],
        [[-0.5367799181661416, -0.7304982306332553, 2.639553304701212, -1.3722751559018151],
         [1.2246472997526299, -1.12535299448324, -0.5295871628669016, 0.4302928575975118]]],
    dgamma=[-1.17074215696529, 0.5694806716882855, 2.249486215037967, -0.9141066185806979],
    dbeta=[2.75, 1.75, 0.25, 2.5])


def make_ln(d=4, affine=True, bias=True, seed=0, dtype=F64):
    ln = LayerNorm(d, elementwise_affine=affine, bias=bias, dtype=dtype)
    rng = np.random.default_rng(seed)
    if affine:
        ln.params["gamma"][...] = rng.uniform(0.5, 2.0, d) * rng.choice([-1, 1], d)
    if "beta" in ln.params:
        ln.params["beta"][...] = rng.standard_normal(d)
    return ln


@pytest.mark.parametrize("x,dout,expect,affine", [(X, DOUT, AFFINE, True), (X, DOUT, PLAIN, False),
                                                  (X3, DOUT3, AFFINE3, True)],
                         ids=["affine", "no-affine", "3-D"])
def test_agrees_with_pytorch(x, dout, expect, affine):
    ln = LayerNorm(4, elementwise_affine=affine, dtype=F64)
    if affine:
        ln.params["gamma"][...], ln.params["beta"][...] = GAMMA, BETA
    out = ln.forward(np.array(x))
    dx = ln.backward(np.array(dout))
    np.testing.assert_allclose(out, expect["out"], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dx, expect["dx"], rtol=1e-12, atol=1e-14)
    if affine:
        np.testing.assert_allclose(ln.grads["gamma"], expect["dgamma"], rtol=1e-13)
        np.testing.assert_allclose(ln.grads["beta"], expect["dbeta"], rtol=1e-15)
        dx_s, dgamma_s, dbeta_s = staged_backward(np.array(x), ln.params["gamma"], ln.eps, np.array(dout))
        np.testing.assert_allclose(dgamma_s, expect["dgamma"], rtol=1e-13)
    else:
        dx_s = staged_backward(np.array(x), None, ln.eps, np.array(dout))[0]
    np.testing.assert_allclose(dx_s, expect["dx"], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shape", [(1, 3), (5, 4), (2, 3, 5)])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, True)])
def test_gradcheck(seed, shape, affine, bias):
    ln = make_ln(shape[-1], affine, bias, seed)
    x = 3 + 2 * np.random.default_rng(seed + 10).standard_normal(shape)
    report = gradcheck(ln, x, seed=seed)
    assert report.ok, report
    assert report.worst < 1e-8
    assert [r.name for r in report.rows] == ["x", *ln.params]


class StagedLayerNorm(LayerNorm):
    """LayerNorm whose backward is the gate-by-gate one, so gradcheck can check it too."""

    def forward(self, x):
        self.x = x
        return super().forward(x)

    def backward(self, dout):
        dx, self.grads["gamma"][...], self.grads["beta"][...] = staged_backward(
            self.x, self.params["gamma"], self.eps, dout)
        return dx


def test_staged_backward_passes_gradcheck():
    staged = StagedLayerNorm(4, dtype=F64)
    staged.params["gamma"][...] = [0.5, 1.5, 2.0, -1.0]
    report = gradcheck(staged, np.random.default_rng(0).standard_normal((3, 2, 4)))
    assert report.ok, report


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(1, 2), (7, 5), (4, 3, 16)])
def test_staged_and_fused_backward_agree(seed, shape):
    rng = np.random.default_rng(seed)
    ln = make_ln(shape[-1], seed=seed)
    x = rng.standard_normal(shape) * rng.uniform(0.1, 10, shape[:-1] + (1,)) + rng.standard_normal(shape[:-1] + (1,))
    dout = rng.standard_normal(shape)
    ln.forward(x)
    dx = ln.backward(dout)
    dx_s, dgamma_s, dbeta_s = staged_backward(x, ln.params["gamma"], ln.eps, dout)
    # dx is a difference of terms of size |gamma * inv_std * dout|; at D = 2 they nearly cancel
    terms = np.abs(dout * ln.params["gamma"] / np.sqrt(x.var(axis=-1, keepdims=True) + ln.eps)).max()
    np.testing.assert_allclose(dx, dx_s, rtol=1e-12, atol=1e-12 * terms)
    np.testing.assert_allclose(ln.grads["gamma"], dgamma_s, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ln.grads["beta"], dbeta_s, rtol=1e-12)


def test_each_row_is_normalized_the_same_in_both_modes():
    x = np.random.default_rng(0).standard_normal((6, 8)) * 5 + 3
    ln = LayerNorm(8, dtype=F64)
    out = ln.forward(x)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-14)
    np.testing.assert_allclose(out.var(axis=1), 1, rtol=1e-5)        # eps = 1e-5 against var 25
    np.testing.assert_array_equal(ln.eval().forward(x), out)         # no running statistics
    assert ln.buffers == {}
    np.testing.assert_array_equal(ln.forward(x[2:3]), out[2:3])      # a row does not see the others


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_and_inputs_unchanged(dtype):
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((3, 2, 5)).astype(dtype), rng.standard_normal((3, 2, 5)).astype(dtype)
    x0, dout0 = x.copy(), dout.copy()
    ln = make_ln(5, dtype=dtype)
    out = ln.forward(x)
    dx = ln.backward(dout)
    assert out.dtype == dx.dtype == dtype
    assert all(a.dtype == dtype for a in ln.cache)
    assert {g.dtype for g in ln.grads.values()} == {np.dtype(dtype)}
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dout, dout0)


def test_a_constant_row_stays_finite():
    ln = make_ln(3)
    out = ln.forward(np.full((2, 3), 7.0))
    dx = ln.backward(np.ones((2, 3)))
    np.testing.assert_allclose(out, np.broadcast_to(ln.params["beta"], (2, 3)))
    assert np.isfinite(dx).all()


def test_params_repr_and_pytorch_defaults():
    ln = LayerNorm(4)
    assert set(ln.params) == {"gamma", "beta"} and ln.params["gamma"].dtype == np.float32
    np.testing.assert_array_equal(ln.params["gamma"], 1)
    np.testing.assert_array_equal(ln.params["beta"], 0)
    assert ln.eps == 1e-5 and LayerNorm((4,)).normalized_shape == (4,)
    assert set(LayerNorm(4, bias=False).params) == {"gamma"}
    assert LayerNorm(4, elementwise_affine=False).params == {}
    assert repr(ln) == "LayerNorm(4)"
    assert repr(LayerNorm(4, eps=1e-3, bias=False, dtype=F64)) == "LayerNorm(4, eps=0.001, bias=False, dtype=float64)"
    assert repr(LayerNorm(4, elementwise_affine=False)) == "LayerNorm(4, elementwise_affine=False)"


@pytest.mark.parametrize("call,error,message", [
    (lambda ln: ln.forward(np.ones((2, 5), np.float32)), ValueError,
     r"LayerNorm\(4\): expected input of shape \(\.\.\., 4\), got \(2, 5\)"),
    (lambda ln: ln.forward(np.ones((), np.float32)), ValueError, r"expected input of shape \(\.\.\., 4\), got \(\)"),
    (lambda ln: ln.forward(np.ones((2, 4))), TypeError, r"LayerNorm\(4\): expected float32 input"),
    (lambda ln: ln.forward(np.ones((2, 4), np.int32)), TypeError, r"expected a floating-point input"),
    (lambda ln: ln.backward(np.ones((2, 4), np.float32)), RuntimeError, r"backward called before forward"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call(LayerNorm(4))


def test_bad_upstream_gradient():
    ln = LayerNorm(4)
    ln.forward(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"LayerNorm\(4\): expected an upstream gradient of shape \(2, 3, 4\)"):
        ln.backward(np.ones((6, 4), np.float32))
    with pytest.raises(TypeError, match=r"upstream gradient of dtype float32"):
        ln.backward(np.ones((2, 3, 4)))


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(normalized_shape=0), ValueError, r"LayerNorm: expected normalized_shape >= 1, got 0"),
    (dict(normalized_shape=2.5), TypeError, r"expected normalized_shape to be an int"),
    (dict(normalized_shape=(3, 4)), ValueError, r"LayerNorm: normalizes the last axis only; .*got \(3, 4\)"),
    (dict(normalized_shape=4, eps=0), ValueError, r"LayerNorm: expected eps > 0, got 0"),
    (dict(normalized_shape=4, eps=True), TypeError, r"^LayerNorm: expected eps as a real number, got True$"),
    (dict(normalized_shape=4, dtype=np.int64), TypeError, r"LayerNorm: expected a floating-point dtype"),
])
def test_bad_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        LayerNorm(**kwargs)

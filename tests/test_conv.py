"""Conv2d: PyTorch's values, the staged definition, gradcheck, dtypes, the derivation's claims, errors."""
import numpy as np
import pytest

from handprop.layers import Conv2d, windows
from handprop.layers.conv import staged_backward, staged_forward
from handprop.layers.gradcheck import gradcheck

F64 = np.float64

# Reference values from torch 2.13.0+cpu, float64, printed to 13 significant digits by
# tests/torch_reference_conv.py conv. For each
# key (seed, x shape, W shape, stride, padding, dilation):
#     rng = np.random.default_rng(seed)
#     x = rng.standard_normal(x_shape); W = rng.standard_normal(W_shape); b = rng.standard_normal(O)
#     out = F.conv2d(x, W, b, stride=stride, padding=padding, dilation=dilation)
#     dout = rng.standard_normal(out.shape); out.backward(dout)
# and out, x.grad, W.grad, b.grad flattened in C order.
TORCH = {
    (0, (1, 2, 5, 4), (3, 2, 3, 2), 1, 0, 1): {
        'out': [2.565811096828, 3.019465645705, -1.93242892355, -1.665596260615, -3.316964313405,
                -7.113311733465, -4.924398243337, -2.8876194685, -4.833956931127, -1.664146146535,
                0.9621539181645, -0.2384732795946, -1.305253665022, 4.512159420483, 3.697810932459,
                1.322517295197, -0.2223858023349, 4.630914928145, 2.748218013757, 4.610699162544,
                1.527607880618, -5.484853203565, 0.654399811086, -1.506128707857, -4.860950169644,
                -4.844733002078, -5.886052351602],
        'dx': [-2.710403569471, 2.001389550174, 2.078518319646, -0.7848757644874, 3.373738938536,
                -1.519706395949, -4.291435401356, -4.83344225506, -3.054530960736, 2.656951394154,
                1.423676722434, 3.977840512289, -0.2792784630179, 0.267378185929, -1.375888496581,
                -0.3643202946645, -0.4063622699412, 3.493354663999, -1.787638125227, 2.527038704478,
                3.782607614647, 2.22919345021, -2.32094261925, -2.00925881283, 0.9604419689807,
                -0.3313656732999, -5.498113398787, -1.760757958742, -1.958966392439, -4.135377864718,
                -3.576486219478, 3.59557769135, 3.467570397449, 2.346335025229, -1.81418850319,
                4.430812780259, -1.297739611132, 4.125481798066, -3.956721495348, 0.04658589982763],
        'dW': [-4.022981634938, -4.086125351762, -2.593113364698, -0.3347154740658, 1.461349392535,
                1.089566201824, -0.5399150734904, 3.622929075246, 4.01196163427, 2.843238201929,
                -0.5126469571795, 1.797797007616, -4.04235022873, -0.4926422398288, -0.4686992018673,
                -1.553036900617, -4.47270005859, 1.136980945885, 4.475069950176, -2.128094435254,
                0.1699651726551, 0.2892953614225, 0.194074306045, -0.2974449345092, -0.4702999673824,
                1.15060322534, 0.3995037318877, -4.46286618866, 1.583739731036, -0.3394352295916,
                1.820887029964, -1.787920036123, 0.9090426248161, 0.5311120487734, 1.393151697652,
                0.8558077030104],
        'db': [1.317464019349, 2.495501125838, -3.481884112903],
    },
    (1, (1, 2, 6, 5), (2, 2, 2, 3), 2, 1, 1): {
        'out': [3.49373317992, -0.7049475669179, 3.819204943695, 1.334741897244, -1.651032219202,
                0.829486170237, 1.78861556448, 1.149659404295, 0.8811914274529, -1.781663781618,
                2.808370932005, 0.4221310018188, -2.781854402108, 1.191856814211, -1.459381953327,
                2.183577242764, 4.665579473318, 0.5362147331756, 1.985578609911, -2.026231618599,
                0.9646200020493, 0.4013122973705, -0.5018114250124, 0.9473402827381],
        'dx': [0.3642701805044, 2.710264973181, -0.1151018113471, -1.569567545644, 0.313762026733,
                0.7765454203579, -0.0922389544522, 0.144555412153, -1.421148304905, 0.5733334525473,
                -0.2042432321865, -2.579456816235, 0.2182407498391, 0.09257672543543, -0.1798116470612,
                0.8909992287094, 0.07756177379817, 0.2174449046071, 1.118455229333, -0.3707583320998,
                -0.4396902303343, -1.132142135359, -0.1838553778851, -2.400259687308, 0.5130226299847,
                -1.753150395046, 0.3977925767695, 1.281148407262, 0.6725974239859, -0.07471672278021,
                1.540457162243, 1.958190889091, -0.5440532310658, -0.4102152782635, 1.607811440689,
                -0.02873993312607, 0.1165512801216, 0.721515541226, -1.555321852619, -0.1035215123128,
                -0.8328874846132, -0.9715381942002, 1.277909102146, 0.08421439011449, -0.7771837035296,
                -0.6154187680338, 0.998263701635, -0.3673209471566, 1.068651953402, 1.192278407646,
                -2.103881395706, -1.420203026707, -0.9414979136399, -0.2816490084811, 2.721081373749,
                -1.034441885533, 2.31154754816, -0.887019428934, 1.608068672753, 0.07468141615307],
        'dW': [-1.181486400546, 4.85871429827, 0.6303349756314, 0.9899360454308, -3.771885928198,
                -0.6457883311279, 0.04218746097256, 2.362130992177, -2.13627499124, -0.2472103333947,
                -1.022256796464, -0.2306479117567, 0.6811170108723, 3.44806728225, -0.1206219013085,
                -0.04265355291515, 1.70183018709, -1.063243380271, 1.41267226302, 1.616662233058,
                -3.76792780279, -2.121092691834, -4.77941401562, 0.6049769869132],
        'db': [-0.2490295489253, 0.5160149299814],
    },
    (2, (1, 2, 7, 6), (2, 2, 3, 2), (2, 1), (1, 0), 2): {
        'out': [0.3541504687628, 1.299237764357, 2.577408834881, 0.9216374796685, -0.7810429527573,
                4.195099666494, 2.649389795748, 1.21964926389, 2.10072368286, 3.456016503159,
                0.2912928132375, -0.03499861287409, 0.1414429937489, -2.536028913476, -2.755137197509,
                1.702612924705, -3.517645649713, -1.433253081893, -2.031484607226, -5.620826144559,
                -3.720560217342, -4.419240854341, -4.255080935113, 0.3786339442042],
        'dx': [0, 0, 0, 0, 0, 0, -1.209776959112, 0.725076710798, 1.04360749777, 0.8368310390664,
                0.4901625143505, 0.3649361474505, 0, 0, 0, 0, 0, 0, 0.3682174291614, -2.047662714357,
                0.7474749878829, -1.385991603371, -0.4099291220424, 3.200093808439, 0, 0, 0, 0, 0, 0,
                1.247572788584, 0.1468169131616, 0.4197469834791, 3.124921992394, -0.06201761289629,
                -0.5921946640214, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.106765048337, -0.1170320346975,
                -3.66517569395, 3.62850741689, 1.08528614178, -1.65249541494, 0, 0, 0, 0, 0, 0,
                0.5712620579769, 0.417281234762, -3.95750486199, -1.240940188304, -1.156664958755,
                -3.351449676982, 0, 0, 0, 0, 0, 0, -0.3173073444308, 0.3197531042855,
                -0.04877279479319, 0.8036232427266, 4.43796236982, -1.600589823184, 0, 0, 0, 0, 0, 0],
        'dW': [-2.195989440662, -0.7382812727977, -0.2932132274878, 3.543976553402, 1.808308360897,
                1.072734365137, -4.620241910848, 2.467232994963, 0.4431261657982, -2.077062652625,
                -1.814531060753, 6.207988996355, 0.04606464592498, -0.8383350107107, 1.217887507566,
                -0.2632087394406, -2.534655197225, -1.440901011342, -0.4755954717909, 0.9236893571444,
                4.261711032117, -5.435275302977, 0.6775292338921, 2.042149769435],
        'db': [-0.1268320548282, -1.220583994495],
    },
}


def torch_case(key):
    seed, x_shape, w_shape, stride, padding, dilation = key
    rng = np.random.default_rng(seed)
    x, W, b = (rng.standard_normal(x_shape), rng.standard_normal(w_shape),
               rng.standard_normal(w_shape[0]))
    conv = Conv2d(w_shape[1], w_shape[0], w_shape[2:], stride, padding, dilation, dtype=F64)
    conv.params["W"][...], conv.params["b"][...] = W, b
    out = conv.forward(x)
    return conv, x, out, rng.standard_normal(out.shape)


@pytest.mark.parametrize("key", TORCH)
def test_matches_pytorch(key):
    conv, x, out, dout = torch_case(key)
    dx = conv.backward(dout)
    expected = TORCH[key]
    for name, got in [("out", out), ("dx", dx), ("dW", conv.grads["W"]), ("db", conv.grads["b"])]:
        want = np.reshape(expected[name], got.shape)
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11, err_msg=name)


# (N, C, H, W), O, kernel, stride, padding, dilation
GEOMETRIES = [
    ((2, 3, 7, 6), 4, (3, 2), 1, 0, 1),
    ((3, 2, 8, 5), 2, 3, 2, 1, 1),
    ((1, 2, 9, 7), 3, (2, 3), (2, 1), (1, 2), (2, 1)),
    ((2, 1, 5, 5), 2, 1, 1, 0, 1),
    ((2, 2, 6, 7), 3, 3, 3, 2, 2),
    ((3, 2, 1, 2), 2, 3, 1, 1, 1),          # one row: taps p = 0 and p = 2 read only padding
    ((2, 3, 6, 5), 2, 3, 1, 1, 1),          # "same" convolutions: im2col by flat shifts
    ((2, 2, 7, 9), 3, (3, 5), 1, (2, 4), 2),
]
SAME = [GEOMETRIES[i] for i in (3, 5, 6, 7)]    # stride 1, padding d*(k - 1)/2: OH, OW = H, W
SHIFTS_PAST_THE_IMAGE = [                        # "same", with offsets |a| >= H or |b| >= W
    ((2, 2, 3, 2), 2, 5, 1, 2, 1),
    ((3, 2, 1, 2), 2, 7, 1, 3, 1),
]


def make(geometry, seed=0, dtype=F64, bias=True):
    shape, o, kernel, stride, padding, dilation = geometry
    conv = Conv2d(shape[1], o, kernel, stride, padding, dilation, bias, rng=seed, dtype=dtype)
    return conv, np.random.default_rng(seed + 1).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_staged_equals_fast(geometry):
    conv, x = make(geometry)
    out = conv.forward(x)
    dout = np.random.default_rng(5).standard_normal(out.shape)
    dx = conv.backward(dout)
    args = conv.stride, conv.padding, conv.dilation
    np.testing.assert_allclose(out, staged_forward(x, conv.params["W"], conv.params["b"], *args),
                               rtol=1e-12, atol=1e-12)
    for got, want in zip((dx, conv.grads["W"], conv.grads["b"]),
                         staged_backward(x, conv.params["W"], dout, *args)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


class StagedConv2d(Conv2d):
    """Conv2d whose forward and backward are the staged loops, so gradcheck checks them too."""

    def forward(self, x):
        self.cache = x
        return staged_forward(x, self.params["W"], self.params["b"], self.stride, self.padding,
                              self.dilation)

    def backward(self, dout):
        dx, self.grads["W"][...], self.grads["b"][...] = staged_backward(
            self.cache, self.params["W"], dout, self.stride, self.padding, self.dilation)
        return dx


@pytest.mark.parametrize("geometry", GEOMETRIES[:3])
def test_gradcheck(geometry):
    conv, x = make(geometry)
    report = gradcheck(conv, x)
    assert report.ok, report
    assert report.worst < 1e-8


def test_gradcheck_without_bias_and_the_staged_form():
    conv, x = make(GEOMETRIES[2], bias=False)
    report = gradcheck(conv, x)
    assert report.ok, report
    assert list(conv.params) == ["W"]
    staged = StagedConv2d(2, 2, (3, 2), stride=2, padding=(1, 0), dilation=(1, 2), dtype=F64, rng=3)
    report = gradcheck(staged, np.random.default_rng(4).standard_normal((2, 2, 6, 5)))
    assert report.ok, report


def test_overlapping_windows_must_add():
    """Writing each window's gradient over the last (= instead of +=) is caught by gradcheck."""
    import handprop.layers.windows as windows

    class Overwrites(Conv2d):
        def backward(self, dout):
            dout2d = self._param_grads(dout)                                  # (O, N*OH*OW)
            (n, c, h, w), (oh, ow) = self.cache.x.shape, self.cache.out_hw
            dxp = np.zeros((c, n, h + 2, w + 2))
            for p in range(3):
                for q in range(3):
                    tap = self.params["W"][:, :, p, q].T @ dout2d
                    dxp[:, :, p:p + oh, q:q + ow] = tap.reshape(c, n, oh, ow)      # the bug
            return windows.channels_outer(dxp[:, :, 1:-1, 1:-1])
    conv = Overwrites(2, 2, 3, padding=1, rng=0, dtype=F64)
    report = gradcheck(conv, np.random.default_rng(0).standard_normal((1, 2, 4, 4)))
    assert not report.ok and [row.name for row in report.rows if not row.ok] == ["x"]


@pytest.mark.parametrize("geometry", [GEOMETRIES[0], GEOMETRIES[1]])
def test_dx_is_a_full_convolution_of_dout_with_the_flipped_kernel(geometry):
    """Stride 1: dx = conv(dout padded by k - 1 - p, W flipped in space, in/out swapped)."""
    shape, o, kernel, _, padding, _ = geometry
    conv, x = make((shape, o, kernel, 1, padding, 1))
    dout = np.random.default_rng(2).standard_normal(conv.forward(x).shape)
    (kh, kw), (ph, pw) = conv.kernel_size, conv.padding
    flipped = conv.params["W"][:, :, ::-1, ::-1].transpose(1, 0, 2, 3)        # (C, O, kh, kw)
    full = staged_forward(dout, flipped, None, padding=(kh - 1 - ph, kw - 1 - pw))
    np.testing.assert_allclose(conv.backward(dout), full, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES[:3])
def test_dW_is_a_correlation_of_the_input_with_dout(geometry):
    """dW[o, c] = sum over n of x[n, c] correlated with dout[n, o]: a convolution whose
    channels are the batch, with stride and dilation exchanged."""
    conv, x = make(geometry)
    dout = np.random.default_rng(2).standard_normal(conv.forward(x).shape)
    conv.backward(dout)
    kh, kw = conv.kernel_size
    dW = staged_forward(x.transpose(1, 0, 2, 3), dout.transpose(1, 0, 2, 3), None,
                        stride=conv.dilation, padding=conv.padding, dilation=conv.stride)
    np.testing.assert_allclose(conv.grads["W"], dW.transpose(1, 0, 2, 3)[:, :, :kh, :kw],
                               rtol=1e-12, atol=1e-12)


def test_float32_stays_float32_and_inputs_are_not_changed():
    conv, x = make(GEOMETRIES[1], dtype=np.float32)
    x_before = x.copy()
    out = conv.forward(x)
    dout = np.random.default_rng(0).standard_normal(out.shape).astype(np.float32)
    dout_before = dout.copy()
    dx = conv.backward(dout)
    assert out.dtype == dx.dtype == np.float32
    assert {g.dtype for g in conv.grads.values()} == {np.dtype(np.float32)}
    assert all(a.dtype == np.float32 for a in conv.cache if isinstance(a, np.ndarray))
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)
    conv64, x64 = make(GEOMETRIES[1])
    np.testing.assert_allclose(out, conv64.forward(x64), rtol=1e-4, atol=1e-5)


def test_any_memory_layout_gives_the_same_result():
    conv, x = make(GEOMETRIES[0])
    out = conv.forward(x)
    dout = np.random.default_rng(0).standard_normal(out.shape)
    dx, dW = conv.backward(dout), conv.grads["W"].copy()
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(conv.forward(nhwc), out)
    np.testing.assert_array_equal(conv.backward(np.asfortranarray(dout)), dx)
    np.testing.assert_array_equal(conv.grads["W"], dW)


@pytest.mark.parametrize("geometry", SAME + SHIFTS_PAST_THE_IMAGE)
@pytest.mark.parametrize("layout", ["NCHW", "CNHW"])
def test_same_convolutions_by_flat_shifts_equal_the_clipped_taps_bit_for_bit(geometry, layout,
                                                                             monkeypatch):
    """A "same" convolution copies each tap as one shifted run of N*H*W pixels per channel and
    zeroes what wrapped onto the next row or image; the general path copies clipped rows: the
    same values."""
    conv, x = make(geometry)
    if layout == "CNHW":                   # what Conv2d and the pools return
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    dout = np.random.default_rng(2).standard_normal(conv.forward(x).shape)
    flat = [conv.forward(x), conv.backward(dout), conv.grads["W"].copy()]
    monkeypatch.setattr(windows, "flat_shifts", lambda *args: None)
    clipped = [conv.forward(x), conv.backward(dout), conv.grads["W"]]
    for got, want in zip(flat, clipped):
        np.testing.assert_array_equal(got, want)


def test_the_cache_keeps_the_input_not_its_im2col_columns():
    """The columns are kh*kw copies of the input (the largest memory of a CNN's step):
    backward builds them again, so forward keeps only x itself, not even a copy of it."""
    conv, x = make(GEOMETRIES[6], dtype=np.float32)
    conv.forward(x)
    kept = [a for a in conv.cache if isinstance(a, np.ndarray)]
    assert len(kept) == 1 and kept[0] is x


def test_param_backward_fills_the_same_grads():
    conv, x = make(GEOMETRIES[1])
    dout = np.random.default_rng(0).standard_normal(conv.forward(x).shape)
    conv.backward(dout)
    grads = {k: g.copy() for k, g in conv.grads.items()}
    conv.grads["W"][...] = conv.grads["b"][...] = 7.0
    conv.param_backward(dout)
    for k in grads:
        np.testing.assert_array_equal(conv.grads[k], grads[k])


def test_initialisation_is_pytorchs():
    conv = Conv2d(4, 64, (3, 5), rng=0, dtype=F64)
    k = 1 / np.sqrt(4 * 3 * 5)                   # 1/sqrt(fan_in), for W and for b
    assert conv.params["W"].shape == (64, 4, 3, 5) and conv.params["b"].shape == (64,)
    for p in conv.params.values():
        assert np.abs(p).max() <= k and np.abs(p).max() > 0.8 * k
    np.testing.assert_array_equal(Conv2d(4, 64, (3, 5), rng=0).params["W"],
                                  conv.params["W"].astype(np.float32))


def test_repr_shows_what_differs_from_the_defaults():
    assert repr(Conv2d(1, 16, 3, padding=1)) == "Conv2d(1, 16, kernel_size=3, padding=1)"
    assert repr(Conv2d(2, 4, (3, 5), stride=(2, 1), dilation=2, bias=False, dtype=F64)) == (
        "Conv2d(2, 4, kernel_size=(3, 5), stride=(2, 1), dilation=2, bias=False, dtype=float64)")


@pytest.mark.parametrize("shape,match", [
    ((2, 28, 28), r"expected input of shape \(N, 2, H, W\), got \(2, 28, 28\); for one image use x\[None\]"),
    ((4, 3, 8, 8), r"expected input of shape \(N, 2, H, W\), got \(4, 3, 8, 8\)"),
    ((4, 2, 2, 8), r"expected an input of at least 3 x 3 pixels .* got 2 x 8: the output would be empty"),
    ((0, 2, 8, 8), r"expected at least one sample, got an empty batch of shape \(0, 2, 8, 8\)"),
])
def test_bad_input_is_a_clear_error(shape, match):
    conv = Conv2d(2, 3, 3)
    with pytest.raises(ValueError, match=r"^Conv2d\(2, 3, kernel_size=3\): " + match):
        conv.forward(np.zeros(shape, np.float32))


def test_padding_makes_room_for_the_kernel():
    conv = Conv2d(1, 1, (5, 3), padding=(1, 0), dtype=F64)
    assert conv.forward(np.zeros((1, 1, 3, 3))).shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="at least 3 x 3 pixels"):
        conv.forward(np.zeros((1, 1, 2, 3)))
    with pytest.raises(ValueError, match=r"at least 9 x 5 pixels \(the kernel spans 9 x 5"):
        Conv2d(1, 1, (5, 3), dilation=2).forward(np.zeros((1, 1, 8, 8), np.float32))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(stride=0), ValueError, "Conv2d: expected stride >= 1, got 0"),
    (dict(stride=(1, -2)), ValueError, "Conv2d: expected stride >= 1, got -2"),
    (dict(padding=-1), ValueError, "Conv2d: expected padding >= 0, got -1"),
    (dict(dilation=0), ValueError, "Conv2d: expected dilation >= 1, got 0"),
    (dict(kernel_size=(3, 3, 3)), ValueError, r"Conv2d: expected kernel_size as an int or a pair"),
    (dict(kernel_size=2.5), TypeError, r"Conv2d: expected kernel_size to be an int, got 2.5"),
])
def test_bad_arguments_are_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Conv2d(**{"in_channels": 1, "out_channels": 2, "kernel_size": 3, **kwargs})


def test_bad_upstream_gradient_and_backward_before_forward():
    conv = Conv2d(1, 2, 3)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        conv.backward(np.zeros((1, 2, 2, 2), np.float32))
    conv.forward(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"expected an upstream gradient of shape \(1, 2, 2, 2\)"):
        conv.backward(np.zeros((1, 2, 2, 3), np.float32))
    with pytest.raises(TypeError, match="dtype float32"):
        conv.backward(np.zeros((1, 2, 2, 2)))


def test_a_cnn_training_step_keeps_float32_everywhere():
    """The reference CNN's layers, small: outputs, caches, gradients and updates stay float32."""
    from handprop.layers import BatchNorm2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
    from handprop.losses import SoftmaxCrossEntropy
    from handprop.train import SGD
    f32 = np.float32
    model = Sequential(Conv2d(1, 4, 3, padding=1, rng=0), BatchNorm2d(4), ReLU(), MaxPool2d(2),
                       Conv2d(4, 6, 3, padding=1, rng=1), BatchNorm2d(6), ReLU(), MaxPool2d(2),
                       Flatten(), Linear(6 * 2 * 2, 3, rng=2))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 1, 8, 8)).astype(f32), rng.integers(0, 3, 5)
    loss_fn, opt = SoftmaxCrossEntropy(), SGD(model, lr=0.1, momentum=0.9)
    h = x
    for layer in model:
        h = layer.forward(h)
        assert h.dtype == f32, layer
        cached = layer.cache if isinstance(layer.cache, tuple) else (layer.cache,)
        cached = [a for c in cached for a in (c if isinstance(c, tuple) else (c,))]
        assert all(a.dtype in (f32, np.uint8) for a in cached if isinstance(a, np.ndarray)), layer
    loss_fn.forward(h, y)
    d = loss_fn.backward()
    for layer in reversed(model.layers):
        d = layer.backward(d)
        assert d.dtype == f32 and np.isfinite(d).all(), layer
    opt.step()
    arrays = {**model.params, **model.grads, **model.buffers, **opt.momentum_buffers}
    assert {a.dtype for a in arrays.values()} == {np.dtype(f32)}


@pytest.mark.parametrize("name", ["conv", "pool", "batchnorm2d", "flatten"])
def test_docstring_examples_run(name):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(f"handprop.layers.{name}"),
                             optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result

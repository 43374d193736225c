"""MaxPool2d, AvgPool2d and Flatten: PyTorch's values and ties, the staged definition,
gradcheck, dtypes, errors."""
import numpy as np
import pytest

from handprop.layers import AvgPool2d, Flatten, MaxPool2d
from handprop.layers.gradcheck import gradcheck
from handprop.layers.pool import (
    staged_avg_pool,
    staged_avg_pool_backward,
    staged_max_pool,
    staged_max_pool_backward,
)

F64 = np.float64

# Reference values from torch 2.13.0+cpu, float64, printed to 13 significant digits by
# tests/torch_reference_conv.py pool. For each
# key (seed, kind, kernel, stride, padding), with x of shape (1, 2, 5, 4):
#     rng = np.random.default_rng(seed)
#     x = rng.integers(0, 4, x_shape).astype(float)      # max: small integers, so windows tie
#     x = rng.standard_normal(x_shape)                   # avg
#     out = F.max_pool2d(x, kernel, stride=stride, padding=padding)    # or F.avg_pool2d
#     dout = rng.standard_normal(out.shape); out.backward(dout)
# and out, x.grad flattened in C order.
TORCH = {
    (3, "max", 2, None, 0): {
        'out': [3, 3, 2, 1, 1, 3, 3, 3],
        'dx': [0.02425956507666, 0, 0, 0, 0, 0, 1.545820851213, 0, 0, 0, -0.505228735614, 0,
                0.5451055226876, 0, 0, 0, 0, 0, 0, 0, -0.1828389745977, 0, 0.5405251317548, 0, 0, 0, 0,
                0, 0, 0, -0.2696203273419, 0, 1.935088034099, 0, 0, 0, 0, 0, 0, 0],
    },
    (4, "max", (3, 2), (2, 1), 1): {
        'out': [3, 3, 3, 3, 2, 3, 3, 3, 3, 1, 2, 3, 3, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 3, 3,
                3],
        'dx': [0, -0.2918255884097, -0.1100586952781, 1.482571163034, -2.48896999904,
                -0.8920557883216, 0.7758718474581, 0, 0, 0, 0, -2.118060042185, -0.3436943500995,
                -1.27409565666, 0.9852155828582, 0, 0, 0, 0, 0.1787134291184, 0, -0.02066970770017, 0,
                0, 2.605783787646, 0, 0, -2.406148344083, 0, -0.7096848707087, 0, 0, -0.5842382291573,
                -0.369738425255, 0, 1.551710808711, 0, 0, 0, 0],
    },
    (5, "avg", 2, None, 0): {
        'out': [-0.2201343722675, -0.2913360149776, 0.756320674314, -0.6224530725293, 0.2698895580849,
                -0.6380676819323, -0.3740315182272, -0.6782112970774],
        'dx': [0.2925740252946, 0.2925740252946, 0.1791469139685, 0.1791469139685, 0.2925740252946,
                0.2925740252946, 0.1791469139685, 0.1791469139685, -0.4994541731124, -0.4994541731124,
                0.06803221735312, 0.06803221735312, -0.4994541731124, -0.4994541731124,
                0.06803221735312, 0.06803221735312, 0, 0, 0, 0, -0.2754291568953, -0.2754291568953,
                0.008264305039567, 0.008264305039567, -0.2754291568953, -0.2754291568953,
                0.008264305039567, 0.008264305039567, 0.01090799814236, 0.01090799814236,
                -0.4971074470578, -0.4971074470578, 0.01090799814236, 0.01090799814236,
                -0.4971074470578, -0.4971074470578, 0, 0, 0, 0],
    },
    (6, "avg", (3, 2), (2, 1), 1): {
        'out': [0.3444725272567, 0.8659113821232, 0.2048549458597, -0.09005844380523, 0.2265254652016,
                0.07617467236356, 0.4566735395566, 0.4225540122565, 0.3245235663253, 0.2824684212618,
                0.07429293786084, 0.4373547019439, 0.2620169242246, 0.34149868227, 0.4425435221284,
                -0.4174719111156, -0.8419783976602, -0.3517762433026, -0.02406262947779,
                -0.09679287271979, 0.08414063684032, -0.1640633861625, 0.043111644002,
                0.09470570630603, -0.1966099606988, 0.1117462291565, -0.02717899429421,
                0.1416235885119, 0.1988771330298, -0.08167167893271],
        'dx': [0.1899354809639, 0.2730276523287, -0.08000230039391, 0.04631083313944, 0.4564800273574,
                0.3654942545941, 0.05366079704601, -0.1811888883995, 0.2665445463935, 0.09246660226543,
                0.1336630974399, -0.2274997215389, 0.5686473035133, 0.2225754368485, 0.09109266199439,
                -0.4802918000818, 0.3021027571198, 0.130108834583, -0.04257043544553, -0.2527920785429,
                -0.3190786520463, 0.03906890577987, 0.02605979507393, -0.02959195471524,
                -0.1418236946985, 0.1507740308404, 0.3631167723332, 0.004048943229786, 0.1772549573477,
                0.1117051250606, 0.3370569772592, 0.03364089794502, -0.01284663057834,
                -0.1304685451741, 0.4428298476699, -0.0230824560624, -0.1901015879261,
                -0.2421736702347, 0.1057728704107, -0.05672335400742],
    },
}
LAYERS = {"max": MaxPool2d, "avg": AvgPool2d}


@pytest.mark.parametrize("key", TORCH)
def test_matches_pytorch_ties_included(key):
    seed, kind, kernel, stride, padding = key
    rng = np.random.default_rng(seed)
    shape = (1, 2, 5, 4)
    x = rng.integers(0, 4, shape).astype(float) if kind == "max" else rng.standard_normal(shape)
    pool = LAYERS[kind](kernel, stride, padding)
    out = pool.forward(x)
    dx = pool.backward(rng.standard_normal(out.shape))
    for name, got in [("out", out), ("dx", dx)]:
        want = np.reshape(TORCH[key][name], got.shape)
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12, err_msg=name)


def test_a_tie_sends_the_gradient_to_the_first_element_in_row_major_order():
    """As PyTorch 2.13 on CPU: all four equal -> top-left; [[1, 3], [3, 2]] -> top-right."""
    x = np.array([[[[5.0, 5.0, 1.0, 3.0], [5.0, 5.0, 3.0, 2.0]]]])
    pool = MaxPool2d(2)
    pool.forward(x)
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1, 2))),
                                  [[[[1, 0, 0, 1], [0, 0, 0, 0]]]])


# (N, C, H, W), kernel, stride, padding
GEOMETRIES = [
    ((2, 3, 6, 4), 2, None, 0),
    ((2, 2, 7, 5), 3, 2, 1),
    ((1, 2, 6, 7), (3, 2), (1, 2), (1, 0)),
    ((3, 1, 5, 5), (2, 3), 1, (1, 1)),
    ((2, 2, 7, 8), 2, 3, 0),                  # gaps between windows: their pixels get 0
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_staged_equals_fast(kind, ties, geometry):
    shape, kernel, stride, padding = geometry
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, shape).astype(float) if ties else rng.standard_normal(shape)
    pool = LAYERS[kind](kernel, stride, padding)
    out = pool.forward(x)
    dout = rng.standard_normal(out.shape)
    staged, staged_backward = {"max": (staged_max_pool, staged_max_pool_backward),
                               "avg": (staged_avg_pool, staged_avg_pool_backward)}[kind]
    args = pool.kernel_size, pool.stride, pool.padding
    np.testing.assert_allclose(out, staged(x, *args), rtol=1e-14)
    np.testing.assert_allclose(pool.backward(dout), staged_backward(x, dout, *args),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_gradcheck(kind, geometry):
    shape, kernel, stride, padding = geometry
    # distinct values, at least 0.1 apart: a perturbation of 1e-6 never changes a window's max
    x = np.random.default_rng(1).permutation(np.prod(shape)).reshape(shape) / 10.0
    report = gradcheck(LAYERS[kind](kernel, stride, padding), x)
    assert report.ok, report
    assert report.rows[0].skipped == 0


def test_avg_pool_counts_the_padding():
    out = AvgPool2d(3, stride=1, padding=1).forward(np.ones((1, 1, 3, 3)))
    np.testing.assert_allclose(out[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]] / np.float64(9))


def test_max_pool_padding_never_wins():
    out = MaxPool2d(3, stride=1, padding=1).forward(-np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(out, -np.ones((1, 1, 2, 2)))


@pytest.mark.parametrize("layer", [MaxPool2d(2), AvgPool2d((2, 3), stride=1, padding=1), Flatten()])
def test_float32_stays_float32_and_inputs_are_not_changed(layer):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    x_before = x.copy()
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dout_before = dout.copy()
    dx = layer.backward(dout)
    assert out.dtype == dx.dtype == np.float32
    assert dx.shape == x.shape
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)


def test_repr():
    assert repr(MaxPool2d(2)) == "MaxPool2d(2)"
    assert repr(MaxPool2d(2, stride=2)) == "MaxPool2d(2)"
    assert repr(AvgPool2d((3, 2), stride=1, padding=(1, 0))) == \
        "AvgPool2d((3, 2), stride=1, padding=(1, 0))"
    assert repr(Flatten()) == "Flatten()"


@pytest.mark.parametrize("layer", [MaxPool2d, AvgPool2d])
@pytest.mark.parametrize("shape,match", [
    ((3, 28, 28), r"expected input of shape \(N, C, H, W\), got \(3, 28, 28\)"),
    ((2, 3, 28), r"expected input of shape \(N, C, H, W\), got \(2, 3, 28\)"),
    ((2, 3, 1, 5), r"expected an input of at least 2 x 2 pixels .* got 1 x 5: the output would be empty"),
    ((2, 0, 5, 5), r"expected a non-empty input \(N, C, H, W\), got \(2, 0, 5, 5\)"),
])
def test_bad_input_is_a_clear_error(layer, shape, match):
    with pytest.raises(ValueError, match=rf"^{layer.__name__}\(2\): " + match):
        layer(2).forward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("layer", [MaxPool2d, AvgPool2d])
def test_bad_arguments_are_clear_errors(layer):
    name = layer.__name__
    with pytest.raises(ValueError, match=f"{name}: expected stride >= 1, got 0"):
        layer(2, stride=0)
    with pytest.raises(ValueError, match=f"{name}: expected kernel_size >= 1, got 0"):
        layer(0)
    with pytest.raises(ValueError, match=f"{name}: expected padding at most half the kernel size "
                                         r"\(3, 2\), got 2"):
        layer((3, 2), padding=2)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer(2).backward(np.zeros((1, 1, 1, 1)))
    pool = layer(2)
    pool.forward(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=rf"{name}\(2\): expected an upstream gradient of shape "
                                         r"\(1, 2, 2, 2\)"):
        pool.backward(np.zeros((1, 2, 2, 3), np.float32))
    with pytest.raises(TypeError, match="expected an upstream gradient of dtype float32"):
        pool.backward(np.zeros((1, 2, 2, 2)))


def test_flatten_is_a_reshape_and_back():
    x = np.arange(2 * 3 * 4 * 5, dtype=F64).reshape(2, 3, 4, 5)
    flatten = Flatten()
    out = flatten.forward(x)
    np.testing.assert_array_equal(out, x.reshape(2, 60))
    assert not np.shares_memory(out, x)           # changing the output never changes x
    dout = out * 2
    dx = flatten.backward(dout)
    np.testing.assert_array_equal(dx, x * 2)
    assert not np.shares_memory(dx, dout)
    report = gradcheck(Flatten(), np.random.default_rng(0).standard_normal((2, 3, 2, 2)))
    assert report.ok, report
    with pytest.raises(ValueError, match=r"Flatten\(\): expected input of shape \(N, \.\.\.\) with "
                                         r"at least 2 dimensions, got \(5,\)"):
        flatten.forward(np.zeros(5))
    with pytest.raises(ValueError, match=r"Flatten\(\): expected an upstream gradient of shape "
                                         r"\(2, 60\)"):
        flatten.backward(np.zeros((2, 3, 4, 5)))
    with pytest.raises(TypeError, match="expected an upstream gradient of dtype float64"):
        flatten.backward(np.zeros((2, 60), np.float32))

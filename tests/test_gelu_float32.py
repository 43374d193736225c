"""GELU's float32 Phi and phi from the tail formula (layers/gelu.py, normal_cdf_and_pdf) held to
scipy's ndtr, which float64 keeps, and the derivative the forward pass caches.

For scale, PyTorch 2.13's float32 ``F.gelu`` on the same grid (its forward and autograd
backward, compared in float64 with x * ndtr(x) and ndtr(x) + x phi(x), one thread): the
output's error over |x| up to 3.6e-7, the derivative's up to 2.9e-7, and a relative error of 1
in the left tail, where its 1 + erf cancels.
"""
import numpy as np
import pytest
from scipy.special import ndtr

from handprop.layers import GELU
from handprop.layers.gelu import normal_cdf, normal_cdf_and_pdf

X = np.linspace(-16, 12, 1_000_001).astype(np.float32)
EXACT_CDF = ndtr(X.astype(np.float64))
EXACT_PDF = np.exp(-0.5 * X.astype(np.float64) ** 2) / np.sqrt(2 * np.pi)


def relative_error(got, exact):
    kept = exact > 1e-37                          # float32's normal numbers
    return (np.abs(got[kept] - exact[kept]) / exact[kept]).max()


def test_float32_phi_is_within_1_4e_minus_7_of_ndtr_and_keeps_the_left_tail():
    got = normal_cdf(X)
    assert got.dtype == np.float32
    assert np.abs(got - EXACT_CDF).max() <= 1.4e-7
    assert relative_error(got, EXACT_CDF) <= 1e-5    # Phi(-13) is 6e-39 and still has 5 digits
    right = X > 0                                     # 1 - Phi(-x): within 2 units in the last place
    ulps = np.abs(got - ndtr(X)) / np.spacing(ndtr(X))
    assert ulps[right].max() <= 2


def test_float32_phi_shares_its_exponential_with_a_pdf_as_accurate():
    _, pdf = normal_cdf_and_pdf(X)
    assert pdf.dtype == np.float32
    assert np.abs(pdf - EXACT_PDF).max() <= 7e-8
    assert relative_error(pdf, EXACT_PDF) <= 1e-5


def test_the_ends_and_non_numbers():
    cdf, pdf = normal_cdf_and_pdf(np.float32([-np.inf, -20, -14.5, 0, 10, 11, np.inf, np.nan]))
    np.testing.assert_array_equal(cdf[:-1], [0, 0, 0, 0.5, 1, 1, 1])
    np.testing.assert_array_equal(pdf[[0, 1, 6]], [0, 0, 0])
    assert np.isnan(cdf[-1]) and np.isnan(pdf[-1])


def test_float64_keeps_ndtr_bit_for_bit():
    x = np.linspace(-9, 9, 1001)
    cdf, pdf = normal_cdf_and_pdf(x)
    np.testing.assert_array_equal(cdf, ndtr(x))
    np.testing.assert_array_equal(pdf, np.exp(-0.5 * (x * x)) * (1 / np.sqrt(2 * np.pi)))


@pytest.mark.parametrize("shape", [(768, 512), (3, 5, 7)])
def test_gelu_in_float32_agrees_with_the_ndtr_formula_and_keeps_its_input(shape):
    x = (3 * np.random.default_rng(0).standard_normal(shape)).astype(np.float32)
    before = x.copy()
    layer = GELU()
    out = layer.forward(x)
    np.testing.assert_array_equal(x, before)
    assert out.dtype == np.float32
    x64 = x.astype(np.float64)
    cdf, pdf = ndtr(x64), np.exp(-0.5 * x64 ** 2) / np.sqrt(2 * np.pi)
    # Phi within 1.4e-7, then one rounding of the product
    assert np.all(np.abs(out - x64 * cdf) <= np.abs(x64) * 1.4e-7 + np.spacing(np.abs(out)))
    dout = np.ones_like(x)
    dx = layer.backward(dout)
    assert dx.dtype == np.float32
    assert np.abs(dx - (cdf + x64 * pdf)).max() <= 2e-7


def test_float64_backward_is_the_product_rule_bit_for_bit():
    rng = np.random.default_rng(1)
    x, dout = 3 * rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    layer = GELU()
    layer.forward(x)
    pdf = np.exp(-0.5 * (x * x)) * (1 / np.sqrt(2 * np.pi))
    np.testing.assert_array_equal(layer.backward(dout), dout * (ndtr(x) + x * pdf))


@pytest.mark.slow
def test_the_fit_script_makes_the_coefficients_the_layer_uses():
    import importlib.util
    import pathlib

    from handprop.layers.gelu import TAIL_POLYNOMIAL
    path = pathlib.Path(__file__).parents[1] / "docs" / "derivations" / "normal_cdf_fit.py"
    spec = importlib.util.spec_from_file_location("normal_cdf_fit", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    fixed = [0.5]
    while len(fixed) <= script.DEGREE:
        fixed.append(float(np.float32(script.fit(fixed)[len(fixed)])))
    np.testing.assert_array_equal(np.float32(fixed), np.float32(TAIL_POLYNOMIAL))
    assert script.measured(np.array(fixed)) < 8.5e-8

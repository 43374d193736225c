"""GELU's float32 Phi from an interpolated table (layers/gelu.py, normal_cdf) held to
scipy's ndtr, which float64 keeps."""
import numpy as np
import pytest
from scipy.special import ndtr

from handprop.layers import GELU
from handprop.layers.gelu import normal_cdf

X = np.linspace(-16, 12, 1_000_001).astype(np.float32)


def test_the_float32_table_is_within_a_unit_in_the_last_place_of_ndtr_where_it_matters():
    got, expected = normal_cdf(X), ndtr(X)
    assert got.dtype == np.float32
    ulps = np.abs(got - expected) / np.spacing(np.abs(expected))
    assert ulps[X > -4.3].max() <= 1
    assert np.abs(got - ndtr(X.astype(np.float64))).max() <= 6e-8   # float32's rounding near 1
    exact = ndtr(X.astype(np.float64))
    tail = (X < -4.3) & (exact > 1e-37)          # further left: the relative error grows
    assert (np.abs(got[tail] - exact[tail]) / exact[tail]).max() < 1.5e-5


def test_the_ends_and_non_numbers_of_the_table():
    got = normal_cdf(np.float32([-np.inf, -20, -14.5, 0, 10, 11, np.inf, np.nan]))
    np.testing.assert_array_equal(got[:-1], [0, 0, 0, 0.5, 1, 1, 1])
    assert np.isnan(got[-1])


def test_float64_keeps_ndtr_bit_for_bit():
    x = np.linspace(-9, 9, 1001)
    np.testing.assert_array_equal(normal_cdf(x), ndtr(x))


@pytest.mark.parametrize("shape", [(768, 512), (3, 5, 7)])
def test_gelu_in_float32_agrees_with_the_ndtr_formula_and_keeps_its_input(shape):
    x = (3 * np.random.default_rng(0).standard_normal(shape)).astype(np.float32)
    before = x.copy()
    out = GELU().forward(x)
    np.testing.assert_array_equal(x, before)
    assert out.dtype == np.float32
    # Phi within 6e-8, then one rounding of the product
    assert np.all(np.abs(out - x * ndtr(x)) <= np.abs(x) * 6e-8 + np.spacing(np.abs(out)))

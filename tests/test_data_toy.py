"""The toy problems' options: checked for type and range, sizes bounded before allocation."""
import numpy as np
import pytest

from handprop.train.data import MAX_TOY_SAMPLES, moons, noisy_curve, spiral


@pytest.mark.parametrize("make", [spiral, moons, noisy_curve])
def test_an_integer_dtype_is_refused_rather_than_rounding_every_point_to_zero(make):
    with pytest.raises(TypeError, match=rf"{make.__name__}: expected a floating-point dtype, got int64"):
        make(10, dtype=int)
    assert make(10, dtype=np.float64)[0].dtype == np.float64


@pytest.mark.parametrize("seed, error, shown", [(-1, ValueError, "expected seed >= 0, got -1"),
                                                ("1", TypeError, "expected seed to be an int, got '1'"),
                                                (1.5, TypeError, "expected seed to be an int, got 1.5")])
@pytest.mark.parametrize("make", [spiral, moons, noisy_curve])
def test_a_seed_must_be_a_non_negative_int(make, seed, error, shown):
    with pytest.raises(error, match=rf"^{make.__name__}: {shown}$"):
        make(10, seed=seed)


def test_sizes_past_the_documented_bound_are_refused_before_any_allocation():
    with pytest.raises(ValueError, match=r"spiral: expected at most MAX_TOY_SAMPLES = 10,000,000 "
                                         r"samples in all, got 30,000,000,000"):
        spiral(10**10)
    with pytest.raises(ValueError, match="spiral: .* got 10,000,002"):
        spiral(MAX_TOY_SAMPLES // 2 + 1, 2)
    with pytest.raises(ValueError, match="moons: .*MAX_TOY_SAMPLES"):
        moons(MAX_TOY_SAMPLES + 1)
    with pytest.raises(TypeError, match="spiral: expected n_per_class to be an int, got '100'"):
        spiral("100")

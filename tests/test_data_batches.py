"""Minibatch bounds: a bad batch_size is reported as the argument of the function the user
called, not of an internal helper."""
import numpy as np
import pytest

from handprop.train.data import batch_bounds, minibatches


@pytest.mark.parametrize("size, error, shown", [(0, ValueError, "expected batch_size >= 1, got 0"),
                                                (2.5, TypeError, "expected batch_size to be an int, got 2.5"),
                                                (True, TypeError, "expected batch_size to be an int, got True")])
def test_a_bad_batch_size_names_the_function_the_user_called(size, error, shown):
    with pytest.raises(error, match=rf"^fit: {shown}$"):
        batch_bounds(10, size, who="fit")
    with pytest.raises(error, match=rf"^evaluate: {shown}$"):
        next(minibatches(np.zeros((4, 2)), np.zeros(4), size, who="evaluate"))
    with pytest.raises(error, match=rf"^batch_bounds: {shown}$"):  # called directly: itself
        batch_bounds(10, size)


def test_a_lone_last_sample_joins_the_batch_before_it():
    assert batch_bounds(5, 2) == [(0, 2), (2, 5)]
    assert batch_bounds(1, 4) == [(0, 1)]

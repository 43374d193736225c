import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _assert_same_state(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key in before:
        assert before[key].dtype == after[key].dtype, key
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)


@pytest.fixture
def assert_same_state():
    """Assert two name -> array dicts (``state_dict()``s) are equal: names, dtypes, values."""
    return _assert_same_state

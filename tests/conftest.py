import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def state_of(layer):
    """Every array a layer holds, copied, for before/after comparisons."""
    arrays = {f"param {k}": v.copy() for k, v in layer.params.items()}
    arrays.update({f"buffer {k}": v.copy() for k, v in getattr(layer, "buffers", {}).items()})
    return arrays


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key in before:
        assert before[key].dtype == after[key].dtype, key
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)

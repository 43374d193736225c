"""Your own pytest file for your own layer: assert_gradcheck fails with the whole report.

    python -m pytest examples/test_custom_layer.py
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from handprop.layers.gradcheck import assert_gradcheck

sys.path.insert(0, str(Path(__file__).parent))  # custom_layer.py lies beside this file
from custom_layer import BuggyPReLU, PReLU


def batch(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 4))  # float64: gradcheck's precision


@pytest.mark.parametrize("n", [1, 2, 6])
def test_prelu_gradients(n):
    assert_gradcheck(PReLU(4, dtype=np.float64), batch(n))


def test_prelu_at_its_kink():
    x = batch(6)
    x[0, 0] = 0.0  # the derivative jumps here: gradcheck skips this element and checks the rest
    report = assert_gradcheck(PReLU(4, dtype=np.float64), x)
    assert report.rows[0].skipped == 1


def test_the_planted_bug_is_named():
    with pytest.raises(AssertionError, match=r"a: scale: analytic = 1/N x numeric"):
        assert_gradcheck(BuggyPReLU(4, dtype=np.float64), batch(6))

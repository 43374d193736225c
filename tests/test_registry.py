"""The gradcheck registry's checks of the issue-12 layers (each named after what it checks,
every new layer there, at batch 1, in both modes where they differ), and their docstring examples."""
import numpy as np
import pytest

from handprop.layers import GELU, Dropout, LayerNorm, LeakyReLU, Residual, Sequential, Sigmoid, Softmax
from handprop.train.gradcheck import new_layer_checks

CHECKS = new_layer_checks(seed=0)


@pytest.mark.parametrize("name,make", CHECKS, ids=[name for name, _ in CHECKS])
def test_each_check_is_named_after_its_subject(name, make):
    subject, x = make()
    assert type(subject).__name__ == name.split()[0]
    assert x.dtype == np.float64
    assert ("batch 1" in name) == (x.shape[0] == 1)
    if "train" in name.split() or "eval" in name.split():
        assert subject.training == ("train" in name.split())


def test_every_new_layer_is_checked_at_batch_1():
    at_batch_1 = {type(make()[0]) for name, make in CHECKS if name.endswith("batch 1")}
    assert {Sigmoid, LeakyReLU, GELU, Softmax, Dropout, LayerNorm, Residual, Sequential} <= at_batch_1
    gelus_at_batch_1 = {repr(make()[0]) for name, make in CHECKS if name.startswith("GELU") and "batch 1" in name}
    assert gelus_at_batch_1 == {"GELU()", "GELU(approximate='tanh')"}
    assert {name for name, _ in CHECKS if name.startswith("Residual")} >= {"Residual train", "Residual eval"}


@pytest.mark.parametrize("name", ["sigmoid", "leaky_relu", "gelu", "softmax", "dropout", "layernorm",
                                  "sequential", "models"])
def test_docstring_examples_run(name):
    import doctest
    import importlib
    module = importlib.import_module(f"handprop.layers.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0, result

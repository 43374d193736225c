"""The gradcheck registry: its families together are builtin_checks; the dense family's checks
are each named after what they check, cover every dense layer at batch 1, in both modes where
they differ; and the docstring examples of those layers run."""
import numpy as np
import pytest

from handprop.layers import (
    GELU,
    Dropout,
    LayerNorm,
    LeakyReLU,
    Linear,
    Residual,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from handprop.train.gradcheck import (
    attention_checks,
    builtin_checks,
    convolution_checks,
    dense_checks,
    loss_checks,
    sequence_checks,
)

CHECKS = dense_checks(seed=0)


@pytest.mark.parametrize("name,make", CHECKS, ids=[name for name, _ in CHECKS])
def test_each_check_is_named_after_its_subject(name, make):
    subject, x = make()
    assert type(subject).__name__ == name.split()[0]
    assert x.dtype == np.float64
    assert ("batch 1" in name) == (x.shape[0] == 1)
    if "train" in name.split() or "eval" in name.split():
        assert subject.training == ("train" in name.split())


def test_every_dense_layer_is_checked_at_batch_1():
    at_batch_1 = {type(make()[0]) for name, make in CHECKS if name.endswith("batch 1")}
    assert {Linear, Tanh, Sigmoid, LeakyReLU, GELU, Softmax, Dropout, LayerNorm, Residual, Sequential} <= at_batch_1
    gelus_at_batch_1 = {repr(make()[0]) for name, make in CHECKS if name.startswith("GELU") and "batch 1" in name}
    assert gelus_at_batch_1 == {"GELU()", "GELU(approximate='tanh')"}
    assert {name for name, _ in CHECKS if name.startswith("Residual")} >= {"Residual train", "Residual eval"}


def test_builtin_checks_are_the_families_together_each_name_once():
    names = [name for name, _ in builtin_checks(seed=0)]
    families = [dense_checks(0), convolution_checks(0), loss_checks(0), sequence_checks(0),
                attention_checks(0)]
    assert sorted(names) == sorted(name for family in families for name, _ in family)
    assert len(set(names)) == len(names) == 97
    assert all(name.startswith(("Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d", "Flatten", "Sequential CNN"))
               for name, _ in convolution_checks(0))
    assert all("Loss" in name or "CrossEntropy" in name for name, _ in loss_checks(0))


@pytest.mark.parametrize("name", ["sigmoid", "leaky_relu", "gelu", "softmax", "dropout", "layernorm",
                                  "sequential", "models"])
def test_docstring_examples_run(name):
    import doctest
    import importlib
    module = importlib.import_module(f"handprop.layers.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0, result

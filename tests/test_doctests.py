"""Every docstring example in the installed package runs as shown (doctest)."""
import doctest
import importlib
import pkgutil

import pytest

import handprop.layers
import handprop.losses
import handprop.train


def modules():
    for package in (handprop.layers, handprop.losses, handprop.train):
        yield package.__name__
        # walk_packages: the modules inside subpackages too (handprop.train.optim.sgd)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):
                yield info.name


@pytest.mark.parametrize("name", sorted(modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_the_examples_are_found():
    """At least one module has examples, so the test above is not vacuous."""
    finder = doctest.DocTestFinder()
    attempted = sum(len(t.examples) for name in modules()
                    for t in finder.find(importlib.import_module(name)))
    assert attempted > 0

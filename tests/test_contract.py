"""The Layer and Loss contract, for every entry of the gradcheck registry (thinc's pattern).

A layer, loss or model added to ``builtin_checks()`` gets all of these without a line of its own:
gradcheck passes with no problem and no diagnosis, backward before forward says so, x and dout
are never changed in place, backward is repeatable, and outputs and gradients keep the dtype.
"""
import copy

import numpy as np
import pytest

from handprop.layers import Layer
from handprop.layers.gradcheck import gradcheck
from handprop.losses import Loss
from handprop.train.gradcheck import builtin_checks

CHECKS = builtin_checks()
every_check = pytest.mark.parametrize("make", [make for _, make in CHECKS],
                                      ids=[label for label, _ in CHECKS])


class Pass:
    """One forward and backward of a registry entry's own copy, with the values around them.

    An entry's input may be a tuple of inputs (forward(*inputs)); ``dx`` is then backward's
    gradient for the first float input, and integer inputs (token ids) get none."""

    def __init__(self, make):
        subject, x, *targets = make()
        self.inputs = tuple(x) if isinstance(x, tuple) else (x,)
        self.x = next((a for a in self.inputs if a.dtype.kind == "f"), self.inputs[0])
        self.subject = copy.deepcopy(subject)
        self.targets = targets[0] if targets else None
        self.inputs_before = [a.copy() for a in self.inputs]
        self.x_before = self.x.copy()
        self.out = self.forward()
        if self.is_loss:
            self.upstream = 0.7
        else:
            self.upstream = np.random.default_rng(0).standard_normal(self.out.shape)
        self.upstream_before = copy.copy(self.upstream)
        self.dx = self.backward()

    @property
    def is_loss(self):
        return self.targets is not None

    @property
    def takes_ids(self):
        return self.x.dtype.kind != "f"

    def forward(self):
        return (self.subject.forward(self.x, self.targets) if self.is_loss
                else self.subject.forward(*self.inputs))

    def backward(self):
        returned = self.subject.backward(self.upstream)
        if len(self.inputs) > 1:
            return returned[self.inputs.index(self.x)] if not self.takes_ids else None
        return returned

    def grads(self):
        return {k: g.copy() for k, g in getattr(self.subject, "grads", {}).items()}


def forget_forward(obj, seen=None):
    """Set the cache of a layer or loss, and of every layer or loss inside it, to None, as before
    any forward. A Layer answers for its own tree (``modules()``), a loss held by one of its layers
    included; a wrapper of our own that is
    not a Layer (anything with forward and backward: a loss, a test's stand-in) is searched
    through its attributes, lists and dicts for the layers and losses it holds."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Layer):
        for layer in obj.modules():
            layer.cache = None
            for loss in (v for v in vars(layer).values() if isinstance(v, Loss)):
                loss.cache = None   # a loss a layer holds (PerElement) is not in the layer tree
        return
    if isinstance(obj, Loss) or (callable(getattr(obj, "forward", None))
                                 and callable(getattr(obj, "backward", None))
                                 and hasattr(obj, "__dict__") and not isinstance(obj, type)):
        if hasattr(obj, "cache"):
            obj.cache = None
        children = vars(obj).values()
    elif isinstance(obj, (list, tuple)):
        children = obj
    elif isinstance(obj, dict):
        children = obj.values()
    else:
        return
    for child in children:
        forget_forward(child, seen)


@every_check
def test_gradcheck_passes_with_no_problem_and_no_diagnosis(make):
    report = gradcheck(*make())
    assert report.ok, report
    assert report.problems == []
    assert all(row.kind is None and row.hint is None and row.checked for row in report.rows), report


@every_check
def test_backward_before_forward_is_a_runtime_error_that_says_so(make):
    done = Pass(make)
    forget_forward(done.subject)
    with pytest.raises(RuntimeError, match="before forward"):
        done.backward()


@every_check
def test_forward_keeps_x_and_backward_keeps_dout(make):
    done = Pass(make)
    for after, before in zip(done.inputs, done.inputs_before):
        np.testing.assert_array_equal(after, before)
    np.testing.assert_array_equal(done.upstream, done.upstream_before)


@every_check
def test_backward_is_repeatable(make):
    done = Pass(make)
    dx, grads = copy.deepcopy(done.dx), done.grads()
    if dx is not None:  # None: token ids have no gradient
        np.testing.assert_array_equal(done.backward(), dx)
    for name, grad in done.grads().items():
        np.testing.assert_array_equal(grad, grads[name], err_msg=name)


@every_check
def test_outputs_and_gradients_keep_the_dtype(make):
    done = Pass(make)
    if done.is_loss:
        # a Python float (LossValue is one, with a backward() that points to loss_fn.backward),
        # never a numpy scalar
        assert isinstance(done.out, float) and not isinstance(done.out, np.generic)
    else:
        dtype = next(iter(done.subject.params.values())).dtype if done.takes_ids else done.x.dtype
        assert done.out.dtype == dtype
    if done.takes_ids:
        assert done.dx is None  # no gradient for token ids
    else:
        assert isinstance(done.dx, np.ndarray) and done.dx.dtype == done.x.dtype
        assert done.dx.shape == done.x.shape
    params = getattr(done.subject, "params", {})
    for name, grad in done.grads().items():
        assert grad.dtype == params[name].dtype and grad.shape == params[name].shape, name

"""Broken contracts are problems in the report, each found with a layer that breaks exactly one."""
import numpy as np
import pytest

from handprop.layers import Layer, Linear, ReLU, Sequential, Tanh
from handprop.layers.gradcheck import PROBLEM_KINDS, gradcheck

F64 = np.float64


def kinds(report):
    assert not report.ok
    return [problem.kind for problem in report.problems]


def check(layer, shape=(4, 3), **options):
    return gradcheck(layer, np.random.default_rng(3).standard_normal(shape), **options)


class Dropout(Layer):
    """A dropout of our own: a fresh mask from the layer's generator at every forward."""

    def __init__(self, p=0.5, *, rng=None, nonsense=False):
        super().__init__()
        self.p, self.rng, self.nonsense = p, np.random.default_rng(rng), nonsense

    def draw(self, shape):
        return self.rng.random(shape)

    def forward(self, x):
        mask = (self.draw(x.shape) >= self.p) / (1 - self.p)
        self.cache = mask
        return x * mask

    def backward(self, dout):
        return dout * 12345.0 if self.nonsense else dout * self.cache


class GlobalRandomDropout(Dropout):
    def draw(self, shape):
        return np.random.random(shape)


class FreshRngDropout(Dropout):
    def draw(self, shape):
        return np.random.default_rng().random(shape)


class Skip(Layer):
    """out = x + layer(x): a residual block keeping its branch as ``.layer``."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return x + self.layer.forward(x)

    def backward(self, dout):
        return dout + self.layer.backward(dout)


# stochastic -----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: Dropout(0.5, rng=0),
                                  lambda: Sequential(Linear(3, 3, rng=0, dtype=F64), Dropout(0.3, rng=1)),
                                  lambda: Skip(Dropout(0.5, rng=2)),
                                  lambda: Skip(Sequential(Tanh(), Skip(Dropout(0.5, rng=3))))])
def test_a_layer_drawing_from_its_own_generator_is_checkable_in_training_mode(make):
    layer = make()
    report = check(layer, (5, 3))
    assert report.ok, report
    assert report.rows[0].checked == 15 and report.rows[0].skipped == 0


def test_a_generator_in_a_dict_or_a_random_state_is_replayed_too():
    class LegacyDropout(Dropout):
        def __init__(self, p, seed):
            super().__init__(p)
            self.rng = np.random.RandomState(seed)

        def draw(self, shape):
            return self.rng.random_sample(shape)

    class Blocks(Skip):
        def __init__(self):
            super().__init__(Tanh())
            self.blocks = {"drop": LegacyDropout(0.5, 4)}
            self.layer = self.blocks["drop"]
    assert check(Blocks()).ok


def test_the_replayed_generator_of_the_callers_layer_is_untouched():
    drop = Dropout(0.5, rng=0)
    state = drop.rng.bit_generator.state
    check(drop)
    assert drop.rng.bit_generator.state == state


def test_nonsense_backward_of_a_seeded_dropout_fails_instead_of_skipping_every_element():
    report = check(Dropout(0.5, rng=0, nonsense=True), (4, 5))
    assert not report.ok and report.rows[0].skipped == 0 and report.rows[0].kind is not None


@pytest.mark.parametrize("layer", [GlobalRandomDropout(nonsense=True), FreshRngDropout(nonsense=True)])
def test_a_forward_random_some_other_way_is_stochastic(layer):
    report = check(layer)
    assert kinds(report) == ["stochastic"] and not report.rows
    assert "np.random.Generator kept as an attribute" in report.problems[0].message
    assert "problem stochastic: forward gave different outputs" in str(report)


# unchecked ------------------------------------------------------------------------------

def test_relu_on_its_kink_everywhere_is_unchecked():
    report = gradcheck(ReLU(), np.zeros((2, 3)))
    assert kinds(report) == ["unchecked"]
    assert "every element of x (6) crossed a kink" in report.problems[0].message
    assert report.rows[0].checked == 0 and not report.rows[0].ok
    assert "UNCHECKED" in str(report)


# not-repeatable -------------------------------------------------------------------------

class AccumulatingLinear(Linear):
    def backward(self, dout):
        self.grads["W"] += self.cache.T @ dout  # the buggy line: accumulates
        batch = dout.sum(axis=0)
        self.grads["b"][...] = batch
        return dout @ self.params["W"].T


def test_accumulating_into_grads_is_not_repeatable():
    report = check(AccumulatingLinear(3, 2, rng=0, dtype=F64))
    assert kinds(report) == ["not-repeatable"]
    assert "doubled grads['W']: backward adds into it (+=)" in report.problems[0].message
    assert all(row.ok for row in report.rows)  # the first backward was right: only the problem fails it


def test_a_backward_that_changes_its_cache_is_not_repeatable():
    class Consumes(Tanh):
        def backward(self, dout):
            dx = super().backward(dout)
            self.cache *= 0.5
            return dx
    report = check(Consumes())
    assert "not-repeatable" in kinds(report)
    assert "changed dx" in report.problems[0].message


def test_a_backward_that_changes_the_params_is_not_repeatable():
    class Steps(Linear):
        def backward(self, dout):
            dx = super().backward(dout)
            self.params["W"] -= 0.1 * self.grads["W"]  # an optimizer step inside backward
            return dx
    report = check(Steps(3, 2, rng=0, dtype=F64))
    assert any("forward gave another output after backward" in p.message for p in report.problems)


# modifies-input -------------------------------------------------------------------------

class DoubleInPlace(Layer):
    def forward(self, x):
        self.cache = x.shape
        x *= 2  # the buggy line
        return x

    def backward(self, dout):
        return 2 * dout


class MaskDoutInPlace(ReLU):
    def backward(self, dout):
        dout *= self.cache > 0  # the buggy line
        return dout


def test_forward_changing_x_modifies_input():
    report = check(DoubleInPlace())
    assert kinds(report) == ["modifies-input"]
    assert report.problems[0].message.startswith("forward changed its input x in place (12 of 12")
    assert all(row.ok for row in report.rows)  # the differences were not corrupted


def test_backward_changing_dout_modifies_input():
    report = check(MaskDoutInPlace(), (4, 5))
    assert kinds(report) == ["modifies-input"]
    assert report.problems[0].message.startswith("backward changed dout in place")


# dtype ----------------------------------------------------------------------------------

@pytest.mark.parametrize("convert,message", [
    (lambda dx: dx.astype(np.float32), "dx is float32 for a float64 x"),
    (lambda dx: dx.tolist(), "dx is a list, not an ndarray"),
    (lambda dx: None, "backward returned None")])
def test_a_dx_of_another_type_is_dtype(convert, message):
    class Converts(Tanh):
        def backward(self, dout):
            return convert(super().backward(dout))
    report = check(Converts())
    assert kinds(report) == ["dtype"] and report.problems[0].message.startswith(message)


def test_a_parameter_gradient_of_another_dtype_is_dtype():
    class Float32W(Linear):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["W"] = self.grads["W"].astype(np.float32)
            return dx
    report = check(Float32W(3, 2, rng=0, dtype=F64))
    assert kinds(report) == ["dtype"]
    assert "grads['W'] is float32 for a float64 W" in report.problems[0].message


# shape ----------------------------------------------------------------------------------

class BiasNotSummed(Linear):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = dout.copy()  # the buggy line: no .sum(axis=0)
        return dx


class WTransposed(Linear):
    def backward(self, dout):
        self.grads["W"] = dout.T @ self.cache  # the buggy line: (out, in)
        self.grads["b"][...] = dout.sum(axis=0)
        return dout @ self.params["W"].T


class ScaleColumn(Layer):
    """out = x * w for x (N, 1) and w (D,): the buggy dx drops the keepdims."""

    def __init__(self):
        super().__init__()
        self.params["w"] = np.array([0.5, -1.0, 2.0])
        self.grads["w"] = np.zeros(3)

    def forward(self, x):
        self.cache = x
        return x * self.params["w"]

    def backward(self, dout):
        self.grads["w"][...] = (dout * self.cache).sum(axis=0)
        return (dout * self.params["w"]).sum(axis=1)  # the buggy line: keepdims=True missing


@pytest.mark.parametrize("layer,shape,message", [
    (BiasNotSummed(3, 2, rng=0, dtype=F64), (4, 3),
     "grads['b'] has shape (4, 2) but b has shape (2,): (2,) was broadcast over the batch in forward, "
     "so backward must sum over axis 0"),
    (WTransposed(3, 2, rng=0, dtype=F64), (4, 3),
     "grads['W'] has shape (2, 3) but W has shape (3, 2): the gradient is transposed (x.T @ dout, not "
     "dout.T @ x)"),
    (ScaleColumn(), (4, 1), "dx has shape (4,) but x has shape (4, 1): a reduction lost or gained a "
                            "size-1 axis (keepdims=True")])
def test_a_gradient_of_the_wrong_shape_is_shape_with_its_cause(layer, shape, message):
    report = check(layer, shape)
    assert kinds(report) == ["shape"] and report.problems[0].message.startswith(message)
    wrong = message.split(" has shape")[0].replace("grads['", "").replace("']", "").replace("dx", "x")
    assert wrong not in [row.name for row in report.rows]
    assert report.rows and all(row.ok for row in report.rows)  # the other tensors are checked


# unregistered ---------------------------------------------------------------------------

class Cs231nLinear(Layer):
    """Parameters as attributes, the CS231n way: gradcheck would never see W."""

    def __init__(self):
        super().__init__()
        self.W = np.random.default_rng(0).standard_normal((3, 2))
        self.params["b"] = np.zeros(2)
        self.grads["b"] = np.zeros(2)

    def forward(self, x):
        self.x = x  # overwritten by every forward: not flagged
        return x @ self.W + self.params["b"]

    def backward(self, dout):
        self.dW = self.x.T @ dout  # an output of backward: not flagged either
        self.grads["b"][...] = dout.sum(axis=0)
        return dout @ self.W.T


def test_parameters_kept_as_attributes_are_unregistered():
    report = check(Cs231nLinear())
    assert kinds(report) == ["unregistered"]
    assert report.problems[0].message.startswith("the attribute W (3, 2) changes the output but is not "
                                                  "in params")
    report = check(Sequential(Tanh(), Cs231nLinear()))
    assert [p.message.split(" changes")[0] for p in report.problems] == ["the attribute layers[1].W (3, 2)"]


def test_arrays_sharing_memory_with_params_or_grads_are_not_unregistered():
    class FlatLinear(Linear):
        """params and grads as views into one flat buffer each, the buffers kept as attributes."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            for kind in ("params", "grads"):
                arrays = getattr(self, kind)
                flat = np.concatenate([a.ravel() for a in arrays.values()])
                setattr(self, f"flat_{kind}", flat)
                start = 0
                for name, a in list(arrays.items()):
                    arrays[name] = flat[start:start + a.size].reshape(a.shape)
                    start += a.size
            self.unused = np.ones(3)  # changes nothing: not flagged
    report = check(FlatLinear(3, 2, rng=0, dtype=F64))
    assert report.ok, report


def test_every_problem_kind_has_a_test_here():
    text = open(__file__).read()
    for kind in PROBLEM_KINDS:
        assert f'"{kind}"' in text


def test_a_layer_that_reuses_its_output_memory_is_checked_right():
    class ScratchTanh(Tanh):
        """Writes every output into the same array, as a layer may do with its own memory."""

        def forward(self, x):
            if getattr(self, "scratch", None) is None or self.scratch.shape != x.shape:
                self.scratch = np.empty_like(x)
            out = np.tanh(x, out=self.scratch)
            self.cache = out.copy()
            return out
    report = check(ScratchTanh())
    assert report.ok, report


# replaced-grads -------------------------------------------------------------------------

class ReplacesW(Linear):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"] = self.cache.T @ dout  # the buggy line: right values, a new array
        return dx


def test_replacing_a_grads_array_is_replaced_grads_even_inside_a_sequential():
    report = check(ReplacesW(3, 2, rng=0, dtype=F64))
    assert kinds(report) == ["replaced-grads"] and all(row.ok for row in report.rows)
    assert report.problems[0].message.startswith("backward replaced grads['W'] with a new array")
    report = check(Sequential(Tanh(), ReplacesW(3, 2, rng=0, dtype=F64)))
    assert "replaced-grads" in kinds(report)
    # named by the tree walk's path, as the model's params are
    assert any(p.message.startswith("backward replaced 1.grads['W']") for p in report.problems)

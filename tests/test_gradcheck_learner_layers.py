"""The layers a learner writes next (an embedding, attention scores, a max, a 3-D Linear, a plain
class), each planted with its classic mistake: the checker names it, and the correct version
passes with nothing reported."""
import numpy as np
import pytest

from handprop.layers import Layer
from handprop.layers.gradcheck import assert_gradcheck, gradcheck

IDS = np.array([[1, 3, 1], [0, 3, 3]])  # ids 1 and 3 repeat


def kinds(report):
    """The failing rows' kinds and the problems' kinds."""
    return ({row.name: row.kind for row in report.rows if not row.ok},
            [problem.kind for problem in report.problems])


# an embedding: token ids in, rows of a table out -------------------------------------------

class Embedding(Layer):
    takes_ids = True

    def __init__(self, num, dim, how="add.at"):
        super().__init__()
        self.params["W"] = np.random.default_rng(0).standard_normal((num, dim))
        self.grads["W"] = np.zeros((num, dim))
        self.how = how

    def forward(self, ids):
        self.cache = ids
        return self.params["W"][ids]

    def backward(self, dout):
        ids, dW = self.cache, self.grads["W"]
        if self.how == "add.at":
            dW[...] = 0
            np.add.at(dW, ids, dout)
        elif self.how == "=":
            dW[...] = 0
            dW[ids] = dout  # the buggy line: a repeated id keeps one of its uses
        else:
            dW[ids] += dout  # the buggy line: the same, and it accumulates across calls
        return None  # no gradient for integer ids


def test_an_embedding_with_add_at_passes_on_token_ids():
    report = assert_gradcheck(Embedding(5, 4), IDS)
    assert [row.name for row in report.rows] == ["W"] and report.rows[0].checked == 20


def test_an_embedding_assigning_at_repeated_ids_loses_the_accumulation():
    report = gradcheck(Embedding(5, 4, how="="), IDS)
    assert kinds(report) == ({"W": "accumulate"}, [])
    assert report.rows[0].hint.startswith("the wrong rows of W (1, 3) are the ids that occur more "
                                          "than once")
    assert "np.add.at(self.grads['W'], ids, dout)" in report.rows[0].hint


def test_an_embedding_adding_at_repeated_ids_loses_it_and_accumulates_across_calls():
    report = gradcheck(Embedding(5, 4, how="+="), IDS)
    assert kinds(report) == ({"W": "accumulate"}, ["not-repeatable"])


def test_a_layer_with_nothing_float_to_check_is_unchecked_not_ok():
    class Lookup(Layer):
        def forward(self, ids):
            return np.eye(5)[ids]

        def backward(self, dout):
            return None
    report = gradcheck(Lookup(), IDS)
    assert not report.ok and kinds(report) == ({}, ["unchecked"])


# attention scores: two inputs ----------------------------------------------------------

class Scores(Layer):
    """s = q @ k^T / sqrt(d) for q, k of shape (N, T, d)."""

    def __init__(self, mistake=None):
        super().__init__()
        self.mistake = mistake

    def forward(self, q, k):
        self.cache = (q, k)
        return q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])

    def backward(self, ds):
        q, k = self.cache
        scale = 1 / np.sqrt(q.shape[-1])
        dq = ds @ k * scale
        dk = ds.swapaxes(-1, -2) @ q * scale
        if self.mistake == "transposed":
            dk = q.swapaxes(-1, -2) @ ds * scale  # the buggy line: (N, d, T)
        elif self.mistake == "unscaled":
            dq = ds @ k  # the buggy line: the 1/sqrt(d) is lost
        return dq, dk


def qk(n=2, t=5, d=9, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, t, d)), rng.standard_normal((n, t, d))


def test_attention_scores_with_both_gradients_pass_named_after_forward():
    report = assert_gradcheck(Scores(), qk())
    assert [row.name for row in report.rows] == ["q", "k"]


def test_attention_scores_with_a_transposed_gradient():
    report = gradcheck(Scores("transposed"), qk())
    assert kinds(report) == ({}, ["shape"])
    assert report.problems[0].message.startswith(
        "dk has shape (2, 9, 5) but k has shape (2, 5, 9): the gradient is transposed over its last "
        "two axes")
    square = gradcheck(Scores("transposed"), qk(t=4, d=4))  # T = d: the shape cannot tell
    assert kinds(square) == ({"k": "transpose"}, [])
    assert "transposed over its last two axes" in square.rows[1].hint
    assert any("equal sizes hide broadcasting and transposes" in w for w in square.warnings)


def test_attention_scores_without_the_scale_name_sqrt_d():
    report = gradcheck(Scores("unscaled"), qk())
    assert kinds(report) == ({"q": "scale"}, [])
    assert report.rows[0].hint.startswith("analytic = sqrt(D) x numeric for every element (k = 3, "
                                          "D = 9 the feature count): the forward scales by 1/sqrt(D)")


def test_a_backward_returning_one_gradient_for_two_inputs_is_a_problem():
    class OneGradient(Scores):
        def backward(self, ds):
            return super().backward(ds)[0]
    report = gradcheck(OneGradient(), qk())
    assert "expected a tuple of 2, one gradient per input" in report.problems[0].message


def test_an_input_marked_not_differentiated_is_passed_through():
    class ScoresNoDk(Scores):
        def backward(self, ds):
            return super().backward(ds)[0], None
    report = assert_gradcheck(ScoresNoDk(), qk(), not_differentiated=[1])
    assert [row.name for row in report.rows] == ["q"]


class MeanOverTime(Layer):
    """out = x.mean(axis=1) for x (N, T, D); the buggy backward lacks the 1/T."""

    def forward(self, x):
        self.cache = x.shape
        return x.mean(axis=1)

    def backward(self, dout):
        return np.broadcast_to(dout[:, None, :], self.cache).copy()  # right: / T


def test_a_gradient_off_by_t_names_the_sequence_length():
    report = gradcheck(MeanOverTime(), np.random.default_rng(1).standard_normal((2, 5, 9)))
    assert kinds(report) == ({"x": "scale"}, [])
    assert report.rows[0].hint.startswith("analytic = T x numeric for every element (k = 5, T = 5 "
                                          "the sequence length): the forward took a mean over the T axis")


# a max: ties -----------------------------------------------------------------------------

class RowMax(Layer):
    def __init__(self, ties="first"):
        super().__init__()
        self.ties = ties

    def forward(self, x):
        self.cache = x
        return x.max(axis=1)

    def backward(self, dout):
        x = self.cache
        if self.ties == "every":
            mask = x == x.max(axis=1, keepdims=True)  # the buggy line: every tied maximum
        elif self.ties == "split":
            mask = x == x.max(axis=1, keepdims=True)
            mask = mask / mask.sum(axis=1, keepdims=True)  # a valid subgradient too
        else:
            mask = np.zeros_like(x)
            mask[np.arange(len(x)), x.argmax(axis=1)] = 1  # PyTorch's choice: the first
        return dout[:, None] * mask


def tied():
    x = np.random.default_rng(2).standard_normal((3, 4))
    x[0, 1] = x[0, 3] = 3.0
    x[2, 0] = x[2, 2] = 2.5
    return x


@pytest.mark.parametrize("ties", ["first", "split"])
def test_a_max_with_a_valid_gradient_at_ties_passes(ties):
    report = assert_gradcheck(RowMax(ties), tied())
    assert report.rows[0].skipped == 4


def test_a_max_sending_the_gradient_to_every_tie_fails():
    report = gradcheck(RowMax("every"), tied())
    assert kinds(report) == ({"x": "tie"}, [])
    assert "send the gradient to one of the tied elements" in report.rows[0].hint


# parameters kept however, gradients written where the optimizer reads them -------------

class PlainLinear:
    """A CS231n-style class: no Layer, no params dict; the buggy dW is transposed-ish."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.W, self.b = rng.standard_normal((3, 2)), np.zeros(2)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout * 2  # wrong, and never seen by a check of x alone
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


def test_a_plain_class_keeping_its_parameters_as_attributes_is_unregistered():
    report = gradcheck(PlainLinear(), np.random.default_rng(3).standard_normal((4, 3)))
    assert kinds(report) == ({}, ["unregistered", "unregistered"])
    assert [p.message.split(" changes")[0] for p in report.problems] == [
        "the attribute W (3, 2)", "the attribute b (2,)"]


class ReplacingLinear(Layer):
    def __init__(self):
        super().__init__()
        self.params["W"] = np.random.default_rng(0).standard_normal((3, 2))
        self.grads["W"] = np.zeros((3, 2))

    def forward(self, x):
        self.cache = x
        return x @ self.params["W"]

    def backward(self, dout):
        self.grads["W"] = self.cache.T @ dout  # the buggy line: a new array, right values
        return dout @ self.params["W"].T


def test_a_backward_replacing_its_grads_array_is_reported_with_the_fix():
    report = gradcheck(ReplacingLinear(), np.random.default_rng(3).standard_normal((4, 3)))
    assert kinds(report) == ({}, ["replaced-grads"])
    assert all(row.ok for row in report.rows)
    assert "self.grads['W'][...] = ..." in report.problems[0].message


# (N, T, D) -------------------------------------------------------------------------------

class Linear3d(Layer):
    """out = x @ W + b for x (N, T, D)."""

    def __init__(self, mistake=None):
        super().__init__()
        rng = np.random.default_rng(0)
        self.params = {"W": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
        self.grads = {"W": np.zeros((4, 3)), "b": np.zeros(3)}
        self.mistake = mistake

    def forward(self, x):
        self.cache = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        x = self.cache
        self.grads["W"][...] = x.reshape(-1, 4).T @ dout.reshape(-1, 3)
        if self.mistake == "batch only":
            self.grads["b"] = dout.sum(axis=0)  # the buggy line: T is not summed
        elif self.mistake == "batch only, in place":
            self.grads["b"][...] = dout.sum(axis=0)  # the same, written in place: numpy raises
        else:
            self.grads["b"][...] = dout.sum(axis=(0, 1))
        return dout @ self.params["W"].T


def test_a_3d_linear_passes():
    assert_gradcheck(Linear3d(), np.random.default_rng(4).standard_normal((2, 5, 4)))


def test_a_3d_bias_summed_over_the_batch_only_names_the_t_axis():
    report = gradcheck(Linear3d("batch only"), np.random.default_rng(4).standard_normal((2, 5, 4)))
    assert kinds(report) == ({}, ["shape"])
    assert report.problems[0].message == (
        "grads['b'] has shape (5, 3) but b has shape (3,): (3,) was broadcast over every leading "
        "axis of the input (2, 5, 4) in forward, and backward did not sum over the T axis (axis 1, "
        "T = 5); sum over all of them (.sum(axis=(0, 1)), or reshape to (-1, 3) and .sum(axis=0))")


def test_the_same_bias_written_in_place_is_the_same_shape_problem_not_a_crash():
    report = gradcheck(Linear3d("batch only, in place"), np.random.default_rng(4).standard_normal((2, 5, 4)))
    assert kinds(report) == ({}, ["shape"]) and not report.rows
    assert report.problems[0].message.startswith("backward raised ValueError (could not broadcast")
    assert report.problems[0].message.endswith(
        "it wrote a gradient of shape (5, 3) into an array of shape (3,): (3,) was broadcast over every "
        "leading axis of the input (2, 5, 4) in forward, and backward did not sum over the T axis (axis "
        "1, T = 5); sum over all of them (.sum(axis=(0, 1)), or reshape to (-1, 3) and .sum(axis=0))")


class SoftmaxNoKeepdims(Layer):
    def forward(self, x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.cache = e / e.sum(axis=1, keepdims=True)
        return self.cache

    def backward(self, dout):
        y = self.cache
        return y * (dout - (dout * y).sum(axis=1))  # the buggy line: keepdims=True is missing


def test_a_softmax_without_keepdims_on_a_square_input_is_flagged_with_the_square_warning():
    report = gradcheck(SoftmaxNoKeepdims(), np.random.default_rng(5).standard_normal((4, 4)))
    assert kinds(report) == ({"x": "mismatch"}, [])
    assert report.warnings == ["x has the shape (4, 4): equal sizes hide broadcasting and transposes: "
                               "check again with distinct sizes"]
    assert "The input has equal sizes" in report.rows[0].hint
    assert "warning x has the shape (4, 4)" in str(report)
    with pytest.raises(ValueError):  # distinct sizes show the mistake as the broadcast error it is
        gradcheck(SoftmaxNoKeepdims(), np.random.default_rng(5).standard_normal((4, 3)))


def test_a_forward_returning_float32_is_only_its_dtype_problem():
    class Float32Tanh(Layer):
        def forward(self, x):
            self.cache = np.tanh(x)
            return self.cache.astype(np.float32)

        def backward(self, dout):
            return dout * (1 - self.cache ** 2)
    report = gradcheck(Float32Tanh(), np.random.default_rng(6).standard_normal((4, 3)))
    assert kinds(report) == ({}, ["dtype"]) and not report.rows
    assert report.problems[0].message.startswith("forward returned a float32 ndarray")


# training never freezes silently -----------------------------------------------------------

class ReplacingDense(Layer):
    """out = x @ W + b whose backward replaces grads["W"] (right values, a new array)."""

    def __init__(self, n_in, n_out, replace=True):
        super().__init__()
        rng = np.random.default_rng(0)
        self.params = {"W": rng.standard_normal((n_in, n_out)) * 0.1, "b": np.zeros(n_out)}
        self.grads = {"W": np.zeros((n_in, n_out)), "b": np.zeros(n_out)}
        self.replace = replace

    def forward(self, x):
        self.cache = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        if self.replace:
            self.grads["W"] = self.cache.T @ dout  # the buggy line
        else:
            self.grads["W"][...] = self.cache.T @ dout
        self.grads["b"][...] = dout.sum(axis=0)
        return dout @ self.params["W"].T


@pytest.mark.parametrize("make", ["SGD", "Adam", "RMSprop"])
def test_an_optimizer_stops_at_the_first_step_naming_the_layer_that_replaced_its_grads(make):
    import handprop.train as train
    from handprop.layers import Sequential, Tanh
    from handprop.losses import SoftmaxCrossEntropy
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 4)), rng.integers(0, 3, 32)
    for replace in (True, False):
        model = Sequential(Tanh(), ReplacingDense(4, 3, replace=replace))
        optimizer = getattr(train, make)(model, lr=0.1)
        before = model.params["1.W"].copy()
        if replace:
            with pytest.raises(ValueError, match=r"^\w+: model.grads\['1.W'\] of ReplacingDense\(\) "
                                                 r"\(layer '1'\) is not the array the optimizer reads: "
                                                 r"its backward replaced it"):
                train.fit(model, SoftmaxCrossEntropy(), optimizer, X, y, epochs=1, progress=False)
        else:
            train.fit(model, SoftmaxCrossEntropy(), optimizer, X, y, epochs=1, progress=False)
            assert np.abs(model.params["1.W"] - before).max() > 1e-3  # it trains


def test_a_losss_constant_array_is_a_setting_not_an_unregistered_parameter():
    class WeightedSquares:
        def __init__(self):
            self.weight = np.array([1.0, 2.0, 0.5])  # per-column weights, fixed by the user

        def forward(self, pred, target):
            self.cache = pred - target
            return float(np.mean(self.weight * self.cache ** 2))

        def backward(self, dloss=1.0):
            return dloss * 2 * self.weight * self.cache / self.cache.size
    rng = np.random.default_rng(7)
    assert_gradcheck(WeightedSquares(), rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))


def test_one_input_in_a_tuple_is_one_input_whether_backward_returns_dx_or_a_1_tuple():
    class Cube(Layer):
        def __init__(self, as_tuple):
            super().__init__()
            self.as_tuple = as_tuple

        def forward(self, x):
            self.cache = x
            return x ** 3

        def backward(self, dout):
            dx = 3 * self.cache ** 2 * dout
            return (dx,) if self.as_tuple else dx
    x = np.random.default_rng(8).standard_normal((2, 3))
    for as_tuple in (False, True):
        report = assert_gradcheck(Cube(as_tuple), (x,))
        assert [row.name for row in report.rows] == ["x"]

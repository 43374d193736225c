"""Each classic backward-pass mistake, planted in a small layer, is diagnosed as its kind."""
import numpy as np
import pytest

from handprop.layers import Layer, Linear, Tanh
from handprop.layers.gradcheck import ROW_KINDS, diagnose, gradcheck
from handprop.losses import Loss, SoftmaxCrossEntropy

F64 = np.float64


def failed(report):
    """{tensor: kind} of the failing rows."""
    assert not report.ok
    return {row.name: row.kind for row in report.rows if not row.ok}


def check(layer, shape=(4, 3), **options):
    return gradcheck(layer, np.random.default_rng(7).standard_normal(shape), **options)


def check_x(layer, x, **options):
    return gradcheck(layer, x, **options)


class SignFlippedW(Linear):
    def backward(self, dout):
        dx = super().backward(dout)
        np.matmul(self.cache.T, -dout, out=self.grads["W"])  # the buggy line: -dout
        return dx


class MeanBias(Linear):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"][...] = dout.mean(axis=0)  # the forward broadcast b: a sum, not a mean
        return dx


class TransposedW(Linear):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"][...] = dout.T @ self.cache  # (out, in): square layers hide the shape
        return dx


class NeverWritesW(Linear):
    def backward(self, dout):
        return dout @ self.params["W"].T  # grads["W"] and grads["b"] never written


class Centre(Layer):
    """out = x - x.mean(axis=0); the buggy backward forgets the branch through the mean."""

    def forward(self, x):
        self.cache = x.shape
        return x - x.mean(axis=0)

    def backward(self, dout):
        return dout.copy()  # right: dout - dout.mean(axis=0)


class OneElementOffTanh(Tanh):
    def backward(self, dout):
        dx = super().backward(dout)
        dx[1, 2] += 0.5  # an index off by one, say
        return dx


class SquareForgetsTwo(Layer):
    """out = x * x; the buggy backward forgets the 2 of d(x*x)/dx."""

    def forward(self, x):
        self.cache = x
        return x * x

    def backward(self, dout):
        return dout * self.cache  # right: 2 * dout * x


class TanhForgetsSquare(Tanh):
    def backward(self, dout):
        return dout * (1 - self.cache)  # right: 1 - out**2


class SumCrossEntropy(SoftmaxCrossEntropy):
    """A mean-reduction loss whose backward forgot the 1/N."""

    def backward(self, dloss=1.0):
        return super().backward(dloss) * self.cache[0].shape[0]


class FeatureMean(Layer):
    """out = x * x.mean(axis=1, keepdims=True), right: x feeds two branches and they add."""

    def forward(self, x):
        self.cache = x
        return x * x.mean(axis=1, keepdims=True)

    def backward(self, dout):
        x = self.cache
        d = x.shape[1]
        m = x.mean(axis=1, keepdims=True)
        return dout * m + (dout * x).sum(axis=1, keepdims=True) / d


def test_a_flipped_sign_is_sign():
    report = check(SignFlippedW(3, 2, rng=0, dtype=F64))
    assert failed(report) == {"W": "sign"}
    row = report.rows[1]
    assert "sign is flipped" in row.hint
    assert row.worst_analytic == pytest.approx(-row.worst_numeric, rel=1e-6)
    assert row.worst == np.unravel_index(np.argmax(np.abs(row.analytic - row.numeric)), (3, 2))


def test_a_mean_where_the_forward_summed_is_scale_one_over_n():
    report = check(MeanBias(3, 2, rng=0, dtype=F64), (4, 3))
    assert failed(report) == {"b": "scale"}
    hint = report.rows[2].hint
    assert hint == ("analytic = 1/N x numeric for every element (k = 0.25, N = 4 the batch size): "
                    "the backward divides by N (a mean) where the forward took a sum.")


def test_a_loss_missing_its_one_over_n_is_scale_n():
    rng = np.random.default_rng(1)
    report = gradcheck(SumCrossEntropy(), rng.standard_normal((5, 3)), rng.integers(0, 3, 5))
    assert failed(report) == {"logits": "scale"}
    assert report.rows[0].hint.startswith("analytic = N x numeric for every element (k = 5, N = 5 the")
    assert "lacks its 1/N" in report.rows[0].hint


def test_a_missing_factor_two_is_scale_one_half():
    report = check(SquareForgetsTwo(), (3, 5))
    assert failed(report) == {"x": "scale"}
    assert report.rows[0].hint.startswith("analytic = 1/2 x numeric for every element (k = 0.5)")


def test_a_transposed_square_gradient_is_transpose():
    report = check(TransposedW(3, 3, rng=0, dtype=F64), (5, 3))
    assert failed(report) == {"W": "transpose"}
    assert "x.T @ dout, not dout.T @ x" in report.rows[1].hint


def test_a_gradient_never_written_is_zero():
    report = check(NeverWritesW(3, 2, rng=0, dtype=F64))
    assert failed(report) == {"W": "zero", "b": "zero"}
    assert "never written" in report.rows[1].hint


def test_a_forgotten_branch_is_an_offset_along_the_batch_axis():
    report = check(Centre(), (5, 3))
    assert failed(report) == {"x": "offset"}
    hint = report.rows[0].hint
    assert "same in every row (constant along axis 0)" in hint and "gradients add at branches" in hint


def test_a_forgotten_branch_along_the_other_axis_names_axis_1():
    class CentreRows(Centre):
        def forward(self, x):
            return x - x.mean(axis=1, keepdims=True)
    report = check(CentreRows(), (3, 4))
    assert failed(report) == {"x": "offset"} and "constant along axis 1" in report.rows[0].hint


def test_batchnorm_without_the_mean_branch_is_an_offset():
    from handprop.layers import BatchNorm1d

    class NoMeanBranch(BatchNorm1d):
        def backward(self, dout):
            xhat, inv_std, _ = self.cache
            super().backward(dout)
            n = dout.shape[0]
            return self.params["gamma"] * inv_std * (dout - xhat * self.grads["gamma"] / n)
    report = check(NoMeanBranch(3, dtype=F64), (6, 3))
    assert failed(report) == {"x": "offset"}


def test_a_few_wrong_elements_are_listed():
    report = check(OneElementOffTanh(), (3, 4))
    assert failed(report) == {"x": "elements"}
    row = report.rows[0]
    assert row.hint.startswith("1 of 12 elements are wrong and the rest right: (1, 2)")
    assert row.worst == (1, 2)


def test_no_pattern_is_a_mismatch():
    report = check(TanhForgetsSquare(), (3, 4))
    assert failed(report) == {"x": "mismatch"}
    assert "gate by gate" in report.rows[0].hint


def test_a_correct_layer_has_no_diagnosis():
    report = check(FeatureMean(), (3, 4))
    assert report.ok, report
    assert all(row.kind is None and row.hint is None for row in report.rows)


@pytest.mark.parametrize("layer,kind", [(SignFlippedW(3, 2, rng=0, dtype=F64), "sign"),
                                        (MeanBias(3, 2, rng=0, dtype=F64), "scale"),
                                        (TanhForgetsSquare(), "mismatch")])
def test_fast_mode_diagnoses_what_directions_can_show(layer, kind):
    report = check(layer, (4, 3), fast=True)
    assert kind in failed(report).values()
    row = next(row for row in report.rows if not row.ok)
    assert row.worst is None and row.analytic is None
    if kind == "mismatch":
        assert "fast=False" in row.hint


def test_a_real_valued_loss_is_checked_against_pred():
    class HalfMSE(Loss):
        """loss = mean((pred - y)**2) with the buggy gradient (pred - y) / size: the 2 is lost."""

        def forward(self, pred, target):
            self.cache = pred - target
            return float(np.mean(self.cache ** 2))

        def backward(self, dloss=1.0):
            return dloss * self.cache / self.cache.size
    rng = np.random.default_rng(2)
    report = gradcheck(HalfMSE(), rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))
    assert failed(report) == {"pred": "scale"}
    assert report.rows[0].hint.startswith("analytic = 1/2 x numeric")


@pytest.mark.parametrize("k,n,d,label,words", [
    (6.0, 6, 3, "N", "lacks its 1/N"), (1 / 6, 6, 3, "1/N", "took a sum"),
    (2.0, 5, 3, "2", "too many"), (0.5, 5, 3, "1/2", "missing"),
    (1.25, 5, 3, "N/(N-1)", "unbiased"), (0.8, 5, 3, "(N-1)/N", "biased variance"),
    (7.0, 5, 7, "D", "D = 7 the feature count"), (1 / 7, 5, 7, "1/D", "sum over the features"),
    (-6.0, 6, 3, "-N", "sign is flipped"), (1.37, 6, 3, "1.37", "constant factor")])
def test_scale_names_its_factor(k, n, d, label, words):
    rng = np.random.default_rng(0)
    numeric = rng.standard_normal((n, d))
    kind, hint = diagnose(k * numeric, numeric, np.ones((n, d), bool), 1e-7, (n, d))
    assert kind == "scale" and hint.startswith(f"analytic = {label} x numeric") and words in hint


def test_at_batch_two_every_meaning_of_two_is_named():
    numeric = np.random.default_rng(0).standard_normal((2, 3))
    _, hint = diagnose(2 * numeric, numeric, np.ones((2, 3), bool), 1e-7, (2, 3))
    assert hint.startswith("analytic = 2 = N = N/(N-1) x numeric for every element (k = 2, N = 2 the "
                           "batch size): a factor 2 too many")


def test_kinked_elements_do_not_decide_a_kind():
    rng = np.random.default_rng(0)
    numeric = rng.standard_normal((4, 3))
    analytic = -numeric
    analytic[0, 0] = 5.0  # a kink's numeric value is meaningless: masked out
    checked = np.ones((4, 3), bool)
    checked[0, 0] = False
    assert diagnose(analytic, numeric, checked, 1e-7, (4, 3))[0] == "sign"


def test_every_kind_has_a_test_here():
    text = open(__file__).read()
    for kind in ROW_KINDS:
        assert f'"{kind}"' in text


def test_a_gradient_never_written_is_zero_even_with_stale_values_in_grads():
    layer = NeverWritesW(3, 2, rng=0, dtype=F64)
    layer.grads["W"][...] = 1.0  # left over from an earlier backward
    assert failed(check(layer))["W"] == "zero"
    assert layer.grads["W"].max() == 1.0  # the caller's layer is untouched


def test_an_offset_of_a_vector_is_the_same_in_every_element():
    numeric = np.random.default_rng(0).standard_normal(5)
    kind, hint = diagnose(numeric + 0.3, numeric, np.ones(5, bool), 1e-7, (4, 5))
    assert kind == "offset" and hint.startswith("the error is the same in every element (constant along axis 0)")


# the kinds of the skipped elements: "kink" and "tie"; of a table at token ids: "accumulate"

class ReLUTwiceAtZero(Layer):
    """ReLU whose backward gives 2 * dout at exactly 0: outside both one-sided slopes (0 and 1)."""

    def forward(self, x):
        self.cache = x
        return np.maximum(x, 0)

    def backward(self, dout):
        x = self.cache
        return dout * np.where(x > 0, 1.0, np.where(x == 0, 2.0, 0.0))


def test_a_gradient_outside_the_one_sided_slopes_at_a_kink_is_kink():
    x = np.random.default_rng(0).standard_normal((3, 4))
    x[0, 1] = x[2, 3] = 0.0
    report = check_x(ReLUTwiceAtZero(), x)
    assert failed(report) == {"x": "kink"}
    assert report.rows[0].hint.startswith("2 of 2 elements at a kink have a gradient outside their two "
                                          "one-sided slopes: (0, 1), (2, 3)")


def test_relu_with_either_subgradient_at_zero_passes_among_near_kinks():
    class ReLUOneAtZero(ReLUTwiceAtZero):
        def backward(self, dout):
            return dout * (self.cache >= 0)
    x = np.array([[0.0, 1e-7, -1e-7, 0.5], [-0.3, 0.0, 2.0, -5e-7]])
    for layer in (ReLUOneAtZero(), Tanh()):
        report = check_x(layer, x)
        assert report.ok, report


class MaxToEveryTie(Layer):
    def forward(self, x):
        self.cache = x
        return x.max(axis=1)

    def backward(self, dout):
        return dout[:, None] * (self.cache == self.cache.max(axis=1, keepdims=True))  # every tie


def test_a_gradient_to_every_tied_maximum_is_tie():
    x = np.random.default_rng(0).standard_normal((2, 3))
    x[1, 0] = x[1, 2] = 4.0
    report = check_x(MaxToEveryTie(), x)
    assert failed(report) == {"x": "tie"}
    assert report.rows[0].hint.startswith("2 elements are tied ((1, 0), (1, 2): they move the output as one")


class AssignAtIds(Layer):
    def __init__(self):
        super().__init__()
        self.params["W"] = np.random.default_rng(0).standard_normal((4, 2))
        self.grads["W"] = np.zeros((4, 2))

    def forward(self, ids):
        self.cache = ids
        return self.params["W"][ids]

    def backward(self, dout):
        self.grads["W"][...] = 0
        self.grads["W"][self.cache] = dout  # id 2 repeats: one of its two uses is kept


def test_a_table_wrong_exactly_at_repeated_ids_is_accumulate():
    report = gradcheck(AssignAtIds(), np.array([2, 0, 2]))
    assert failed(report) == {"W": "accumulate"}
    assert report.rows[0].hint.startswith("the wrong rows of W (2) are the ids that occur more than once")

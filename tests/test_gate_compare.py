"""compare: a staged backward beside the engine, intermediate by intermediate.

Two worked examples compare our own staged backwards (``layers/batchnorm.py`` and
``losses/softmax_cross_entropy.py``, read as they are: their intermediates are taken from the
function's local variables as it returns) with the same forwards written in gates. Then a
learner's staged BatchNorm backward gets one planted mistake at a time, and ``compare`` must name
exactly the planted intermediate as ``first_wrong``, and nothing when there is no plant.
"""
import sys

import numpy as np
import pytest

from handprop.layers import batchnorm
from handprop.layers.gates import Var, compare
from handprop.losses import softmax_cross_entropy

N, D, EPS = 6, 4, 1e-5


def run_keeping_locals(fn, *args):
    """fn(*args) and its local variables as it returned: a staged backward's intermediates,
    read without changing its code."""
    kept = {}

    def profile(frame, event, arg):
        if event == "return" and frame.f_code is fn.__code__:
            kept.update(frame.f_locals)
    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        result = fn(*args)
    finally:
        sys.setprofile(previous)
    return result, kept


def gradients_by_name(kept, reference):
    """The staged backward's d<name> for each name of the reference."""
    return {name: kept["d" + name] for name in reference if "d" + name in kept}


def batchnorm_data(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N, D)) * 2 + 1, rng.uniform(0.5, 1.5, D), rng.standard_normal(D),
            rng.standard_normal((N, D)))


def batchnorm_gates(x, gamma, beta, eps, keepdims=False):
    """BatchNorm1d's training forward in gates, with the names of layers/batchnorm.py."""
    x, gamma, beta = Var(x), Var(gamma), Var(beta)
    mu = x.mean(axis=0, keepdims=keepdims)          # (D,) or (1, D)
    xc = x - mu                                     # (N, D)
    sq = xc * xc
    var = sq.mean(axis=0, keepdims=keepdims)
    std = (var + eps) ** 0.5
    inv_std = 1 / std
    xhat = xc * inv_std
    out = gamma * xhat + beta
    return dict(x=x, gamma=gamma, beta=beta, mu=mu, xc=xc, sq=sq, var=var, std=std,
                inv_std=inv_std, xhat=xhat, out=out)


def test_our_staged_batchnorm_backward_agrees_with_the_gates_at_every_intermediate():
    x, gamma, beta, dout = batchnorm_data()
    reference = batchnorm_gates(x, gamma, beta, EPS)
    reference["out"].backward(dout)
    (dx, dgamma, dbeta), kept = run_keeping_locals(batchnorm.staged_backward, x, gamma, EPS, dout)
    mine = gradients_by_name(kept, reference)
    assert set(mine) == set(reference)             # all eleven, the upstream dout included
    report = compare(reference, mine)
    assert report.ok and report.first_wrong is None, report
    assert [row.name for row in report.rows] == ["out", "xhat", "inv_std", "std", "var", "sq", "xc",
                                                 "mu", "beta", "gamma", "x"]
    np.testing.assert_array_equal(dx, kept["dx"])


def softmax_gates(logits, targets, s):
    """Softmax cross-entropy's forward in gates, with the names of losses/softmax_cross_entropy.py."""
    rows = np.arange(len(targets))
    logits = Var(logits)
    m = logits.max(axis=1, keepdims=True)           # (N, 1)
    shifted = logits - m                            # (N, C)
    e = shifted.exp()
    total = e.sum(axis=1, keepdims=True)            # (N, 1)
    lse = total.log()
    log_probs = shifted - lse                       # (N, C)
    picked = log_probs[rows, targets]               # (N,)
    nll = -(1 - s) * picked - s * log_probs.mean(axis=1)
    return dict(logits=logits, m=m, shifted=shifted, e=e, total=total, lse=lse,
                log_probs=log_probs, picked=picked, nll=nll)


@pytest.mark.parametrize("reduction, smoothing, dloss", [("mean", 0.0, 1.0), ("sum", 0.1, 1.7)])
def test_our_staged_softmax_cross_entropy_backward_agrees_with_the_gates(reduction, smoothing, dloss):
    rng = np.random.default_rng(1)
    logits, targets = rng.standard_normal((N, 5)) * 3, rng.integers(0, 5, N)
    reference = softmax_gates(logits, targets, smoothing)
    loss = reference["nll"].mean() if reduction == "mean" else reference["nll"].sum()
    loss.backward(dloss)
    dlogits, kept = run_keeping_locals(softmax_cross_entropy.staged_backward, logits, targets,
                                       reduction, smoothing, dloss)
    mine = gradients_by_name(kept, reference)
    assert set(mine) == set(reference) - {"picked"}  # the staged form has no dpicked
    report = compare(reference, mine)
    assert report.ok, report
    assert np.max(np.abs(reference["m"].grad)) < 1e-15     # the max-shift's gradient: rounding
    np.testing.assert_array_equal(dlogits, kept["dlogits"])


def learners_batchnorm_backward(x, gamma, eps, dout, plant=None):
    """A learner's staged backward of the keepdims form, with an optional planted mistake."""
    n = x.shape[0]
    mu = x.mean(axis=0, keepdims=True)                                       # (1, D)
    xc = x - mu
    var = (xc * xc).mean(axis=0, keepdims=True)
    std = np.sqrt(var + eps)
    inv_std = 1 / std
    xhat = xc * inv_std
    d = {"out": dout}
    d["beta"] = dout if plant == "no-sum" else dout.sum(axis=0)
    d["gamma"] = (dout * xhat).sum(axis=0)
    d["xhat"] = dout * gamma
    d["inv_std"] = (d["xhat"] * xc).sum(axis=0, keepdims=plant != "keepdims")
    d["std"] = (1 if plant == "sign" else -1) * d["inv_std"] / std**2
    d["var"] = d["std"] / (2 * std)
    d["sq"] = d["var"] * np.ones_like(x) / (1 if plant == "1/N" else n)
    d["xc"] = d["xhat"] * inv_std + (0 if plant == "lost branch" else 2 * xc * d["sq"])
    d["mu"] = -d["xc"].sum(axis=0, keepdims=True)
    d["x"] = d["xc"] + (0 if plant == "lost dmu" else d["mu"] / n)
    return d


def planted_report(plant):
    x, gamma, beta, dout = batchnorm_data(seed=2)
    reference = batchnorm_gates(x, gamma, beta, EPS, keepdims=True)
    reference["out"].backward(dout)
    return compare(reference, learners_batchnorm_backward(x, gamma, EPS, dout, plant))


@pytest.mark.parametrize("plant, first_wrong, kind, words", [
    ("sign", "std", "sign", "sign is flipped"),
    ("lost branch", "xc", "mismatch", "xc feeds 2 gates: their gradients add"),
    ("keepdims", "inv_std", "shape", "keepdims=True"),
    ("1/N", "sq", "scale", f"N = {N} the batch size"),
    ("lost dmu", "x", "offset", "gradients add at branches"),
    ("no-sum", "beta", "shape", "summed over the broadcast axes (sum_to_shape), which makes it right"),
])
def test_compare_names_exactly_the_planted_intermediate(plant, first_wrong, kind, words):
    report = planted_report(plant)
    assert report.first_wrong == first_wrong, report
    wrong = {row.name: row for row in report.rows if not row.ok}
    assert wrong[first_wrong].kind == kind, report
    assert words in report.hint, report.hint
    assert str(report).splitlines()[0] == f"compare: first wrong: {first_wrong} (tol 1e-07)"


def test_compare_finds_nothing_when_nothing_is_planted():
    report = planted_report(None)
    assert report.first_wrong is None and report.hint is None and report.ok, report
    assert all(row.ok for row in report.rows) and len(report.rows) == 11


def test_a_gradient_of_the_wrong_shape_is_a_row_not_an_exception():
    x = Var(np.ones((3, 2)), name="x")
    y = x.sum(axis=1, keepdims=True)
    y.name = "y"
    (y * 2).sum().backward()
    report = compare([x, y], {"y": np.full(3, 2.0), "x": np.full((3, 2), 2.0)})
    assert report.first_wrong == "y"
    row = report.rows[0]
    assert (row.name, row.shape, row.got_shape, row.kind) == ("y", (3, 1), (3,), "shape")
    assert report.rows[1].ok                     # x is right, and comes after y
    assert "expected shape (3, 1), got (3,) with the right values" in report.hint
    assert str(report).splitlines()[2].split() == ["y", "(3,", "1)", "(3,)", "-", "-", "WRONG", "shape"]


def test_the_table_shows_every_row_in_backward_order_with_errors():
    a = Var([1.0, 2.0], name="a")
    b = (a * 3.0).tanh()
    b.name = "b"
    b.backward(np.array([1.0, -1.0]))
    report = compare({"b": b, "a": a}, {"a": -a.grad, "b": b.grad})
    lines = str(report).splitlines()
    assert lines[1].split() == ["name", "shape", "yours", "max", "abs", "err", "rel", "err"]
    assert lines[2].startswith("b ") and lines[2].endswith("ok")
    assert lines[3].startswith("a ") and lines[3].endswith("WRONG sign")
    assert lines[4].startswith("hint: da is the first wrong gradient while db agrees")


def test_a_nan_gradient_is_wrong_and_says_so():
    a = Var([1.0, 2.0], name="a")
    (a * a).sum().backward()
    report = compare([a], {"a": np.array([2.0, np.nan])})
    assert report.first_wrong == "a" and report.rows[0].kind == "nan"


def test_compare_refuses_unknown_names_and_a_reference_without_gradients():
    a = Var([1.0], name="a")
    with pytest.raises(ValueError, match="no Var in the reference is named 'b'; the reference has 'a'"):
        compare([a], {"b": np.ones(1)})
    with pytest.raises(ValueError, match="'a' has no gradient; call backward"):
        compare([a], {"a": np.ones(1)})
    with pytest.raises(ValueError, match="needs a name of its own"):
        compare([Var([1.0])], {})


def test_a_gradient_that_is_zero_up_to_rounding_agrees_with_another_rounding_of_zero():
    """The max-shift's gradient is 0 up to rounding: a learner whose dm rounds differently is
    right, one whose dm is off by 1e-3 of the largest gradient is not."""
    rng = np.random.default_rng(3)
    logits, targets = rng.standard_normal((N, 5)), rng.integers(0, 5, N)
    reference = softmax_gates(logits, targets, 0.0)
    reference["nll"].mean().backward()
    _, kept = run_keeping_locals(softmax_cross_entropy.staged_backward, logits, targets)
    mine = gradients_by_name(kept, reference)
    mine["m"] = kept["dm"] + 1e-17 * rng.standard_normal((N, 1))
    assert compare(reference, mine).ok
    mine["m"] = kept["dm"] + 1e-3 * np.abs(kept["dlogits"]).max()
    assert compare(reference, mine).first_wrong == "m"

"""The checker itself: it must catch planted errors, raise no false alarms, change nothing."""
import numpy as np
import pytest

from handprop.layers import Linear, ReLU, Tanh
from handprop.layers.gradcheck import gradcheck
from handprop.train.gradcheck import main

F64 = np.float64


class DxOffLinear(Linear):
    def backward(self, dout):
        return super().backward(dout) * 1.001


class WOffLinear(Linear):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"] *= 1.001
        return dx


class OneElementOffTanh(Tanh):
    def backward(self, dout):
        dx = super().backward(dout)
        dx.flat[1] += 1e-3 * np.abs(dx).max()
        return dx


def failing(report):
    return {row.name for row in report.rows if not row.ok}


@pytest.mark.parametrize("fast", [False, True])
def test_catches_an_error_in_dx_only(fast, rng):
    report = gradcheck(DxOffLinear(5, 4, rng=0, dtype=F64), rng.standard_normal((3, 5)), fast=fast)
    assert not report.ok and failing(report) == {"x"}
    assert 1e-4 < report.worst < 1e-2


@pytest.mark.parametrize("fast", [False, True])
def test_catches_an_error_in_one_parameter_only(fast, rng):
    report = gradcheck(WOffLinear(5, 4, rng=0, dtype=F64), rng.standard_normal((3, 5)), fast=fast)
    assert not report.ok and failing(report) == {"W"}


def test_catches_one_wrong_element(rng):
    report = gradcheck(OneElementOffTanh(), rng.standard_normal((3, 4)))
    assert not report.ok and failing(report) == {"x"}


def test_no_false_alarm_at_relu_kinks():
    x = np.array([[0.0, 1e-7, -1e-7, 0.5], [-0.3, 0.0, 2.0, -5e-7]])
    report = gradcheck(ReLU(), x)
    assert report.ok, report
    # five lie within one step of the kink at 0
    assert report.rows[0].skipped == 5 and report.rows[0].checked == 3


def test_checked_object_and_input_are_unchanged(rng, assert_same_state):
    lin = Linear(4, 3, rng=0, dtype=F64)
    x = rng.standard_normal((2, 4))
    x_before, before = x.copy(), lin.state_dict()
    lin.eval()
    for fast in (False, True):
        gradcheck(lin, x, fast=fast)
    assert_same_state(before, lin.state_dict())
    np.testing.assert_array_equal(x, x_before)
    assert lin.cache is None and not lin.training


def test_float32_is_refused_with_the_way_out(rng):
    with pytest.raises(TypeError, match=r"parameter W is float32; build it with dtype=np.float64"):
        gradcheck(Linear(3, 2), rng.standard_normal((2, 3)))
    with pytest.raises(TypeError, match=r"got an input of float32"):
        gradcheck(Tanh(), rng.standard_normal((2, 3)).astype(np.float32))


def test_a_gradient_of_the_wrong_shape_is_reported(rng):
    class Broken(Tanh):
        def backward(self, dout):
            return super().backward(dout)[:, :1]
    with pytest.raises(ValueError, match=r"gradient for x of shape \(2, 3\), backward gave shape \(2, 1\)"):
        gradcheck(Broken(), rng.standard_normal((2, 3)))


def test_the_upstream_gradient_is_random_not_ones(rng):
    class SumOnly(Linear):
        # right for dout = ones only: db = N * mean(dout) computed as a count
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["b"][...] = dout.shape[0]
            return dx
    assert failing(gradcheck(SumOnly(3, 2, rng=0, dtype=F64), rng.standard_normal((4, 3)))) == {"b"}


def test_fast_mode_cost_does_not_grow_with_size(rng):
    lin = Linear(512, 512, rng=0, dtype=F64)
    report = gradcheck(lin, rng.standard_normal((8, 512)), fast=True, directions=2)
    assert report.ok, report
    assert [row.checked for row in report.rows] == [2, 2, 2]


def test_report_prints_a_table(rng):
    text = str(gradcheck(Linear(3, 2, rng=0, dtype=F64), rng.standard_normal((2, 3))))
    assert text.splitlines()[0].startswith("gradcheck Linear(3, 2, dtype=float64): ok")
    assert "max abs err" in text and "rel err" in text and "skipped" in text
    assert len(text.splitlines()) == 2 + 3


def test_cli_checks_every_builtin_layer(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("Linear", "ReLU", "Tanh"):
        assert f"\n{name}" in out
    assert "checks passed" in out and "FAIL" not in out
    assert main(["--layer", "tanh", "--seed", "3", "--fast"]) == 0
    assert "Linear" not in capsys.readouterr().out


def test_cli_fails_when_a_layer_is_wrong(monkeypatch, capsys):
    import handprop.train.gradcheck as registry
    monkeypatch.setattr(registry, "Tanh", OneElementOffTanh)
    assert main(["--layer", "Tanh"]) == 1
    assert "FAILED: Tanh" in capsys.readouterr().out


def test_cli_unknown_layer_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--layer", "Conv3d"])
    assert exc.value.code == 2
    assert "no built-in layer named 'Conv3d'" in capsys.readouterr().err


def test_a_parameter_that_is_a_transposed_view(rng):
    class TransposedLinear(Linear):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.params["W"] = np.ascontiguousarray(self.params["W"].T).T  # not C-contiguous
    lin = TransposedLinear(4, 3, rng=0, dtype=F64)
    assert not lin.params["W"].flags.c_contiguous
    report = gradcheck(lin, rng.standard_normal((5, 4)))
    assert report.ok, report
    assert report.rows[1].checked == 12

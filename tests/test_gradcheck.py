"""The checker itself: it must catch planted errors, raise no false alarms, change nothing."""
import configparser
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from handprop.layers import Linear, ReLU, Tanh
from handprop.layers.gradcheck import assert_gradcheck, gradcheck
from handprop.train.gradcheck import main

F64 = np.float64
ROOT = Path(__file__).resolve().parents[1]


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


def test_a_gradient_of_the_wrong_shape_is_a_problem_not_an_exception(rng):
    class Broken(Tanh):
        def backward(self, dout):
            return super().backward(dout)[:, :1]
    report = gradcheck(Broken(), rng.standard_normal((2, 3)))
    assert not report.ok and [p.kind for p in report.problems] == ["shape"]
    assert "problem shape: dx has shape (2, 1) but x has shape (2, 3)" in str(report)


def test_assert_gradcheck_raises_with_the_whole_report(rng):
    x = rng.standard_normal((3, 4))
    assert assert_gradcheck(Tanh(), x).ok
    with pytest.raises(AssertionError) as err:
        assert_gradcheck(OneElementOffTanh(), x)
    assert str(err.value).strip() == str(gradcheck(OneElementOffTanh(), x))
    with pytest.raises(AssertionError, match="problem unchecked"):
        assert_gradcheck(ReLU(), np.zeros((2, 2)), seed=1)


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


def test_a_failed_report_says_what_and_where(rng):
    report = gradcheck(WOffLinear(3, 2, rng=0, dtype=F64), rng.standard_normal((4, 3)))
    lines = str(report).splitlines()
    assert lines[0] == "gradcheck WOffLinear(3, 2, dtype=float64): FAILED (tol 1e-07, every element)"
    assert lines[3].startswith("W  ") and lines[3].endswith("FAIL scale")
    row = report.rows[1]
    assert lines[5:] == ["W: scale: analytic = 1.001 x numeric for every element: a constant factor is "
                         "wrong.",
                         f"    worst at {row.worst}: analytic {row.worst_analytic:.6g}, numeric "
                         f"{row.worst_numeric:.6g}"]
    assert row.analytic.shape == row.numeric.shape == (3, 2)
    np.testing.assert_allclose(row.analytic, 1.001 * row.numeric, rtol=1e-8)


def test_cli_checks_every_builtin_layer(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("Linear", "ReLU", "Tanh"):
        assert f"\n{name}" in out
    assert "checks passed" in out and "FAIL" not in out
    assert main(["--layer", "tanh", "--seed", "3", "--fast"]) == 0
    assert "Linear" not in capsys.readouterr().out


def test_cli_fails_when_a_layer_is_wrong(monkeypatch, capsys):
    import handprop.train.gradcheck.dense as registry
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


USER_FILE = '''
import numpy as np
from handprop.layers import Layer, Linear

class Cube(Layer):
    def forward(self, x):
        self.cache = x
        return x ** 3
    def backward(self, dout):
        return dout * 3 * self.cache ** BUG

def make():
    return Cube(), np.random.default_rng(0).standard_normal((3, 2))

def make_float32():
    return Linear(2, 2), np.ones((1, 2), np.float32)

def make_wrong():
    return Cube()

def make_loss():
    from handprop.losses import SoftmaxCrossEntropy
    rng = np.random.default_rng(0)
    return SoftmaxCrossEntropy(), rng.standard_normal((4, 3)), rng.integers(0, 3, 4)

not_callable = 3
'''


@pytest.fixture
def user_file(tmp_path, monkeypatch):
    """A user's folder with mine.py (a right Cube) and buggy.py (a Cube off by a power), cwd."""
    (tmp_path / "mine.py").write_text(USER_FILE.replace("BUG", "2"))
    (tmp_path / "buggy.py").write_text(USER_FILE.replace("BUG", "1"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_cli_checks_a_users_layer_by_module_or_file(user_file, capsys):
    assert main(["--target", "mine:make", "--target", "mine:make_loss"]) == 0
    out = capsys.readouterr().out
    assert "\nmine:make       x" in out and "\nmine:make_loss  logits" in out
    assert main(["--target", str(user_file / "buggy.py") + ":make", "--target", "mine:make"]) == 1
    out = capsys.readouterr().out
    assert "buggy.py:make:\n  x: mismatch:" in out and "FAILED: " + str(user_file / "buggy.py") in out
    assert "1 of 2 checks passed" in out


@pytest.mark.parametrize("spec,message", [
    ("mine", "expected --target MODULE:FACTORY (my_pkg.my_layers:make) or path/to/file.py:FACTORY, "
             "got 'mine'"),
    ("nowhere:make", "no module named 'nowhere'"),
    ("nowhere/mine.py:make", "no file 'nowhere/mine.py'"),
    ("mine:absent", "expected a function FACTORY() that returns (layer, x) or (loss, pred, targets) "
                    "in mine, found nothing by that name"),
    ("mine:not_callable", "found a int"),
    ("mine:make_wrong", "but make_wrong() returned a Cube"),
    ("mine:make_float32", "got an input of float32; build it with dtype=np.float64")])
def test_cli_target_mistakes_are_usage_errors(user_file, capsys, spec, message):
    with pytest.raises(SystemExit) as exc:
        main(["--target", spec])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_target_and_layer_together_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--target", "mine:make", "--layer", "Tanh"])
    assert exc.value.code == 2 and "give one or the other" in capsys.readouterr().err


def test_the_users_pytest_file_in_examples_passes():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["tool:pytest"]["testpaths"].split() == ["tests"]  # our runs never collect examples/
    # no third-party plugins: loading hypothesis's alone takes longer than the tests
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "examples/test_custom_layer.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout


def test_the_readmes_failing_report_is_what_gradcheck_prints():
    readme = (ROOT / "README.md").read_text()
    code, shown = re.search(r"```python\n([^`]*class Affine[^`]*)```\n\n```text\n(.*?)```", readme,
                            flags=re.S).groups()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README Affine block", "exec"), {})
    # errors at the rounding-noise level (the ok row) may differ in their digits between machines
    noise = re.compile(r"\d\.\d\de-(1\d|0[89])")
    assert noise.sub("NOISE", printed.getvalue()) == noise.sub("NOISE", shown)

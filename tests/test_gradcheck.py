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
    first, rest = str(err.value).split("\n", 1)
    # pytest's short summary shows the first line: what failed, not only that something did
    assert first == "gradcheck OneElementOffTanh(): FAILED: failing x (elements)"
    assert rest == str(gradcheck(OneElementOffTanh(), x))
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
    assert main(["--layer", "Tanh"]) == 1  # two failed: 1, never 2, which is a usage error
    assert "FAILED: Tanh, Tanh batch 1" in capsys.readouterr().out


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

class Raises(Cube):
    def forward(self, x):
        raise RuntimeError("my forward is not written yet")

def make_raises():
    return Raises(), np.ones((2, 2))

def make_needs(n):
    return Cube(), np.ones((n, 2))

def make_broken():
    return {}["layer"], np.ones((2, 2))

def make_not_a_layer():
    return 3, np.ones((2, 2))

def make_nan():
    return Cube(), np.full((2, 2), np.nan)

def make_bad_option():
    return Cube(), np.ones((2, 2)), {"steps": 1e-6}

class Scores(Layer):
    def forward(self, q, k, mask):
        self.cache = (q, k)
        return q @ k.T * mask

    def backward(self, ds):
        q, k = self.cache
        return ds @ k, ds.T @ q, None

def make_scores():
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    return Scores(), (q, k, np.ones((3, 4))), {"not_differentiated": [2]}
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
    ("mine:make_float32", "got an input of float32; build it with dtype=np.float64"),
    ("handprop.layers:Linear", "--target handprop.layers:Linear: Linear is a class, not a factory; "
                               "expected a function FACTORY() that returns (layer, x) or (loss, pred, "
                               "targets), e.g. def make(): return Linear(...), x"),
    ("mine:make_needs", "--target mine:make_needs: make_needs() needs arguments (n); expected a function "
                        "FACTORY() that returns (layer, x) or (loss, pred, targets), called with none"),
    ("mine:make_not_a_layer", "--target mine:make_not_a_layer: gradcheck: expected a layer or a loss (an "
                              "object with forward and backward methods) as the first argument, got int 3"),
    ("mine:make_nan", "--target mine:make_nan: gradcheck Cube(): x has 4 of 4 elements NaN or infinite"),
    ("mine:make_bad_option", "--target mine:make_bad_option: gradcheck has no option 'steps'; its options "
                             "are seed, step, tol, fast, directions, not_differentiated, progress"),
    ("broken_import:make", "--target broken_import:make: importing broken_import raised "
                           "ModuleNotFoundError: No module named 'not_installed' (at broken_import.py:1, "
                           "in <module>)"),
    ("broken_syntax.py:make", "--target broken_syntax.py:make: importing broken_syntax.py raised "
                              "SyntaxError: invalid syntax (broken_syntax.py, line 1)")])
def test_cli_target_mistakes_are_usage_errors(user_file, capsys, spec, message):
    (user_file / "broken_import.py").write_text("import not_installed\n")
    (user_file / "broken_syntax.py").write_text("def make(:\n")
    with pytest.raises(SystemExit) as exc:
        main(["--target", spec])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") <= 5


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


def test_running_the_checkers_own_package_says_where_the_cli_is_and_fails():
    # layers/ may not import the registry in train/: a silent exit 0 would read as a pass
    done = subprocess.run([sys.executable, "-m", "handprop.layers.gradcheck", "--target", "mine:make"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert "python -m handprop.train.gradcheck --target mine:make" in done.stderr


def test_the_checker_is_a_package_of_modules_each_readable_in_one_sitting():
    import handprop.layers.gradcheck as package
    folder = Path(package.__file__).parent
    sizes = {path.name: len(path.read_text().splitlines()) for path in folder.glob("*.py")}
    assert {"report.py", "objective.py", "contract.py", "differences.py", "diagnosis.py"} <= set(sizes)
    assert max(sizes.values()) <= 400, sizes
    for name in ("gradcheck", "assert_gradcheck", "diagnose", "format_table", "format_details",
                 "GradcheckReport", "Problem", "Row", "PROBLEM_KINDS", "ROW_KINDS"):
        assert name in package.__all__ and hasattr(package, name)


def test_a_long_check_shows_progress_and_suggests_the_fast_mode(rng, capsys, monkeypatch):
    import handprop.layers.gradcheck.cost as cost
    x = rng.standard_normal((3, 4))
    assert gradcheck(Linear(4, 2, rng=0, dtype=F64), x).ok
    assert capsys.readouterr().err == ""  # a short check stays quiet
    monkeypatch.setattr(cost, "PROGRESS_AFTER", 0.0)  # as if every check were long
    assert gradcheck(Linear(4, 2, rng=0, dtype=F64), x).ok
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("gradcheck Linear(4, 2, dtype=float64): 44 evaluations, about ")
    assert "fast=True (--fast) checks 3 random directions per tensor instead" in err[0]
    assert err[1:] == [f"gradcheck Linear(4, 2, dtype=float64): {key} done ({done}/44 evaluations)"
                       for key, done in (("x (3, 4)", 24), ("W (4, 2)", 40), ("b (2,)", 44))]
    assert gradcheck(Linear(4, 2, rng=0, dtype=F64), x, progress=False).ok
    assert capsys.readouterr().err == ""


def test_cli_checks_every_target_and_counts_the_failed_ones(user_file, capsys):
    status = main(["--target", "mine:make_raises", "--target", "buggy:make", "--target", "mine:make",
                   "--target", "mine:make_scores"])
    out = capsys.readouterr().out
    assert status == 1  # two failed: 1 (any failed), never 2 (a usage error); the last line counts
    assert ("mine:make_raises:\n  problem raised: RuntimeError: my forward is not written yet (at mine.py:30, "
            "in forward)\n") in out
    assert "\nmine:make_scores  q" in out and "\nmine:make_scores  k" in out
    assert "2 of 4 checks passed" in out and "FAILED: mine:make_raises, buggy:make" in out
    assert main(["--target", "mine:make_scores"]) == 0


def seconds_per_evaluation(monkeypatch, seconds):
    """As if each evaluation of the objective took ``seconds`` (the layers stay small and quick)."""
    import handprop.layers.gradcheck.check as check
    monkeypatch.setattr(check, "evaluation_seconds", lambda objective: seconds)


def test_the_cost_estimate_comes_before_the_long_work(rng, capsys, monkeypatch):
    class BackwardRaises(Linear):
        def backward(self, dout):
            raise RuntimeError("backward is not written yet")
    seconds_per_evaluation(monkeypatch, 0.05)
    monkeypatch.setattr("handprop.layers.gradcheck.cost.PROGRESS_AFTER", 1.0)
    with pytest.raises(RuntimeError, match="not written yet"):
        gradcheck(BackwardRaises(4, 2, rng=0, dtype=F64), rng.standard_normal((3, 4)))
    # out before the contract check ran backward: 44 evaluations of 50 ms
    assert capsys.readouterr().err.splitlines() == [
        "gradcheck BackwardRaises(4, 2, dtype=float64): 44 evaluations, about 2 s; fast=True (--fast) "
        "checks 3 random directions per tensor instead, in under 1 s"]


def test_a_check_estimated_over_ten_minutes_switches_to_the_fast_mode_and_says_so(rng, capsys,
                                                                                  monkeypatch):
    # a 10^7-parameter layer at a few ms per forward: hours; here 20,600 evaluations of 100 ms
    seconds_per_evaluation(monkeypatch, 0.1)
    x = rng.standard_normal((2, 100))
    report = gradcheck(Linear(100, 100, rng=0, dtype=F64), x)
    assert report.ok and report.fast and all(row.checked == 3 for row in report.rows)
    notice = ("checked along 3 random directions per tensor (fast=True), not every element: the full "
              "check would take about 34.3 min (20600 evaluations of 100 ms); pass fast=False (--full) to "
              "check every element anyway")
    assert report.warnings == [notice]
    assert f"warning {notice}" in str(report) and "random directions)" in str(report).splitlines()[0]
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [f"gradcheck Linear(100, 100, dtype=float64): {notice}",
                       "gradcheck Linear(100, 100, dtype=float64): 18 evaluations, about 2 s"]


def test_fast_false_checks_every_element_however_long_the_estimate(rng, capsys, monkeypatch):
    seconds_per_evaluation(monkeypatch, 10.0)
    report = gradcheck(Linear(10, 10, rng=0, dtype=F64), rng.standard_normal((2, 10)), fast=False)
    assert report.ok and not report.fast and report.warnings == []
    assert [row.checked for row in report.rows] == [20, 100, 10]
    assert capsys.readouterr().err.splitlines()[0] == (
        "gradcheck Linear(10, 10, dtype=float64): 260 evaluations, about 43.3 min; fast=True (--fast) "
        "checks 3 random directions per tensor instead, in 3.0 min")


def test_the_cli_shows_the_estimate_and_switches_unless_told_full(user_file, capsys, monkeypatch):
    seconds_per_evaluation(monkeypatch, 100.0)  # 12 evaluations: 20 min
    assert main(["--target", "mine:make"]) == 0
    captured = capsys.readouterr()
    assert "gradcheck Cube(): checked along 3 random directions per tensor (fast=True), not every element: " \
           "the full check would take about 20.0 min" in captured.err
    assert "\nmine:make  x       (3, 2)  " in captured.out
    assert main(["--target", "mine:make", "--full"]) == 0
    err = capsys.readouterr().err
    assert "12 evaluations, about 20.0 min; fast=True (--fast) checks 3 random directions" in err
    assert "checked along" not in err


def test_cli_a_factory_that_raises_is_a_failed_entry_in_one_line(user_file, capsys):
    assert main(["--target", "mine:make_broken", "--target", "mine:make"]) == 1
    out = capsys.readouterr().out
    assert ("mine:make_broken:\n  problem raised: make_broken() raised KeyError: 'layer' (at mine.py:39, "
            "in make_broken)\n") in out
    assert "1 of 2 checks passed" in out


@pytest.mark.parametrize("seed", ["-1", "1.5", "x"])
def test_cli_a_bad_seed_is_a_usage_error(seed, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--layer", "Tanh", "--seed", seed])
    assert exc.value.code == 2
    assert f"argument --seed: expected a whole number >= 0, got {seed}" in capsys.readouterr().err

"""docs/gate-by-gate.md runs as shown: its python blocks, in order in one namespace, print the
text block that follows each of them. Numbers below 1e-12 (rounding, which may differ in the
last bits from one machine to another) only need to be below 1e-12 in both. (Its math, links and
cited paths are checked with every page by tests/test_docs.py.)"""
import contextlib
import inspect
import io
import re
from pathlib import Path

import pytest

from handprop.layers import gates

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "gate-by-gate.md"
ROUNDING = 1e-12


def blocks(text):
    """(code, shown output or None) for each python block of the page, in order."""
    found = re.findall(r"```python\n(.*?)```(?:\n\n```text\n(.*?)```)?", text, flags=re.S)
    return [(code, shown if shown else None) for code, shown in found]


def same_output(printed, shown):
    """Equal token by token, except that two numbers both below ROUNDING count as equal."""
    a, b = printed.split(), shown.split()
    if len(a) != len(b):
        return False
    return all(x == y or (_tiny(x) and _tiny(y)) for x, y in zip(a, b))


def _tiny(token):
    try:
        return abs(float(token)) < ROUNDING
    except ValueError:
        return False


def run_page(text):
    """Run every python block; return (printed, shown) for the blocks that show output."""
    namespace, results = {}, []
    for index, (code, shown) in enumerate(blocks(text)):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"docs/gate-by-gate.md block {index}", "exec"), namespace)
        if shown is not None:
            results.append((printed.getvalue(), shown))
    return results


def test_every_block_of_the_page_prints_what_the_page_shows():
    results = run_page(PAGE.read_text())
    assert len(results) == 4
    for printed, shown in results:
        assert same_output(printed, shown), f"printed:\n{printed}\nshown:\n{shown}"


def test_the_page_finds_the_planted_mistake_at_its_gate_and_none_after_the_fix():
    first, fixed = [shown for _, shown in run_page(PAGE.read_text())][2:]
    assert first.startswith("compare: first wrong: xc ")
    assert fixed.startswith("compare: all gradients agree")


@pytest.mark.parametrize("change", [
    ("first wrong: xc", "first wrong: x"),         # a report the code does not print
    ("mean(sq)", "sum(sq)"),                       # a trace line
    ("0.0e+00      0.0e+00  ok", "1.0e-03      0.0e+00  ok"),
])
def test_a_wrong_shown_output_fails_the_check(change):
    text = PAGE.read_text()
    assert change[0] in text
    results = run_page(text.replace(change[0], change[1], 1))
    assert not all(same_output(printed, shown) for printed, shown in results)


def test_the_backward_lines_the_page_quotes_are_the_engines_own():
    source = inspect.getsource(gates)
    quoted = re.findall(r"`([ab]\._add\(.*?\))`", PAGE.read_text())
    assert len(quoted) >= 10
    for line in quoted:
        assert line in source, line

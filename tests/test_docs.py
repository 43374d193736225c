"""The README's code and the examples run as shown."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_shows_both_commands_word_for_word():
    text = (ROOT / "README.md").read_text()
    assert "pip install . && python -m handprop.train" in text
    assert 'pip install ".[test]" && python -m pytest' in text


@pytest.mark.parametrize("index", range(len(python_blocks(ROOT / "README.md"))))
def test_readme_code_runs(index, capsys):
    exec(compile(python_blocks(ROOT / "README.md")[index], f"README block {index}", "exec"), {})


def test_readme_training_script_is_the_example():
    script = (ROOT / "examples" / "spiral.py").read_text().split("\n", 1)[1].strip()  # less the docstring
    assert script in python_blocks(ROOT / "README.md")[0]


@pytest.mark.parametrize("name", ["custom_layer.py"])  # spiral.py is README block 0, run above
def test_examples_run(name):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    if name == "custom_layer.py":
        assert "PReLU(): ok" in done.stdout and "BuggyPReLU(): FAILED" in done.stdout

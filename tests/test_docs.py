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


def math_github_mangles(text):
    """Inline and display math in ``text`` (Markdown) that GitHub's renderer would mangle.

    GitHub reads Markdown before math: in ``$...$`` a backslash before punctuation is an escape
    (``\\,`` ``\\;`` ``\\\\`` ``\\{`` lose their backslash) and two underscores or asterisks can
    pair up as emphasis. Safe forms: display math in a fenced ```math block, and inline math
    that has those characters written as $`...`$. Returns (line number, snippet, why) triples.
    """
    problems = []
    fenced = False
    paragraph = []  # (line number, text) of the current run of non-fenced lines
    lines = text.splitlines() + [""]
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            problems += _check_paragraph(paragraph)
            paragraph = []
        elif fenced:
            continue
        elif not line.strip():
            problems += _check_paragraph(paragraph)
            paragraph = []
        else:
            paragraph.append((number, line))
    return problems


def _check_paragraph(lines):
    if not lines:
        return []
    text = "\n".join(line for _, line in lines)
    first = lines[0][0]

    def where(index):
        return first + text.count("\n", 0, index)
    text = re.sub(r"\$`.*?`\$", lambda m: " " * len(m.group()), text, flags=re.S)  # safe inline math
    text = re.sub(r"(`+).*?\1", lambda m: " " * len(m.group()), text, flags=re.S)  # code spans
    problems = [(where(m.start()), m.group()[:60], "display math outside ```math")
                for m in re.finditer(r"\$\$.*?\$\$", text, flags=re.S)]
    text = re.sub(r"\$\$.*?\$\$", lambda m: " " * len(m.group()), text, flags=re.S)
    for m in re.finditer(r"\$(.+?)\$", text, flags=re.S):
        math = m.group(1)
        why = [f"'\\{c}' loses its backslash" for c in sorted(set(re.findall(r"\\([!-/:-@\[-`{-~])", math)))]
        why += [f"two '{c}' read as emphasis" for c in "_*" if math.count(c) >= 2]
        why += ["a space inside the dollar signs ends no math"] if math != math.strip() else []
        if why:
            problems.append((where(m.start()), m.group()[:60], "; ".join(why)))
    return problems


def test_derivations_math_survives_github():
    problems = math_github_mangles((ROOT / "docs" / "derivations.md").read_text())
    assert not problems, "\n".join(f"docs/derivations.md:{n}: {snippet!r}: {why}; use a ```math block "
                                   f"or $`...`$" for n, snippet, why in problems)


@pytest.mark.parametrize("markdown,found", [
    ("a $x_i + y_j$ b", "two '_'"),
    ("a $a\\,b$ b", "'\\,'"),
    ("a $\\{x\\}$", "'\\{'"),
    ("x\n$$y = 1$$\nz", "display math outside"),
    ("a $x \\\\ y$", "'\\\\'"),
    ("a\n$x_i\n+ y_j$ b", "two '_'"),
    ("with $x = $ `dloss`", "a space inside"),
    ("a $`x_i + y_j \\, z`$ and `$x_i_j$` and $x_i$\n\n```math\nx_i \\, y_j\n```", None),
])
def test_math_check_finds_what_github_mangles(markdown, found):
    problems = math_github_mangles(markdown)
    if found is None:
        assert problems == []
    else:
        assert len(problems) == 1 and found in problems[0][2], problems


def test_every_code_name_the_derivations_cite_exists():
    """docs/derivations.md points at files (links) and at tests (``tests/test_x.py::test_y``):
    each must still be there, so the reference never sends a reader to a name that is gone."""
    text = (ROOT / "docs" / "derivations.md").read_text()
    links = re.findall(r"\]\(\.\./([\w/.]+\.py)\)", text)
    tests = re.findall(r"(tests/test_\w+\.py)::(\w+)", text)
    assert links and tests  # the patterns still match what the document writes
    missing = [path for path in links if not (ROOT / path).is_file()]
    for path, name in tests:
        source = (ROOT / path).read_text() if (ROOT / path).is_file() else ""
        if not re.search(rf"^def {name}\(", source, flags=re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/derivations.md cites what does not exist: {missing}"

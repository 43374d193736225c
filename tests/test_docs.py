"""The README and docs/: the code runs as shown, the math survives GitHub, and every link, file,
test, import path and flag they cite still exists."""
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGE_IDS = [str(page.relative_to(ROOT)) for page in PAGES]


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_shows_both_commands_word_for_word():
    text = (ROOT / "README.md").read_text()
    assert "pip install . && python -m handprop.train" in text
    assert 'pip install ".[test]" && python -m pytest' in text


def test_readme_meets_a_learner_with_the_journeys_before_any_flag_table():
    text = (ROOT / "README.md").read_text()
    journeys = [text.index(f"\n## {title}\n") for title in
                ("Train from a script", "Read a derivation", "Check your own layer", "Coming from PyTorch")]
    assert journeys == sorted(journeys)
    assert "| flag |" not in text and "--base-url" not in text  # the flags live in docs/cli.md
    assert "--download" not in text[:journeys[0]]


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


# -- math that GitHub renders -------------------------------------------------------------------

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


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_math_survives_github(page):
    problems = math_github_mangles(page.read_text())
    name = page.relative_to(ROOT)
    assert not problems, "\n".join(f"{name}:{n}: {snippet!r}: {why}; use a ```math block or $`...`$"
                                   for n, snippet, why in problems)


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


# -- links and anchors --------------------------------------------------------------------------

def unfenced(text):
    """``text`` with its fenced blocks blanked out (line numbers kept)."""
    return re.sub(r"^ *```.*?^ *```", lambda m: re.sub(r"[^\n]", " ", m.group()), text,
                  flags=re.S | re.M)


def prose(text):
    """``text`` with fenced blocks and code spans blanked out (line numbers kept)."""
    return re.sub(r"(`+).*?\1", lambda m: " " * len(m.group()), unfenced(text), flags=re.S)


def anchors(text):
    """The anchors GitHub gives the headings of a Markdown page: lowercased, punctuation other
    than '-' and '_' dropped, spaces as '-'; a repeated heading gets -1, -2, ..."""
    seen, found = {}, set()
    for line in unfenced(text).replace("`", "").splitlines():  # a heading's code keeps its text
        heading = re.match(r" {0,3}#{1,6} +(.*?)[ #]*$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(page, root=ROOT):
    """Every relative link on ``page`` (a Markdown file) whose file, or anchor, is not there
    in the repository at ``root``: a list of (line number, target, why)."""
    text = page.read_text()
    problems = []
    for m in re.finditer(r"\]\(([^()\s]+)\)", prose(text)):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        line = text.count("\n", 0, m.start()) + 1
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            problems.append((line, target, "no such file"))
        elif root not in resolved.parents and resolved != root:
            problems.append((line, target, "outside the repository"))
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved.read_text())):
            problems.append((line, target, f"no heading with the anchor #{anchor}"))
    return problems


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_relative_link_resolves(page):
    problems = broken_links(page)
    name = page.relative_to(ROOT)
    assert not problems, "\n".join(f"{name}:{n}: ({target}): {why}" for n, target, why in problems)


@pytest.mark.parametrize("markdown,found", [
    ("see [x](missing.md)", "no such file"),
    ("see [x](other.md#nowhere)", "no heading"),
    ("see [x](#nowhere)", "no heading"),
    ("see [x](other.md)", None),
    ("see [x](other.md#walking-it-backward-1) and [y](#a-title-python--m-x)", None),
    ("see [x](../../../outside.md)", "no such file"),
    ("`[x](missing.md)` and\n```text\n[x](missing.md)\n```\nand [w](https://example.org/x)", None),
])
def test_link_check_finds_what_is_broken(tmp_path, markdown, found):
    (tmp_path / "other.md").write_text("# Other\n\n## Walking it backward\n\n## Walking it backward\n"
                                       "\n```python\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    page.write_text(f"# A title: `python -m x`\n\n{markdown}\n")
    problems = broken_links(page, root=tmp_path)
    if found is None:
        assert problems == []
    else:
        assert len(problems) == 1 and found in problems[0][2], problems


# -- the code names the docs cite ---------------------------------------------------------------

def code_spans(text):
    text = re.sub(r"^ *```.*?^ *```", "", text, flags=re.S | re.M)
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)


def test_names_in_a_code_link_are_defined_there():
    """A "Code:" line links the file and names what in it does the work (`staged_backward`,
    `Softmax.backward`): each name must still be defined in the file it links."""
    missing, cited = [], 0
    for page in PAGES:
        for paragraph in page.read_text().split("\n\n"):
            if not paragraph.startswith("Code:"):
                continue
            files = re.findall(r"\]\(([^()\s#]+\.py)\)", paragraph)
            source = "\n".join((page.parent / path).read_text() for path in files
                               if (page.parent / path).is_file())
            first_sentence = re.split(r"\.\s|tests/", paragraph, maxsplit=1)[0]
            names = [span for span in code_spans(first_sentence)
                     if re.fullmatch(r"[A-Za-z_]\w*(\.\w+)?", span)]
            cited += len(names)
            for span in names:
                for name in span.split("."):
                    if not re.search(rf"^\s*(def|class) {name}\b|^{name} = ", source, flags=re.M):
                        missing.append(f"{page.relative_to(ROOT)}: {span} (in {', '.join(files)})")
    assert cited > 10  # the patterns still match what the pages write
    assert not missing, "a Code: line names what its file does not define:\n" + "\n".join(missing)


def test_every_test_the_docs_cite_exists():
    """``tests/test_x.py::test_y``, and a bare ``test_y`` in a code span, must name a test."""
    sources = {path.relative_to(ROOT).as_posix(): path.read_text() for path in (ROOT / "tests").glob("*.py")}
    everything = "\n".join(sources.values())
    missing, cited = [], 0
    for page in PAGES:
        for span in code_spans(page.read_text()):
            qualified = re.fullmatch(r"(tests/test_\w+\.py)::(\w+)", span)
            path, name = qualified.groups() if qualified else (None, span)
            if not qualified and not re.fullmatch(r"test_\w+", span):
                continue
            cited += 1
            source = sources.get(path, "") if path else everything
            if not re.search(rf"^def {name}\(", source, flags=re.M):
                missing.append(f"{page.relative_to(ROOT)}: {span}")
    assert cited > 10  # the patterns still match what the pages write
    assert not missing, "the docs cite tests that do not exist:\n" + "\n".join(missing)


def test_every_repository_path_the_docs_cite_exists():
    """A path in a code span (`layers/linear.py`, `examples/test_custom_layer.py`) is a file or
    folder of the repository."""
    pattern = r"(?<![\w/.~-])((?:layers|losses|train|tests|examples|bench|docs)/[\w/.-]*\w)"
    missing, cited = [], 0
    for page in PAGES:
        for span in code_spans(page.read_text()):
            for path in re.findall(pattern, span):
                cited += 1
                if not (ROOT / path.split("::")[0]).exists():
                    missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert cited > 10
    assert not missing, "the docs cite paths that do not exist:\n" + "\n".join(missing)


def resolves(dotted):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_every_import_path_the_docs_cite_exists():
    """`handprop.train.checkpoint.save`, `handprop.layers.gradcheck`: each imports or is an
    attribute of what does."""
    missing, cited = [], set()
    for page in PAGES:
        for span in code_spans(page.read_text()):
            for dotted in re.findall(r"\bhandprop(?:\.[A-Za-z_]\w*)+", span):
                cited.add(dotted)
                if not resolves(dotted):
                    missing.append(f"{page.relative_to(ROOT)}: {dotted}")
    assert len(cited) > 5
    assert not missing, "the docs cite import paths that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("module", ["handprop.train", "handprop.train.sample"])
def test_the_cli_page_lists_exactly_the_commands_flags(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    parsed = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", done.stdout)) - {"--help"}
    # the sampling command's flags are the table of its own section; the rest are training's
    before, found, rest = (ROOT / "docs" / "cli.md").read_text().partition("\n## Language models and sampling\n")
    assert found, "docs/cli.md has no section 'Language models and sampling'"
    section, _, after = rest.partition("\n## ")
    page = section if module.endswith(".sample") else before + after
    table_rows = re.findall(r"^\| `(--[a-z][a-z-]*)", page, flags=re.M)
    documented = set(table_rows)
    assert len(table_rows) == len(documented), "a flag has two rows"
    assert not documented - parsed, f"docs/cli.md documents flags the command lacks: {documented - parsed}"
    assert not parsed - documented, f"docs/cli.md lacks a row for: {parsed - documented}"

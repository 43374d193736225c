"""The distribution installs one import name, handprop, and a user's own files change nothing."""
import configparser
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import handprop.layers

ROOT = Path(__file__).resolve().parents[1]
# the installed distribution: not the handprop.egg-info that a build leaves in the checkout,
# which `python -m pytest` would find first (it puts the current folder on sys.path)
DIST = next(importlib.metadata.distributions(
    name="handprop", path=[p for p in sys.path if Path(p or ".").resolve() != ROOT]))


def editable() -> bool:
    return any(str(f).startswith("__editable__") for f in DIST.files)


def test_the_distribution_installs_one_top_level_name():
    tops = {Path(f).parts[0] for f in DIST.files}
    tops = {t.removesuffix(".py") for t in tops
            if not t.endswith(".dist-info") and t != ".." and t != "__pycache__"}
    if editable():  # pip install -e: a path hook maps handprop.* to the checkout's folders
        tops = {t for t in tops if not t.startswith("__editable__")}
        assert (DIST.read_text("top_level.txt") or "handprop").split() == ["handprop"]
    assert tops <= {"handprop"}
    assert {"handprop/layers/__init__.py", "handprop/losses/__init__.py",
            "handprop/train/__init__.py"} <= {str(f) for f in DIST.files} or editable()


def test_the_tests_import_the_installed_package_not_the_checkout():
    if not editable():
        assert ROOT not in Path(handprop.layers.__file__).resolve().parents


def run(args, cwd, **kwargs):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, **kwargs)


def users_folder(tmp_path):
    """A folder holding a user's own train.py, layers.py and losses.py, each of which fails
    loudly if it is ever imported."""
    for name in ("train", "layers", "losses"):
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('the user\\'s own {name}.py was imported')\n")
    return tmp_path


def test_no_generic_top_level_names_are_importable(tmp_path):
    done = run(["-c", "import importlib.util as u; "
                      "print([u.find_spec(n) for n in ('layers', 'losses', 'train')])"], tmp_path)
    assert done.stdout.strip() == "[None, None, None]", done.stderr


def test_the_readme_script_runs_beside_a_users_train_layers_and_losses(tmp_path):
    script = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)[0]
    assert "epochs=30" in script
    (users_folder(tmp_path) / "script.py").write_text(script.replace("epochs=30", "epochs=2"))
    done = run(["script.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "'accuracy'" in done.stdout


def test_the_main_job_runs_beside_a_users_train_py(tmp_path):
    done = run(["-m", "handprop.train", "--epochs", "1", "--hidden", "8", "--no-progress"],
               users_folder(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("val_accuracy=")


def test_one_version_from_setup_cfg(tmp_path):
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    declared = cfg["metadata"]["version"]
    assert DIST.version == declared
    done = run(["-m", "handprop.train", "--version"], tmp_path)
    assert done.stdout.strip() == f"handprop {declared}"
    assert f"## {declared}" in (ROOT / "CHANGELOG.md").read_text()


def test_the_license_file_is_the_declared_mit_text():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_the_gradient_checker_loads_no_training_code(tmp_path):
    # the layers depend on numpy and scipy.special (which itself imports urllib.parse): what
    # they bring is the baseline; the training stack (tqdm, urllib.request, loop) must not come
    done = run(["-c", "import sys, numpy, scipy.special; before = set(sys.modules); "
                      "import handprop.layers.gradcheck; "
                      "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
                      "('tqdm', 'urllib', 'http') or m.startswith(('handprop.train', 'handprop.losses'))))"],
               tmp_path)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_setup_cfg_lists_every_package_folder_of_the_checkout():
    """A subpackage missing from setup.cfg's list installs nowhere (a non-editable install then
    has no ``handprop.train.optim``) while an editable one still finds it: compare the list
    with the folders themselves."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = {p.strip() for p in config["options"]["packages"].split(",")}
    found = {"handprop." + ".".join(init.parent.relative_to(ROOT).parts)
             for top in ("layers", "losses", "train") for init in (ROOT / top).rglob("__init__.py")}
    assert found == listed, f"setup.cfg's packages differ from the folders: {sorted(found ^ listed)}"

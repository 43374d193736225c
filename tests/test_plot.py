"""plot_history and --plot: a PNG with matplotlib, a clear message without it."""
import struct
import subprocess
import sys

import pytest

from handprop.train import plot_history
from handprop.train.__main__ import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HISTORY = {"epoch": [1, 2, 3, 4], "loss": [1.2, 0.6, 0.4, 0.3], "accuracy": [0.5, 0.7, 0.8, 0.9],
           "val_loss": [1.0, 0.7, 0.5, 0.45], "val_accuracy": [0.6, 0.7, 0.75, 0.8]}


def png_size(path):
    """(width, height) from the PNG's IHDR chunk, after checking the magic bytes."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, data[:8]
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make ``import matplotlib`` fail, as it does where the extra is not installed."""
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)


def test_plot_history_writes_a_png_with_a_loss_and_an_accuracy_panel(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "history.png"
    plot_history(HISTORY, path, title="spiral")
    width, height = png_size(path)
    assert 10_000 < path.stat().st_size < 1_000_000
    assert width > 1.5 * height  # two panels side by side


def test_without_accuracy_keys_there_is_only_the_loss_panel(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "loss.png"
    plot_history({"loss": [3.0, 2.0, 1.5]}, path)  # no epoch key: numbered from 1
    width, height = png_size(path)
    assert 5_000 < path.stat().st_size < 500_000
    assert width < 1.5 * height


def test_without_matplotlib_the_error_names_the_extra(tmp_path, no_matplotlib):
    path = tmp_path / "history.png"
    with pytest.raises(ImportError, match=r'pip install "handprop\[plot\]".*pip install "\.\[plot\]"'):
        plot_history(HISTORY, path)
    assert not path.exists()


@pytest.mark.parametrize("history, message", [
    ({}, "non-empty 'loss'"), ([1.0, 0.5], "non-empty 'loss'"),
    ({"loss": [1.0, 0.5], "val_loss": [1.0]}, "'val_loss' has 1 values for 2 epochs")])
def test_a_history_it_cannot_plot_is_a_clear_error(tmp_path, history, message):
    with pytest.raises(ValueError, match=message):
        plot_history(history, tmp_path / "x.png")


def test_importing_handprop_train_does_not_import_matplotlib():
    code = "import sys, handprop.train; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_cli_plot_writes_the_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curve.png"
    assert main(["--epochs", "2", "--hidden", "8", "--no-progress", "--plot", str(path)]) == 0
    png_size(path)
    assert f"plot: {path}" in capsys.readouterr().out


def test_cli_plot_without_matplotlib_says_so_before_training(tmp_path, capsys, no_matplotlib):
    with pytest.raises(SystemExit) as exit_info:
        main(["--epochs", "2", "--hidden", "8", "--no-progress", "--plot", str(tmp_path / "c.png")])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert 'pip install "handprop[plot]"' in captured.err
    assert "epoch=" not in captured.out  # no training happened

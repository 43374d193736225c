"""The regression and binary examples reach the quality their docstrings state."""
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def example(name):
    return runpy.run_path(str(ROOT / "examples" / name))["main"]


def test_regression_reaches_the_noise_floor(capsys):
    result = example("regression.py")(progress=False)
    history = result["history"]
    assert list(history) == ["epoch", "loss", "val_loss", "seconds"]  # no accuracy for regression
    assert 0.01 <= result["val_mse"] < 1.2 * 0.1**2  # within 20% of the noise variance, as stated
    assert history["val_loss"][-1] == pytest.approx(result["val_mse"])
    assert "validation MSE 0.01" in capsys.readouterr().out


def test_binary_moons_reaches_its_stated_accuracy(capsys):
    result = example("binary_moons.py")(progress=False)
    history = result["history"]
    assert list(history) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
    assert result["val_accuracy"] >= 0.96
    out = capsys.readouterr().out
    assert "validation accuracy 0.9" in out

"""What fit writes while it trains: a bar on a terminal, one plain line per epoch elsewhere,
and an epoch line that fits 80 columns with the validation figures."""
import io
import re

import numpy as np
import pytest

from handprop.layers import mlp
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD, StepLR, fit
from handprop.train.data import spiral
from handprop.train.metrics import epoch_line


class Terminal(io.StringIO):
    def isatty(self):
        return True


def train(epochs, **kwargs):
    X, y = spiral(30, 3, seed=0)
    model = mlp(2, [8], 3, seed=0)
    opt = SGD(model, lr=0.05)
    fit(model, SoftmaxCrossEntropy(), opt, X, y, epochs=epochs, batch_size=16,
        validation=spiral(10, 3, seed=1), scheduler=StepLR(opt, 5), **kwargs)


def test_off_a_terminal_progress_is_one_plain_line_per_epoch(capsys):
    train(3)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", f"{i}/3"] for i in (1, 2, 3)]


def test_on_a_terminal_the_epoch_line_fits_80_columns_with_the_validation_figures(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    train(12)
    shown = [frame for frame in re.split(r"[\r\n]", terminal.getvalue()) if "val_loss" in frame]
    assert sorted({int(re.match(r"epoch (\d+)/12", frame)[1]) for frame in shown}) == list(range(1, 13))
    for frame in shown:
        assert len(frame) <= 80 and re.search(r"val_loss=\d\.\d{4} val_acc=\d\.\d{4}", frame), frame
    assert "lr=0.05" in shown[0]


def test_the_epoch_line_drops_the_seconds_then_the_lr_before_going_past_80_columns():
    logs = {"epoch": 100, "loss": 12.3456, "accuracy": 0.5, "val_loss": 13.5, "val_accuracy": 0.25,
            "lr": 1.2345e-5, "seconds": 123.4}
    line = epoch_line(logs, 100)
    assert line == "epoch 100/100 loss=12.3456 acc=0.5000 val_loss=13.5000 val_acc=0.2500"
    short = epoch_line({**logs, "epoch": 3, "loss": 0.5, "val_loss": 0.5, "lr": 0.1, "seconds": 1.25}, 9)
    assert short == "epoch 3/9 loss=0.5000 acc=0.5000 val_loss=0.5000 val_acc=0.2500 lr=0.1 1.2s"


def test_silence(capsys):
    train(2, progress=False)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("extra", [{}, {"val_loss": np.float64(0.5)}])
def test_a_regression_line_has_no_accuracy(extra):
    assert "acc" not in epoch_line({"epoch": 1, "loss": 0.25, **extra}, 2)

"""The command line: its registries (a model or a data set is one entry), --resume keeping the
recorded number of epochs, a finished run left alone, and the flags that are usage errors."""
import argparse

import numpy as np
import pytest

import handprop.train.cli as cli
from handprop.layers import Linear, Sequential
from handprop.train.checkpoint import read_extra
from handprop.train.cli import main, parser
from handprop.train.cli_registry import MODELS, Model

SMALL = ["--hidden", "8", "--no-progress", "--batch-size", "256"]


def interrupt_after_epoch(monkeypatch, last: int) -> None:
    """Ctrl-C right after epoch ``last`` (its checkpoint is saved by then)."""
    format_metrics = cli.format_metrics

    def then_interrupt(logs, **options):
        if logs["epoch"] == last:
            raise KeyboardInterrupt
        return format_metrics(logs, **options)
    monkeypatch.setattr(cli, "format_metrics", then_interrupt)


def test_resume_without_epochs_keeps_the_recorded_total_and_says_how_many_remain(tmp_path, capsys,
                                                                                monkeypatch):
    path = str(tmp_path / "c.npz")
    interrupt_after_epoch(monkeypatch, 1)
    assert main([*SMALL, "--epochs", "3", "--checkpoint", path]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["--no-progress", "--checkpoint", path, "--resume"]) == 0
    captured = capsys.readouterr()
    assert f"resuming {path} at epoch 2 of 3 (2 to go) with the settings it was saved with: " in captured.err
    assert "epochs=3" in captured.err and "hidden=8" in captured.err and "batch_size=256" in captured.err
    assert "epochs=3 seconds=" in captured.out
    assert read_extra(path)["fit"]["epoch"] == 3


def test_resuming_a_finished_run_says_so_and_trains_nothing(tmp_path, capsys):
    path = tmp_path / "c.npz"
    assert main([*SMALL, "--epochs", "4", "--schedule", "cosine", "--checkpoint", str(path)]) == 0
    before = path.read_bytes()
    capsys.readouterr()
    assert main(["--no-progress", "--checkpoint", str(path), "--resume"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == (f"{path} has finished: 4 of 4 epochs trained, nothing left to do; "
                                    f"add --epochs N (N > 4) with --resume to train on to a new total")
    assert captured.err == ""
    assert path.read_bytes() == before  # not a step taken, not a byte rewritten


def test_epochs_given_on_resume_set_a_new_total_that_the_next_resume_keeps(tmp_path, capsys):
    path = str(tmp_path / "c.npz")
    assert main([*SMALL, "--epochs", "2", "--checkpoint", path]) == 0
    capsys.readouterr()
    assert main(["--no-progress", "--checkpoint", path, "--resume", "--epochs", "4"]) == 0
    captured = capsys.readouterr()
    assert f"resuming {path} at epoch 3 of 4 (2 to go)" in captured.err
    assert "epochs=4 seconds=" in captured.out
    assert read_extra(path)["fit"]["epoch"] == 4 and read_extra(path)["cli"]["epochs"] == 4
    assert main(["--no-progress", "--checkpoint", path, "--resume"]) == 0
    assert "has finished: 4 of 4 epochs trained" in capsys.readouterr().out
    assert main(["--no-progress", "--checkpoint", path, "--resume", "--epochs", "3"]) == 0
    assert "has finished: 4 of 3 epochs trained" in capsys.readouterr().out


@pytest.mark.parametrize("hidden,which", [("100,,100", 2), ("100,", 2), (",100", 1), ("8, ,8", 2)])
def test_an_empty_hidden_width_is_a_usage_error(hidden, which, capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["--hidden", hidden])
    assert exc.value.code == 2
    assert f"expected comma-separated widths like 100,100, got {hidden!r}: width {which} is empty" \
        in capsys.readouterr().err


def test_no_hidden_width_at_all_still_means_no_hidden_layer():
    assert parser().parse_args(["--hidden", ""]).hidden == []


def test_the_moons_data_set_trains_a_two_class_model(capsys):
    assert main(["--dataset", "moons", "--hidden", "16", "--epochs", "5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Linear(2, 16" in out and "Linear(16, 2)" in out
    val_accuracy = float(out.strip().splitlines()[-1].split()[0].removeprefix("val_accuracy="))
    assert val_accuracy > 0.8


def test_download_flags_go_only_with_file_data_sets(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--dataset", "moons", "--download"])
    assert exc.value.code == 2
    assert "--download and --data-dir go with --dataset mnist or fashion-mnist" in capsys.readouterr().err


def one_linear(args: argparse.Namespace, shape: tuple, n_classes: int):
    return Sequential(Linear(shape[0], n_classes, rng=args.seed, dtype=np.dtype(args.dtype)))


def one_linear_size(args: argparse.Namespace, shape: tuple, n_classes: int):
    return shape[0] * n_classes + n_classes, shape[0] + n_classes


def test_a_new_model_is_one_registry_entry_with_its_defaults_and_refusals(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(MODELS, "linear", Model(one_linear, one_linear_size, "one Linear layer", lr={"sgd": 0.05},
                                                refuses=(("--dropout", lambda a: a.dropout > 0),),
                                                why="a linear model has no hidden layer to drop"))
    path = str(tmp_path / "c.npz")
    assert main(["--model", "linear", "--epochs", "2", "--no-progress", "--checkpoint", path]) == 0
    assert "Linear(2, 3)" in capsys.readouterr().out
    assert read_extra(path)["cli"]["lr"] == 0.05 and read_extra(path)["cli"]["model"] == "linear"
    with pytest.raises(SystemExit) as exc:
        main(["--model", "linear", "--dropout", "0.5"])
    assert exc.value.code == 2
    assert "--dropout go with --model mlp; a linear model has no hidden layer to drop" in capsys.readouterr().err
    assert "{mlp,cnn," in parser().format_usage() and ",linear}" in parser().format_usage()


def test_the_cnn_entry_keeps_its_own_sgd_learning_rate():
    args = parser().parse_args(["--model", "cnn", "--dataset", "mnist"])
    cli.fill_optimizer_defaults(args)
    assert args.lr == 0.01
    args = parser().parse_args(["--model", "cnn", "--dataset", "mnist", "--optimizer", "adam"])
    cli.fill_optimizer_defaults(args)
    assert args.lr == 1e-3


def test_no_cli_function_body_is_over_60_lines():
    import ast
    import inspect

    import handprop.train.cli_checkpoints as checkpoints
    import handprop.train.cli_registry as registry
    for module in (cli, checkpoints, registry):
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                assert body[-1].end_lineno - body[0].lineno + 1 <= 60, node.name


def test_a_new_total_on_resume_is_refused_for_a_schedule_laid_out_for_the_old_one(tmp_path, capsys):
    """The cosine schedule's state holds its T_max: run on past it and the lr climbs back up."""
    path = str(tmp_path / "c.npz")
    assert main([*SMALL, "--epochs", "3", "--schedule", "cosine", "--checkpoint", path]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["--no-progress", "--checkpoint", path, "--resume", "--epochs", "5"])
    assert exc.value.code == 2
    assert (f"--epochs 5 with --resume would stretch a cosine schedule laid out for the 3 epochs {path} "
            f"was started with; a new total goes with --schedule none") in capsys.readouterr().err
    assert read_extra(path)["fit"]["epoch"] == 3


def test_the_gradcheck_command_refuses_a_negative_seed_as_a_usage_error(capsys):
    from handprop.train.gradcheck import main as gradcheck_main
    with pytest.raises(SystemExit) as exc:
        gradcheck_main(["--seed", "-1", "--layer", "Tanh"])
    assert exc.value.code == 2
    assert "argument --seed: expected a whole number >= 0, got -1" in capsys.readouterr().err


def test_the_resuming_line_names_only_what_it_knows():
    from handprop.train.cli_checkpoints import Resumed, resuming_message
    assert resuming_message("c.npz", Resumed(2, 5, "epochs=5 lr=0.1"), 5) == \
        "resuming c.npz at epoch 3 of 5 (3 to go) with the settings it was saved with: epochs=5 lr=0.1"
    assert resuming_message("c.npz", Resumed(2, None, ""), 30) == "resuming c.npz at epoch 3 of 30 (28 to go)"
    assert resuming_message("c.npz", Resumed(None, None, "lr=0.1"), 30) == \
        "resuming c.npz with the settings it was saved with: lr=0.1"


def test_workers_split_each_batch_of_a_model_trained_by_epochs_and_a_resume_keeps_them(
        tmp_path, capsys, monkeypatch):
    split = []
    fit = cli.fit
    monkeypatch.setattr(cli, "fit", lambda *a, **k: split.append(k["workers"]) or fit(*a, **k))
    path = str(tmp_path / "c.npz")
    assert main([*SMALL, "--epochs", "1", "--checkpoint", path, "--workers", "2"]) == 0
    assert main(["--no-progress", "--checkpoint", path, "--resume", "--epochs", "2"]) == 0
    assert "workers=2" in capsys.readouterr().err        # taken from the checkpoint
    assert split == [2, 2] and read_extra(path)["cli"]["workers"] == 2
    assert main([*SMALL, "--epochs", "1"]) == 0 and split[-1] == 1

"""python -m handprop.train --dataset shakespeare --model gpt: nanoGPT's recipe as defaults, a
summary line with val_loss=, checkpoints resumed bit for bit, the BLAS thread count chosen,
reported and recorded, and the usage errors."""
import argparse
import re

import numpy as np
import pytest

import handprop.train.cli_iterations as cli_iterations
from handprop.train.checkpoint import read_extra
from handprop.train.cli import main, parser
from handprop.train.cli_iterations import RECIPE
from handprop.train.iterations import fit_iterations

LINES = ["To be, or not to be, that is the question:",
         "Whether 'tis nobler in the mind to suffer",
         "The slings and arrows of outrageous fortune,"]


@pytest.fixture
def text_dir(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "input.txt").write_text("\n".join(LINES[i] for i in rng.integers(0, 3, 60)))
    return tmp_path


def tiny(text_dir, *more, threads=("--threads", "1")):
    return ["--model", "gpt", "--data-dir", str(text_dir), "--n-layer", "1", "--n-head", "2",
            "--n-embd", "16", "--block-size", "8", "--batch-size", "4", "--eval-interval", "10",
            "--eval-iters", "2", "--warmup-iters", "2", "--lr-decay-iters", "30", *threads, *more]


def test_the_gpt_command_trains_and_ends_with_a_summary_line(text_dir, capsys):
    assert main(tiny(text_dir, "--max-iters", "20")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "shakespeare: 2,260 training and 252 validation characters, a vocabulary of 37" \
        or out[0].startswith("shakespeare: ")
    assert out[2].startswith("iter 10/20 train_loss=") and out[3].startswith("iter 20/20 ")
    assert re.fullmatch(r"val_loss=\d\.\d{4} train_loss=\d\.\d{4} iterations=20 seconds=\S+ "
                        r"blas_threads=1 workers=1", out[-1]), out[-1]


def test_the_defaults_are_nanogpts_cpu_recipe(text_dir, monkeypatch):
    seen = {}
    monkeypatch.setattr(cli_iterations, "train", lambda args, *rest: seen.update(vars(args)) or 0)
    assert main(["--dataset", "shakespeare", "--data-dir", str(text_dir), "--threads", "2"]) == 0
    assert {key: seen[key] for key in RECIPE} == {
        "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12,
        "max_iters": 2000, "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 100, "lr_decay_iters": 2000,
        "beta2": 0.99, "weight_decay": 0.1, "clip_grad_norm": 1.0, "eval_interval": 250,
        "eval_iters": 200, "optimizer": "adamw"}
    assert seen["model"] == "gpt" and seen["dropout"] == 0.0 and seen["threads"] == 2
    assert seen["workers"] == 1          # --threads given: no choice to make, one copy


def test_a_resumed_run_ends_bit_for_bit_where_an_uninterrupted_one_does(text_dir, tmp_path, capsys):
    whole, cut = str(tmp_path / "whole.npz"), str(tmp_path / "cut.npz")
    assert main(tiny(text_dir, "--max-iters", "30", "--dropout", "0.1", "--checkpoint", whole)) == 0
    assert main(tiny(text_dir, "--max-iters", "10", "--dropout", "0.1", "--checkpoint", cut)) == 0
    capsys.readouterr()
    assert main(["--checkpoint", cut, "--resume", "--max-iters", "30", "--data-dir",
                 str(text_dir)]) == 0
    captured = capsys.readouterr()
    assert f"resuming {cut} at iteration 10 of 30" in captured.err
    assert "iter 10/30" not in captured.out and "iter 20/30" in captured.out  # not trained anew
    from handprop.train.checkpoint import load
    from handprop.train.cli_iterations import build_gpt
    models = []
    for path in (whole, cut):
        settings = read_extra(path)["cli"]
        model = build_gpt(argparse.Namespace(**settings), (), len(settings["vocab"]["chars"]))
        load(path, model)
        models.append(model.state_dict())
    for name in models[0]:
        np.testing.assert_array_equal(models[0][name], models[1][name], err_msg=name)
    assert read_extra(cut)["iterations"]["history"]["iteration"] == [10, 20, 30]
    assert read_extra(cut)["cli"]["threads"] == 1


def test_the_thread_count_is_chosen_reported_and_recorded(text_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_iterations.os, "cpu_count", lambda: 2)
    path = str(tmp_path / "c.npz")
    assert main(tiny(text_dir, "--max-iters", "10", "--checkpoint", path, threads=())) == 0
    out = capsys.readouterr().out
    chosen = re.search(r"^blas_threads=(\d) workers=(\d) \(chosen: 1 thread \d+ ms, 2 threads \d+ ms, "
                       r"2 workers \d+ ms\)$", out, re.M)
    assert chosen, out
    assert chosen[1] == "1" or chosen[2] == "1"          # two copies run one BLAS thread each
    assert out.rstrip().endswith(f"blas_threads={chosen[1]} workers={chosen[2]}")
    saved = read_extra(path)["cli"]
    assert (saved["threads"], saved["workers"]) == (int(chosen[1]), int(chosen[2]))


def test_workers_split_the_batch_and_a_resume_keeps_them(text_dir, tmp_path, capsys, monkeypatch):
    split = []
    monkeypatch.setattr(cli_iterations, "fit_iterations",
                        lambda *a, **k: split.append(k["workers"]) or fit_iterations(*a, **k))
    path = str(tmp_path / "c.npz")
    assert main(tiny(text_dir, "--max-iters", "10", "--checkpoint", path, "--workers", "2",
                     threads=())) == 0
    assert capsys.readouterr().out.rstrip().endswith("blas_threads=1 workers=2")
    assert main(["--checkpoint", path, "--resume", "--max-iters", "20", "--data-dir", str(text_dir)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("blas_threads=1 workers=2") and split == [2, 2]
    whole = str(tmp_path / "whole.npz")                  # resumed bit for bit
    assert main(tiny(text_dir, "--max-iters", "20", "--checkpoint", whole, "--workers", "2",
                     threads=())) == 0
    resumed, uninterrupted = np.load(path), np.load(whole)
    weights = [name for name in uninterrupted.files if name.startswith("model/")]
    assert weights
    for name in weights:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)
    assert main(tiny(text_dir, "--max-iters", "10", "--workers", "2", threads=("--threads", "auto"))) == 0
    assert "(chosen" not in capsys.readouterr().out      # one BLAS thread a copy: no choice left
    # --workers 1 leaves the BLAS thread count to auto, which then times no split
    assert main(tiny(text_dir, "--max-iters", "10", "--workers", "1", threads=())) == 0
    assert "workers" not in capsys.readouterr().out.split("(chosen: ")[1].split(")")[0]
    # dropout splits too: each shard draws from a generator seeded by the model's own
    assert main(tiny(text_dir, "--max-iters", "10", "--workers", "2", "--dropout", "0.1",
                     threads=())) == 0
    assert capsys.readouterr().out.rstrip().endswith("blas_threads=1 workers=2")


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "3"], "--epochs: only for the models trained by epochs"),
    (["--optimizer", "sgd"], "--model gpt trains with --optimizer adamw, not sgd"),
    (["--n-embd", "30", "--n-head", "4"], "--n-embd 30 is not divisible by --n-head 4"),
    (["--warmup-iters", "50", "--lr-decay-iters", "10"], "--lr-decay-iters 10 ends the cosine before"),
    (["--threads", "0"], "expected auto or a thread count >= 1, got 0"),
    (["--workers", "0"], "--workers: expected a finite number > 0, got 0"),
    (["--workers", "2", "--threads", "2"], "--workers 2 runs one BLAS thread in each copy"),
    (["--dataset", "spiral"], "--model gpt trains on text by iterations"),
])
def test_usage_errors_of_the_gpt_command(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--model", "gpt", *argv])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_the_gpts_flags_are_refused_for_the_other_models(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--n-layer", "3", "--beta2", "0.9"])
    assert stop.value.code == 2 and "--beta2, --n-layer: only for --model gpt" in capsys.readouterr().err


def test_a_missing_input_file_says_how_to_fetch_it(tmp_path, capsys):
    assert main(["--model", "gpt", "--data-dir", str(tmp_path), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "input.txt: no such file" in err and "add --download" in err


def test_the_gpt_flags_are_in_the_help():
    text = parser().format_help()
    for flag in ("--n-layer", "--n-head", "--n-embd", "--block-size", "--max-iters",
                 "--eval-interval", "--eval-iters", "--min-lr", "--warmup-iters",
                 "--lr-decay-iters", "--beta2", "--threads", "--workers"):
        assert flag in text


def test_ctrl_c_says_which_iteration_the_checkpoint_keeps(text_dir, tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "c.npz")
    line = cli_iterations.eval_line

    def then_interrupt(logs, max_iters):
        if logs["iteration"] == 20:
            raise KeyboardInterrupt
        return line(logs, max_iters)
    monkeypatch.setattr(cli_iterations, "eval_line", then_interrupt)
    assert main(tiny(text_dir, "--max-iters", "30", "--checkpoint", path)) == 130
    assert f"interrupted; {path} keeps iteration 20: add --resume" in capsys.readouterr().err


def test_download_fetches_input_txt_from_the_verified_table(tmp_path, monkeypatch):
    from handprop.train.data import DATASETS as DOWNLOADS
    fetched = []

    def fake_download(dataset, directory, **options):
        fetched.append((dataset, options["base_url"]))
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "input.txt").write_text("\n".join(LINES * 20))
        return directory
    monkeypatch.setattr(cli_iterations, "download", fake_download)
    assert main(tiny(tmp_path / "data", "--max-iters", "10", "--download")) == 0
    assert fetched == [("shakespeare", None)]
    assert DOWNLOADS["shakespeare"]["sha256"] == {
        "input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"}
    assert DOWNLOADS["shakespeare"]["max_bytes"] == {"input.txt": 1_115_394}


def test_a_gpt_too_large_for_memory_is_refused_before_it_is_built(text_dir, capsys):
    argv = tiny(text_dir, "--n-embd", "8192", "--n-layer", "64", "--n-head", "8")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--model gpt with these sizes would take" in err and "use a smaller --n-layer" in err


def test_sampling_from_the_gpt_checkpoint_gives_the_same_text_for_the_same_seed(text_dir, tmp_path,
                                                                                capsys):
    from handprop.train.sample import main as sample_main
    path = str(tmp_path / "c.npz")
    assert main(tiny(text_dir, "--max-iters", "20", "--checkpoint", path)) == 0
    capsys.readouterr()
    argv = ["--checkpoint", path, "--num", "2", "--length", "30", "--seed", "3"]  # past block 8
    assert sample_main(argv) == 0
    first = capsys.readouterr().out
    assert sample_main(argv) == 0
    assert capsys.readouterr().out == first and len(first.splitlines()) >= 2

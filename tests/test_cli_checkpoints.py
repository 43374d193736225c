"""Command-line runs that lose nothing: a checkpoint never overwritten by accident, --resume
with the saved settings, bounded flags and labels, SIGTERM handled, bit-exact resume pinned."""
import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from handprop.train.__main__ import main
from handprop.train.checkpoint import read_extra

# The thread count the bit-exact tests rely on: BLAS sums in another order with another
# number of threads, so weights agree to the last bit only with the same count (README).
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

CLI = ["--hidden", "8", "--no-progress", "--epochs", "1"]


def test_an_existing_checkpoint_is_not_overwritten_without_overwrite(tmp_path, capsys):
    path = str(tmp_path / "c.npz")
    assert main([*CLI, "--epochs", "2", "--checkpoint", path]) == 0
    with pytest.raises(SystemExit) as exc:
        main([*CLI, "--checkpoint", path])
    assert exc.value.code == 2
    assert (f"--checkpoint {path} already exists; add --resume to continue from it, or --overwrite "
            f"to start over and replace it") in capsys.readouterr().err
    assert read_extra(path)["fit"]["epoch"] == 2
    assert main([*CLI, "--checkpoint", path, "--overwrite"]) == 0
    assert read_extra(path)["fit"]["epoch"] == 1


def test_resume_takes_the_saved_settings_and_refuses_contradicting_flags(tmp_path, capsys):
    path = str(tmp_path / "c.npz")
    assert main([*CLI, "--checkpoint", path, "--activation", "tanh", "--lr", "0.05", "--batch-size", "32"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["--hidden", "8", "--epochs", "2", "--checkpoint", path, "--resume", "--activation", "relu",
              "--lr", "0.05", "--momentum", "0.5"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert (f"--resume continues {path} with the settings it was saved with, and these flags contradict "
            f"them: --activation relu (saved: tanh), --momentum 0.5 (saved: 0.9); leave them out, or start "
            f"a new run with --overwrite") in err
    assert main(["--epochs", "2", "--no-progress", "--checkpoint", path, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "Tanh()" in out and "Linear(2, 8, bias=False)" in out  # the saved model, rebuilt
    assert read_extra(path)["cli"]["batch_size"] == 32 and read_extra(path)["fit"]["epoch"] == 2


def test_settings_recorded_in_a_checkpoint_are_held_to_the_flags_bounds(tmp_path, capsys):
    path = tmp_path / "c.npz"
    assert main([*CLI, "--checkpoint", str(path)]) == 0
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    meta["extra"]["cli"]["hidden"] = [10**9]  # a tampered record: a 4 GB layer
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    capsys.readouterr()
    assert main(["--epochs", "2", "--checkpoint", str(path), "--resume"]) == 2
    captured = capsys.readouterr()
    assert ("--model mlp on samples of shape (2,) (float32) would have 8,000,000,009 parameters, "
            "119.2 GiB with their gradients and optimizer state") in captured.err
    assert "Linear" not in captured.out  # refused before it was built


def test_the_checkpoint_path_is_checked_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*CLI, "--checkpoint", str(tmp_path / "missing" / "c.npz")])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "the folder" in captured.err and "missing does not exist" in captured.err
    assert "Linear" not in captured.out  # nothing was built, let alone trained


@pytest.mark.parametrize("argv,message", [
    (["--hidden", ",".join(["2"] * 65)], "expected at most 64 widths, got"),
    (["--epochs", "1000000000"], "expected at most 1000000, got 1000000000"),
    (["--batch-size", "1000000000"], "expected at most 1048576, got 1000000000"),
])
def test_sizes_from_flags_are_bounded(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def idx(path: Path, array: np.ndarray, code: int) -> None:
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(bytes([0, 0, code, array.ndim]) + dims + array.astype(array.dtype.newbyteorder(">")).tobytes())


def test_labels_are_checked_against_the_class_count_before_any_layer_is_built(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 10)):
        idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 4, 4)).astype(np.uint8), 0x08)
        labels = rng.integers(0, 10, n).astype(np.int32)
        if split == "train":
            labels[13] = 2**31 - 1  # would make a Linear(16, 2147483648): 512 GiB
        idx(tmp_path / f"{split}-labels-idx1-ubyte", labels, 0x0C)
    assert main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert (f"{tmp_path}: the train labels hold 2147483647 at position 13, outside 0..9, the classes of "
            f"mnist") in captured.err
    assert "Linear" not in captured.out and "Traceback" not in captured.err


SIGTERM_MID_SAVE = """
import os, signal, sys
import numpy as np
from handprop.train.__main__ import main
write_array, calls = np.lib.format.write_array, []

def write_array_then_sigterm(f, array, **options):  # 13 entries a save: in the second one
    calls.append(1)
    if len(calls) == 13 + 3:
        os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler or `docker stop` would
    return write_array(f, array, **options)

np.lib.format.write_array = write_array_then_sigterm
sys.exit(main(["--hidden", "8", "--no-progress", "--epochs", "5", "--checkpoint", sys.argv[1]]))
"""


def test_sigterm_mid_save_keeps_the_checkpoint_whole_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "c.npz"
    done = subprocess.run([sys.executable, "-c", SIGTERM_MID_SAVE, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().splitlines() == [f"terminated (SIGTERM); {path} keeps epoch 1: add --resume "
                                                f"to continue from it"]
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]
    assert read_extra(path)["fit"]["epoch"] == 1


KILLED = """
import os, signal, sys
from handprop.losses import SoftmaxCrossEntropy
from handprop.train.__main__ import main

class KillMidEpoch3(SoftmaxCrossEntropy):
    calls = 0
    def forward(self, logits, targets):
        self.calls += 1
        if self.calls == 12 + 5:  # 12 steps an epoch (3000 samples, batches of 256)
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(logits, targets)

import handprop.train.cli as cli
cli.SoftmaxCrossEntropy = KillMidEpoch3
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_sigkill_is_bit_exact_with_the_same_thread_count(tmp_path):
    """Same seed, same machine, same BLAS thread count (pinned here to 1): the resumed run's
    weights equal the uninterrupted run's to the last bit, at the CLI's default widths."""
    env = {**os.environ, **ONE_THREAD}
    args = ["--hidden", "64,64", "--no-progress", "--epochs", "3", "--batch-size", "256"]
    killed = subprocess.run([sys.executable, "-c", KILLED, *args, "--checkpoint", str(tmp_path / "a.npz")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert read_extra(tmp_path / "a.npz")["fit"]["epoch"] == 1
    for extra in (["--checkpoint", str(tmp_path / "a.npz"), "--resume"], ["--checkpoint", str(tmp_path / "b.npz")]):
        done = subprocess.run([sys.executable, "-m", "handprop.train", *args, *extra], capture_output=True,
                              text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        for name in a.files:
            if name != "meta":
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_resume_of_a_missing_checkpoint_says_so_in_one_line_without_a_warning(tmp_path, capsys, recwarn):
    path = tmp_path / "c.npz"
    assert main([*CLI, "--checkpoint", str(path), "--resume"]) == 0
    err = capsys.readouterr().err
    assert err == f"no checkpoint at {path} to resume from yet; starting at epoch 1\n"
    assert not recwarn.list  # no UserWarning with a source line
    assert read_extra(path)["fit"]["epoch"] == 1


def script_checkpoint(path: Path, validation: bool) -> None:
    """Two epochs of the model the command builds with --hidden 8, trained by fit from a script."""
    from handprop.layers import mlp
    from handprop.losses import SoftmaxCrossEntropy
    from handprop.train import fit
    from handprop.train.data import spiral
    from handprop.train.optim import SGD
    model = mlp(2, [8], 3)
    fit(model, SoftmaxCrossEntropy(), SGD(model, 0.1), *spiral(50), epochs=2, progress=False,
        checkpoint=str(path), validation=spiral(20, seed=1) if validation else None)


def test_a_script_checkpoint_without_validation_is_refused_clearly_or_said_finished(tmp_path, capsys):
    path = tmp_path / "s.npz"
    script_checkpoint(path, validation=False)
    before = path.read_bytes()
    with pytest.raises(SystemExit) as exc:
        main(["--no-progress", "--hidden", "8", "--epochs", "3", "--checkpoint", str(path), "--resume"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"--resume: {path} was written by fit from a script without validation" in err
    assert path.read_bytes() == before  # never rewritten into a checkpoint fit cannot resume
    # no epochs left: finished, said so, nothing trained and no summary read from the history
    assert main(["--no-progress", "--hidden", "8", "--epochs", "2", "--checkpoint", str(path), "--resume"]) == 0
    assert capsys.readouterr().out.startswith(f"{path} has finished: 2 of 2 epochs trained")
    assert path.read_bytes() == before


def test_a_script_checkpoint_with_validation_resumes_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "s.npz"
    script_checkpoint(path, validation=True)
    assert main(["--no-progress", "--hidden", "8", "--epochs", "3", "--checkpoint", str(path), "--resume"]) == 0
    assert "epochs=3 seconds=" in capsys.readouterr().out
    assert read_extra(path)["fit"]["epoch"] == 3


@pytest.mark.parametrize("first, second, code", [(signal.SIGTERM, signal.SIGINT, 143),
                                                 (signal.SIGINT, signal.SIGINT, 130),
                                                 (signal.SIGTERM, signal.SIGTERM, 143)])
def test_a_second_signal_during_the_shutdown_is_ignored(tmp_path, capsys, monkeypatch, first, second, code):
    import handprop.train.cli as cli
    import handprop.train.cli_checkpoints as cli_checkpoints
    path = tmp_path / "c.npz"
    format_metrics, read_extra = cli.format_metrics, cli_checkpoints.read_extra

    def signal_after_epoch_one(logs, **options):
        if logs["epoch"] == 1:
            os.kill(os.getpid(), first)
        return format_metrics(logs, **options)

    def signal_again_then_read(checkpoint):  # the shutdown reads the checkpoint's epoch
        os.kill(os.getpid(), second)
        return read_extra(checkpoint)
    monkeypatch.setattr(cli, "format_metrics", signal_after_epoch_one)
    monkeypatch.setattr(cli_checkpoints, "read_extra", signal_again_then_read)
    try:
        assert main([*CLI, "--epochs", "3", "--checkpoint", str(path)]) == code
    except KeyboardInterrupt as escaped:  # the second signal broke into the shutdown
        pytest.fail(f"the second signal escaped as {type(escaped).__name__}")
    assert f"{path} keeps epoch 1: add --resume" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

"""Checkpoint names checked before any work: an empty path, and a name whose temporary file's
name would be too long for the folder."""
import os

import pytest

from handprop.train.cli import main
from handprop.train.files import atomic_write, writable_target

CLI = ["--hidden", "8", "--epochs", "1", "--no-progress"]


def test_an_empty_checkpoint_path_is_named_as_such_not_as_a_directory(capsys):
    with pytest.raises(ValueError, match=r"^expected a file name, got an empty path ''$"):
        writable_target("")
    with pytest.raises(SystemExit) as exc:
        main([*CLI, "--checkpoint", ""])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "--checkpoint: expected a file name, got an empty path ''" in captured.err
    assert "directory" not in captured.err and "Linear" not in captured.out


def test_a_name_whose_temporary_file_is_too_long_is_refused_before_epoch_one(tmp_path, capsys):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    spare = len(f"..{os.getpid()}-00000000.tmp")
    longest = tmp_path / ("c" * (limit - spare))
    with atomic_write(longest) as f:  # the longest name allowed saves
        f.write(b"x")
    assert longest.read_bytes() == b"x"
    too_long = tmp_path / ("c" * (limit - spare + 1))
    with pytest.raises(ValueError, match=rf"the name is {limit - spare + 1} bytes, .* more than the "
                                         rf"folder allows \({limit}\); use a name of at most "
                                         rf"{limit - spare} bytes"):
        writable_target(too_long)
    with pytest.raises(SystemExit) as exc:
        main([*CLI, "--checkpoint", str(tmp_path / ("c" * 240))])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "use a name of at most" in captured.err and "epoch=" not in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == [longest.name]  # nothing else written


def test_an_interrupt_just_after_the_temporary_file_is_made_removes_it(tmp_path, monkeypatch):
    import handprop.train.files as files
    real_open = os.open

    def then_interrupted(*args, **kwargs):   # Ctrl-C or SIGTERM landing as open returns
        os.close(real_open(*args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "open", then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "c.npz") as f:
            f.write(b"never")
    assert os.listdir(tmp_path) == []

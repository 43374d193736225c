"""Checkpoint names checked before any work: an empty path, and a name whose temporary file's
name would be too long for the folder."""

import pytest

from handprop.train.cli import main
from handprop.train.files import writable_target

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

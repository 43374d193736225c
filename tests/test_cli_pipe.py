"""A closed pipe (``python -m handprop.train | head -1``) ends the command quietly."""
import io
import subprocess
import sys

from handprop.train.cli import main


def test_a_reader_that_goes_away_early_ends_the_command_quietly():
    command = subprocess.Popen([sys.executable, "-m", "handprop.train", "--no-progress", "--hidden", "8",
                                "--epochs", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert command.stdout.readline().startswith(b"#")  # the model's table: it is running
    command.stdout.close()  # as `head -1` does
    err = command.stderr.read().decode()
    assert command.wait(timeout=60) == 141
    assert err == ""  # no BrokenPipeError, no "Exception ignored", no "error:"


class ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_broken_pipe_mid_run_is_not_reported_as_a_failure(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["--no-progress", "--hidden", "8", "--epochs", "2"]) == 141
    assert capsys.readouterr().err == ""

"""The command line's checkpoints: the settings a run records, ``--resume`` taking them back
(with the number of epochs: ``--epochs`` given on resume sets a new total), a finished run
said to be finished, and what Ctrl-C or SIGTERM leaves behind."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

from .checkpoint import read_extra
from .files import writable_target

# The settings a checkpoint of this command records ("cli" in its extra), which --resume
# takes from it; a flag given with --resume that contradicts one of them is a usage error,
# except --epochs, which sets a new total.
RECORDED = ("dataset", "model", "hidden", "activation", "norm", "dropout", "dtype", "seed", "batch_size",
            "optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule", "warmup",
            "clip_grad_norm", "epochs", "embedding_dim", "hidden_size", "n_layer", "n_head",
            "n_embd", "block_size", "max_iters", "eval_interval", "eval_iters", "min_lr",
            "warmup_iters", "lr_decay_iters", "beta2", "threads", "workers")
NEW_TOTAL = ("epochs", "max_iters")
VALIDATED = {"val_loss", "val_accuracy"}  # in the history of every epoch this command trains


class Resumed(NamedTuple):
    """What --resume found: the epochs the checkpoint has finished (None if it holds none, and
    fit will say so), the total it recorded (None for a checkpoint from before totals were
    recorded), the settings it took from it, as ``key=value`` text, and whether its history
    has the validation this command adds to every epoch (a script's may not)."""
    done: int | None
    total: int | None
    taken: str
    validated: bool = True

    def unvalidated_message(self, path: str) -> str:
        return (f"--resume: {path} was written by fit from a script without validation, and this "
                f"command validates every epoch: its history cannot take validated epochs; "
                f"continue it from the script with fit(..., resume=True), or start a new run "
                f"with --overwrite")


def recorded_settings(args: argparse.Namespace) -> dict:
    """The settings a checkpoint keeps for --resume (momentum only for an optimizer that
    has it)."""
    return {key: getattr(args, key) for key in RECORDED if getattr(args, key) is not None}


def check_checkpoint_path(cli: argparse.ArgumentParser, args: argparse.Namespace,
                          argv: list[str] | None,
                          parser: Callable[[], argparse.ArgumentParser]) -> Resumed | None:
    """Before any data is read: the checkpoint's folder is there and writable, an existing
    checkpoint is replaced only with --overwrite, and --resume takes the saved settings
    (a flag given that contradicts them is a usage error naming it). Returns what a resume
    found (None when not resuming a checkpoint); ``parser`` makes a fresh parser of the
    command's flags."""
    path = args.checkpoint
    try:
        writable_target(path)
    except (OSError, ValueError) as err:
        cli.error(f"--checkpoint: {err}")  # the error names the path
    exists = os.path.exists(path)
    if exists and not args.resume and not args.overwrite:
        cli.error(f"--checkpoint {path} already exists; add --resume to continue from it, or "
                  f"--overwrite to start over and replace it")
    if args.resume and not exists:  # said here, in one line: fit would say it as a UserWarning
        print(f"no checkpoint at {path} to resume from yet; starting at epoch 1", file=sys.stderr)
        args.resume = False
    if not args.resume:
        return None
    try:
        extra = read_extra(path)
    except (OSError, ValueError) as err:
        cli.error(f"--resume: {err}")
    fit_state = extra.get("fit")
    done = fit_state.get("epoch") if isinstance(fit_state, dict) else None
    done = done if isinstance(done, int) and not isinstance(done, bool) and done >= 1 else None
    saved = extra.get("cli")
    if not isinstance(saved, dict):  # written by fit from a script, or by hand: fit says what it can resume
        history = fit_state.get("history") if isinstance(fit_state, dict) else None
        return Resumed(done, None, "", not isinstance(history, dict) or VALIDATED <= history.keys())
    given = given_flags(parser, argv)
    clashes = [f"--{k.replace('_', '-')} {flag_text(given[k])} (saved: {flag_text(saved[k])})"
               for k in RECORDED if k in given and k in saved and given[k] != saved[k]
               and k not in NEW_TOTAL]
    if clashes:
        cli.error(f"--resume continues {path} with the settings it was saved with, and these "
                  f"flags contradict them: {', '.join(clashes)}; leave them out, or start a "
                  f"new run with --overwrite")
    taken = [key for key in RECORDED if key in saved and key not in given]
    for key, value in saved_settings(cli, parser, path, saved, taken).items():
        setattr(args, key, value)
    total = saved.get("epochs") if isinstance(saved.get("epochs"), int) else None
    return Resumed(done, total, " ".join(f"{key}={flag_text(saved[key])}" for key in taken))


def resuming_message(path: str, resumed: Resumed, epochs: int) -> str:
    """What a resume says it is doing: where it starts, how many epochs remain, and the
    settings it took from the checkpoint."""
    start = "" if resumed.done is None else \
        f" at epoch {resumed.done + 1} of {epochs} ({epochs - resumed.done} to go)"
    taken = f" with the settings it was saved with: {resumed.taken}" if resumed.taken else ""
    return f"resuming {path}{start}{taken}"


def finished_message(path: str, done: int, epochs: int) -> str:
    """What a resume of a run that has trained all its epochs says instead of training more."""
    return (f"{path} has finished: {done} of {epochs} epochs trained, nothing left to do; "
            f"add --epochs N (N > {done}) with --resume to train on to a new total")


def saved_settings(cli: argparse.ArgumentParser, parser: Callable[[], argparse.ArgumentParser],
                   path: str, saved: dict, keys: list[str]) -> dict:
    """The settings a checkpoint recorded, parsed as the flags they stand for: a file's
    settings are held to the flags' types, choices and maxima."""
    argv = []
    for key in keys:
        flag, value = "--" + key.replace("_", "-"), saved[key]
        argv += ([flag] if value else []) if isinstance(value, bool) else [f"{flag}={flag_text(value)}"]
    refusal = io.StringIO()
    try:
        with contextlib.redirect_stderr(refusal):
            parsed = parser().parse_args(argv)
    except SystemExit:
        reason = refusal.getvalue().strip().splitlines()[-1].split("error: ", 1)[-1]
        cli.error(f"--resume: {path} records settings this command refuses: {reason}")
    return {key: getattr(parsed, key) for key in keys}


def given_flags(parser: Callable[[], argparse.ArgumentParser], argv: list[str] | None) -> dict:
    """The flags given on the command line (not defaulted), by their argparse name."""
    quiet = parser()
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
    return vars(quiet.parse_args(argv))


def flag_text(value) -> str:
    """A setting as it would be typed: 100,100 for a list, on/off for a switch."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``docker stop``), raised where the program is, as Ctrl-C is: every
    save and download in progress cleans up after itself on the way out."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated and Ctrl-C KeyboardInterrupt (in the main
    thread, where signals land). The first of either starts the shutdown, and from then on
    both are ignored: a second signal a moment later (two Ctrl-C, a scheduler's repeated
    SIGTERM) would otherwise land in the middle of the cleanup and end in a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        for ignored in STOPS:
            signal.signal(ignored, signal.SIG_IGN)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    previous = {signum: signal.getsignal(signum) for signum in STOPS}
    for signum in STOPS:
        signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


STOPS = (signal.SIGINT, signal.SIGTERM)


def interrupted_message(checkpoint: str | None, stop: BaseException | None = None) -> str:
    """What Ctrl-C or SIGTERM leaves behind: the last completed epoch's checkpoint, if any."""
    what = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
    if checkpoint is None:
        return f"{what}; nothing was saved (--checkpoint PATH keeps each finished epoch)"
    try:
        extra = read_extra(checkpoint)
        kept = (f"iteration {extra['iterations']['iteration']}" if "iterations" in extra
                else f"epoch {extra['fit']['epoch']}")
    except (OSError, ValueError, KeyError, TypeError):
        return f"{what} before the first epoch finished; no checkpoint at {checkpoint}"
    return f"{what}; {checkpoint} keeps {kept}: add --resume to continue from it"

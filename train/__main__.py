"""python -m handprop.train: train an MLP or a small CNN from the command line and print a greppable
summary line."""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from importlib.metadata import version

import numpy as np

from ..layers import cnn, mlp
from ..layers.models import ACTIVATIONS
from ..losses import SoftmaxCrossEntropy
from .checkpoint import read_extra
from .data import DATASETS, default_data_dir, download, load_mnist, spiral
from .files import writable_target
from .loop import evaluate, fit, format_metrics
from .optim import SGD, Adam, AdamW, RMSprop
from .plot import INSTALL_HINT, plot_history
from .schedule import CosineAnnealingLR, LinearLR, SequentialLR, StepLR

OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-2}

# Sane maxima of the sizes a flag or a data file can ask for: beyond them is a slip, and a
# usage error (exit 2) rather than an allocation of many GiB.
MAX_WIDTH, MAX_LAYERS, MAX_EPOCHS, MAX_BATCH, MAX_CLASSES = 1 << 16, 64, 10**6, 1 << 20, 10**4

# The settings a checkpoint of this command records ("cli" in its extra), which --resume
# takes from it; a flag given with --resume that contradicts one of them is a usage error.
RECORDED = ("dataset", "model", "hidden", "activation", "norm", "dropout", "dtype", "seed", "batch_size",
            "optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule", "warmup",
            "clip_grad_norm")


def bounded(kind, minimum: float, inclusive: bool, maximum: float = math.inf):
    """An argparse type: a finite ``kind`` > minimum (>= with ``inclusive``), <= maximum."""
    def parse(text):
        value = kind(text)
        if not math.isfinite(value) or not (value >= minimum if inclusive else value > minimum):
            raise argparse.ArgumentTypeError(
                f"expected a finite number {'>=' if inclusive else '>'} {minimum}, got {text}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"expected at most {maximum}, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


positive_int, positive_float = bounded(int, 0, False), bounded(float, 0, False)
non_negative_int, non_negative_float = bounded(int, 0, True), bounded(float, 0, True)


def probability(text):
    """An argparse type: a dropout probability, 0 <= P < 1 (P = 1 would drop everything)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a probability 0 <= P < 1, got {text}")
    return value


def widths(text):
    try:
        sizes = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 100,100, got {text!r}") from None
    if any(w < 1 for w in sizes):
        raise argparse.ArgumentTypeError(f"expected widths >= 1, got {text!r}")
    if any(w > MAX_WIDTH for w in sizes) or len(sizes) > MAX_LAYERS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_LAYERS} widths of at most "
                                         f"{MAX_WIDTH} each, got {text!r}")
    return sizes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m handprop.train", description=(
        "Train an MLP (Linear, norm, activation, dropout per hidden layer) or a small CNN with "
        "SGD, Adam, AdamW or RMSprop and print a summary line of key=value pairs."))
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp", help="mlp (default), or cnn: "
                   "two Conv2d-BatchNorm2d-activation-MaxPool2d blocks (16, 32 channels), then "
                   "Linear; needs image data (--dataset mnist or fashion-mnist)")
    p.add_argument("--hidden", type=widths, default=[100, 100], help="hidden widths (default 100,100)")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    p.add_argument("--norm", choices=["batch", "layer", "none"], default="batch",
                   help="BatchNorm1d, LayerNorm or nothing after each hidden Linear (default batch)")
    p.add_argument("--no-batchnorm", dest="norm", action="store_const", const="none",
                   help="the same as --norm none")
    p.add_argument("--dropout", type=probability, default=0.0, metavar="P",
                   help="Dropout(P) after each hidden activation, 0 <= P < 1 (default 0: none)")
    p.add_argument("--dataset", choices=["spiral", *DATASETS], default="spiral",
                   help="spiral (made on the fly) or MNIST-format files (default spiral)")
    p.add_argument("--data-dir", help="where the MNIST-format files are (default: the cache, "
                   "~/.cache/handprop/DATASET)")
    p.add_argument("--download", action="store_true", help="fetch the dataset's files first, "
                   "checking their published SHA-256")
    p.add_argument("--base-url", help="download from this address instead of the published one")
    p.add_argument("--checkpoint", metavar="PATH", help="save a checkpoint here after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it "
                   "exists, with the settings it was saved with")
    p.add_argument("--overwrite", action="store_true", help="let a run without --resume "
                   "replace an existing --checkpoint")
    p.add_argument("--epochs", type=bounded(int, 0, False, MAX_EPOCHS), help="passes over the "
                   "data (default 30 for spiral, 10 for MNIST-format data)")
    p.add_argument("--batch-size", type=bounded(int, 0, False, MAX_BATCH), default=64)
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
                   help="sgd (momentum 0.9 by default), adam, adamw or rmsprop (default sgd)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default 0.1 for sgd, "
                   "0.01 for sgd with --model cnn, 0.001 for adam and adamw, 0.01 for rmsprop)")
    p.add_argument("--momentum", type=non_negative_float,
                   help="momentum of sgd (default 0.9) or rmsprop (default 0)")
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=non_negative_float,
                   help="L2 penalty (decoupled for adamw); default 0, 0.01 for adamw")
    p.add_argument("--schedule", choices=["none", "step", "cosine"], default="none",
                   help="lr schedule after the warm-up: step (x0.1 every third of the epochs) "
                   "or cosine (to 0 at the last epoch)")
    p.add_argument("--warmup", type=non_negative_int, default=0, metavar="EPOCHS",
                   help="raise the lr linearly over the first EPOCHS epochs")
    p.add_argument("--clip-grad-norm", type=positive_float, metavar="X",
                   help="clip the gradients' global L2 norm to X before every step")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seeds the data, the weights and the shuffling")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of the loss and accuracy per "
                   "epoch here (needs matplotlib: pip install \"handprop[plot]\")")
    p.add_argument("--no-progress", action="store_true", help="no progress bars; one plain line per epoch")
    p.add_argument("--version", action="version", version=f"handprop {version('handprop')}")
    return p


def load_data(args, dtype):
    """Training and validation data for the chosen dataset (MNIST's test split validates)."""
    if args.dataset == "spiral":
        return (*spiral(1000, 3, noise=0.2, seed=args.seed, dtype=dtype),
                *spiral(300, 3, noise=0.2, seed=args.seed + 1, dtype=dtype))
    directory = args.data_dir or default_data_dir(args.dataset)
    if args.download:
        download(args.dataset, directory, base_url=args.base_url, progress=not args.no_progress)
    X, y, X_val, y_val = load_mnist(directory, flatten=args.model != "cnn")
    return X.astype(dtype, copy=False), y, X_val.astype(dtype, copy=False), y_val


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    with sigterm_as_interrupt():
        try:
            return run(cli, args, argv)
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Terminated)
            print(f"\n{interrupted_message(args.checkpoint, stop)}", file=sys.stderr)
            return 143 if isinstance(stop, Terminated) else 130


def run(cli: argparse.ArgumentParser, args, argv: list[str] | None) -> int:
    if args.resume and not args.checkpoint:
        cli.error("--resume needs --checkpoint PATH")
    if args.checkpoint:  # first: --resume may take the dataset and the rest from the file
        check_checkpoint_path(cli, args, argv)
    if args.momentum is not None and args.optimizer not in ("sgd", "rmsprop"):
        cli.error(f"--momentum goes with --optimizer sgd or rmsprop, not {args.optimizer}")
    if args.nesterov and args.optimizer != "sgd":
        cli.error(f"--nesterov goes with --optimizer sgd, not {args.optimizer}")
    if args.nesterov and args.momentum == 0:
        cli.error("--nesterov needs --momentum > 0")
    fill_optimizer_defaults(args)
    if args.dataset == "spiral" and (args.download or args.data_dir):
        cli.error("--download and --data-dir go with --dataset mnist or fashion-mnist")
    if args.plot and importlib.util.find_spec("matplotlib") is None:  # say so before training
        cli.error(f"--plot: {INSTALL_HINT}")
    if args.model == "cnn" and args.dataset == "spiral":
        cli.error("--model cnn needs images: add --dataset mnist or fashion-mnist")
    if args.model == "cnn":
        ignored = [flag for flag, given in (("--norm layer", args.norm == "layer"),
                                            ("--dropout", args.dropout > 0),
                                            ("--hidden", args.hidden != [100, 100])) if given]
        if ignored:
            cli.error(f"{', '.join(ignored)} go with --model mlp; the cnn has BatchNorm2d "
                      f"(or none, with --norm none) and fixed widths")
    epochs = args.epochs or (30 if args.dataset == "spiral" else 10)
    if args.warmup and args.schedule != "none" and args.warmup >= epochs:
        cli.error(f"--warmup {args.warmup} leaves no epochs of the {args.schedule} schedule "
                  f"(--epochs {epochs})")
    dtype = np.dtype(args.dtype)
    try:
        X, y, X_val, y_val = load_data(args, dtype)
        n_classes = class_count(args, y, y_val)
    except FileNotFoundError as err:
        hint = "" if args.download else f"; add --download to fetch {args.dataset}"
        print(f"python -m handprop.train: error: {err}{hint}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:  # a damaged file, a failed download, bad labels
        print(f"python -m handprop.train: error: {err}", file=sys.stderr)
        return 1
    if args.model == "cnn":
        model = cnn(X.shape[1:], n_classes, activation=args.activation,
                    batchnorm=args.norm != "none", seed=args.seed, dtype=dtype)
    else:
        model = mlp(X.shape[1], args.hidden, n_classes, activation=args.activation,
                    norm=None if args.norm == "none" else args.norm, dropout=args.dropout,
                    seed=args.seed, dtype=dtype)
    print(model, flush=True)
    loss_fn = SoftmaxCrossEntropy()
    optimizer = build_optimizer(model, args)
    scheduler = build_schedule(optimizer, args.schedule, args.warmup, epochs)
    plain_lines = (lambda logs: print(format_metrics(logs), flush=True)) if args.no_progress else None
    started = time.perf_counter()
    try:
        history = fit(model, loss_fn, optimizer, X, y, epochs=epochs, batch_size=args.batch_size,
                      validation=(X_val, y_val), seed=args.seed, progress=not args.no_progress,
                      on_epoch_end=plain_lines, checkpoint=args.checkpoint, resume=args.resume,
                      scheduler=scheduler, clip_grad_norm=args.clip_grad_norm,
                      checkpoint_extra={"cli": recorded_settings(args)})
    except (FloatingPointError, ValueError, OSError) as err:  # a diverging run, a bad checkpoint
        print(f"python -m handprop.train: error: {err}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    train_scores = evaluate(model, loss_fn, X, y)
    print(f"val_accuracy={history['val_accuracy'][-1]:.3f} val_loss={history['val_loss'][-1]:.3f} "
          f"train_accuracy={train_scores['accuracy']:.3f} train_loss={train_scores['loss']:.3f} "
          f"epochs={len(history['epoch'])} seconds={seconds:.1f}")
    if args.plot:
        try:
            plot_history(history, args.plot)
        except OSError as err:
            print(f"python -m handprop.train: error: --plot: {err}", file=sys.stderr)
            return 1
        print(f"plot: {args.plot}")
    return 0


def build_optimizer(model, args):
    """The optimizer the flags ask for; an option left out takes that optimizer's default."""
    fill_optimizer_defaults(args)
    options = {"weight_decay": args.weight_decay}
    if args.optimizer == "sgd":
        options.update(momentum=args.momentum, nesterov=args.nesterov)
    elif args.optimizer == "rmsprop":
        options["momentum"] = args.momentum
    return OPTIMIZERS[args.optimizer](model, args.lr, **options)


def build_schedule(optimizer, schedule: str, warmup: int, epochs: int):
    """None, or a warm-up from lr / (warmup + 1) up to lr, followed by the step or cosine
    schedule over the remaining epochs."""
    rest = epochs - warmup
    main = {"none": lambda: None,
            "step": lambda: StepLR(optimizer, step_size=max(1, rest // 3), gamma=0.1),
            "cosine": lambda: CosineAnnealingLR(optimizer, T_max=rest)}[schedule]
    if not warmup:
        return main()
    ramp = LinearLR(optimizer, start_factor=1 / (warmup + 1), total_iters=warmup)
    after = main()
    return ramp if after is None else SequentialLR(optimizer, [ramp, after], milestones=[warmup])


def fill_optimizer_defaults(args) -> None:
    """The chosen optimizer's own defaults for the options left out, so that a checkpoint
    records the values the run used and a resume can see a flag that contradicts them."""
    if args.lr is None:  # 0.1 makes the CNN diverge with SGD, as it does in PyTorch
        args.lr = 0.01 if (args.model, args.optimizer) == ("cnn", "sgd") else DEFAULT_LR[args.optimizer]
    if args.momentum is None and args.optimizer in ("sgd", "rmsprop"):
        args.momentum = 0.9 if args.optimizer == "sgd" else 0.0
    if args.weight_decay is None:
        args.weight_decay = 1e-2 if args.optimizer == "adamw" else 0.0


def recorded_settings(args) -> dict:
    """The settings a checkpoint keeps for --resume (momentum only for an optimizer that
    has it)."""
    return {key: getattr(args, key) for key in RECORDED if getattr(args, key) is not None}


def check_checkpoint_path(cli: argparse.ArgumentParser, args, argv: list[str] | None) -> None:
    """Before any data is read: the checkpoint's folder is there and writable, an existing
    checkpoint is replaced only with --overwrite, and --resume takes the saved settings
    (a flag given that contradicts them is a usage error naming it)."""
    path = args.checkpoint
    try:
        writable_target(path)
    except (OSError, ValueError) as err:
        cli.error(f"--checkpoint {path}: {err}")
    exists = os.path.exists(path)
    if exists and not args.resume and not args.overwrite:
        cli.error(f"--checkpoint {path} already exists; add --resume to continue from it, or "
                  f"--overwrite to start over and replace it")
    if not (exists and args.resume):
        return
    try:
        extra = read_extra(path)
    except (OSError, ValueError) as err:
        cli.error(f"--resume: {err}")
    saved = extra.get("cli")
    if not isinstance(saved, dict):
        return  # written by fit from a script, or by hand: fit says what it can resume
    given = given_flags(argv)
    clashes = [f"--{k.replace('_', '-')} {_flag_text(given[k])} (saved: {_flag_text(saved[k])})"
               for k in RECORDED if k in given and k in saved and given[k] != saved[k]]
    if clashes:
        cli.error(f"--resume continues {path} with the settings it was saved with, and these "
                  f"flags contradict them: {', '.join(clashes)}; leave them out, or start a "
                  f"new run with --overwrite")
    taken = [key for key in RECORDED if key in saved and key not in given]
    for key, value in saved_settings(cli, path, saved, taken).items():
        setattr(args, key, value)
    print(f"resuming {path} with the settings it was saved with: "
          + " ".join(f"{key}={_flag_text(saved[key])}" for key in taken), file=sys.stderr)


def saved_settings(cli: argparse.ArgumentParser, path: str, saved: dict, keys: list[str]) -> dict:
    """The settings a checkpoint recorded, parsed as the flags they stand for: a file's
    settings are held to the flags' types, choices and maxima."""
    argv = []
    for key in keys:
        flag, value = "--" + key.replace("_", "-"), saved[key]
        argv += ([flag] if value else []) if isinstance(value, bool) else [f"{flag}={_flag_text(value)}"]
    refusal = io.StringIO()
    try:
        with contextlib.redirect_stderr(refusal):
            parsed = parser().parse_args(argv)
    except SystemExit:
        reason = refusal.getvalue().strip().splitlines()[-1].split("error: ", 1)[-1]
        cli.error(f"--resume: {path} records settings this command refuses: {reason}")
    return {key: getattr(parsed, key) for key in keys}


def given_flags(argv: list[str] | None) -> dict:
    """The flags given on the command line (not defaulted), by their argparse name."""
    quiet = parser()
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
    return vars(quiet.parse_args(argv))


def _flag_text(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def class_count(args, y: np.ndarray, y_val: np.ndarray) -> int:
    """The number of classes: the dataset's, or one more than the largest label; every label
    checked against it before any layer is built."""
    known = DATASETS.get(args.dataset, {}).get("classes")
    limit = known or MAX_CLASSES
    where = (args.data_dir or default_data_dir(args.dataset)) if known else args.dataset
    for labels, split in ((y, "train"), (y_val, "test")):
        bad = (labels < 0) | (labels >= limit)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{where}: the {split} labels hold {labels[i]} at position {i}, "
                             f"outside 0..{limit - 1}"
                             + (f", the classes of {args.dataset}" if known else ""))
    return known or int(max(y.max(), y_val.max())) + 1


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``docker stop``), raised where the program is, as Ctrl-C is: every
    save and download in progress cleans up after itself on the way out."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated (in the main thread, where signals land)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def interrupted_message(checkpoint: str | None, stop: BaseException | None = None) -> str:
    """What Ctrl-C or SIGTERM leaves behind: the last completed epoch's checkpoint, if any."""
    what = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
    if checkpoint is None:
        return f"{what}; nothing was saved (--checkpoint PATH keeps each finished epoch)"
    try:
        epoch = read_extra(checkpoint)["fit"]["epoch"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{what} before the first epoch finished; no checkpoint at {checkpoint}"
    return f"{what}; {checkpoint} keeps epoch {epoch}: add --resume to continue from it"


if __name__ == "__main__":
    sys.exit(main())

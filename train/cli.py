"""python -m handprop.train: train a model from the registry (an MLP, a small CNN, a character
language model) on a data set from the registry (spiral, moons, MNIST, Fashion-MNIST, names) and
print a greppable summary line.

A new model is one entry of ``MODELS`` (a builder, its defaults, the flags it refuses); a new
data set is one entry of ``DATASETS`` (a loader, its default epochs, its number of classes);
both live in ``cli_registry``. Resuming and interrupting a run (``--checkpoint``, ``--resume``,
Ctrl-C, SIGTERM) live in ``cli_checkpoints``.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from importlib.metadata import version

import numpy as np

from ..layers import Layer
from ..layers.data_parallel import MAX_WORKERS
from ..layers.models import ACTIVATIONS
from ..losses import SoftmaxCrossEntropy
from . import cli_registry as registry
from .cli_checkpoints import (
    Resumed,
    Terminated,
    check_checkpoint_path,
    finished_message,
    interrupted_message,
    recorded_settings,
    resuming_message,
    sigterm_as_interrupt,
)
from .cli_iterations import add_iteration_flags, by_iterations, run_iterations
from .cli_registry import DATASETS, DEFAULT_HIDDEN, MODELS, Dataset, listed, over_budget
from .cli_text import TextSet, blas_threads, check_vocabulary, text_summary
from .cli_types import (
    bounded,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
    widths,
)
from .data import default_data_dir
from .loop import evaluate, fit, format_metrics
from .memory import keep_freed_memory
from .optim import SGD, Adam, AdamW, RMSprop
from .plot import INSTALL_HINT, plot_history
from .schedule import CosineAnnealingLR, LinearLR, SequentialLR, StepLR

PROG = "python -m handprop.train"
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-2}

# Sane maxima of the sizes a flag or a data file can ask for: beyond them is a slip, and a
# usage error (exit 2) rather than an allocation of many GiB. The widths of the layers are held
# to the memory the model would take, MAX_MODEL_BYTES (4 GiB), estimated before it is built.
MAX_EPOCHS, MAX_BATCH, MAX_CLASSES = 10**6, 1 << 20, 10**4


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=(
        "Train a model (an MLP, a small CNN, a character-level language model, or a GPT on tiny "
        "Shakespeare) with SGD, Adam, AdamW or RMSprop and print a summary line of key=value "
        "pairs."))
    p.add_argument("--model", choices=list(MODELS), default="mlp", help=listed(MODELS))
    p.add_argument("--hidden", type=widths, default=list(DEFAULT_HIDDEN), help="hidden widths (default 100,100); the model may take at most 4 GiB")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    p.add_argument("--norm", choices=["batch", "layer", "none"], default="batch",
                   help="BatchNorm1d, LayerNorm or nothing after each hidden Linear (default batch)")
    p.add_argument("--no-batchnorm", dest="norm", action="store_const", const="none",
                   help="the same as --norm none")
    p.add_argument("--dropout", type=probability, default=0.0, metavar="P",
                   help="Dropout(P) after each hidden activation, 0 <= P < 1 (default 0: none)")
    p.add_argument("--embedding-dim", type=positive_int, default=registry.LANGUAGE_MODEL_SIZES[0],
                   help="a language model's vector per character (default 64)")
    p.add_argument("--hidden-size", type=positive_int, default=registry.LANGUAGE_MODEL_SIZES[1],
                   help="a language model's recurrent state (default 128)")
    p.add_argument("--dataset", choices=list(DATASETS), default="spiral", help=listed(DATASETS))
    p.add_argument("--data-dir", help="where the MNIST-format files (or names.txt) are "
                   "(default: the cache, ~/.cache/handprop/DATASET)")
    p.add_argument("--download", action="store_true", help="fetch the dataset's files first, "
                   "checking their published SHA-256")
    p.add_argument("--base-url", help="download from this address instead of the published one")
    p.add_argument("--checkpoint", metavar="PATH", help="save a checkpoint here after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it "
                   "exists, with the settings it was saved with (--epochs sets a new total)")
    p.add_argument("--overwrite", action="store_true", help="let a run without --resume "
                   "replace an existing --checkpoint")
    training_flags(p)
    p.add_argument("--seed", type=non_negative_int, default=0, help="seeds the data, the weights and the shuffling")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of the loss and accuracy per "
                   "epoch here (needs matplotlib: pip install \"handprop[plot]\")")
    p.add_argument("--no-progress", action="store_true", help="no progress bars; one plain line per epoch")
    p.add_argument("--version", action="version", version=f"handprop {version('handprop')}")
    add_iteration_flags(p, bounded)
    return p


def training_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the training itself: epochs, batch, optimizer, schedule, clipping, workers."""
    p.add_argument("--epochs", type=bounded(int, 0, False, MAX_EPOCHS), help="passes over the "
                   "data in all (default 30 for spiral and moons, 10 for MNIST-format data, 4 for names)")
    p.add_argument("--batch-size", type=bounded(int, 0, False, MAX_BATCH),
                   help="samples per step (default 64; 32 for a language model)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), help="sgd (momentum 0.9 by "
                   "default), adam, adamw or rmsprop (default sgd; adam for a language model)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default 0.1 for sgd, "
                   "0.01 for sgd with --model cnn, 0.001 for adam and adamw (0.002 for a language "
                   "model), 0.01 for rmsprop)")
    p.add_argument("--momentum", type=non_negative_float,
                   help="momentum of sgd (default 0.9) or rmsprop (default 0)")
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=non_negative_float,
                   help="L2 penalty (decoupled for adamw); default 0, 0.01 for adamw")
    p.add_argument("--schedule", choices=["none", "step", "cosine"],
                   help="lr schedule after the warm-up: step (x0.1 every third of the epochs) "
                   "or cosine (to 0 at the last epoch); default none, cosine for a language model")
    p.add_argument("--warmup", type=non_negative_int, default=0, metavar="EPOCHS",
                   help="raise the lr linearly over the first EPOCHS epochs")
    p.add_argument("--clip-grad-norm", type=positive_float, metavar="X",
                   help="clip the gradients' global L2 norm to X before every step")
    p.add_argument("--workers", metavar="N", type=bounded(int, 0, False, MAX_WORKERS),
                   help="split each batch between N copies of the model on threads, one BLAS "
                   "thread each: pays where the arrays are large (the cnn, the gpt); default 1, "
                   "for --model gpt chosen by --threads auto")


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    keep_freed_memory()  # a step's arrays reuse the last step's memory instead of faulting it in
    try:
        with sigterm_as_interrupt():
            try:
                return run(cli, args, argv)
            except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Terminated)
                print(f"\n{interrupted_message(args.checkpoint, stop)}", file=sys.stderr)
                return 143 if isinstance(stop, Terminated) else 130
    except BrokenPipeError:  # `... | head -1`: the reader has gone, and nobody is left to tell
        return closed_pipe()


def closed_pipe() -> int:
    """End quietly when the output's reader has gone: what is left in the buffers goes to
    /dev/null (else Python's flush at exit reports the same broken pipe), and the exit code is
    141, a shell's code for a process ended by SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # no file descriptor
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
    return 141


def run(cli: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> int:
    """Check the flags, load the data, build the model, train, print the summary line; the
    exit code: 0 done, 1 a failure on the way (data, divergence, a file), 2 a usage error."""
    if by_iterations(cli, args, argv, parser):  # the GPT: cli_iterations
        return run_iterations(cli, args, argv, parser)
    resumed = check_flags(cli, args, argv)
    if resumed is not None and resumed.done is not None and resumed.done >= args.epochs:
        print(finished_message(args.checkpoint, resumed.done, args.epochs), flush=True)
        return 0  # a finished run: training on would restart its schedule
    if resumed is not None:
        print(resuming_message(args.checkpoint, resumed, args.epochs), file=sys.stderr)
    try:
        model, data = prepare(args)
    except Failure as err:
        return failure(err, err.code)
    X, y, X_val, y_val = data[:4]
    text = data if isinstance(data, TextSet) else None
    threads = MODELS[args.model].blas_threads
    settings = recorded_settings(args) | ({"vocab": text.vocab.to_dict()} if text else {}) \
        | ({"blas_threads": threads} if threads else {})
    print(model, flush=True)
    loss_fn = SoftmaxCrossEntropy()
    optimizer = build_optimizer(model, args)
    scheduler = build_schedule(optimizer, args.schedule, args.warmup, args.epochs)
    plain_lines = (lambda logs: print(format_metrics(logs), flush=True)) if args.no_progress else None
    started = time.perf_counter()
    try:
        with blas_threads(threads):
            history = fit(model, loss_fn, optimizer, X, y, epochs=args.epochs,
                          batch_size=args.batch_size, validation=(X_val, y_val), seed=args.seed,
                          progress=not args.no_progress, on_epoch_end=plain_lines,
                          checkpoint=args.checkpoint, resume=args.resume, scheduler=scheduler,
                          clip_grad_norm=args.clip_grad_norm, checkpoint_extra={"cli": settings},
                          workers=args.workers or 1)
    except BrokenPipeError:
        raise
    except (FloatingPointError, ValueError, OSError) as err:  # a diverging run, a bad checkpoint
        return failure(err)
    seconds = time.perf_counter() - started
    if text:
        with blas_threads(threads):
            print(text_summary(model, text, len(history["epoch"]), seconds, threads))
    else:
        train_scores = evaluate(model, loss_fn, X, y)
        print(f"val_accuracy={history['val_accuracy'][-1]:.3f} val_loss={history['val_loss'][-1]:.3f} "
              f"train_accuracy={train_scores['accuracy']:.3f} train_loss={train_scores['loss']:.3f} "
              f"epochs={len(history['epoch'])} seconds={seconds:.1f}")
    if args.plot:
        try:
            plot_history(history, args.plot)
        except OSError as err:
            return failure(f"--plot: {err}")
        print(f"plot: {args.plot}")
    return 0


class Failure(Exception):
    """A clear one-line failure before training: exit ``code`` (1 the data, 2 a usage error)."""
    def __init__(self, message: object, code: int = 1):
        super().__init__(str(message))
        self.code = code


def prepare(args: argparse.Namespace) -> tuple[Layer, tuple]:
    """Load the data and build the model, with everything checkable before epoch 1 checked:
    the labels of both splits, the validation samples' shape against the training samples',
    the model's estimated memory (``MAX_MODEL_BYTES``) before anything is built, and the
    build itself (the cnn refuses images too small for its poolings)."""
    try:
        data = DATASETS[args.dataset].load(args, np.dtype(args.dtype), MODELS[args.model].images)
        text = data if isinstance(data, TextSet) else None
        n_classes = len(text.vocab) if text else class_count(args, data[1], data[3])
        if text and args.resume and os.path.exists(args.checkpoint):
            check_vocabulary(args.checkpoint, text.vocab)  # the ids mean what they meant
        sample = check_splits(args, data[0], data[2])
    except BrokenPipeError:
        raise
    except FileNotFoundError as err:
        hint = "" if args.download else f"; add --download to fetch {args.dataset}"
        raise Failure(f"{err}{hint}", 2) from None
    except (ValueError, OSError) as err:  # a damaged file, a failed download, bad labels
        raise Failure(err) from None
    too_big = over_budget(args, sample, n_classes)
    if too_big is not None:
        raise Failure(too_big, 2)
    try:
        return MODELS[args.model].build(args, sample, n_classes), data
    except (ValueError, TypeError) as err:  # the data's shape does not suit the model
        raise Failure(f"--model {args.model} on {data_name(args)}: {err}", 2) from None


def check_splits(args: argparse.Namespace, X: np.ndarray, X_val: np.ndarray) -> tuple[int, ...]:
    """The shape of one sample, the same in both splits and holding something."""
    if X.shape[1:] != X_val.shape[1:]:
        raise ValueError(f"{data_name(args)}: the test samples have shape {X_val.shape[1:]} but the "
                         f"train samples {X.shape[1:]}; a model takes one shape")
    if 0 in X.shape[1:]:
        raise ValueError(f"{data_name(args)}: the samples have shape {X.shape[1:]}: they hold no values")
    return tuple(X.shape[1:])


def data_name(args: argparse.Namespace) -> str:
    """The data as the user named it: the folder of its files, or the data set."""
    return str(args.data_dir or default_data_dir(args.dataset)) if DATASETS[args.dataset].files \
        else args.dataset


def failure(err: object, code: int = 1) -> int:
    print(f"{PROG}: error: {err}", file=sys.stderr)
    return code


def check_flags(cli: argparse.ArgumentParser, args: argparse.Namespace,
                argv: list[str] | None) -> Resumed | None:
    """Every usage error (exit 2) before any data is read; the defaults filled in. Returns
    what --resume found in the checkpoint (None when not resuming one)."""
    if args.resume and args.checkpoint is None:
        cli.error("--resume needs --checkpoint PATH")
    # first: --resume may take the dataset and the rest from the file
    resumed = check_checkpoint_path(cli, args, argv, parser) if args.checkpoint is not None else None
    registry.fill_model_defaults(args)
    if args.momentum is not None and args.optimizer not in ("sgd", "rmsprop"):
        cli.error(f"--momentum goes with --optimizer sgd or rmsprop, not {args.optimizer}")
    if args.nesterov and args.optimizer != "sgd":
        cli.error(f"--nesterov goes with --optimizer sgd, not {args.optimizer}")
    if args.nesterov and args.momentum == 0:
        cli.error("--nesterov needs --momentum > 0")
    fill_optimizer_defaults(args)
    model, dataset = MODELS[args.model], DATASETS[args.dataset]
    if not dataset.files and (args.download or args.data_dir):
        cli.error(f"--download and --data-dir go with --dataset {sets_that(lambda d: d.files)}")
    if args.plot and importlib.util.find_spec("matplotlib") is None:  # say so before training
        cli.error(f"--plot: {INSTALL_HINT}")
    if model.images and not dataset.images:
        cli.error(f"--model {args.model} needs images: add --dataset {sets_that(lambda d: d.images)}")
    if (mismatch := registry.language_model_mismatch(args)) is not None:
        cli.error(mismatch)
    refused = [flag for flag, given in model.refuses if given(args)]
    if refused:
        cli.error(f"{', '.join(refused)} go with --model mlp; {model.why}")
    args.epochs = args.epochs or dataset.epochs
    if resumed and not resumed.validated and (resumed.done or 0) < args.epochs:
        cli.error(resumed.unvalidated_message(args.checkpoint))
    if resumed and resumed.done and resumed.total and resumed.done < args.epochs != resumed.total \
            and args.schedule != "none":  # the schedule's state holds the old total: it would restart
        cli.error(f"--epochs {args.epochs} with --resume would stretch a {args.schedule} schedule "
                  f"laid out for the {resumed.total} epochs {args.checkpoint} was started with; "
                  f"a new total goes with --schedule none, or start a new run with --overwrite")
    if args.warmup and args.schedule != "none" and args.warmup >= args.epochs:
        cli.error(f"--warmup {args.warmup} leaves no epochs of the {args.schedule} schedule "
                  f"(--epochs {args.epochs})")
    return resumed


def sets_that(holds: Callable[[Dataset], bool]) -> str:
    """The data sets that have what a flag needs: "mnist or fashion-mnist"."""
    return " or ".join(name for name, entry in DATASETS.items() if holds(entry))


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
    """The chosen optimizer's own defaults (and the model's, where it has its own) for the
    options left out, so that a checkpoint records the values the run used and a resume can
    see a flag that contradicts them."""
    registry.fill_model_defaults(args)
    if args.lr is None:
        args.lr = MODELS[args.model].lr.get(args.optimizer, DEFAULT_LR[args.optimizer])
    if args.momentum is None and args.optimizer in ("sgd", "rmsprop"):
        args.momentum = 0.9 if args.optimizer == "sgd" else 0.0
    if args.weight_decay is None:
        args.weight_decay = 1e-2 if args.optimizer == "adamw" else 0.0


def class_count(args, y: np.ndarray, y_val: np.ndarray) -> int:
    """The number of classes: the dataset's, or one more than the largest label; every label
    checked against it before any layer is built."""
    known = DATASETS[args.dataset].classes
    limit = known or MAX_CLASSES
    where = data_name(args)
    for labels, split in ((y, "train"), (y_val, "test")):
        bad = (labels < 0) | (labels >= limit)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{where}: the {split} labels hold {labels[i]} at position {i}, "
                             f"outside 0..{limit - 1}"
                             + (f", the classes of {args.dataset}" if known else ""))
    return known or int(max(y.max(), y_val.max())) + 1

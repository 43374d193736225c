"""python -m handprop.train: train an MLP or a small CNN from the command line and print a greppable
summary line."""
from __future__ import annotations

import argparse
import math
import sys
import time
from importlib.metadata import version

import numpy as np

from ..layers import BatchNorm1d, Linear, ReLU, Sequential, Tanh
from ..layers.cnn_model import cnn
from ..losses import SoftmaxCrossEntropy
from .checkpoint import read_extra
from .data import DATASETS, default_data_dir, download, load_mnist, spiral
from .loop import evaluate, fit, format_metrics
from .sgd import SGD

ACTIVATIONS = {"relu": ReLU, "tanh": Tanh}


def build_mlp(n_inputs: int, hidden: list[int], n_classes: int, *, activation: str = "relu",
              batchnorm: bool = True, seed: int = 0, dtype=np.float32) -> Sequential:
    """Linear -> [BatchNorm1d] -> activation for each hidden width, then a Linear to the classes."""
    layers, width = [], n_inputs
    for i, h in enumerate(hidden):
        layers.append(Linear(width, h, bias=not batchnorm, rng=seed + i, dtype=dtype))
        if batchnorm:  # BatchNorm's beta makes the Linear's bias redundant
            layers.append(BatchNorm1d(h, dtype=dtype))
        layers.append(ACTIVATIONS[activation]())
        width = h
    layers.append(Linear(width, n_classes, rng=seed + len(hidden), dtype=dtype))
    return Sequential(*layers)


def bounded(kind, minimum: float, inclusive: bool):
    """An argparse type: a finite ``kind`` > minimum (>= with ``inclusive``)."""
    def parse(text):
        value = kind(text)
        if not math.isfinite(value) or not (value >= minimum if inclusive else value > minimum):
            raise argparse.ArgumentTypeError(
                f"expected a finite number {'>=' if inclusive else '>'} {minimum}, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


positive_int, positive_float = bounded(int, 0, False), bounded(float, 0, False)
non_negative_int, non_negative_float = bounded(int, 0, True), bounded(float, 0, True)


def widths(text):
    try:
        sizes = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 100,100, got {text!r}") from None
    if any(w < 1 for w in sizes):
        raise argparse.ArgumentTypeError(f"expected widths >= 1, got {text!r}")
    return sizes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m handprop.train", description=(
        "Train an MLP (Linear, BatchNorm1d, activation per hidden layer) or a small CNN with "
        "SGD and print a summary line of key=value pairs."))
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp", help="mlp (default), or cnn: "
                   "two Conv2d-BatchNorm2d-activation-MaxPool2d blocks (16, 32 channels), then "
                   "Linear; needs image data (--dataset mnist or fashion-mnist)")
    p.add_argument("--hidden", type=widths, default=[100, 100], help="hidden widths (default 100,100)")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    p.add_argument("--no-batchnorm", action="store_true", help="leave out BatchNorm1d")
    p.add_argument("--dataset", choices=["spiral", *DATASETS], default="spiral",
                   help="spiral (made on the fly) or MNIST-format files (default spiral)")
    p.add_argument("--data-dir", help="where the MNIST-format files are (default: the cache, "
                   "~/.cache/handprop/DATASET)")
    p.add_argument("--download", action="store_true", help="fetch the dataset's files first, "
                   "checking their published SHA-256")
    p.add_argument("--base-url", help="download from this address instead of the published one")
    p.add_argument("--checkpoint", metavar="PATH", help="save a checkpoint here after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--epochs", type=positive_int, help="passes over the data (default 30 for "
                   "spiral, 10 for MNIST-format data)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, help="learning rate (default 0.1 for the MLP, "
                   "0.01 for the CNN)")
    p.add_argument("--momentum", type=non_negative_float, default=0.9)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    p.add_argument("--seed", type=non_negative_int, default=0, help="seeds the data, the weights and the shuffling")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
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
    if args.nesterov and args.momentum == 0:
        cli.error("--nesterov needs --momentum > 0")
    if args.resume and not args.checkpoint:
        cli.error("--resume needs --checkpoint PATH")
    if args.dataset == "spiral" and (args.download or args.data_dir):
        cli.error("--download and --data-dir go with --dataset mnist or fashion-mnist")
    if args.model == "cnn" and args.dataset == "spiral":
        cli.error("--model cnn needs images: add --dataset mnist or fashion-mnist")
    epochs = args.epochs or (30 if args.dataset == "spiral" else 10)
    dtype = np.dtype(args.dtype)
    try:
        X, y, X_val, y_val = load_data(args, dtype)
    except FileNotFoundError as err:
        hint = "" if args.download else f"; add --download to fetch {args.dataset}"
        print(f"python -m handprop.train: error: {err}{hint}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:  # a damaged file, a failed download
        print(f"python -m handprop.train: error: {err}", file=sys.stderr)
        return 1
    n_classes = int(max(y.max(), y_val.max())) + 1
    if args.model == "cnn":
        model = cnn(X.shape[1:], n_classes, activation=args.activation,
                    batchnorm=not args.no_batchnorm, seed=args.seed, dtype=dtype)
    else:
        model = build_mlp(X.shape[1], args.hidden, n_classes, activation=args.activation,
                          batchnorm=not args.no_batchnorm, seed=args.seed, dtype=dtype)
    print(model, flush=True)
    loss_fn = SoftmaxCrossEntropy()
    lr = args.lr or (0.01 if args.model == "cnn" else 0.1)  # 0.1 makes the CNN diverge
    optimizer = SGD(model, lr=lr, momentum=args.momentum, nesterov=args.nesterov,
                    weight_decay=args.weight_decay)
    plain_lines = (lambda logs: print(format_metrics(logs), flush=True)) if args.no_progress else None
    started = time.perf_counter()
    try:
        history = fit(model, loss_fn, optimizer, X, y, epochs=epochs, batch_size=args.batch_size,
                      validation=(X_val, y_val), seed=args.seed, progress=not args.no_progress,
                      on_epoch_end=plain_lines, checkpoint=args.checkpoint, resume=args.resume)
    except KeyboardInterrupt:
        print(f"\n{interrupted_message(args.checkpoint)}", file=sys.stderr)
        return 130
    except (FloatingPointError, ValueError, OSError) as err:  # a diverging run, a bad checkpoint
        print(f"python -m handprop.train: error: {err}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    train_scores = evaluate(model, loss_fn, X, y)
    print(f"val_accuracy={history['val_accuracy'][-1]:.3f} val_loss={history['val_loss'][-1]:.3f} "
          f"train_accuracy={train_scores['accuracy']:.3f} train_loss={train_scores['loss']:.3f} "
          f"epochs={len(history['epoch'])} seconds={seconds:.1f}")
    return 0


def interrupted_message(checkpoint: str | None) -> str:
    """What Ctrl-C leaves behind: the last completed epoch's checkpoint, if there is one."""
    if checkpoint is None:
        return "interrupted; nothing was saved (--checkpoint PATH keeps each finished epoch)"
    try:
        epoch = read_extra(checkpoint)["fit"]["epoch"]
    except (OSError, ValueError, KeyError):
        return f"interrupted before the first epoch finished; no checkpoint at {checkpoint}"
    return (f"interrupted; {checkpoint} keeps epoch {epoch}: add --resume to continue from it")


if __name__ == "__main__":
    sys.exit(main())

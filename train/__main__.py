"""python -m train: train an MLP from the command line and print a greppable summary line."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from layers import BatchNorm1d, Linear, ReLU, Sequential, Tanh
from losses import SoftmaxCrossEntropy

from .data import spiral
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


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def non_negative(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def widths(text):
    try:
        sizes = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 100,100, got {text!r}")
    if any(w < 1 for w in sizes):
        raise argparse.ArgumentTypeError(f"expected widths >= 1, got {text!r}")
    return sizes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=(
        "Train an MLP (Linear, BatchNorm1d, activation per hidden layer) with SGD and print "
        "a summary line of key=value pairs."))
    p.add_argument("--hidden", type=widths, default=[100, 100], help="hidden widths (default 100,100)")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    p.add_argument("--no-batchnorm", action="store_true", help="leave out BatchNorm1d")
    p.add_argument("--epochs", type=positive(int), default=30)
    p.add_argument("--batch-size", type=positive(int), default=64)
    p.add_argument("--lr", type=positive(float), default=0.1)
    p.add_argument("--momentum", type=non_negative, default=0.9)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=non_negative, default=0.0)
    p.add_argument("--seed", type=int, default=0, help="seeds the data, the weights and the shuffling")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--no-progress", action="store_true", help="no progress bars; one plain line per epoch")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.nesterov and args.momentum == 0:
        parser().error("--nesterov needs --momentum > 0")
    dtype = np.dtype(args.dtype)
    X, y = spiral(1000, 3, noise=0.2, seed=args.seed, dtype=dtype)
    X_val, y_val = spiral(300, 3, noise=0.2, seed=args.seed + 1, dtype=dtype)
    n_classes = int(y.max()) + 1
    model = build_mlp(X.shape[1], args.hidden, n_classes, activation=args.activation,
                      batchnorm=not args.no_batchnorm, seed=args.seed, dtype=dtype)
    print(model, flush=True)
    loss_fn = SoftmaxCrossEntropy()
    optimizer = SGD(model, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
                    weight_decay=args.weight_decay)
    started = time.perf_counter()
    history = fit(model, loss_fn, optimizer, X, y, epochs=args.epochs, batch_size=args.batch_size,
                  validation=(X_val, y_val), seed=args.seed, progress=not args.no_progress,
                  on_epoch_end=(lambda logs: print(format_metrics(logs), flush=True))
                  if args.no_progress else None)
    seconds = time.perf_counter() - started
    train_scores = evaluate(model, loss_fn, X, y)
    print(f"val_accuracy={history['val_accuracy'][-1]:.3f} val_loss={history['val_loss'][-1]:.3f} "
          f"train_accuracy={train_scores['accuracy']:.3f} train_loss={train_scores['loss']:.3f} "
          f"epochs={len(history['epoch'])} seconds={seconds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line's language models: ``--model lstm`` (``rnn``, ``gru``) on ``--dataset names``.

What the registry's entries need beyond a classifier's: the builder of ``char_lm``, the loader
of makemore's names (a vocabulary and a test split beside the training and validation data),
the vocabulary a checkpoint records (so that ``python -m handprop.train.sample`` can decode),
and the loss per character that the summary line reports.
"""
from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from ..layers import Layer, char_lm
from ..layers.models import RECURRENT
from ..losses import SoftmaxCrossEntropy
from .checkpoint import read_extra
from .data import default_data_dir, download
from .data.batches import batch_bounds
from .data.text import IGNORE_INDEX, Vocabulary, load_names


class TextSet(NamedTuple):
    """A text data set as the command trains on it: (X, y, X_val, y_val) like every data set
    (ids and next-id targets, (N, T) each), then the test split and the vocabulary."""

    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    vocab: Vocabulary


def char_lm_builder(cell: str) -> Callable[[argparse.Namespace, tuple[int, ...], int], Layer]:
    """The registry's builder of ``char_lm`` with ``cell``: ``n_classes`` is the vocabulary's size."""
    def build(args: argparse.Namespace, shape: tuple[int, ...], n_classes: int) -> Layer:
        return char_lm(n_classes, cell=cell, embedding_dim=args.embedding_dim,
                       hidden_size=args.hidden_size, seed=args.seed, dtype=np.dtype(args.dtype))
    return build


def char_lm_size(cell: str) -> Callable[[argparse.Namespace, tuple[int, ...], int], tuple[int, int]]:
    """The registry's size estimate of ``char_lm`` with ``cell`` on samples of T ids: the
    table, the recurrent layer's G gate blocks and the output Linear; per sample and position,
    the embedding, about 2G + 4 numbers per hidden unit (pre-activations, gates, states) and
    the logits with their softmax."""
    def size(args: argparse.Namespace, shape: tuple[int, ...], n_classes: int) -> tuple[int, int]:
        E, H, V, G = args.embedding_dim, args.hidden_size, n_classes, RECURRENT[cell].gates
        parameters = V * E + G * H * (E + H + 2) + H * V + V
        return parameters, shape[0] * (E + (2 * G + 4) * H + 2 * V)
    return size


def load_names_set(args: argparse.Namespace, dtype: np.dtype, images: bool) -> TextSet:
    """``names.txt`` from --data-dir (fetched first with --download), split 80/10/10 by --seed."""
    directory = args.data_dir or default_data_dir(args.dataset)
    if args.download:
        download(args.dataset, directory, base_url=args.base_url, progress=not args.no_progress)
    data = load_names(directory, seed=args.seed)
    return TextSet(*data.train, *data.val, *data.test, data.vocab)


def check_vocabulary(path: str, vocab: Vocabulary) -> None:
    """A resumed checkpoint's recorded vocabulary is the data's: a ValueError otherwise."""
    saved = read_extra(path).get("cli", {}).get("vocab")
    if saved is not None and Vocabulary.from_dict(saved, who=path) != vocab:
        raise ValueError(f"--resume: {path} was trained on {Vocabulary.from_dict(saved)!r}, "
                         f"but the data now give {vocab!r}; resume on the same data, or start "
                         f"a new run with --overwrite")


def loss_per_token(model: Layer, X: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    """The mean cross-entropy over every target position that is not padding (``-100``),
    in eval mode: the loss per character, each character counting once whatever its name's
    length (``fit``'s figures weigh each name's mean alike)."""
    loss_fn = SoftmaxCrossEntropy(reduction="sum")
    was_training = model.training
    model.eval()
    try:
        total = sum(loss_fn.forward(model.forward(X[start:stop]), y[start:stop])
                    for start, stop in batch_bounds(len(X), batch_size))
    finally:
        model.train(was_training)
    return float(total) / max(int(np.count_nonzero(y != IGNORE_INDEX)), 1)


def blas_threads(count: int | None) -> contextlib.AbstractContextManager:
    """Within the block, BLAS uses ``count`` threads (threadpoolctl); None leaves it be."""
    return contextlib.nullcontext() if count is None else \
        threadpool_limits(limits=count, user_api="blas")


def text_summary(model: Layer, data: TextSet, epochs: int, seconds: float,
                 threads: int | None = None) -> str:
    """The summary line of a language model: losses per character, test first."""
    losses = {split: loss_per_token(model, X, y) for split, X, y in (
        ("test", data.X_test, data.y_test), ("val", data.X_val, data.y_val), ("train", data.X, data.y))}
    return (" ".join(f"{split}_loss={value:.3f}" for split, value in losses.items())
            + f" epochs={epochs} seconds={seconds:.1f}"
            + (f" blas_threads={threads}" if threads else ""))

"""python -m handprop.train.sample: new text from a character-level language model's checkpoint.

Any model that maps token ids (N, T) to logits (N, T, V) samples: the character LSTM, RNN and
GRU of ``python -m handprop.train --dataset names``, and a model with a ``block_size`` (a GPT),
whose context is cropped to its last ``block_size`` ids. Each step feeds the context so far,
takes the last position's logits, divides them by the temperature, keeps the ``top_k``
largest, and draws the next id from their softmax.

Each sample draws from its own generator, spawned from ``seed``: the same seed gives the same
samples, and sample i does not depend on how many others are drawn beside it.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence

import numpy as np

from ..layers import Layer, validate
from .checkpoint import load, read_extra
from .cli import bounded, closed_pipe, non_negative_int, positive_float, positive_int
from .cli import parser as train_parser
from .cli_checkpoints import flag_text
from .cli_registry import MODELS
from .cli_text import blas_threads
from .data.text import Vocabulary

PROG = "python -m handprop.train.sample"


def sample(model, vocab: Vocabulary, *, num: int = 10, length: int = 100, start: str = "",
           temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
           block_size: int | None = None) -> list[str]:
    """``num`` independent samples, each ``start`` followed by at most ``length`` characters.

    Parameters
    ----------
    model : Layer
        Takes ids (N, T) and returns logits (N, T, len(vocab)); run in eval mode (and put back
        in the mode it was in).
    vocab : Vocabulary
        The model's vocabulary. With a start/end token (a names model), every sample begins
        with it (unprinted) and stops where the model draws it; without one, an empty
        ``start`` begins from a newline if the vocabulary has one, else from its first
        character, also unprinted.
    num : int
        How many samples.
    length : int
        The most characters generated per sample, after ``start``.
    start : str
        Text the samples continue; only the vocabulary's characters.
    temperature : float
        > 0; below 1 sharper, above 1 flatter than the model's distribution.
    top_k : int, optional
        Draw only among the ``top_k`` most likely ids (all of them when larger than the
        vocabulary).
    seed : int
        Seeds each sample's generator.
    block_size : int, optional
        The longest context the model takes; defaults to ``model.block_size`` where the model
        has one (a GPT), else the whole context.

    Returns
    -------
    list of str, ``start`` + the generated characters (the end token left out).
    """
    num = validate.integer("sample", "num", num, low=1)
    length = validate.integer("sample", "length", length, low=1)
    temperature = validate.real("sample", "temperature", temperature, low=0, low_open=True)
    if top_k is not None:
        top_k = validate.integer("sample", "top_k", top_k, low=1)
    seed = validate.integer("sample", "seed", seed, low=0)
    block_size = block_size if block_size is not None else getattr(model, "block_size", None)
    if block_size is not None:
        block_size = validate.integer("sample", "block_size", block_size, low=1)
    context = np.tile(first_ids(vocab, start), (num, 1))      # (num, T0)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(num)]
    was_training = model.training
    model.eval()
    try:
        drawn = generate(model, vocab, context, length, temperature, top_k, rngs, block_size)
    finally:
        model.train(was_training)
    return [start + vocab.decode(row) for row in drawn]


def first_ids(vocab: Vocabulary, start: str) -> np.ndarray:
    """The ids a sample begins from: the start/end token (if any) and ``start``'s ids; for a
    vocabulary without that token and an empty ``start``, a newline (or the first token)."""
    ids = vocab.encode(start)
    if vocab.boundary is not None and vocab.boundary in start:
        raise ValueError(f"sample: start {start!r} holds the start/end token {vocab.boundary!r}")
    if vocab.boundary_id is not None:
        return np.concatenate([[vocab.boundary_id], ids]).astype(np.int64)
    if len(ids):
        return ids
    return np.array([vocab.index.get("\n", 0)], dtype=np.int64)


def generate(model, vocab: Vocabulary, context: np.ndarray, length: int, temperature: float,
             top_k: int | None, rngs: list[np.random.Generator],
             block_size: int | None) -> list[np.ndarray]:
    """Up to ``length`` new ids per row of ``context``; a row stops at the end token."""
    num, V = len(context), len(vocab)
    end = vocab.boundary_id
    done = np.zeros(num, dtype=bool)
    new = np.empty((num, 0), dtype=np.int64)
    for _ in range(length):
        window = context if block_size is None else context[:, -block_size:]
        logits = model.forward(window)
        if not (isinstance(logits, np.ndarray) and logits.shape == window.shape + (V,)):
            raise ValueError(f"sample: expected {model!r} to map ids {window.shape} to logits "
                             f"{window.shape + (V,)} for a vocabulary of {V}, got "
                             f"{getattr(logits, 'shape', type(logits).__name__)}")
        probs = next_distribution(logits[:, -1], temperature, top_k)   # (num, V)
        ids = np.array([draw(p, rng) for p, rng in zip(probs, rngs)], dtype=np.int64)
        ids[done] = end if end is not None else 0                      # finished rows idle
        context = np.concatenate([context, ids[:, None]], axis=1)
        new = np.concatenate([new, ids[:, None]], axis=1)
        if end is not None:
            done |= ids == end
            if done.all():
                break
    if end is None:
        return list(new)
    return [row[:np.argmax(row == end)] if (row == end).any() else row for row in new]


def next_distribution(logits: np.ndarray, temperature: float, top_k: int | None) -> np.ndarray:
    """Probabilities (N, V) from the last position's logits (N, V): scaled by 1/temperature,
    all but the ``top_k`` largest set to -inf, then a softmax (in float64).

    >>> next_distribution(np.array([[0.0, 1.0, 3.0]]), 1.0, 1).tolist()
    [[0.0, 0.0, 1.0]]
    """
    scaled = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < scaled.shape[1]:
        kth = np.partition(scaled, -top_k, axis=1)[:, -top_k, None]   # the k-th largest
        scaled = np.where(scaled < kth, -np.inf, scaled)
    scaled -= scaled.max(axis=1, keepdims=True)
    probs = np.exp(scaled)
    return probs / probs.sum(axis=1, keepdims=True)


def draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    """One id drawn from ``probs`` (V,) with one uniform number of ``rng``."""
    cumulative = np.cumsum(probs)
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"),
                   len(probs) - 1))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=(
        "Print new text from the checkpoint of a character-level language model trained with "
        "python -m handprop.train (one sample per line)."))
    p.add_argument("--checkpoint", metavar="PATH", required=True,
                   help="a checkpoint written by python -m handprop.train --checkpoint PATH")
    p.add_argument("--num", type=bounded(int, 0, False, 10**5), default=10, metavar="N",
                   help="independent samples (default 10)")
    p.add_argument("--length", type=bounded(int, 0, False, 10**6), metavar="L", help="the most "
                   "characters per sample after --start (default 30 for a names model, which "
                   "stops at its end token; 500 for running text)")
    p.add_argument("--start", default="", metavar="TEXT",
                   help="text each sample continues (default: none)")
    p.add_argument("--temperature", type=positive_float, default=1.0, metavar="T",
                   help="divides the logits: below 1 sharper, above 1 flatter (default 1)")
    p.add_argument("--top-k", type=positive_int, metavar="K",
                   help="draw only among the K most likely characters (default: all)")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="S",
                   help="the same seed prints the same samples (default 0)")
    return p


def load_model(path: str | os.PathLike) -> tuple[Layer, Vocabulary]:
    """The language model a checkpoint of ``python -m handprop.train`` holds, rebuilt from the
    settings it recorded (the registry's builder, its sizes, its vocabulary) and loaded; a
    ValueError naming the file for anything that is not such a checkpoint."""
    saved = read_extra(path).get("cli")
    if not isinstance(saved, dict) or "vocab" not in saved:
        raise ValueError(f"{path}: not a language model's checkpoint (it records no vocabulary; "
                         f"train one with python -m handprop.train --dataset names "
                         f"--model lstm --checkpoint PATH)")
    vocab = Vocabulary.from_dict(saved["vocab"], who=f"{path}: its recorded vocabulary")
    parser = train_parser()
    settings = {action.dest for action in parser._actions} & saved.keys()  # the command's flags
    flags = [f"--{key.replace('_', '-')}={flag_text(saved[key])}" for key in sorted(settings)
             if not isinstance(saved[key], bool)]
    refusal = io.StringIO()
    try:
        with contextlib.redirect_stderr(refusal):
            args = parser.parse_args(flags)
    except SystemExit:
        reason = refusal.getvalue().strip().splitlines()[-1].split("error: ", 1)[-1]
        raise ValueError(f"{path}: records settings python -m handprop.train refuses: {reason}") from None
    if not MODELS[args.model].ids:
        raise ValueError(f"{path}: a checkpoint of --model {args.model}, not of a language model")
    shape = (getattr(args, "block_size", None) or 1,)   # one sample: a window of ids
    parameters, _ = MODELS[args.model].size(args, shape, len(vocab))
    size = parameters * np.dtype(args.dtype).itemsize
    if size > os.stat(path).st_size:  # built before loading: never allocate what the file cannot hold
        raise ValueError(f"{path}: its settings describe {size} bytes of weights, more than the "
                         f"file holds; not a checkpoint this command wrote")
    model = MODELS[args.model].build(args, shape, len(vocab))
    load(path, model)
    return model, vocab


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    try:
        return run(cli, args)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head -3`: the reader has gone
        return closed_pipe()


def run(cli: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Load the checkpoint's model, check --start against its vocabulary, print the samples."""
    try:
        model, vocab = load_model(args.checkpoint)
    except FileNotFoundError:
        print(f"{PROG}: error: --checkpoint {args.checkpoint}: no such file", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:   # missing, unreadable, not a language model's
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    unknown = sorted({c for c in args.start if c not in vocab.index or c == vocab.boundary})
    if unknown:
        cli.error(f"--start {args.start!r}: {', '.join(map(repr, unknown))} not in the model's "
                  f"vocabulary {''.join(t for t in vocab.tokens if t != vocab.boundary)!r}")
    length = args.length or (30 if vocab.boundary is not None else 500)
    try:
        with blas_threads(1):  # products of one small batch: a second thread only waits
            texts = sample(model, vocab, num=args.num, length=length, start=args.start,
                           temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    except ValueError as err:   # a model whose logits do not fit its vocabulary
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    print("\n".join(texts) if vocab.boundary is not None else "\n\n".join(texts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

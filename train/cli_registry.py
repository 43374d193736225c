"""The command line's registries: ``MODELS`` (``--model NAME``) and ``DATASETS``
(``--dataset NAME``).

A new model is one entry of ``MODELS``: a builder taking the parsed flags, the shape of one
sample and the number of classes, with its own defaults and the flags it refuses. A new data
set is one entry of ``DATASETS``: a loader returning (X, y, X_val, y_val), with its default
number of epochs and, where known, its number of classes. A language model (``ids``) trains
on a text set (``text``), whose loader also returns the test split and the vocabulary
(``cli_text``).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ..layers import Layer, cnn, mlp
from .cli_iterations import build_gpt, gpt_size, not_by_epochs
from .cli_text import char_lm_builder, char_lm_size, load_names_set
from .data import DATASETS as DOWNLOADS
from .data import default_data_dir, download, load_mnist, moons, spiral

DEFAULT_HIDDEN = [100, 100]
COMMAND_DEFAULTS = {"optimizer": "sgd", "schedule": "none", "batch_size": 64}  # a model's own go first
LANGUAGE_MODEL_SIZES = (64, 128)  # the defaults of --embedding-dim and --hidden-size
CNN_CHANNELS = (16, 32)   # the cnn's blocks' output channels


# The most memory a model the command builds may take, estimated before anything is built:
# its parameters four times over (weights, gradients, two optimizer states) plus what one batch
# keeps for the backward pass (a batch of at least 1024, evaluate's).
MAX_MODEL_BYTES = 1 << 32
EVALUATION_BATCH = 1024


@dataclass(frozen=True)
class Model:
    """One ``--model``: ``build(args, sample_shape, n_classes)`` returns the model for the parsed
    flags and the shape of one sample; ``size(args, sample_shape, n_classes)`` estimates it
    before it is built, as (parameters, numbers one sample keeps for backward); ``lr`` holds
    its own default learning rate per optimizer where the optimizer's default does not suit
    it; ``defaults`` its own defaults of other flags (``optimizer``, ``schedule``,
    ``batch_size``) where the command's do not suit it; ``refuses`` the flags it has no use
    for, as (flag text, given(args)) pairs, and ``why``
    says why."""
    build: Callable[[argparse.Namespace, tuple[int, ...], int], Layer]
    size: Callable[[argparse.Namespace, tuple[int, ...], int], tuple[int, int]]
    help: str
    images: bool = False   # takes (N, C, H, W) images rather than flat vectors
    ids: bool = False      # a language model: takes token ids (N, T), needs a text set
    lr: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    defaults: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    blas_threads: int | None = None  # the BLAS threads it trains with (None: the environment's)
    refuses: tuple[tuple[str, Callable[[argparse.Namespace], bool]], ...] = ()
    why: str = ""


@dataclass(frozen=True)
class Dataset:
    """One ``--dataset``: ``load(args, dtype, images)`` returns (X, y, X_val, y_val), images as
    (N, C, H, W) when ``images`` asks for them; ``epochs`` is the default of ``--epochs``;
    ``files`` says that it is read from ``--data-dir`` and fetched by ``--download``."""
    load: Callable[[argparse.Namespace, np.dtype, bool], tuple]  # of arrays; a TextSet also has the vocabulary
    help: str
    epochs: int
    images: bool = False
    files: bool = False
    classes: int | None = None   # None: one more than the largest label
    text: bool = False           # token ids for a language model; load returns a cli_text.TextSet


def build_mlp(args: argparse.Namespace, shape: tuple[int, ...], n_classes: int) -> Layer:
    return mlp(shape[0], args.hidden, n_classes, activation=args.activation,
               norm=None if args.norm == "none" else args.norm, dropout=args.dropout,
               seed=args.seed, dtype=np.dtype(args.dtype))


def build_cnn(args: argparse.Namespace, shape: tuple[int, ...], n_classes: int) -> Layer:
    return cnn(shape, n_classes, CNN_CHANNELS, activation=args.activation,
               batchnorm=args.norm != "none", seed=args.seed, dtype=np.dtype(args.dtype))


def mlp_size(args: argparse.Namespace, shape: tuple[int, ...], n_classes: int) -> tuple[int, int]:
    """Weights, bias and norm parameters of each Linear (at most three per output); per
    sample, the input, five numbers per hidden unit (Linear, norm, its normalized input,
    activation, dropout mask) and the logits."""
    widths = [shape[0], *args.hidden, n_classes]
    parameters = sum(a * b + 3 * b for a, b in zip(widths, widths[1:]))
    return parameters, shape[0] + 5 * sum(args.hidden) + n_classes


def cnn_size(args: argparse.Namespace, shape: tuple[int, ...], n_classes: int) -> tuple[int, int]:
    """Per block: 3x3 kernels and norm parameters; per sample, the convolution's unfolded
    input (9 numbers per input pixel and channel), four maps of its output (convolution, norm,
    its normalized input, activation) and the pooled map."""
    c, h, w = shape
    parameters = kept = 0
    for width in CNN_CHANNELS:
        parameters += 9 * c * width + 2 * width
        kept += 9 * c * h * w + 4 * width * h * w + width * (h // 2) * (w // 2)
        c, h, w = width, h // 2, w // 2
    return parameters + c * h * w * n_classes + n_classes, kept + n_classes


def estimated_bytes(args: argparse.Namespace, shape: tuple[int, ...], n_classes: int) -> tuple[int, int, int]:
    """(parameters, bytes of the parameters with their gradients and two optimizer states,
    bytes one batch keeps for backward) of the model the flags ask for on samples of ``shape``."""
    parameters, per_sample = MODELS[args.model].size(args, shape, n_classes)
    itemsize = np.dtype(args.dtype).itemsize
    return (parameters, 4 * parameters * itemsize,
            max(args.batch_size, EVALUATION_BATCH) * per_sample * itemsize)


def over_budget(args: argparse.Namespace, shape: tuple[int, ...], n_classes: int) -> str | None:
    """Why the model the flags ask for would take more than ``MAX_MODEL_BYTES`` (None if not)."""
    parameters, weights, batch = estimated_bytes(args, shape, n_classes)
    if weights + batch <= MAX_MODEL_BYTES:
        return None
    gib = 1 << 30
    ask = ("fewer or narrower --hidden layers, or samples of fewer values" if args.model == "mlp"
           else "a smaller --embedding-dim or --hidden-size" if MODELS[args.model].ids
           else "smaller images")
    ask += " or a smaller --batch-size" if args.batch_size > EVALUATION_BATCH else ""
    return (f"--model {args.model} on samples of shape {shape} ({args.dtype}) would have "
            f"{parameters:,} parameters, {weights / gib:.1f} GiB with their gradients and "
            f"optimizer state, and keep {batch / gib:.1f} GiB per batch of "
            f"{max(args.batch_size, EVALUATION_BATCH)}: more than the {MAX_MODEL_BYTES // gib} GiB "
            f"a model may take (at most {MAX_MODEL_BYTES // (4 * np.dtype(args.dtype).itemsize):,} "
            f"{args.dtype} parameters); use {ask}")


MODELS: dict[str, Model] = {
    "mlp": Model(build_mlp, mlp_size, "Linear, norm, activation, dropout per hidden layer (default)"),
    "cnn": Model(build_cnn, cnn_size, "two Conv2d-BatchNorm2d-activation-MaxPool2d blocks (16, 32 channels), "
                 "then Linear; needs images (--dataset mnist or fashion-mnist)", images=True,
                 # 0.1 makes the CNN diverge with SGD, as it does in PyTorch
                 lr=MappingProxyType({"sgd": 0.01}),
                 refuses=(("--norm layer", lambda a: a.norm == "layer"),
                          ("--dropout", lambda a: a.dropout > 0),
                          ("--hidden", lambda a: a.hidden != DEFAULT_HIDDEN)),
                 why="the cnn has BatchNorm2d (or none, with --norm none) and fixed widths"),
    **{cell: Model(char_lm_builder(cell), char_lm_size(cell), f"a character-level language model: Embedding, "
                   f"{cell.upper()}, Linear; needs text (--dataset names)", ids=True,
                   lr=MappingProxyType({"adam": 2e-3, "adamw": 2e-3}),
                   defaults=MappingProxyType({"optimizer": "adam", "schedule": "cosine",
                                              "batch_size": 32}),
                   refuses=(("--norm", lambda a: a.norm != "batch"),
                            ("--dropout", lambda a: a.dropout > 0),
                            ("--hidden", lambda a: a.hidden != DEFAULT_HIDDEN),
                            ("--activation", lambda a: a.activation != "relu")),
                   why="a language model's sizes are --embedding-dim and --hidden-size",
                   # its products are small ((32, 128) @ (128, 512) a step): a second thread
                   # only waits on hand-offs, 9x slower per step on a busy two-core machine
                   blas_threads=1)
       for cell in ("lstm", "rnn", "gru")},
    "gpt": Model(build_gpt, gpt_size, "nanoGPT's character-level GPT, trained by iterations on --dataset "
                 "shakespeare (cli_iterations)", ids=True),
}


def load_spiral(args: argparse.Namespace, dtype: np.dtype, images: bool) -> tuple[np.ndarray, ...]:
    return (*spiral(1000, 3, noise=0.2, seed=args.seed, dtype=dtype),
            *spiral(300, 3, noise=0.2, seed=args.seed + 1, dtype=dtype))


def load_moons(args: argparse.Namespace, dtype: np.dtype, images: bool) -> tuple[np.ndarray, ...]:
    return (*moons(1000, noise=0.2, seed=args.seed, dtype=dtype),
            *moons(300, noise=0.2, seed=args.seed + 1, dtype=dtype))


def load_idx_files(args: argparse.Namespace, dtype: np.dtype, images: bool) -> tuple[np.ndarray, ...]:
    """MNIST-format files from --data-dir (fetched first with --download); the test split
    validates."""
    directory = args.data_dir or default_data_dir(args.dataset)
    if args.download:
        download(args.dataset, directory, base_url=args.base_url, progress=not args.no_progress)
    X, y, X_val, y_val = load_mnist(directory, flatten=not images)
    return X.astype(dtype, copy=False), y, X_val.astype(dtype, copy=False), y_val


DATASETS: dict[str, Dataset] = {
    "spiral": Dataset(load_spiral, "3 spiral arms, 1000 points each (made on the fly; default)", 30),
    "moons": Dataset(load_moons, "2 half-moons, 1000 points (made on the fly)", 30),
    **{name: Dataset(load_idx_files, f"{name}'s MNIST-format files", 10, images=True, files=True,
                     classes=DOWNLOADS[name]["classes"]) for name in ("mnist", "fashion-mnist")},
    "names": Dataset(load_names_set, "makemore's 32,033 names, one sequence per name, split "
                     "80/10/10 (for --model lstm, rnn or gru)", 4, files=True, text=True),
    "shakespeare": Dataset(not_by_epochs, "tiny Shakespeare's input.txt as random windows, the first "
                           "nine tenths for training (for --model gpt, cli_iterations)", 1,
                           files=True, text=True),
}
IMAGE_SETS = " or ".join(name for name, entry in DATASETS.items() if entry.images)
FILE_SETS = " or ".join(name for name, entry in DATASETS.items() if entry.files)


def listed(registry: Mapping[str, Model] | Mapping[str, Dataset]) -> str:
    """Each entry's name and help, for the flag's own help."""
    return "; ".join(f"{name}: {entry.help}" for name, entry in registry.items())


def fill_model_defaults(args: argparse.Namespace) -> None:
    """The model's own defaults (a language model's Adam, cosine schedule and batch size), then
    the command's, for the flags left out and not taken from a resumed checkpoint."""
    for key, value in {**COMMAND_DEFAULTS, **MODELS[args.model].defaults}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def language_model_mismatch(args: argparse.Namespace) -> str | None:
    """Why the flags pair a language model with data that is not text, or the other way round,
    or give a language model's sizes to another model (None if they do not)."""
    model, dataset = MODELS[args.model], DATASETS[args.dataset]
    language_models = " or ".join(name for name, entry in MODELS.items() if entry.ids)
    if model.ids and not dataset.text:
        texts = " or ".join(name for name, entry in DATASETS.items() if entry.text)
        return f"--model {args.model} needs text: add --dataset {texts}"
    if dataset.text and not model.ids:
        return f"--dataset {args.dataset} is text, for a language model: --model {language_models}"
    if not model.ids and (args.embedding_dim, args.hidden_size) != LANGUAGE_MODEL_SIZES:
        return f"--embedding-dim and --hidden-size go with a language model: --model {language_models}"
    return None

"""mlp, cnn and char_lm: the networks that the CLI, the benchmarks, the tests and the gradcheck
registry all build, in one place."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .base import Layer, check_size, float_dtype
from .batchnorm import BatchNorm1d
from .batchnorm2d import BatchNorm2d
from .conv import Conv2d
from .dropout import Dropout
from .embedding import Embedding
from .flatten import Flatten
from .gelu import GELU
from .gru import GRU
from .layernorm import LayerNorm
from .leaky_relu import LeakyReLU
from .linear import Linear
from .lstm import LSTM
from .pool import MaxPool2d
from .recurrent import Recurrent
from .relu import ReLU
from .rnn import RNN
from .sequential import Sequential
from .sigmoid import Sigmoid
from .tanh import Tanh
from .validate import choice, flag, integer, parameter_budget, real

ACTIVATIONS: dict[str, type[Layer]] = {"relu": ReLU, "tanh": Tanh, "gelu": GELU,
                                       "leaky_relu": LeakyReLU, "sigmoid": Sigmoid}
NORMS: dict[str | None, Callable[..., Layer] | None] = {"batch": BatchNorm1d, "layer": LayerNorm, None: None}


def mlp(n_inputs: int, hidden: list[int], n_outputs: int, *, activation: str = "relu",
        norm: str | None = "batch", dropout: float = 0.0, seed: int = 0,
        dtype=np.float32) -> Sequential:
    """Linear -> [norm] -> activation -> [Dropout] for each hidden width, then a Linear out.

    ``norm`` is ``"batch"`` (BatchNorm1d), ``"layer"`` (LayerNorm) or None. With BatchNorm
    the hidden Linears have no bias: BatchNorm subtracts each feature's batch mean, bias
    included, and its beta takes the bias's place. LayerNorm subtracts each sample's mean over
    the features instead, which leaves a bias's pattern across features in place, so there
    the Linears keep theirs (without it, LayerNorm would make each sample's features blind to
    the scale of its input).

    Dropout layers are added when ``dropout > 0``. Hidden Linear i is seeded ``seed + i``, the
    output Linear ``seed + len(hidden)``; each Dropout gets its own generator, spawned from
    ``seed`` so that its masks are independent of the weights' draws and of the other
    Dropouts' masks.

    Examples
    --------
    >>> mlp(2, [8], 3, dropout=0.1)
    Sequential(Linear(2, 8, bias=False), BatchNorm1d(8), ReLU(), Dropout(p=0.1), Linear(8, 3))
    """
    n_inputs = check_size("mlp", "n_inputs", n_inputs)
    n_outputs = check_size("mlp", "n_outputs", n_outputs)
    hidden = [check_size("mlp", "each hidden width", h) for h in sizes("mlp", "hidden", hidden)]
    choice("mlp", "activation", activation, ACTIVATIONS)
    if not (norm is None or isinstance(norm, str)):
        raise TypeError(f"mlp: expected norm as one of 'batch', 'layer', None, got {norm!r}")
    choice("mlp", "norm", norm, NORMS)
    dropout = real("mlp", "dropout", dropout, low=0, high=1, high_open=True)
    dtype = float_dtype("mlp", dtype)
    seed = integer("mlp", "seed", seed, low=0)
    norm_layer = NORMS[norm]
    widths = [n_inputs, *hidden, n_outputs]
    parameter_budget("mlp", sum((a + 1) * b + 4 * b for a, b in zip(widths, widths[1:])), dtype)
    layers: list[Layer] = []
    mask_seeds = np.random.SeedSequence(seed).spawn(len(hidden))
    width = n_inputs
    for i, h in enumerate(hidden):
        layers.append(Linear(width, h, bias=norm != "batch", rng=seed + i, dtype=dtype))
        if norm_layer is not None:
            layers.append(norm_layer(h, dtype=dtype))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(Dropout(dropout, rng=np.random.default_rng(mask_seeds[i])))
        width = h
    layers.append(Linear(width, n_outputs, rng=seed + len(hidden), dtype=dtype))
    return Sequential(*layers)


def cnn(in_shape: Sequence[int] = (1, 28, 28), n_classes: int = 10,
        channels: Sequence[int] = (16, 32), *, activation: str = "relu", batchnorm: bool = True,
        seed: int = 0, dtype=np.float32) -> Sequential:
    """One block per entry of ``channels``, then a Linear to the classes.

    Each block is Conv2d(3x3, padding=1) -> [BatchNorm2d] -> activation -> MaxPool2d(2): the
    convolution keeps the height and width, the pooling halves them (rounding down). With the
    defaults this is the reference CNN of ``bench/cnn.py`` on (N, 1, 28, 28) images::

        Conv2d(1, 16, 3, padding=1) -> BatchNorm2d(16) -> ReLU -> MaxPool2d(2)   # (N, 16, 14, 14)
        Conv2d(16, 32, 3, padding=1) -> BatchNorm2d(32) -> ReLU -> MaxPool2d(2)  # (N, 32, 7, 7)
        Flatten -> Linear(32 * 7 * 7, 10)                                        # (N, 10)

    except that with ``batchnorm`` the convolutions have no bias: BatchNorm2d subtracts each
    channel's mean, so a bias before it has no effect and its beta takes the bias's place.

    Parameters
    ----------
    in_shape : (C, H, W) of one input image.
    n_classes : outputs of the last Linear.
    channels : output channels of each block's convolution.
    activation : a key of ``ACTIVATIONS`` ("relu", "tanh", "gelu", "leaky_relu", "sigmoid").
    batchnorm : put a BatchNorm2d after each convolution.
    seed : the i-th weighted layer draws its initial weights from seed + i.
    dtype : float dtype of every parameter.
    """
    who = "cnn"
    if isinstance(in_shape, (str, bytes)) or not isinstance(in_shape, Sequence):
        raise TypeError(f"{who}: expected in_shape as (channels, height, width), got {in_shape!r}")
    if len(in_shape) != 3:
        raise ValueError(f"{who}: expected in_shape as (channels, height, width), got {in_shape!r}")
    c, h, w = (check_size(who, f"in_shape[{i}]", v) for i, v in enumerate(in_shape))
    n_classes = check_size(who, "n_classes", n_classes)
    widths = [check_size(who, f"channels[{i}]", v) for i, v in enumerate(sizes(who, "channels", channels))]
    choice(who, "activation", activation, ACTIVATIONS)
    flag(who, "batchnorm", batchnorm)
    dtype = float_dtype(who, dtype)
    seed = integer(who, "seed", seed, low=0)
    if h >> len(widths) == 0 or w >> len(widths) == 0:
        raise ValueError(f"{who}: {len(widths)} poolings by 2 leave nothing of a {h}x{w} input; "
                         f"expected height and width >= {2 ** len(widths)}")
    pixels = (h >> len(widths)) * (w >> len(widths))
    convs = sum((a * 9 + 5) * b for a, b in zip([c, *widths], widths))    # W, b, BatchNorm2d
    parameter_budget(who, convs + ([c, *widths][-1] * pixels + 1) * n_classes, dtype)
    layers: list[Layer] = []
    for i, width in enumerate(widths):
        layers.append(Conv2d(c, width, 3, padding=1, bias=not batchnorm, rng=seed + i, dtype=dtype))
        if batchnorm:
            layers.append(BatchNorm2d(width, dtype=dtype))
        layers += [ACTIVATIONS[activation](), MaxPool2d(2)]
        c, h, w = width, h // 2, w // 2
    layers += [Flatten(), Linear(c * h * w, n_classes, rng=seed + len(widths), dtype=dtype)]
    return Sequential(*layers)


def sizes(who: str, name: str, value: object) -> Sequence[object] | np.ndarray:
    """A sequence of widths (each checked by the caller), never a bare int or a string."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{who}: expected {name} as a list of ints, got {value!r}")
    return value


RECURRENT: dict[str, type[Recurrent]] = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def char_lm(vocab_size: int, *, cell: str = "lstm", embedding_dim: int = 64,
            hidden_size: int = 128, seed: int = 0, dtype=np.float32) -> Sequential:
    """A character-level language model: Embedding -> RNN, LSTM or GRU -> Linear.

    Token ids (N, T) become vectors (N, T, embedding_dim), the recurrent layer reads them left
    to right into hidden states (N, T, hidden_size), and a Linear scores the vocabulary at
    every position: logits (N, T, vocab_size), where position t predicts the id after
    ``ids[:, t]`` from ``ids[:, :t+1]`` alone (nothing later reaches it). Train it with
    ``SoftmaxCrossEntropy`` on targets (N, T), the ids shifted by one; sample from it with
    ``handprop.train.sample.sample``. Layer i draws its initial weights from ``seed + i``.

    ``cell`` is ``"lstm"`` (default), ``"rnn"`` (tanh) or ``"gru"``. With the defaults and 27
    characters this is the model makemore's names reach a test loss of about 2.0 with.

    Examples
    --------
    >>> model = char_lm(27)
    >>> model
    Sequential(Embedding(27, 64), LSTM(64, 128), Linear(128, 27))
    >>> model.takes_ids, model.forward(np.zeros((2, 5), dtype=np.int64)).shape
    (True, (2, 5, 27))
    """
    vocab_size = integer("char_lm", "vocab_size", vocab_size, low=1)
    embedding_dim = integer("char_lm", "embedding_dim", embedding_dim, low=1)
    hidden_size = integer("char_lm", "hidden_size", hidden_size, low=1)
    cell = choice("char_lm", "cell", cell, RECURRENT)
    dtype = float_dtype("char_lm", dtype)
    return Sequential(Embedding(vocab_size, embedding_dim, rng=seed, dtype=dtype),
                      RECURRENT[cell](embedding_dim, hidden_size, rng=seed + 1, dtype=dtype),
                      Linear(hidden_size, vocab_size, rng=seed + 2, dtype=dtype))

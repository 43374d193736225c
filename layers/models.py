"""mlp: the multilayer perceptron that the CLI, the benchmark, the tests and the gradcheck
registry all build, in one place."""
from __future__ import annotations

import numbers

import numpy as np

from .base import Layer, check_size, float_dtype
from .batchnorm import BatchNorm1d
from .dropout import Dropout
from .gelu import GELU
from .layernorm import LayerNorm
from .leaky_relu import LeakyReLU
from .linear import Linear
from .relu import ReLU
from .sequential import Sequential
from .sigmoid import Sigmoid
from .tanh import Tanh

ACTIVATIONS: dict[str, type[Layer]] = {"relu": ReLU, "tanh": Tanh, "gelu": GELU,
                                       "leaky_relu": LeakyReLU, "sigmoid": Sigmoid}
NORMS: dict[str | None, type[Layer] | None] = {"batch": BatchNorm1d, "layer": LayerNorm, None: None}


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
    hidden = [check_size("mlp", "each hidden width", h) for h in hidden]
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"mlp: expected activation in {', '.join(ACTIVATIONS)}, got {activation!r}")
    if not (norm is None or isinstance(norm, str)) or norm not in NORMS:
        raise ValueError(f"mlp: expected norm 'batch', 'layer' or None, got {norm!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"mlp: expected dropout in [0, 1), got {dropout!r}")
    dtype = float_dtype("mlp", dtype)
    norm_layer = NORMS[norm]
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

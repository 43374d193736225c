"""The registry of built-in gradient checks, by family, and its command line
(``python -m handprop.train.gradcheck``; see ``cli``).

The checker itself is ``handprop.layers.gradcheck``. A family is a function
``NAME_checks(seed: int = 0)`` returning (name, make) pairs, where ``make()`` returns the
arguments of one ``gradcheck`` call:

- ``dense``: Linear, the activations, Dropout, BatchNorm1d, LayerNorm, Residual, the MLP;
- ``convolution``: Conv2d, the pools, BatchNorm2d, Flatten, a small CNN;
- ``losses``: every loss and reduction (``PerElement`` checks reduction="none");
- ``sequence``: Embedding (its integer ids passed through unperturbed), RNN, LSTM, GRU;
- ``attention``: CausalSelfAttention, the position embedding, the block and a tiny GPT on ids.
"""
from __future__ import annotations

from .attention import attention_checks
from .common import Checks
from .convolution import convolution_checks
from .dense import dense_checks
from .losses import PerElement, loss_checks
from .sequence import sequence_checks

FAMILIES = [dense_checks, convolution_checks, loss_checks, sequence_checks, attention_checks]


def builtin_checks(seed: int = 0) -> Checks:
    """(name, make) pairs of every family; ``make()`` returns the arguments of one gradcheck
    call."""
    return [check for family in FAMILIES for check in family(seed)]


def main(argv: list[str] | None = None) -> int:
    """The command line; see ``handprop.train.gradcheck.cli``."""
    from .cli import main as cli_main
    return cli_main(argv)


__all__ = ["Checks", "FAMILIES", "PerElement", "attention_checks", "builtin_checks", "convolution_checks",
           "dense_checks", "loss_checks", "main", "sequence_checks"]

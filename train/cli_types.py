"""The command line's argparse types: each checks the text the user typed and quotes it back
in the usage error (exit 2) when it is off."""
from __future__ import annotations

import argparse
import math

from ..layers import validate

MAX_LAYERS = 64     # hidden widths; their size is held to MAX_MODEL_BYTES once the data's is known


def bounded(kind, minimum: float, inclusive: bool, maximum: float = math.inf):
    """An argparse type: a finite ``kind`` > minimum (>= with ``inclusive``), <= maximum.
    The checks are ``validate.real``'s; the messages quote the text the user typed."""
    def parse(text):
        value = kind(text)
        try:
            validate.real("flag", "value", value, low=minimum, low_open=not inclusive)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a finite number {'>=' if inclusive else '>'} {minimum}, got {text}") from None
        try:
            validate.real("flag", "value", value, high=maximum, finite=False)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected at most {maximum}, got {text}") from None
        return value
    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


positive_int, positive_float = bounded(int, 0, False), bounded(float, 0, False)
non_negative_int, non_negative_float = bounded(int, 0, True), bounded(float, 0, True)


def probability(text):
    """An argparse type: a dropout probability, 0 <= P < 1 (P = 1 would drop everything)."""
    value = float(text)  # not a number: argparse's "invalid probability value"
    try:
        return validate.real("--dropout", "P", value, low=0, high=1, high_open=True)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability 0 <= P < 1, got {text}") from None


def widths(text):
    """An argparse type: comma-separated hidden widths, each >= 1; none left empty."""
    pieces = [piece.strip() for piece in text.split(",")] if text.strip() else []
    if "" in pieces:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 100,100, got "
                                         f"{text!r}: width {pieces.index('') + 1} is empty")
    try:
        sizes = [int(w) for w in pieces]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 100,100, got {text!r}") from None
    if any(w < 1 for w in sizes):
        raise argparse.ArgumentTypeError(f"expected widths >= 1, got {text!r}")
    if len(sizes) > MAX_LAYERS:  # their size is held to MAX_MODEL_BYTES once the data's is known
        raise argparse.ArgumentTypeError(f"expected at most {MAX_LAYERS} widths, got {text!r}")
    return sizes

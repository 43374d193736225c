"""The registry's sequence family: Embedding (ids passed through unperturbed), RNN, LSTM, GRU.

Each entry is ``(name, make)``; ``make()`` returns the arguments of one gradcheck call: the
layer, then its inputs as a tuple (integer ids are not differentiated; the initial states are).
"""
from __future__ import annotations

import numpy as np

from ...layers import GRU, LSTM, RNN, Embedding
from .common import Checks, normal

f64 = np.float64


def sequence_checks(seed: int = 0) -> Checks:
    """(name, make) pairs for the embedding and the three recurrent layers, in float64."""

    def ids(shape, vocab, s, low=0):  # id 1 repeated on purpose: its gradients must add
        chosen = np.random.default_rng(seed + s).integers(low, vocab, shape)
        chosen.flat[:3] = 1
        return chosen

    def recurrent(cls, n, t, d, h, s, states=True, **options):
        layer = cls(d, h, rng=seed + s, dtype=f64, **options)
        initial = tuple(normal(seed + s + 1 + k, (n, h)) for k in range(len(cls.state_names)))
        return (layer, (normal(seed + s, (n, t, d)),) + (initial if states else ()))

    return [
        ("Embedding", lambda: (Embedding(7, 3, rng=seed, dtype=f64), (ids((2, 5), 7, 200),))),
        # the padding row's gradient is zero by definition (PyTorch's), not by calculus, so these
        # ids avoid it; tests/test_embedding.py checks padding itself against PyTorch
        ("Embedding padding_idx", lambda: (Embedding(6, 4, padding_idx=0, rng=seed, dtype=f64),
                                           (ids((3, 4), 6, 201, low=1),))),
        ("Embedding 3-d ids", lambda: (Embedding(5, 2, rng=seed, dtype=f64), (ids((2, 2, 3), 5, 202),))),
        ("RNN tanh", lambda: recurrent(RNN, 2, 4, 3, 5, 210)),
        ("RNN relu", lambda: recurrent(RNN, 3, 3, 4, 3, 213, nonlinearity="relu")),
        ("RNN no h0", lambda: recurrent(RNN, 2, 3, 3, 4, 216, states=False)),
        ("LSTM", lambda: recurrent(LSTM, 2, 4, 3, 3, 220)),
        ("LSTM no h0, c0", lambda: recurrent(LSTM, 3, 3, 2, 4, 224, states=False)),
        ("GRU", lambda: recurrent(GRU, 2, 4, 3, 3, 230)),
        ("GRU no h0", lambda: recurrent(GRU, 3, 3, 2, 4, 233, states=False)),
    ]

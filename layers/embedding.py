"""Embedding: a lookup table of vectors, one row per token id; its backward is a scatter-add.

Derivation: docs/derivations/recurrent.md#embedding.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import Layer, check_grad, check_not_empty, non_default
from .validate import float_dtype, generator, integer, parameter_budget


class Saved(NamedTuple):
    """What the forward pass keeps for backward."""

    ids: np.ndarray           # S, the integer ids looked up (any shape)


class Embedding(Layer):
    """A table ``W`` of ``num_embeddings`` vectors; ``out = W[ids]``.

    Shapes: ids S (integers in ``[0, num_embeddings)``, any shape), W (V, D), out S + (D,).
    Looking up row ``ids[s]`` is the product of a one-hot row with ``W``::

        out[s] = onehot(ids[s]) @ W          so   dW = sum over s of onehot(ids[s]).T @ dout[s]

    Each position ``s`` adds its upstream gradient ``dout[s]`` (D,) into row ``ids[s]`` of
    ``dW``: a scatter-add. An id that occurs twice adds twice, which is why the backward uses
    ``np.add.at`` and not ``dW[ids] += dout`` (fancy-index ``+=`` writes a repeated row once,
    losing all but one of its gradients); ``scatter_add`` is its fast form. The ids are integers: they have no gradient, and
    ``backward`` returns None.

    Row ``padding_idx`` (if given) starts at zero and gets no gradient, as in PyTorch, so it
    stays whatever it is: a padding token that contributes a fixed vector.

    Initialisation is PyTorch's: W drawn from N(0, 1).

    Parameters
    ----------
    num_embeddings : int
        V, the size of the vocabulary.
    embedding_dim : int
        D, the size of each vector.
    padding_idx : int, optional
        A row that gets no gradient; negative values count from the end, as in PyTorch.
    rng : int or numpy.random.Generator, optional
        Seed or generator for the initial table.
    dtype : numpy dtype
        Floating-point type of the table, outputs and gradients (float32 by default).

    Examples
    --------
    >>> emb = Embedding(5, 3, rng=0)
    >>> ids = np.array([[1, 4, 1]])
    >>> out = emb.forward(ids)
    >>> out.shape, out.dtype
    ((1, 3, 3), dtype('float32'))
    >>> emb.backward(np.ones_like(out)) is None      # ids have no gradient
    True
    >>> emb.grads["W"][:, 0]                         # id 1 occurred twice: its row got both
    array([0., 2., 0., 0., 1.], dtype=float32)
    """

    takes_ids = True

    def __init__(self, num_embeddings: int, embedding_dim: int, *, padding_idx: int | None = None,
                 rng: int | np.random.Generator | None = None, dtype=np.float32) -> None:
        super().__init__()
        self.num_embeddings = integer("Embedding", "num_embeddings", num_embeddings, low=1)
        self.embedding_dim = integer("Embedding", "embedding_dim", embedding_dim, low=1)
        self.padding_idx = None
        if padding_idx is not None:
            v = self.num_embeddings
            padding_idx = integer("Embedding", "padding_idx", padding_idx, low=-v, high=v - 1)
            self.padding_idx = padding_idx % v        # -1 is the last row, as in PyTorch
        self.dtype = float_dtype("Embedding", dtype)
        parameter_budget("Embedding", self.num_embeddings * self.embedding_dim, self.dtype)
        rng = generator("Embedding", rng)
        W = rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        if self.padding_idx is not None:
            W[self.padding_idx] = 0
        self.params["W"] = W
        self.grads["W"] = np.zeros_like(W)

    def forward(self, ids: np.ndarray) -> np.ndarray:
        """ids S (integers) -> out S + (D,)."""
        self._check_ids(ids)
        self.cache = Saved(ids)
        return self.params["W"][ids]

    def backward(self, dout: np.ndarray) -> None:  # type: ignore[override]  # ids: no gradient
        """dout S + (D,) -> None (ids have no gradient); fills grads["W"] (V, D)."""
        (ids,) = self._saved()
        check_grad(self, dout, ids.shape + (self.embedding_dim,), self.dtype)
        dW = self.grads["W"]
        # dW[ids[s]] += dout[s] for every position s, a repeated id once per use
        scatter_add(dW, ids.reshape(-1), dout.reshape(-1, self.embedding_dim))
        if self.padding_idx is not None:
            dW[self.padding_idx] = 0
        return None

    def _check_ids(self, ids: object) -> None:
        """Integer ids in [0, V): a TypeError or ValueError naming the first bad id and where."""
        if not isinstance(ids, np.ndarray):
            raise TypeError(f"{self!r}: expected the ids as a numpy integer array, got "
                            f"{type(ids).__name__}; wrap them with np.asarray")
        check_not_empty(self, ids.shape)
        if ids.dtype.kind not in "iu":
            first = _first(ids, np.ones(ids.shape, bool)) if ids.size else ""
            hint = "; convert them with ids.astype(np.int64)" if ids.dtype.kind == "f" else ""
            raise TypeError(f"{self!r}: expected integer ids, got dtype {ids.dtype}{first}{hint}")
        bad = (ids < 0) | (ids >= self.num_embeddings)
        if bad.any():
            raise ValueError(f"{self!r}: expected ids in [0, {self.num_embeddings}), got"
                             f"{_first(ids, bad)}")

    def extra_repr(self) -> str:
        options = non_default(padding_idx=(self.padding_idx, None), dtype=(self.dtype, np.float32))
        return ", ".join(filter(None, [f"{self.num_embeddings}, {self.embedding_dim}", options]))


def scatter_add(out: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> None:
    """``out[...] = 0`` then ``out[ids[s]] += rows[s]`` for every s: ids (M,) integers in
    [0, V), rows (M, D), out (V, D) written in place.

    The staged form is ``np.add.at(out, ids, rows)``, which walks the rows one at a time
    (several times slower at a GPT's batch). Here the ids are sorted, each run of equal ids
    is summed by one ``np.add.reduceat`` and each sum written into its row; the rows of a run
    are added in another order than add.at's, so the two agree to rounding (a test holds them
    equal), not bit for bit.
    """
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]                                   # (M,)
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])   # each run's first
    out[...] = 0
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)    # (runs, D)


def _first(ids: np.ndarray, bad: np.ndarray) -> str:
    """`` id 12 at position (1, 3)``: the first element of ``ids`` where ``bad`` holds."""
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    return f" id {ids[where].item()!r} at position {where}"

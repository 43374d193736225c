"""Softmax over the last axis, as a layer. Derivation: docs/derivations/dense.md#softmax.

``Softmax.backward`` is the fused product ``p * (dout - sum(dout * p))``; ``staged_backward``
applies the full Jacobian ``diag(p) - p p^T`` row by row and is kept for reading and for the
tests, which hold the two equal.
"""
from __future__ import annotations

import numpy as np

from .base import Layer, check_grad, check_input
from .validate import integer


class Softmax(Layer):
    """``p = exp(x) / sum(exp(x))`` along the last axis, for inputs of shape (..., C).

    Forward, stable (shapes for x of shape (N, C))::

        m = x.max(axis=-1, keepdims=True)      (N, 1)   softmax(x - m) = softmax(x)
        e = exp(x - m)                         (N, C)   every exponent <= 0: no overflow
        p = e / e.sum(axis=-1, keepdims=True)  (N, C)

    Local derivatives: each row is a function of its own row only, with the Jacobian
    ``d p_i / d x_j = p_i * ([i == j] - p_j)``, that is ``J = diag(p) - p p^T`` (C, C),
    symmetric. Its product with a row of dout collapses to one line::

        dx = J @ dout = p * dout - p * (p . dout) = p * (dout - sum(dout * p, keepdims))

    so the backward pass never forms J. The cache keeps p.

    To get probabilities out of a classifier trained with ``SoftmaxCrossEntropy`` (which
    takes logits), put a Softmax after it at prediction time, not into the trained model.

    Parameters
    ----------
    dim : int
        The axis to normalize: the last one only (-1, or ndim - 1), as ``torch.nn.Softmax(dim)``.

    Examples
    --------
    >>> Softmax().forward(np.array([[0.0, np.log(3.0)]]))
    array([[0.25, 0.75]])
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = integer("Softmax", "dim", dim)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (..., C) -> p (..., C), each row along the last axis summing to 1."""
        check_input(self, x)
        if x.ndim == 0 or self.dim not in (-1, x.ndim - 1):
            raise ValueError(f"{self!r}: normalizes the last axis only; expected dim=-1 or "
                             f"{max(x.ndim - 1, 0)} for input of shape {x.shape}")
        if x.shape[-1] == 0:
            raise ValueError(f"{self!r}: expected at least one value along the last axis, "
                             f"got input of shape {x.shape}")
        e = np.exp(x - x.max(axis=-1, keepdims=True))          # (..., C)
        p = np.divide(e, e.sum(axis=-1, keepdims=True), out=e)  # (..., C) in e's memory
        self.cache = p
        return p

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (..., C) -> dx (..., C)."""
        p = self._saved()
        check_grad(self, dout, p.shape, p.dtype)
        dot = (dout * p).sum(axis=-1, keepdims=True)            # (..., 1) p . dout, per row
        return p * (dout - dot)

    def extra_repr(self) -> str:
        return "" if self.dim == -1 else f"dim={self.dim}"


def staged_backward(p: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """Softmax backward through its Jacobian, one row at a time.

    For each row, builds ``J = diag(p) - outer(p, p)`` (C, C) and applies it to that row of
    dout; ``dx = J^T @ dout`` in general, and J is symmetric. O(C^2) per row against the fused
    ``Softmax.backward``'s O(C); a test holds them equal.
    """
    rows_p = p.reshape(-1, p.shape[-1])                         # (M, C), M = all leading dims
    rows_dout = dout.reshape(rows_p.shape)                      # (M, C)
    dx = np.empty_like(rows_dout)
    for i, (p_i, dout_i) in enumerate(zip(rows_p, rows_dout)):
        jacobian = np.diag(p_i) - np.outer(p_i, p_i)            # (C, C) d p_i / d x_j
        dx[i] = jacobian.T @ dout_i                             # (C,)
    return dx.reshape(dout.shape)

"""CausalSelfAttention: multi-head self-attention where each position sees only itself and the
positions before it. Derivation: docs/derivations/attention.md.

``CausalSelfAttention.backward`` is the fused form (the softmax's Jacobian collapsed to one line,
the heads split and merged by one reshape each); ``staged_backward`` walks the graph gate by gate
(scores, scaling, mask, the Jacobian itself, the two products, the heads' reshapes) and is kept
for reading and for the tests, which hold the two equal.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from .base import Layer, batch_sum, check_grad, check_input, non_default
from .validate import flag, float_dtype, generator, integer, parameter_budget, real


class Saved(NamedTuple):
    """What the forward pass keeps for backward (M = N*T rows, D = E / H per head)."""

    x2: np.ndarray                # (M, E) the input, one row per position
    q: np.ndarray                 # (N, H, T, D) queries, per head
    k: np.ndarray                 # (N, H, T, D) keys
    v: np.ndarray                 # (N, H, T, D) values
    att: np.ndarray               # (N, H, T, T) attention weights, before dropout
    att_keep: np.ndarray | None   # (N, H, T, T) dropout's mask on them (0 or 1/(1-p)), or None
    y2: np.ndarray                # (M, E) the heads' outputs side by side
    out_keep: np.ndarray | None   # (M, E) dropout's mask on the output, or None


class CausalSelfAttention(Layer):
    """Multi-head causal self-attention, nanoGPT's ``CausalSelfAttention`` with weights (in, out).

    Shapes: x (N, T, E), out (N, T, E); H heads of D = E / H features each. Forward::

        qkv    = x @ W_qkv + b_qkv                   (N, T, 3E)   W_qkv (E, 3E): q | k | v
        q, k, v = split(qkv), each split into heads   (N, H, T, D) head j: features j*D:(j+1)*D
        scores = q @ k^T * (1 / sqrt(D))             (N, H, T, T) query i against key j
        att    = softmax over j of scores, j <= i    (N, H, T, T) 0 where j > i (the future)
        y      = dropout(att) @ v                    (N, H, T, D)
        y2     = merge(y)                            (N, T, E)    heads side by side again
        out    = dropout(y2 @ W_out + b_out)         (N, T, E)    W_out (E, E)

    ``W_qkv`` is nanoGPT's ``c_attn.weight.T`` and ``W_out`` its ``c_proj.weight.T``.

    Local derivatives, in reverse (dA means dL/dA)::

        dW_out = y2^T @ dproj,  db_out = sum of dproj,  dy2 = dproj @ W_out^T
        dy     = split(dy2)                          the inverse of the merge
        datt   = dy @ v^T,   dv = att^T @ dy         the two products (dropout's mask applied)
        dscores = att * (datt - sum_j(datt * att)) / sqrt(D)   softmax Jacobian; 0 where masked
        dq = dscores @ k,    dk = dscores^T @ q
        dqkv = merge(dq) | merge(dk) | merge(dv),  dW_qkv = x^T @ dqkv,  dx = dqkv @ W_qkv^T

    A masked score is a constant (-inf) as far as the gradient goes: it gets none, and its
    weight is exactly 0. A row with every key masked (impossible under the causal mask, possible
    for ``masked_softmax`` in general) gets weights 0, not NaN.

    Initialisation is PyTorch's Linear's: uniform in [-k, k] with k = 1/sqrt(E), for both
    projections; ``gpt`` replaces it with nanoGPT's.

    Parameters
    ----------
    embed_dim : int
        E, the features of each position; divisible by ``num_heads``.
    num_heads : int
        H, the number of heads.
    bias : bool
        Whether the two projections learn ``b_qkv`` and ``b_out``.
    dropout : float
        Probability of zeroing each attention weight and each output element while training.
    rng : int or numpy.random.Generator, optional
        Seed or generator for the initial weights, then for dropout's masks (the layer's own).
    dtype : numpy dtype
        Floating-point type of parameters, outputs and gradients (float32 by default).

    Examples
    --------
    >>> attn = CausalSelfAttention(8, 2, rng=0)
    >>> x = np.random.default_rng(1).standard_normal((3, 5, 8)).astype(np.float32)
    >>> out = attn.forward(x)
    >>> out.shape, out.dtype
    ((3, 5, 8), dtype('float32'))
    >>> bool(np.allclose(attn.forward(x[:, :2])[:, :2], out[:, :2], atol=1e-6))  # no peeking ahead
    True
    """

    def __init__(self, embed_dim: int, num_heads: int, *, bias: bool = True, dropout: float = 0.0,
                 rng: int | np.random.Generator | None = None, dtype=np.float32) -> None:
        super().__init__()
        who = "CausalSelfAttention"
        self.embed_dim = integer(who, "embed_dim", embed_dim, low=1)
        self.num_heads = integer(who, "num_heads", num_heads, low=1)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{who}: expected embed_dim divisible by num_heads, got embed_dim="
                             f"{self.embed_dim} and num_heads={self.num_heads}")
        self.head_dim = self.embed_dim // self.num_heads
        self.scale = 1 / math.sqrt(self.head_dim)        # a Python float: keeps float32
        self.dropout = real(who, "dropout", dropout, low=0, high=1)
        self.dtype = float_dtype(who, dtype)
        parameter_budget(who, 4 * self.embed_dim * (self.embed_dim + 1), self.dtype)
        self.rng = generator(who, rng)
        e, k = self.embed_dim, 1 / np.sqrt(self.embed_dim)
        self.params["W_qkv"] = self.rng.uniform(-k, k, (e, 3 * e)).astype(self.dtype)
        if flag(who, "bias", bias):
            self.params["b_qkv"] = self.rng.uniform(-k, k, 3 * e).astype(self.dtype)
        self.params["W_out"] = self.rng.uniform(-k, k, (e, e)).astype(self.dtype)
        if bias:
            self.params["b_out"] = self.rng.uniform(-k, k, e).astype(self.dtype)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, T, E) -> out (N, T, E)."""
        n, t, e = self._check(x)
        h, d = self.num_heads, self.head_dim
        x2 = x.reshape(n * t, e)                                      # (M, E)
        qkv = self._affine(x2, "W_qkv", "b_qkv")                      # (M, 3E)
        # (M, 3E) -> (N, T, 3, H, D) -> (3, N, H, T, D): q | k | v, then the heads
        q, k, v = qkv.reshape(n, t, 3, h, d).transpose(2, 0, 3, 1, 4)
        scores = q @ k.swapaxes(-1, -2)                               # (N, H, T, T)
        # = masked_softmax(scores * scale, causal_mask(t)), in place in fewer passes
        att = causal_softmax(scores, self.scale)                      # (N, H, T, T)
        att_keep = self._dropout_mask(att.shape)
        y2 = np.empty((n * t, e), self.dtype)                         # (M, E) the heads merged
        y = y2.reshape(n, t, h, d).transpose(0, 2, 1, 3)              # (N, H, T, D) a view of it
        np.matmul(att if att_keep is None else att * att_keep, v, out=y)   # merged as written
        out = self._affine(y2, "W_out", "b_out")                      # (M, E)
        out_keep = self._dropout_mask(out.shape)
        if out_keep is not None:
            out *= out_keep
        self.cache = Saved(x2, q, k, v, att, att_keep, y2, out_keep)
        return out.reshape(n, t, e)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, T, E) -> dx (N, T, E); fills grads W_qkv (E, 3E), b_qkv (3E,), W_out (E, E),
        b_out (E,)."""
        x2, q, k, v, att, att_keep, y2, out_keep = self._saved()     # a Saved
        n, h, t, d = q.shape
        e = h * d
        check_grad(self, dout, (n, t, e), self.dtype)
        dproj = dout.reshape(n * t, e)                                # (M, E)
        if out_keep is not None:
            dproj = dproj * out_keep
        np.matmul(y2.T, dproj, out=self.grads["W_out"])               # (E, E)
        if "b_out" in self.params:
            batch_sum(dproj, out=self.grads["b_out"])                 # (E,)
        dy2 = dproj @ self.params["W_out"].T                          # (M, E)
        dy = dy2.reshape(n, t, h, d).transpose(0, 2, 1, 3)            # (N, H, T, D) split heads
        att_used = att if att_keep is None else att * att_keep
        datt = dy @ v.swapaxes(-1, -2)                                # (N, H, T, T) weights first
        dv = att_used.swapaxes(-1, -2) @ dy                           # (N, H, T, D)
        if att_keep is not None:
            datt *= att_keep
        # softmax Jacobian, collapsed: att * (datt - row sum of datt * att); 0 where masked.
        # The row sums as a product with ones (as causal_softmax's), then in place in datt.
        row = (datt * att) @ np.ones(t, self.dtype)                   # (N, H, T)
        dscores = np.subtract(datt, row[..., None], out=datt)         # (N, H, T, T)
        dscores *= att
        dscores *= self.scale                                         # then the scores'
        dqkv = np.empty((n, t, 3, h, d), self.dtype)                  # (N, T, 3, H, D)
        dq, dk, dv_slot = dqkv.transpose(2, 0, 3, 1, 4)               # (N, H, T, D) views of it
        np.matmul(dscores, k, out=dq)
        np.matmul(dscores.swapaxes(-1, -2), q, out=dk)
        dv_slot[...] = dv
        dqkv2 = dqkv.reshape(n * t, 3 * e)                            # (M, 3E)
        np.matmul(x2.T, dqkv2, out=self.grads["W_qkv"])               # (E, 3E)
        if "b_qkv" in self.params:
            batch_sum(dqkv2, out=self.grads["b_qkv"])                 # (3E,)
        return (dqkv2 @ self.params["W_qkv"].T).reshape(n, t, e)

    def _check(self, x: np.ndarray) -> tuple[int, int, int]:
        check_input(self, x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.embed_dim:
            raise ValueError(f"{self!r}: expected input of shape (N, T, {self.embed_dim}), "
                             f"got {x.shape}")
        n, t, e = x.shape
        return n, t, e

    def _affine(self, rows: np.ndarray, weight: str, bias: str) -> np.ndarray:
        out = rows @ self.params[weight]
        if bias in self.params:
            out += self.params[bias]
        return out

    def _dropout_mask(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """Inverted dropout's mask (0 or 1/(1-p), drawn from self.rng), or None when it is off."""
        if not self.training or self.dropout == 0:
            return None
        scale = 0.0 if self.dropout == 1 else 1 / (1 - self.dropout)
        keep = self.rng.random(shape, dtype=self.dtype) >= self.dropout
        return keep * self.dtype.type(scale)

    def extra_repr(self) -> str:
        options = non_default(bias=("b_qkv" in self.params, True), dropout=(self.dropout, 0.0),
                              dtype=(self.dtype, np.float32))
        return ", ".join(filter(None, [f"{self.embed_dim}, {self.num_heads}", options]))


@functools.lru_cache(maxsize=16)
def causal_mask(t: int) -> np.ndarray:
    """(T, T) bool, True where query i may attend to key j, that is j <= i (read-only)."""
    mask = np.tril(np.ones((t, t), bool))
    mask.flags.writeable = False
    return mask


@functools.lru_cache(maxsize=16)
def causal_bias(t: int, dtype: np.dtype) -> np.ndarray:
    """(T, T) of ``dtype``: 0 where query i may attend to key j (j <= i), -inf where not
    (read-only). Added to a score it keeps the score (s + 0 = s) or masks it (s - inf = -inf)."""
    bias = np.where(causal_mask(t), 0, -np.inf).astype(dtype)
    bias.flags.writeable = False
    return bias


def causal_softmax(scores: np.ndarray, scale: float) -> np.ndarray:
    """``masked_softmax(scores * scale, causal_mask(T))`` computed in place in ``scores``
    (..., T, T) and returned: the forward's fast path (equal to the staged form to rounding).

    The mask is added (0 or -inf) instead of selected, and every step writes into ``scores``:
    no temporaries the size of the scores. Key 0 is never masked, so no row is fully masked
    and the staged form's guards for such rows are not needed. The row sums are one product
    with a vector of ones (a BLAS call, several times faster than numpy's sum over a short
    last axis; the terms are added in another order, so equal to rounding, not bit for bit).
    """
    t = scores.shape[-1]
    scores *= scale
    scores += causal_bias(t, scores.dtype)
    np.subtract(scores, scores.max(axis=-1, keepdims=True), out=scores)
    np.exp(scores, out=scores)
    total = scores @ np.ones(t, scores.dtype)                     # (..., T) row sums
    return np.divide(scores, total[..., None], out=scores)


def masked_softmax(scores: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of ``scores`` among the entries where ``keep`` (broadcast)
    is True; the others get weight exactly 0. A row with nothing kept is all 0, never NaN.

    >>> masked_softmax(np.zeros((2, 2)), np.array([[True, True], [False, False]]))
    array([[0.5, 0.5],
           [0. , 0. ]])
    """
    masked = np.where(keep, scores, -np.inf)                     # exp(-inf) = 0: no weight
    top = masked.max(axis=-1, keepdims=True)                      # -inf on a fully masked row
    top[top == -np.inf] = 0                                       # then -inf - 0, not -inf + inf
    e = np.exp(masked - top, out=masked)
    total = e.sum(axis=-1, keepdims=True)
    total[total == 0] = 1                                         # 0 / 1 = 0 on such a row
    return np.divide(e, total, out=e)


def split_heads(a: np.ndarray, num_heads: int) -> np.ndarray:
    """(N, T, E) -> (N, H, T, D): head j takes features j*D:(j+1)*D. Its gradient is merge_heads."""
    n, t, e = a.shape
    return a.reshape(n, t, num_heads, e // num_heads).transpose(0, 2, 1, 3)


def merge_heads(a: np.ndarray) -> np.ndarray:
    """(N, H, T, D) -> (N, T, E), the heads side by side. Its gradient is split_heads."""
    n, h, t, d = a.shape
    return a.transpose(0, 2, 1, 3).reshape(n, t, h * d)


def staged_backward(x: np.ndarray, params: dict[str, np.ndarray], num_heads: int, dout: np.ndarray,
                    att_keep: np.ndarray | None = None,
                    out_keep: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """CausalSelfAttention's backward one gate at a time, recomputing the forward from x.

    ``params`` as the layer's (``b_qkv``, ``b_out`` optional); ``att_keep`` (N, H, T, T) and
    ``out_keep`` (N, T, E) are dropout's masks, None for none. Returns (dx, grads), dx (N, T, E)
    and grads with the params' keys. The softmax's Jacobian is built whole, (N, H, T, T, T):
    for reading and for the tests, which hold it equal to the fused ``backward``.
    """
    n, t, e = x.shape
    def one(mask: np.ndarray | None) -> np.ndarray:                       # no mask: times 1
        return np.ones((), x.dtype) if mask is None else mask

    zero = np.zeros(3 * e, x.dtype)
    # forward
    qkv = x @ params["W_qkv"] + params.get("b_qkv", zero)                 # (N, T, 3E)
    q, k, v = qkv[..., :e], qkv[..., e:2 * e], qkv[..., 2 * e:]           # (N, T, E) each
    qh, kh, vh = (split_heads(a, num_heads) for a in (q, k, v))           # (N, H, T, D) each
    scores = qh @ kh.swapaxes(-1, -2)                                     # (N, H, T, T)
    scale = 1 / math.sqrt(e // num_heads)
    scaled = scores * scale
    allowed = causal_mask(t)                                              # (T, T)
    masked = np.where(allowed, scaled, -np.inf)                           # future keys: -inf
    att = masked_softmax(masked, allowed)                                 # (N, H, T, T)
    att_d = att * one(att_keep)
    yh = att_d @ vh                                                       # (N, H, T, D)
    y = merge_heads(yh)                                                   # (N, T, E)
    # proj = y @ W_out + b_out;  out = proj * out_keep                    # (N, T, E)

    # backward
    dproj = dout * one(out_keep)                                          # (N, T, E)
    dW_out = np.einsum("nti,ntj->ij", y, dproj)                           # (E, E)  summed over N, T
    db_out = dproj.sum(axis=(0, 1))                                       # (E,)
    dy = dproj @ params["W_out"].T                                        # (N, T, E)
    dyh = split_heads(dy, num_heads)                                      # (N, H, T, D) merge^-1
    datt_d = dyh @ vh.swapaxes(-1, -2)                                    # (N, H, T, T)
    dvh = att_d.swapaxes(-1, -2) @ dyh                                    # (N, H, T, D)
    datt = datt_d * one(att_keep)                                         # (N, H, T, T)
    eye = np.eye(t, dtype=x.dtype)
    jacobian = att[..., :, None] * eye - att[..., :, None] * att[..., None, :]  # (N, H, T, T, T)
    dmasked = np.einsum("nhijk,nhij->nhik", jacobian, datt)               # J^T @ datt, per row i
    dscaled = np.where(allowed, dmasked, 0)                               # -inf is a constant
    dscores = dscaled * scale                                             # (N, H, T, T)
    dqh = dscores @ kh                                                    # (N, H, T, D)
    dkh = dscores.swapaxes(-1, -2) @ qh                                   # (N, H, T, D)
    dqkv = np.concatenate([merge_heads(g) for g in (dqh, dkh, dvh)], axis=-1)   # (N, T, 3E)
    dW_qkv = np.einsum("nti,ntj->ij", x, dqkv)                            # (E, 3E)
    db_qkv = dqkv.sum(axis=(0, 1))                                        # (3E,)
    dx = dqkv @ params["W_qkv"].T                                         # (N, T, E)
    grads = {"W_qkv": dW_qkv, "b_qkv": db_qkv, "W_out": dW_out, "b_out": db_out}
    return dx, {name: grads[name] for name in params}

"""LayerNorm: normalize each sample over its features, then scale and shift.

Derivation: docs/derivations/normalization.md#layernorm, BatchNorm's graph along the other axis.
``LayerNorm.backward`` is the fused closed form; ``staged_backward`` walks the same graph gate
by gate and is kept for reading and for the tests.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import Layer, batch_sum, check_grad, check_input, check_size, float_dtype, non_default, row_mean
from .validate import flag, parameter_budget, real


class Saved(NamedTuple):
    """What the forward pass keeps for backward."""

    xhat: np.ndarray          # (..., D) the normalized input
    inv_std: np.ndarray       # (..., 1) 1 / sqrt(var + eps), one per sample


class LayerNorm(Layer):
    """Layer normalization over the last axis, with PyTorch's semantics.

    For x of shape (..., D), every sample (a row of D features) on its own, gate by gate
    (shapes for x of shape (N, D); any leading dimensions work alike)::

        mu      = x.mean(axis=-1, keepdims=True)          (N, 1)
        xc      = x - mu                                  (N, D)
        var     = (xc * xc).mean(axis=-1, keepdims=True)  (N, 1)   biased: divides by D
        inv_std = 1 / sqrt(var + eps)                     (N, 1)
        xhat    = xc * inv_std                            (N, D)
        out     = gamma * xhat + beta                     (N, D)   gamma, beta (D,)

    It is BatchNorm1d's graph with the statistics taken over the other axis: per sample over
    features, the same in training and eval mode, no running statistics, any batch size.

    Backward: the three paths from x (direct, through mu, through var) summed, now over the
    D features of each row; with g = gamma * dout::

        dbeta  = dout summed over every leading axis               (D,)
        dgamma = (dout * xhat) summed over every leading axis      (D,)
        dx     = inv_std * (g - g.mean(-1, keepdims) - xhat * (g * xhat).mean(-1, keepdims))

    Unlike BatchNorm's, gamma varies along the normalized axis, so it stays inside the means.

    Parameters
    ----------
    normalized_shape : int or tuple of one int
        D, the size of the last axis.
    eps : float
        Added to the variance before the square root; > 0.
    elementwise_affine : bool
        Whether to learn gamma (initially ones) and, with ``bias``, beta (initially zeros).
    bias : bool
        Whether to learn beta, when ``elementwise_affine``.
    dtype : numpy dtype
        Floating-point type of parameters, outputs and gradients.

    Examples
    --------
    >>> LayerNorm(2, dtype=np.float64).forward(np.array([[1.0, 3.0], [5.0, 5.0]])).round(4)
    array([[-1.,  1.],
           [ 0.,  0.]])
    """

    def __init__(self, normalized_shape: int | tuple[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, *, dtype=np.float32) -> None:
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise ValueError(f"LayerNorm: normalizes the last axis only; expected "
                                 f"normalized_shape to be an int or a tuple of one, got "
                                 f"{normalized_shape!r}")
            normalized_shape = normalized_shape[0]
        self.normalized_shape = (check_size("LayerNorm", "normalized_shape", normalized_shape),)
        self.eps = real("LayerNorm", "eps", eps, low=0, low_open=True)
        self.dtype = float_dtype("LayerNorm", dtype)
        parameter_budget("LayerNorm", 2 * self.normalized_shape[0], self.dtype)
        d = self.normalized_shape[0]
        if flag("LayerNorm", "elementwise_affine", elementwise_affine):
            self.params["gamma"] = np.ones(d, self.dtype)
            if flag("LayerNorm", "bias", bias):
                self.params["beta"] = np.zeros(d, self.dtype)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (..., D) -> out (..., D)."""
        d = self.normalized_shape[0]
        check_input(self, x, dtype=self.dtype)
        if x.ndim == 0 or x.shape[-1] != d:
            raise ValueError(f"{self!r}: expected input of shape (..., {d}), got {x.shape}")
        mu = row_mean(x)                                         # (..., 1) x.mean(-1), by BLAS
        xc = x - mu                                              # (..., D)
        var = row_mean(xc * xc)                                  # (..., 1) from centred values
        inv_std = 1 / np.sqrt(var + self.eps)                    # (..., 1)
        xhat = np.multiply(xc, inv_std, out=xc)                  # takes over xc's memory
        self.cache = Saved(xhat, inv_std)
        if "gamma" not in self.params:
            return xhat
        out = xhat * self.params["gamma"]
        if "beta" in self.params:
            out += self.params["beta"]
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (..., D) -> dx (..., D); fills grads["gamma"] and grads["beta"], both (D,)."""
        xhat, inv_std = self._saved()                            # a Saved
        check_grad(self, dout, xhat.shape, self.dtype)
        d = xhat.shape[-1]
        if "gamma" in self.params:                               # broadcast over every row
            rows = dout.reshape(-1, d)                           # (M, D), M = all leading dims
            batch_sum(rows * xhat.reshape(-1, d), out=self.grads["gamma"])
            if "beta" in self.params:
                batch_sum(rows, out=self.grads["beta"])
            dxhat = dout * self.params["gamma"]                  # (..., D)
        else:
            dxhat = dout
        # dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), per row
        mean_dxhat = row_mean(dxhat)                             # (..., 1)
        mean_proj = row_mean(dxhat * xhat)                       # (..., 1)
        dx = xhat * mean_proj                                    # (..., D)
        np.subtract(dxhat, dx, out=dx)
        dx -= mean_dxhat
        dx *= inv_std
        return dx

    def extra_repr(self) -> str:
        affine = "gamma" in self.params
        options = non_default(eps=(self.eps, 1e-5), elementwise_affine=(affine, True),
                              bias=("beta" in self.params or not affine, True),
                              dtype=(self.dtype, np.float32))
        return ", ".join(filter(None, [str(self.normalized_shape[0]), options]))


def staged_backward(x: np.ndarray, gamma: np.ndarray | None, eps: float,
                    dout: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LayerNorm backward, one gate at a time: BatchNorm's ``staged_backward`` along axis -1.

    Recomputes the forward graph from x with the names of ``LayerNorm.forward`` and walks it
    in reverse, one local derivative per line. ``gamma=None`` means no affine (gamma = 1).
    Returns (dx, dgamma, dbeta), shapes (..., D), (D,), (D,). A test holds it equal to the
    fused ``LayerNorm.backward``.
    """
    d = x.shape[-1]
    lead = tuple(range(x.ndim - 1))       # the leading axes gamma and beta were broadcast over
    gamma = np.ones(d, x.dtype) if gamma is None else gamma
    # forward
    mu = x.mean(axis=-1, keepdims=True)                  # (..., 1)
    xc = x - mu                                          # (..., D)  mu broadcast over D columns
    sq = xc * xc                                         # (..., D)
    var = sq.mean(axis=-1, keepdims=True)                # (..., 1)
    std = np.sqrt(var + eps)                             # (..., 1)
    inv_std = 1 / std                                    # (..., 1)
    xhat = xc * inv_std                                  # (..., D)  inv_std broadcast over D
    # out = gamma * xhat + beta                          # (..., D)  gamma, beta broadcast over rows

    # backward
    dbeta = dout.sum(axis=lead)                          # (D,)      broadcast -> sum over rows
    dgamma = (dout * xhat).sum(axis=lead)                # (D,)      broadcast -> sum over rows
    dxhat = dout * gamma                                 # (..., D)
    dinv_std = (dxhat * xc).sum(axis=-1, keepdims=True)  # (..., 1)  broadcast over D -> sum over D
    dxc = dxhat * inv_std                                # (..., D)  first branch into xc
    dstd = -dinv_std / std**2                            # (..., 1)  d(1/s)/ds = -1/s^2
    dvar = dstd / (2 * std)                              # (..., 1)  d sqrt(v + eps)/dv
    dsq = dvar / d * np.ones_like(sq)                    # (..., D)  mean over D: each gets 1/D
    dxc = dxc + 2 * xc * dsq                             # (..., D)  second branch into xc: add
    dmu = -dxc.sum(axis=-1, keepdims=True)               # (..., 1)  xc = x - mu -> minus the sum
    dx = dxc + dmu / d * np.ones_like(x)                 # (..., D)  x feeds xc and mu: add
    return dx, dgamma, dbeta

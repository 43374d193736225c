"""BatchNorm1d: normalize each feature over the batch, then scale and shift.

Derivation: docs/derivations/normalization.md#batchnorm1d. ``BatchNorm1d.backward`` is the fused closed form;
``staged_backward`` walks the same graph gate by gate and is kept for reading and for the tests.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .base import Layer, batch_sum, check_grad, check_input, check_size, float_dtype, non_default
from .validate import parameter_budget, real


class Saved(NamedTuple):
    """What the forward pass keeps for backward."""

    xhat: np.ndarray          # (N, D) the normalized input
    inv_std: np.ndarray       # (D,) 1 / sqrt(var + eps), of the batch or the running variance
    batch_stats: bool         # True when mean and variance came from the batch (training mode)


class BatchNorm1d(Layer):
    """Batch normalization of (N, D) inputs, with PyTorch's semantics.

    Training mode, gate by gate (shapes on the right)::

        mu      = x.mean(axis=0)              (D,)
        xc      = x - mu                      (N, D)
        var     = (xc * xc).mean(axis=0)      (D,)    biased: divides by N
        inv_std = 1 / sqrt(var + eps)         (D,)
        xhat    = xc * inv_std                (N, D)
        out     = gamma * xhat + beta         (N, D)

    and the running statistics move by ``running = (1 - momentum) * running + momentum * stat``,
    with the unbiased variance ``var * N / (N - 1)`` for ``running_var``, unless the batch's
    statistics are not finite: a batch holding NaN or infinity leaves them as they were. ``momentum`` is the
    weight of the new batch. Eval mode normalizes with ``running_mean`` and ``running_var``
    instead, which are constants, so its backward pass is elementwise.

    Backward (training mode): x reaches the loss along three paths (through xc directly, through
    mu, and through var), and their sum simplifies to::

        dbeta  = dout.sum(axis=0)                                   (D,)
        dgamma = (dout * xhat).sum(axis=0)                          (D,)
        dx     = gamma * inv_std * (dout - dbeta / N - xhat * dgamma / N)      (N, D)

    Normalizing makes the output blind to a shift or a scaling of each column of x, so dx is
    dout with its column mean and its component along xhat taken out.

    Parameters
    ----------
    num_features : int
        D, the number of features of each sample.
    eps : float
        Added to the variance before the square root; > 0.
    momentum : float
        Weight of the new batch in the running statistics, in [0, 1].
    dtype : numpy dtype
        Floating-point type of parameters, buffers, outputs and gradients.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *,
                 dtype=np.float32) -> None:
        super().__init__()
        who = type(self).__name__
        self.num_features = check_size(who, "num_features", num_features)
        self.eps = real(who, "eps", eps, low=0, low_open=True)
        self.momentum = real(who, "momentum", momentum, low=0, high=1)
        self.dtype = float_dtype(who, dtype)
        parameter_budget(who, 4 * self.num_features, self.dtype)     # gamma, beta and two buffers
        d = self.num_features
        self.params = {"gamma": np.ones(d, self.dtype), "beta": np.zeros(d, self.dtype)}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.buffers = {"running_mean": np.zeros(d, self.dtype),
                        "running_var": np.ones(d, self.dtype)}

    shards: tuple[Any, int] | None = None   # (ShardSums, this copy's shard): set by DataParallel

    @property
    def running_mean(self) -> np.ndarray:
        return self.buffers["running_mean"]

    @property
    def running_var(self) -> np.ndarray:
        return self.buffers["running_var"]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) -> out (N, D)."""
        check_input(self, x, self.num_features, self.dtype)
        if self.training:
            n, (total,) = self._batch_total(x.shape[0], batch_sum(x))
            if n < 2:
                raise ValueError(f"{self!r}: expected more than 1 value per channel when "
                                 f"training, got input of shape {x.shape}; the batch variance "
                                 f"of one sample is undefined (call eval() to use the running "
                                 f"statistics)")
            mu = total / n                        # (D,)
            xc = x - mu                           # (N, D)
            sq = xc * xc                          # (N, D)
            var = self._batch_total(x.shape[0], batch_sum(sq))[1][0] / n   # (D,) from centred values
            first = self.shards is None or self.shards[1] == 0     # one copy updates the buffers
            if first and np.isfinite(mu).all() and np.isfinite(var).all():  # a NaN would stay
                m = self.momentum
                self.running_mean[...] = (1 - m) * self.running_mean + m * mu
                self.running_var[...] = (1 - m) * self.running_var + m * (var * (n / (n - 1)))
        else:
            xc = x - self.running_mean
            var = self.running_var
        inv_std = 1 / np.sqrt(var + self.eps)     # (D,)
        xhat = np.multiply(xc, inv_std, out=xc)   # takes over xc's memory: xc is not needed again
        if self.training:                         # out takes over sq's memory likewise
            out = np.multiply(xhat, self.params["gamma"], out=sq)
        else:
            out = xhat * self.params["gamma"]
        out += self.params["beta"]
        self.cache = Saved(xhat, inv_std, self.training)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, D) -> dx (N, D); fills grads["gamma"] and grads["beta"], both (D,)."""
        xhat, inv_std, batch_stats = self._saved()    # a Saved
        check_grad(self, dout, xhat.shape, self.dtype)
        dbeta, dgamma = self.grads["beta"], self.grads["gamma"]
        batch_sum(dout, out=dbeta)                # beta and gamma were broadcast over the rows
        dx = dout * xhat                          # (N, D) scratch, then dx in the same memory
        batch_sum(dx, out=dgamma)
        scale = self.params["gamma"] * inv_std    # (D,)
        if not batch_stats:                       # eval: mean and variance are constants
            return np.multiply(dout, scale, out=dx)
        # the means over the whole batch: this copy's sums, or every shard's (DataParallel); the
        # gradients keep this copy's own, which DataParallel adds
        n, (sum_dbeta, sum_dgamma) = self._batch_total(dout.shape[0], dbeta, dgamma)
        # dx = scale * (dout - dbeta / n - xhat * dgamma / n), one pass at a time
        np.multiply(xhat, sum_dgamma / n, out=dx)
        np.subtract(dout, dx, out=dx)
        dx -= sum_dbeta / n
        dx *= scale
        return dx

    def _batch_total(self, n: int, *sums: np.ndarray) -> tuple[int, list[np.ndarray]]:
        """The rows and the sums over the whole batch, from this layer's ``n`` rows and its
        sums over them: the same, unless DataParallel split the batch between copies of this
        layer, when every shard's are added (``ShardSums``, in shard order)."""
        if self.shards is None:
            return n, list(sums)
        shard_sums, index = self.shards
        return shard_sums.total(index, n, sums)

    def extra_repr(self) -> str:
        options = non_default(eps=(self.eps, 1e-5), momentum=(self.momentum, 0.1),
                              dtype=(self.dtype, np.float32))
        return ", ".join(filter(None, [str(self.num_features), options]))


def staged_backward(x: np.ndarray, gamma: np.ndarray, eps: float,
                    dout: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode BatchNorm backward, one gate at a time.

    Recomputes the forward graph from x with the names of ``BatchNorm1d.forward`` and walks
    it in reverse, one local derivative per line. Returns (dx, dgamma, dbeta), shapes
    (N, D), (D,), (D,). Slower than the fused ``BatchNorm1d.backward``; a test holds them equal.
    """
    n = x.shape[0]
    # forward
    mu = x.mean(axis=0)                   # (D,)
    xc = x - mu                           # (N, D)  mu broadcast over N rows
    sq = xc * xc                          # (N, D)
    var = sq.mean(axis=0)                 # (D,)
    std = np.sqrt(var + eps)              # (D,)
    inv_std = 1 / std                     # (D,)
    xhat = xc * inv_std                   # (N, D)  inv_std broadcast over N rows
    # out = gamma * xhat + beta           # (N, D)  gamma, beta broadcast over N rows

    # backward
    dbeta = dout.sum(axis=0)              # (D,)    broadcast -> sum over N
    dgamma = (dout * xhat).sum(axis=0)    # (D,)    broadcast -> sum over N
    dxhat = dout * gamma                  # (N, D)
    dinv_std = (dxhat * xc).sum(axis=0)   # (D,)    inv_std was broadcast -> sum over N
    dxc = dxhat * inv_std                 # (N, D)  first branch into xc: xhat = xc * inv_std
    dstd = -dinv_std / std**2             # (D,)    d(1/s)/ds = -1/s^2
    dvar = dstd / (2 * std)               # (D,)    d sqrt(v + eps)/dv = 1 / (2 sqrt(v + eps))
    dsq = dvar / n * np.ones_like(sq)     # (N, D)  mean over N: each row gets 1/N
    dxc = dxc + 2 * xc * dsq              # (N, D)  second branch into xc, through sq: they add
    dmu = -dxc.sum(axis=0)                # (D,)    xc = x - mu, mu broadcast -> minus the sum
    dx = dxc + dmu / n * np.ones_like(x)  # (N, D)  x feeds xc and mu = mean(x): they add
    return dx, dgamma, dbeta

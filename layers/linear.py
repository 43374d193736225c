"""Linear: an affine map, out = x @ W + b. Derivation: docs/derivations/dense.md#linear."""
from __future__ import annotations

import numpy as np

from .base import Layer, batch_sum, check_features, check_grad, check_size, float_dtype, non_default
from .validate import flag, generator, parameter_budget


class Linear(Layer):
    """Fully connected layer, ``out = x @ W + b``, on the last axis.

    Shapes: x (..., in), W (in, out), b (out,), out (..., out): (N, in) -> (N, out), or
    (N, T, in) -> (N, T, out) for a sequence. W is stored (in, out), the transpose of
    PyTorch's, so that the forward pass reads as written.

    Every leading position is one row: with x viewed as (M, in), M = prod(...) (a view, no
    copy, for a contiguous x), the local derivatives, with dout = dL/dout viewed as (M, out),
    are::

        dx = dout @ W.T          (M, in), then back to (..., in)
        dW = x.T @ dout          (in, out)   sums over all M rows: W was used at every one
        db = dout.sum(axis=0)    (out,)      b was broadcast over the M rows, so its
                                             gradient sums over them

    Initialisation is PyTorch's: W and b uniform in [-k, k] with k = 1/sqrt(in).

    Parameters
    ----------
    in_features, out_features : int
        Sizes of each input and output sample.
    bias : bool
        Whether to learn the additive bias ``b``.
    rng : int or numpy.random.Generator, optional
        Seed or generator for the initial weights.
    dtype : numpy dtype
        Floating-point type of parameters, outputs and gradients (float32 by default).

    Examples
    --------
    >>> import numpy as np
    >>> lin = Linear(3, 2, rng=0)
    >>> out = lin.forward(np.ones((4, 3), np.float32))
    >>> out.shape, out.dtype
    ((4, 2), dtype('float32'))
    >>> dx = lin.backward(np.ones_like(out))
    >>> dx.shape, lin.grads["W"].shape, lin.grads["b"]      # db sums dout over the 4 rows
    ((4, 3), (3, 2), array([4., 4.], dtype=float32))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 rng: int | np.random.Generator | None = None, dtype=np.float32) -> None:
        super().__init__()
        self.in_features = check_size("Linear", "in_features", in_features)
        self.out_features = check_size("Linear", "out_features", out_features)
        self.dtype = float_dtype("Linear", dtype)
        parameter_budget("Linear", (self.in_features + 1) * self.out_features, self.dtype)
        rng = generator("Linear", rng)
        k = 1.0 / np.sqrt(self.in_features)
        self.params["W"] = rng.uniform(-k, k, (self.in_features, self.out_features)).astype(self.dtype)
        if flag("Linear", "bias", bias):
            self.params["b"] = rng.uniform(-k, k, self.out_features).astype(self.dtype)
        # backward writes into these arrays, so they stay the same objects for the optimizer
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (..., in) -> out (..., out)."""
        check_features(self, x, self.in_features, self.dtype)
        self.cache = x                                    # (..., in): backward needs only x
        rows = as_rows(x)                                 # (M, in)
        out = rows @ self.params["W"]                     # (M, out): one BLAS call
        if "b" in self.params:
            out += self.params["b"]
        return out if x.ndim == 2 else out.reshape(*x.shape[:-1], self.out_features)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (..., out) -> dx (..., in); fills grads["W"] (in, out) and grads["b"] (out,)."""
        self.param_backward(dout)
        dx = as_rows(dout) @ self.params["W"].T          # (M, in)
        return dx if dout.ndim == 2 else dx.reshape(*dout.shape[:-1], self.in_features)

    def param_backward(self, dout: np.ndarray) -> None:
        """dW and db only: the first layer of a model needs no gradient for its data."""
        x = self._saved()                                 # (..., in)
        check_grad(self, dout, (*x.shape[:-1], self.out_features), self.dtype)
        rows, drows = as_rows(x), as_rows(dout)           # (M, in), (M, out)
        np.matmul(rows.T, drows, out=self.grads["W"])     # sums over all M rows
        if "b" in self.params:
            batch_sum(drows, out=self.grads["b"])

    def extra_repr(self) -> str:
        options = non_default(bias=("b" in self.params, True), dtype=(self.dtype, np.float32))
        return ", ".join(filter(None, [f"{self.in_features}, {self.out_features}", options]))


def as_rows(a: np.ndarray) -> np.ndarray:
    """(..., D) -> (M, D), M = prod(...): a 2-D array itself (however strided), else a
    reshape, which is a view, not a copy, for a contiguous array."""
    return a if a.ndim == 2 else a.reshape(-1, a.shape[-1])

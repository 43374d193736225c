"""The Layer contract, and the input checks every layer shares.

A layer is a function with hand-derived gradients::

    out = layer.forward(x)      # keeps in layer.cache what backward needs
    dx = layer.backward(dout)   # dL/dx from dL/dout; overwrites layer.grads

``params`` and ``grads`` are dicts with the same keys, shapes and dtype. ``buffers`` holds
state that is saved with the model but not trained (BatchNorm's running statistics).
"""
from __future__ import annotations

import functools

import numpy as np


class Layer:
    """Base class of every layer: subclass it, fill ``params``/``grads``, write the pair."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.training = True
        self.cache = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def param_backward(self, dout: np.ndarray) -> None:
        """Fill ``grads`` without returning dL/dx, for a layer whose input is data.

        A layer that can skip computing dx (Linear: one matrix product less) overrides this;
        the default runs ``backward`` and drops dx.
        """
        self.backward(dout)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def train(self, mode: bool = True) -> "Layer":
        self.training = bool(mode)
        return self

    def eval(self) -> "Layer":
        return self.train(False)

    def num_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _saved(self):
        """The forward pass's cache, or a RuntimeError that says forward has not run."""
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward; call forward(x) first")
        return self.cache


def batch_sum(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Sum of an (N, D) array over its N rows: the (D,) gradient of a vector that the forward
    pass broadcast over the batch.

    Computed as the matrix product ones(N) @ a, which BLAS runs on every core; numpy's
    reduction along axis 0 takes about twice as long at the shapes of a training step.
    """
    return np.matmul(_ones(a.shape[0], a.dtype), a, out=out)


@functools.lru_cache(maxsize=64)
def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


def check_input(who: object, x: object, num_features: int | None = None,
                dtype: np.dtype | None = None) -> np.ndarray:
    """Check that ``x`` is a float array of shape (N, num_features) and of ``dtype``.

    ``num_features=None`` accepts any shape (elementwise layers); ``dtype=None`` any float.
    Errors name ``who`` (a layer or loss, by its repr), what it expected and what it got.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{who!r}: expected a numpy array, got {type(x).__name__}; "
                        f"wrap it with np.asarray")
    if x.dtype.kind != "f":
        raise TypeError(f"{who!r}: expected a floating-point input, got dtype {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{who!r}: expected {np.dtype(dtype)} input (the layer's dtype), got "
                        f"{x.dtype}; convert it with x.astype(np.{np.dtype(dtype)})")
    if num_features is not None and (x.ndim != 2 or x.shape[1] != num_features):
        hint = "; for one sample use x[None, :]" if x.shape == (num_features,) else ""
        raise ValueError(f"{who!r}: expected input of shape (N, {num_features}), "
                         f"got {x.shape}{hint}")
    return x


def check_grad(who: object, dout: object, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Check that the upstream gradient has the output's shape and dtype."""
    if not isinstance(dout, np.ndarray):
        raise TypeError(f"{who!r}: expected the upstream gradient as a numpy array, "
                        f"got {type(dout).__name__}")
    if dout.shape != shape:
        raise ValueError(f"{who!r}: expected an upstream gradient of shape {shape} "
                         f"(the output's), got {dout.shape}")
    if dout.dtype != dtype:
        raise TypeError(f"{who!r}: expected an upstream gradient of dtype {np.dtype(dtype)} "
                        f"(the output's), got {dout.dtype}")
    return dout


def check_size(who: str, name: str, value: object, minimum: int = 1) -> int:
    """A constructor argument that must be a whole number >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{who}: expected {name} to be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{who}: expected {name} >= {minimum}, got {value}")
    return int(value)


def float_dtype(who: str, dtype: object) -> np.dtype:
    """A constructor's dtype argument, which must name a floating-point type."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{who}: expected a floating-point dtype, got {dtype!r}") from None
    if dt.kind != "f":
        raise TypeError(f"{who}: expected a floating-point dtype, got {dt}")
    return dt

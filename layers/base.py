"""The Layer contract, and the input checks every layer shares.

A layer is a function with hand-derived gradients::

    out = layer.forward(x)      # keeps in layer.cache what backward needs
    dx = layer.backward(dout)   # dL/dx from dL/dout; overwrites layer.grads

``params`` and ``grads`` are dicts with the same keys, shapes and dtype. ``buffers`` holds
state that is saved with the model but not trained (BatchNorm's running statistics).
``state_dict()`` and ``load_state_dict(state)`` save and restore params and buffers by name,
as PyTorch's modules do.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np

from .validate import FLOAT_DTYPES, float_dtype, integer, mismatch

__all__ = ["Layer", "StateKeys", "batch_sum", "check_features", "check_grad", "check_input", "check_not_empty",
           "check_size", "float_dtype", "non_default"]   # float_dtype: validate's, re-exported


# PyTorch's names that a layer does not have, and what to use instead (README: "Coming from PyTorch")
PYTORCH_NAMES = {
    "parameters": "there is no parameters(): layer.params is a dict of name -> array (and "
                  "layer.grads of their gradients), and an optimizer takes the model itself, "
                  "SGD(model, lr=0.1)",
    "zero_grad": "there is no zero_grad(): backward overwrites layer.grads (it writes into them, "
                 "never adds to them), so there is nothing to zero before a backward pass",
}


class StateKeys(NamedTuple):
    """What ``load_state_dict`` did not match: names the layer has that the state lacked, and
    names the state has that the layer lacks (both empty under ``strict=True``)."""

    missing: list[str]
    unexpected: list[str]


class Layer:
    """Base class of every layer: subclass it, fill ``params``/``grads``, write the pair.

    ``params`` maps a name to the array the layer computes with. Building an optimizer (or
    ``fit_lbfgs``, or ``flatten_params``) moves every parameter into one flat buffer and makes
    the arrays held before read-only: an array fetched as ``W = layer.params["W"]`` before
    then keeps its old values, and writing into it raises numpy's ``ValueError: assignment
    destination is read-only`` (numpy lets no library change that message). Fetch the array
    again from ``layer.params`` after building the optimizer.
    """

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    buffers: dict[str, np.ndarray]
    cache: Any                # what forward keeps for backward: an array, a NamedTuple, ...
    takes_ids: ClassVar[bool] = False   # True for a layer whose input is integer token ids

    def __init__(self) -> None:
        self.training = True
        self.cache = None
        self._init_arrays()

    def _init_arrays(self) -> None:
        """Empty ``params``, ``grads`` and ``buffers``; a layer made of layers (Sequential,
        Residual) gathers them from its members instead."""
        self.params = {}
        self.grads = {}
        self.buffers = {}

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

    def named_children(self) -> Iterator[tuple[str, "Layer"]]:
        """(name, layer) for each layer directly inside this one: none for a plain layer;
        ``"0"``, ``"1"``, ... for a Sequential; ``"layer"`` for a Residual. A layer made of
        layers overrides this, and everything else that walks the tree (``train``/``eval``,
        ``named_modules``, ``flatten_params``, ``fit_lbfgs``) follows it."""
        return iter(())

    def children(self) -> Iterator["Layer"]:
        """The layers directly inside this one (``named_children`` without the names)."""
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Layer"]]:
        """(path, layer) for this layer and every layer inside it, depth first, this one first
        (its path is ``prefix``); a layer reached twice (one object used twice) is given once.
        Paths join names with ``"."`` as ``params`` keys do (``"1.layer.0"``).

        >>> from handprop.layers import Linear, ReLU, Residual, Sequential
        >>> model = Sequential(Linear(2, 4, rng=0), Residual(Sequential(Linear(4, 4, rng=1), ReLU())))
        >>> [path for path, _ in model.named_modules()]
        ['', '0', '1', '1.layer', '1.layer.0', '1.layer.1']
        """
        seen: set[int] = set()
        stack: list[tuple[str, Layer]] = [(prefix, self)]
        while stack:
            path, layer = stack.pop()
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            yield path, layer
            inner = [(f"{path}.{name}" if path else name, child)
                     for name, child in layer.named_children()]
            stack.extend(reversed(inner))

    def modules(self) -> Iterator["Layer"]:
        """This layer and every layer inside it, once each (``named_modules`` without paths)."""
        for _, layer in self.named_modules():
            yield layer

    def train(self, mode: bool = True) -> "Layer":
        """Training mode (``mode=True``) or evaluation mode for this layer and every layer
        inside it; returns the layer."""
        self.training = bool(mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> "Layer":
        return self.train(False)

    def num_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by name (``"W"``, ``"running_var"``).

        Copies, unlike PyTorch's (which share storage): a saved state stays as it was while
        the model trains on.
        """
        return {name: array.copy() for name, array in self._state_arrays().items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray], strict: bool = True) -> StateKeys:
        """Copy ``state`` (from ``state_dict``; any mapping of name -> array, such as the
        ``NpzFile`` that ``np.load`` returns for a file saved with ``np.savez``) into the
        layer's own arrays, in place.

        Every name, shape and dtype kind is checked before anything is copied, so on an error
        the layer is unchanged. With ``strict=False`` missing and unexpected names are allowed
        and returned, as PyTorch returns them; a shape that differs is always an error.
        """
        if isinstance(state, Mapping):
            state = {name: state[name] for name in state}   # an NpzFile reads each array once
        keys = self.check_state_dict(state, strict)
        own = self._state_arrays()
        for name, value in state.items():
            if name in own:
                own[name][...] = value
        return keys

    def check_state_dict(self, state: Mapping[str, np.ndarray], strict: bool = True, *,
                         source: str = "the state dict") -> StateKeys:
        """The checks of ``load_state_dict``, changing nothing: a ValueError or TypeError that
        names the first entry that does not fit, or the missing and unexpected names.
        ``source`` names where the state came from in those messages (a file, say)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"{self!r}: expected a state dict (a mapping of name -> array), got "
                            f"{type(state).__name__}")
        own = self._state_arrays()
        missing = sorted(own.keys() - state.keys())
        unexpected = sorted(state.keys() - own.keys(), key=str)
        if strict and (missing or unexpected):
            what = mismatch(missing, unexpected)
            rest = "" if what.startswith("every name") else " (strict=False loads the rest)"
            raise ValueError(f"{self!r}: {source} does not match the model's params and "
                             f"buffers: {what}{rest}")
        for name, target in own.items():
            if name not in state:
                continue
            value = state[name]
            if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
                got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
                raise TypeError(f"{self!r}: expected {name} in {source} as a floating-point array, "
                                f"got {got}")
            if value.shape != target.shape:
                raise ValueError(f"{self!r}: {name} has shape {value.shape} in {source} "
                                 f"but {target.shape} in the model")
        return StateKeys(missing, unexpected)

    def rebind(self, kind: str, name: str, array: np.ndarray) -> None:
        """Make ``array`` the entry ``name`` of ``params`` or ``grads`` (``kind``), replacing
        the array it had.

        Used by ``handprop.layers.flatten_params`` to move every parameter into one buffer;
        layers themselves never rebind (they write in place). A layer made of layers, whose
        ``params`` is gathered from its members (``Sequential``), passes the call on to the
        member that owns the entry.
        """
        getattr(self, kind)[name] = array

    def _state_arrays(self) -> dict[str, np.ndarray]:
        """The layer's own parameter and buffer arrays, by name."""
        return {**self.params, **self.buffers}

    def extra_repr(self) -> str:
        """The arguments ``repr`` shows inside the parentheses; defaults are left out."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute name
        def __getattr__(self, name: str) -> Any:
            """Only reached for a name the layer lacks: PyTorch's names get the handprop way."""
            hint = PYTORCH_NAMES.get(name)
            if hint is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}",
                                     name=name, obj=self)
            raise AttributeError(f"{type(self).__name__}: {hint} (see 'Coming from PyTorch' "
                                 f"in the README)", name=name, obj=self)

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


def row_mean(a: np.ndarray) -> np.ndarray:
    """Mean of an (..., D) array over its last axis, kept as (..., 1) to broadcast back.

    Computed as the matrix product a @ ones(D) over D: numpy's reduction along a short last
    axis (a LayerNorm's 128 features) takes about five times as long.
    """
    return (a @ _ones(a.shape[-1], a.dtype))[..., None] / a.shape[-1]


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
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{who!r}: expected a floating-point input, got dtype {x.dtype}; use "
                        f"float16, float32 or float64: x.astype(np.float64)")
    check_not_empty(who, x.shape)
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{who!r}: expected {np.dtype(dtype)} input (the layer's dtype), got "
                        f"{x.dtype}; convert it with x.astype(np.{np.dtype(dtype)})")
    if num_features is not None and (x.ndim != 2 or x.shape[1] != num_features):
        hint = "; for one sample use x[None, :]" if x.shape == (num_features,) else ""
        raise ValueError(f"{who!r}: expected input of shape (N, {num_features}), "
                         f"got {x.shape}{hint}")
    return x


def check_not_empty(who: object, shape: tuple[int, ...]) -> None:
    """An empty batch (N = 0) is refused by every layer: batch statistics, attention and the
    loss's mean would be 0 / 0, and a reshape by -1 has nothing to infer from."""
    if len(shape) >= 1 and shape[0] == 0:
        raise ValueError(f"{who!r}: expected at least one sample, got an empty batch of shape {shape}")


def check_features(who: object, x: object, num_features: int,
                   dtype: np.dtype | None = None) -> np.ndarray:
    """Check that ``x`` is a float array of shape (..., num_features), at least 2-D (batch
    first), and of ``dtype``."""
    check_input(who, x, None, dtype)
    assert isinstance(x, np.ndarray)
    if x.ndim < 2 or x.shape[-1] != num_features:
        hint = "; for one sample use x[None, :]" if x.shape == (num_features,) else ""
        raise ValueError(f"{who!r}: expected input of shape (..., {num_features}), "
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
    """A constructor argument that must be a whole number >= minimum: ``validate.integer``
    with a lower bound (kept under this name for the modules that import it)."""
    return integer(who, name, value, low=minimum)


def non_default(**options: tuple[Any, Any]) -> str:
    """``"name=value"`` pairs for the options whose value differs from its default, for
    ``extra_repr``: ``non_default(eps=(1e-3, 1e-5))`` gives ``"eps=0.001"``."""
    shown = []
    for name, (value, default) in options.items():
        if isinstance(value, np.dtype) or isinstance(default, type):
            if np.dtype(value) != np.dtype(default):
                shown.append(f"{name}={np.dtype(value)}")
        elif value != default:
            shown.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value!r}")
    return ", ".join(shown)


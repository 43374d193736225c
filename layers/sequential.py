"""Sequential and Residual: layers made of layers, each itself a Layer."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .base import Layer


class Composite(Layer):
    """A layer made of member layers: ``params``, ``grads`` and ``buffers`` are flat dicts of
    the members' own arrays (not copies), each name prefixed by its member's name; ``train``
    and ``eval`` reach every member (through ``named_children``, which each subclass defines)."""

    def _init_arrays(self) -> None:
        pass  # gathered from the members at each access, so they always see the members' arrays

    def _gather(self, kind: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{name}": array for prefix, layer in self.named_children()
                for name, array in getattr(layer, kind, {}).items()}

    def _read_only(self, value: object) -> None:
        raise AttributeError(f"{self!r}: params, grads and buffers are its layers' own arrays, "
                             f"named through it; set them on the layers")

    params = property(lambda self: self._gather("params"), _read_only)
    grads = property(lambda self: self._gather("grads"), _read_only)
    buffers = property(lambda self: self._gather("buffers"), _read_only)

    def rebind(self, kind: str, name: str, array: np.ndarray) -> None:
        """Pass ``rebind`` on to the member that owns ``name`` (``"0.W"`` -> member 0's ``W``)."""
        prefix, _, inner = name.partition(".")
        dict(self.named_children())[prefix].rebind(kind, inner, array)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Each member's params and buffers in turn, as PyTorch orders a state dict."""
        return {f"{prefix}.{name}": array for prefix, layer in self.named_children()
                for name, array in layer._state_arrays().items()}


class Sequential(Composite):
    """Chain layers: ``forward`` runs them in order, ``backward`` in reverse.

    ``params``, ``grads`` and ``buffers`` are flat dicts named ``"{index}.{name}"`` (``"0.W"``,
    ``"1.running_mean"``) holding the layers' own arrays, not copies: updating
    ``model.params["0.W"]`` in place updates ``model[0]``. Being a Layer, a Sequential nests
    and gradcheck checks it whole.
    """

    def __init__(self, *layers: Layer) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: expected every member to be a Layer, got "
                                f"{type(layer).__name__} at position {i}")
        super().__init__()
        self.layers = list(layers)

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    @property
    def takes_ids(self) -> bool:  # type: ignore[override]
        """Whether the input is integer token ids: the first member's answer."""
        return bool(self.layers) and self.layers[0].takes_ids

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, ...) -> the last layer's output."""
        for i, layer in enumerate(self.layers):
            try:
                x = layer.forward(x)
            except (ValueError, TypeError) as err:
                if i == 0:
                    raise
                # the layer's own message names it; add where its input came from
                raise type(err)(f"Sequential layer {i}, fed by layer {i - 1} "
                                f"({self.layers[i - 1]!r}): {err}") from err
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dL/d(last output) -> dL/dx; fills every layer's grads."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def param_backward(self, dout: np.ndarray) -> None:
        """Every layer's grads, but not dL/dx: the first layer skips its input gradient."""
        for layer in reversed(self.layers[1:]):
            dout = layer.backward(dout)
        if self.layers:
            self.layers[0].param_backward(dout)

    def __getitem__(self, index: int | slice) -> Layer:
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def extra_repr(self) -> str:
        return ", ".join(map(repr, self.layers))

    def __str__(self) -> str:
        """A table of the layers with their parameter counts, and the total."""
        rows = [("#", "layer", "params")]
        rows += [(str(i), repr(layer), f"{layer.num_params():,}")
                 for i, layer in enumerate(self.layers)]
        rows.append(("", "total", f"{self.num_params():,}"))
        w0, w1, w2 = (max(len(r[k]) for r in rows) for k in range(3))
        return "\n".join(f"{a.rjust(w0)}  {b.ljust(w1)}  {c.rjust(w2)}" for a, b, c in rows)


class Residual(Composite):
    """A skip connection around a layer: ``out = x + layer(x)``.

    Shapes: x and out (N, ...), the same; the inner layer must keep its input's shape.

    x feeds two branches, the identity and the layer, and their gradients add::

        dx = dout + layer.backward(dout)

    (the identity's local derivative is 1, so the skip path hands dout through unchanged:
    that is why gradients reach deep residual networks). ``params``, ``grads`` and
    ``buffers`` are the inner layer's, named ``"layer.{name}"`` (``"layer.0.W"`` around a
    Sequential).

    Examples
    --------
    >>> from handprop.layers import Linear, ReLU, Residual, Sequential
    >>> block = Residual(Sequential(Linear(4, 4, rng=0), ReLU()))
    >>> sorted(block.params)
    ['layer.0.W', 'layer.0.b']
    """

    def __init__(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"Residual: expected a Layer, got {type(layer).__name__}")
        super().__init__()
        self.layer = layer

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        yield "layer", self.layer

    @property
    def takes_ids(self) -> bool:  # type: ignore[override]
        """Whether the input is integer token ids: the inner layer's answer."""
        return self.layer.takes_ids

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, ...) -> x + layer(x), same shape."""
        branch = self.layer.forward(x)
        if not isinstance(x, np.ndarray) or branch.shape != x.shape or branch.dtype != x.dtype:
            got = f"{branch.shape} {branch.dtype}"
            want = f"{x.shape} {x.dtype}" if isinstance(x, np.ndarray) else "its input's"
            raise ValueError(f"{self!r}: the inner layer must keep its input's shape and dtype "
                             f"to be added to it; expected {want}, got {got}")
        self.cache = x.shape
        return x + branch

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, ...) -> dx (N, ...): the skip path's dout plus the layer's dx."""
        self._saved()
        return dout + self.layer.backward(dout)

    def param_backward(self, dout: np.ndarray) -> None:
        """The inner layer's grads only: the skip path has no parameters."""
        self._saved()
        self.layer.param_backward(dout)

    def extra_repr(self) -> str:
        return repr(self.layer)

"""Sequential: layers applied one after another, itself a Layer."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .base import Layer


class Sequential(Layer):
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
        self.layers = list(layers)
        self.training = True
        self.cache = None

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self._gather("params")

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self._gather("grads")

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        return self._gather("buffers")

    def _gather(self, kind: str) -> dict[str, np.ndarray]:
        return {f"{i}.{name}": array for i, layer in enumerate(self.layers)
                for name, array in getattr(layer, kind, {}).items()}

    def rebind(self, kind: str, name: str, array: np.ndarray) -> None:
        """Pass ``rebind`` on to the member that owns ``name`` (``"0.W"`` -> layer 0's ``W``)."""
        index, _, inner = name.partition(".")
        self.layers[int(index)].rebind(kind, inner, array)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Each layer's params and buffers in turn, as PyTorch orders a state dict."""
        return {f"{i}.{name}": array for i, layer in enumerate(self.layers)
                for name, array in layer._state_arrays().items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, ...) -> the last layer's output."""
        for i, layer in enumerate(self.layers):
            try:
                x = layer.forward(x)
            except ValueError as err:
                if i == 0:
                    raise
                raise ValueError(f"Sequential layer {i}, {layer!r}, fed by layer {i - 1}, "
                                 f"{self.layers[i - 1]!r}: {err}") from err
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

    def train(self, mode: bool = True) -> "Sequential":
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def __getitem__(self, index: int | slice) -> Layer:
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __repr__(self) -> str:
        return f"Sequential({', '.join(map(repr, self.layers))})"

    def __str__(self) -> str:
        """A table of the layers with their parameter counts, and the total."""
        rows = [("#", "layer", "params")]
        rows += [(str(i), repr(layer), f"{layer.num_params():,}")
                 for i, layer in enumerate(self.layers)]
        rows.append(("", "total", f"{self.num_params():,}"))
        w0, w1, w2 = (max(len(r[k]) for r in rows) for k in range(3))
        return "\n".join(f"{a.rjust(w0)}  {b.ljust(w1)}  {c.rjust(w2)}" for a, b, c in rows)

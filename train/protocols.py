"""What ``fit`` needs of the objects it is given, as small typed protocols: mypy sees the
contract, and a duck-typed object with the right members still works (``isinstance`` with a
runtime-checkable protocol looks for the members, as ``hasattr`` did)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Steps(Protocol):
    """An optimizer: ``step()`` updates the parameters from their gradients."""

    def step(self) -> None: ...


@runtime_checkable
class SavesState(Protocol):
    """An optimizer whose state a checkpoint can hold."""

    def state_dict(self) -> dict: ...


@runtime_checkable
class LoadsState(Protocol):
    """An optimizer (or schedule) whose state a resumed run restores."""

    def load_state_dict(self, state: dict) -> None: ...


@runtime_checkable
class BuiltForModel(Protocol):
    """An optimizer that knows its model (every optimizer of handprop.train)."""

    model: Any


@runtime_checkable
class OnFlatBuffers(Protocol):
    """An optimizer over the model's flat buffers, whose params are views of them."""

    flat_params: np.ndarray
    flat_grads: np.ndarray


@runtime_checkable
class BuiltOnOptimizer(Protocol):
    """A learning-rate schedule, built on an optimizer."""

    optimizer: Any


@runtime_checkable
class Reduces(Protocol):
    """A loss that says how it reduces: ``"mean"``, ``"sum"`` (or ``"none"``, which fit refuses)."""

    reduction: str


@runtime_checkable
class SaysTargets(Protocol):
    """A loss that says what its targets are: ``"classes"`` or ``"values"``."""

    targets: str


@runtime_checkable
class CountsCorrect(Protocol):
    """A loss with its own count of right decisions (``Loss.count_correct``)."""

    def count_correct(self, pred: np.ndarray, target: np.ndarray) -> int | None: ...


@runtime_checkable
class IgnoresIndex(Protocol):
    """A loss that leaves out the positions whose target is ``ignore_index`` (padding)."""

    ignore_index: int


@runtime_checkable
class TakesIds(Protocol):
    """A model (or layer) whose input is integer token ids; ``takes_ids`` says whether."""

    takes_ids: bool


@runtime_checkable
class HasTable(Protocol):
    """A layer that looks ids up in a table of ``num_embeddings`` rows (Embedding)."""

    num_embeddings: int


@runtime_checkable
class Walks(Protocol):
    """A model that walks its tree of layers (``Layer.named_modules``)."""

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Any]]: ...


def named_layers(model: object, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, layer) of the model and every layer inside it: ``Layer.named_modules``, the one
    tree walk; a duck-typed model without it is a single layer."""
    if isinstance(model, Walks):
        yield from model.named_modules(prefix)
    else:
        yield prefix, model


def reduction(loss_fn: object) -> str:
    """The loss's reduction; ``"mean"`` for a loss that does not say."""
    return loss_fn.reduction if isinstance(loss_fn, Reduces) else "mean"


def targets(loss_fn: object) -> str:
    """What the loss's targets are; ``"classes"`` for a loss that does not say."""
    return loss_fn.targets if isinstance(loss_fn, SaysTargets) else "classes"


def takes_ids(model: object) -> bool:
    """Whether the model's input is integer ids (``Layer.takes_ids``; False where absent)."""
    return isinstance(model, TakesIds) and bool(model.takes_ids)

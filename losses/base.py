"""The Loss contract: what ``fit``, ``evaluate`` and the gradient checker rely on.

A loss is a function of a prediction and a target with a hand-derived gradient::

    loss = loss_fn.forward(pred, target)    # a Python float; keeps in loss_fn.cache what backward needs
    dpred = loss_fn.backward(dloss=1.0)     # dL/dpred, of pred's shape and dtype
    correct = loss_fn.count_correct(pred, target)   # for fit's accuracy, or None (regression)

``targets`` says what the target is, so ``fit`` can convert a script's data once, up front:
``"classes"`` (integer class indices, one per sample) or ``"values"`` (real numbers of the
prediction's shape).
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from ..layers.base import check_grad


class LossValue(float):
    """A loss as returned by ``forward``: a plain Python float in every way (arithmetic, json,
    ``math``, numpy), except that ``.backward()``, as PyTorch users call it on a loss tensor,
    says how handprop does it instead of a bare AttributeError."""

    __slots__ = ()

    def backward(self, *args: object, **kwargs: object) -> None:
        raise AttributeError(
            "a handprop loss value is a plain float and has no backward(): call "
            "loss_fn.backward() on the loss object, which returns dL/dpred, then "
            "model.backward(dpred) (see 'Coming from PyTorch' in the README)")

    def __reduce__(self):  # pickles (checkpoints, copies) as the plain float it is
        return (float, (float(self),))


class Loss:
    """Base class of every loss: subclass it and write ``forward`` and ``backward``."""

    targets: ClassVar[Literal["classes", "values"]] = "values"

    def __init__(self) -> None:
        self.cache: Any = None

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        """The loss as a Python float (per-element losses, an array, for reduction="none")."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        return self.forward(pred, target)

    def count_correct(self, pred: np.ndarray, target: np.ndarray) -> int | None:
        """How many of a batch's decisions are right, for the accuracy ``fit`` reports; None
        where accuracy means nothing (regression), and then ``fit`` reports none.

        For class targets a decision is a row's arg-max; a loss with another rule (binary
        logits: ``BCEWithLogitsLoss``) overrides this. Accuracy is this count over
        ``target.size``, the number of decisions.
        """
        if self.targets != "classes":
            return None
        return int(np.count_nonzero(pred.argmax(axis=-1) == target))

    @staticmethod
    def value(loss: float) -> "LossValue":
        """A reduced loss as the float ``forward`` returns (a ``LossValue``)."""
        return LossValue(loss)

    def extra_repr(self) -> str:
        """The arguments ``repr`` shows inside the parentheses; defaults are left out."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def check_dloss(self, dloss: Any, like: np.ndarray) -> float | np.ndarray:
        """The upstream gradient ``backward`` was given, checked against what ``forward``
        returned: a real scalar (a Python float back, so a float32 gradient stays float32) for
        a reduced loss; for ``reduction="none"`` an array of exactly the per-element losses'
        shape and dtype (``like``'s), never broadcast. Anything else is a TypeError or a
        ValueError that names the loss, what it expected and what it got."""
        if getattr(self, "reduction", None) == "none":
            if not isinstance(dloss, np.ndarray):
                raise TypeError(f"{self!r}: with reduction='none' backward takes the upstream "
                                f"gradient of each element, an array of shape {like.shape}, "
                                f"got {type(dloss).__name__}")
            return check_grad(self, dloss, like.shape, like.dtype)
        scalar = not isinstance(dloss, (bool, np.bool_)) and np.ndim(dloss) == 0
        if not scalar or np.asarray(dloss).dtype.kind not in "fiu":
            reduction = getattr(self, "reduction", "mean")
            raise TypeError(f"{self!r}: expected a real scalar dloss (the loss is a scalar "
                            f"with reduction={reduction!r}), got {_describe(dloss)}")
        return float(dloss)

    def _saved(self) -> Any:
        """The forward pass's cache, or a RuntimeError that says forward has not run."""
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward; "
                               f"call forward(pred, target) first")
        return self.cache


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"{type(value).__name__} {value!r}"

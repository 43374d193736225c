"""What the elementwise losses share: one loss term per prediction element, then a reduction.

A prediction ``pred`` and a ``target`` of the same shape give one term per element,
``loss_i = ell(pred_i, target_i)``, reduced as PyTorch reduces::

    "mean":  L = sum_i loss_i / n     (n = pred.size, every element, not only the rows)
    "sum":   L = sum_i loss_i
    "none":  the array of loss_i itself

Backward is the chain rule through the reduction, then the term's local derivative:
``dpred_i = dL/dloss_i * d ell / d pred_i``, where ``dL/dloss_i`` is ``dloss / n``, ``dloss``,
or (for "none") the caller's per-element array. ``upstream`` computes the first factor; each
loss's ``backward`` multiplies by its own local derivative.
"""
from __future__ import annotations

import numpy as np

from ..layers.base import check_input
from ..layers.validate import choice
from .base import Loss

REDUCTIONS = ("mean", "sum", "none")


class ElementwiseLoss(Loss):
    """Base of MSELoss, L1Loss, HuberLoss and BCEWithLogitsLoss: the reduction and the checks."""

    targets = "values"

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = choice(type(self).__name__, "reduction", reduction, REDUCTIONS)

    def reduce(self, losses: np.ndarray) -> float | np.ndarray:
        """The per-element terms, reduced: a Python float, or the array itself for "none"."""
        if self.reduction == "none":
            return losses
        return self.value(float(losses.sum() if self.reduction == "sum" else losses.mean()))

    def upstream(self, dloss: float | np.ndarray, like: np.ndarray) -> float | np.ndarray:
        """dL/dloss_i: ``dloss / n`` for "mean", ``dloss`` for "sum", both as Python floats
        (so a float32 gradient stays float32); for "none", ``dloss`` itself, which must be an
        array of the per-element losses' shape and dtype (``like``'s)."""
        dloss = self.check_dloss(dloss, like)
        if self.reduction == "none":
            return dloss
        return float(dloss) / like.size if self.reduction == "mean" else float(dloss)

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


def check_pred_and_target(who: object, pred: object, target: object) -> None:
    """Raise a clear error unless ``pred`` is a non-empty float array and ``target`` a float
    array of the same shape and dtype.

    Same shape, never broadcast: PyTorch only warns, and a (N,) target against (N, 1)
    predictions broadcasts to an (N, N) grid of differences that trains on every pair.
    """
    pred = check_input(who, pred)
    if pred.ndim == 0 or pred.size == 0:
        raise ValueError(f"{who!r}: expected predictions of shape (N, ...) with N >= 1, got "
                         f"shape {pred.shape}" + ("; use pred.reshape(1)" if pred.ndim == 0 else ""))
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{who!r}: expected the target as a numpy array, got "
                        f"{type(target).__name__}; wrap it with np.asarray")
    if target.dtype.kind != "f":
        raise TypeError(f"{who!r}: expected a floating-point target, got dtype {target.dtype}; "
                        f"convert it with target.astype(np.{pred.dtype})")
    if target.shape != pred.shape:
        # in terms of N, not of this batch: fit passes batches of the user's y, and a hint
        # with the batch's size (64) would not fit the y (1000,) the user holds
        per_sample = pred.shape[1:]
        pattern = f"(N, {', '.join(map(str, per_sample))})" if per_sample else "(N,)"
        hint = ""
        if target.size == pred.size:
            hint = (f"; if they are the same values, reshape the target: "
                    f"target.reshape({', '.join(map(str, (-1, *per_sample)))})")
        raise ValueError(f"{who!r}: expected a target of the prediction's shape {pattern}, "
                         f"here {pred.shape}, got {target.shape}; a target of another shape is "
                         f"never broadcast (a (N,) target against (N, 1) predictions would "
                         f"compare every prediction with every target, an N x N grid){hint}")
    if target.dtype != pred.dtype:
        raise TypeError(f"{who!r}: expected a target of the prediction's dtype {pred.dtype}, "
                        f"got {target.dtype}; convert it with target.astype(np.{pred.dtype})")


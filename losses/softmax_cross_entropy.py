"""Softmax cross-entropy, fused and numerically stable; softmax and log_softmax for inference.

Derivation: docs/derivations/losses.md#softmax-cross-entropy. ``SoftmaxCrossEntropy.backward`` is the
fused ``(softmax - target distribution) / N``; ``staged_backward`` walks the gates.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..layers.base import check_input, non_default
from ..layers.validate import choice, integer, real
from .base import Loss

REDUCTIONS = ("mean", "sum")


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(logits)) without taking the log of a probability that underflowed.

    Shifting by the maximum changes nothing mathematically (softmax(z - c) = softmax(z)) and
    keeps exp from overflowing: the largest shifted logit is 0, so the sum is in [1, C].
    """
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities along ``axis``, same shape and dtype as ``logits``."""
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of softmax(logits) against integer class targets, as ``F.cross_entropy``.

    Shapes: logits (..., C) float, targets (...) int in [0, C) or ``ignore_index``; the loss is
    a Python float. Every leading position is one decision: (N, C) logits with (N,) targets,
    or (N, T, V) logits with (N, T) targets for a sequence model (PyTorch wants the classes
    second, ``(N, C, T)``; here they stay last, where a Linear puts them). Below, M positions.

    With smoothing s, the target distribution is q = (1 - s) * onehot(targets) + s / C, and::

        loss_m = -sum_c q_mc * log_softmax(logits)_mc
        loss   = sum_m keep_m * loss_m / K   (reduction="mean")   or   sum_m keep_m * loss_m  ("sum")

    where keep_m is 0 at the positions whose target is ``ignore_index`` (PyTorch's -100: a
    padding position) and 1 elsewhere, and K = sum_m keep_m. An ignored position adds nothing
    to the loss, its gradient is 0, it is left out of ``count_correct`` (and of the accuracy's denominator in ``fit``), and
    its target is not range-checked. A batch whose targets are all ignored gives, as PyTorch
    does, a "mean" of nan (0 / 0) with a zero gradient, and a "sum" of 0.

    Backward, fused: ``dlogits = dloss * keep * (softmax(logits) - q) / K`` (no ``/ K`` for
    "sum"). The max-shift used for stability has no effect on the gradient: the max is
    subtracted from every logit of a row and from their log-sum-exp alike, so its two paths
    cancel exactly (staged_backward shows its gradient summing to zero).

    Examples
    --------
    >>> import numpy as np
    >>> loss_fn = SoftmaxCrossEntropy()
    >>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> round(loss_fn.forward(logits, np.array([0, 2])), 4)
    0.6691
    >>> loss_fn.backward().round(3)       # (softmax - onehot) / N; each row sums to 0
    array([[-0.107,  0.053,  0.053],
           [ 0.167,  0.167, -0.333]])
    >>> round(loss_fn.forward(logits, np.array([0, -100])), 4)   # the second row ignored
    0.2395
    """

    targets = "classes"

    def __init__(self, *, reduction: str = "mean", label_smoothing: float = 0.0,
                 ignore_index: int = -100) -> None:
        super().__init__()
        self.reduction = choice("SoftmaxCrossEntropy", "reduction", reduction, REDUCTIONS)
        self.label_smoothing = real("SoftmaxCrossEntropy", "label_smoothing", label_smoothing,
                                    low=0, high=1, high_open=True)
        self.ignore_index = integer("SoftmaxCrossEntropy", "ignore_index", ignore_index)

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """logits (..., C), targets (...) -> the loss as a Python float."""
        check_logits_and_targets(self, logits, targets, self.ignore_index)
        c = logits.shape[-1]
        flat_targets = targets.reshape(-1)                       # (M,)
        keep = flat_targets != self.ignore_index                 # (M,) bool
        picks = np.where(keep, flat_targets, 0)                  # (M,) any class where ignored
        log_probs = log_softmax(logits.reshape(-1, c))           # (M, C)
        nll = -log_probs[np.arange(picks.size), picks]           # (M,)
        s = self.label_smoothing
        if s:
            nll = (1 - s) * nll - s * log_probs.mean(axis=1)
        kept = int(np.count_nonzero(keep))
        all_kept = kept == picks.size
        total = float(nll.sum() if all_kept else nll[keep].sum())
        self.cache = Saved(log_probs, picks, None if all_kept else keep, kept, logits.shape)
        if self.reduction == "sum":
            return self.value(total)
        return self.value(total / kept if kept else math.nan)   # nothing kept: nan, as PyTorch

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        """dL/dlogits (..., C), in the logits' dtype, for an upstream scalar ``dloss``."""
        log_probs, picks, keep, kept, shape = self._saved()
        dloss = float(self.check_dloss(dloss, log_probs))   # reduced: a scalar
        m, c = log_probs.shape
        s = self.label_smoothing
        dlogits = np.exp(log_probs)                       # softmax, (M, C)
        if s:
            dlogits -= s / c
        dlogits[np.arange(m), picks] -= 1 - s             # minus the target distribution q
        if keep is not None:
            dlogits[~keep] = 0                            # an ignored position has no gradient
        scale = dloss if self.reduction == "sum" else (dloss / kept if kept else 0.0)
        dlogits *= scale
        return dlogits.reshape(shape)

    def count_correct(self, pred: np.ndarray, target: np.ndarray) -> int:
        """How many kept positions have their target as the arg-max (ignored ones left out)."""
        hits = pred.argmax(axis=-1) == target
        return int(np.count_nonzero(hits & (target != self.ignore_index)))

    def extra_repr(self) -> str:
        return non_default(reduction=(self.reduction, "mean"),
                           label_smoothing=(self.label_smoothing, 0.0),
                           ignore_index=(self.ignore_index, -100))


class Saved(NamedTuple):
    """What the forward pass keeps for backward."""

    log_probs: np.ndarray         # (M, C) over the M = prod(leading shape) positions
    picks: np.ndarray             # (M,) each position's target (0 where ignored)
    keep: np.ndarray | None       # (M,) bool, False where ignored; None when nothing is
    kept: int                     # K, the number of positions not ignored
    shape: tuple[int, ...]        # the logits' shape (..., C)


def check_logits_and_targets(who, logits: np.ndarray, targets: np.ndarray,
                             ignore_index: int | None = None) -> None:
    """Raise a clear error for logits that are not (..., C) float or targets not (...) int in
    [0, C) (or ``ignore_index``)."""
    check_input(who, logits)
    if logits.ndim < 2:
        hint = "; for one sample use logits[None, :]" if logits.ndim == 1 else ""
        raise ValueError(f"{who!r}: expected logits of shape (N, C) or (N, ..., C), got "
                         f"{logits.shape}{hint}")
    c = logits.shape[-1]
    if logits.size == 0:
        raise ValueError(f"{who!r}: expected at least one sample, got an empty batch "
                         f"of shape {logits.shape}")
    if not isinstance(targets, np.ndarray):
        raise TypeError(f"{who!r}: expected targets as a numpy array of class indices, "
                        f"got {type(targets).__name__}")
    if targets.dtype.kind not in "iu":
        raise TypeError(f"{who!r}: expected integer class indices as targets, got dtype "
                        f"{targets.dtype}; convert with targets.astype(np.int64)")
    want = logits.shape[:-1]
    if targets.shape != want:
        hint = "; flatten them with targets.ravel()" if targets.size == np.prod(want) else ""
        raise ValueError(f"{who!r}: expected targets of shape {want} to match logits "
                         f"{logits.shape} (one class index per position), got "
                         f"{targets.shape}{hint}")
    bad = (targets < 0) | (targets >= c)
    if ignore_index is not None:
        bad &= targets != ignore_index
    if bad.any():
        where = np.argwhere(bad)
        at = tuple(int(i) for i in where[0])
        place = at[0] if len(at) == 1 else at
        also = f" or {ignore_index} (ignore_index)" if ignore_index is not None else ""
        raise ValueError(f"{who!r}: expected class indices in [0, {c}){also} for {c} classes, "
                         f"got {targets[at]} at position {place} ({len(where)} out of range "
                         f"in all)")


def staged_backward(logits: np.ndarray, targets: np.ndarray, reduction: str = "mean",
                    label_smoothing: float = 0.0, dloss: float = 1.0,
                    ignore_index: int = -100) -> np.ndarray:
    """d loss / d logits, one gate at a time; slower than the fused backward, equal to it.

    Recomputes the forward graph (max-shift, exp, sum, log, pick the target, mask the ignored
    positions, mean) and walks it in reverse, one local derivative per line. Logits (..., C),
    targets (...); returns dlogits (..., C).
    """
    c = logits.shape[-1]
    z = logits.reshape(-1, c)                             # (M, C)  the positions as rows
    t = targets.reshape(-1)                               # (M,)
    m_rows = np.arange(t.size)
    s = label_smoothing
    # forward
    keep = (t != ignore_index).astype(z.dtype)            # (M,)  1 kept, 0 ignored
    picks = np.where(t != ignore_index, t, 0)             # (M,)
    m = z.max(axis=1, keepdims=True)                      # (M, 1)
    shifted = z - m                                       # (M, C)  m broadcast over C
    e = np.exp(shifted)                                   # (M, C)
    total = e.sum(axis=1, keepdims=True)                  # (M, 1)
    lse = np.log(total)                                   # (M, 1)
    log_probs = shifted - lse                             # (M, C)  lse broadcast over C
    picked = log_probs[m_rows, picks]                     # (M,)
    nll = -(1 - s) * picked - s * log_probs.mean(axis=1)  # (M,)  # noqa: F841 (the graph, for reading)
    kept = keep.sum()
    # loss = (keep * nll).sum() / kept   or   (keep * nll).sum()

    # backward
    dsum = dloss / kept if reduction == "mean" and kept else (0.0 if reduction == "mean" else dloss)
    dnll = keep * dsum                                    # (M,)  the mask's local derivative
    dlog_probs = np.zeros_like(log_probs)                 # (M, C)
    dlog_probs[m_rows, picks] = -(1 - s) * dnll           # picking scatters back to the target
    dlog_probs += -s * dnll[:, None] / c                  # second branch (smoothing): they add
    dshifted = dlog_probs.copy()                          # first branch into shifted
    dlse = -dlog_probs.sum(axis=1, keepdims=True)         # (M, 1)  broadcast over C -> sum
    dtotal = dlse / total                                 # (M, 1)  d log(t)/dt = 1/t
    de = dtotal * np.ones_like(e)                         # (M, C)  sum over C -> broadcast back
    dshifted += de * e                                    # second branch into shifted: add
    dm = -dshifted.sum(axis=1, keepdims=True)             # (M, 1)  is 0 up to rounding
    dlogits = dshifted.copy()                             # (M, C) first branch into logits
    dlogits[m_rows, z.argmax(axis=1)] += dm[:, 0]         # the max passes its gradient to argmax
    return dlogits.reshape(logits.shape)

"""Softmax cross-entropy, fused and numerically stable; softmax and log_softmax for inference.

Derivation: docs/derivations.md#softmax-cross-entropy. ``SoftmaxCrossEntropy.backward`` is the
fused ``(softmax - target distribution) / N``; ``staged_backward`` walks the gates.
"""
from __future__ import annotations

import numpy as np

from ..layers.base import check_input, non_default
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

    Shapes: logits (N, C) float, targets (N,) int in [0, C); the loss is a Python float.

    With smoothing s, the target distribution is q = (1 - s) * onehot(targets) + s / C, and::

        loss_n = -sum_c q_nc * log_softmax(logits)_nc
        loss   = mean_n loss_n   (reduction="mean")   or   sum_n loss_n   ("sum")

    Backward, fused: ``dlogits = dloss * (softmax(logits) - q) / N`` (no ``/ N`` for "sum").
    The max-shift used for stability has no effect on the gradient: the max is subtracted from
    every logit of a row and from their log-sum-exp alike, so its two paths cancel exactly
    (staged_backward shows its gradient summing to zero).

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
    """

    targets = "classes"

    def __init__(self, *, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"SoftmaxCrossEntropy: expected reduction 'mean' or 'sum', "
                             f"got {reduction!r}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"SoftmaxCrossEntropy: expected label_smoothing in [0, 1), "
                             f"got {label_smoothing}")
        self.reduction = reduction
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """logits (N, C), targets (N,) -> the loss as a Python float."""
        check_logits_and_targets(self, logits, targets)
        n, c = logits.shape
        rows = np.arange(n)
        log_probs = log_softmax(logits)                   # (N, C)
        nll = -log_probs[rows, targets]                   # (N,)
        s = self.label_smoothing
        if s:
            nll = (1 - s) * nll - s * log_probs.mean(axis=1)
        self.cache = (log_probs, targets)
        return float(nll.sum() if self.reduction == "sum" else nll.mean())

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        """dL/dlogits (N, C), in the logits' dtype, for an upstream scalar ``dloss``."""
        log_probs, targets = self._saved()
        n, c = log_probs.shape
        s = self.label_smoothing
        dlogits = np.exp(log_probs)                       # softmax, (N, C)
        if s:
            dlogits -= s / c
        dlogits[np.arange(n), targets] -= 1 - s           # minus the target distribution q
        dlogits *= dloss / n if self.reduction == "mean" else dloss
        return dlogits

    def extra_repr(self) -> str:
        return non_default(reduction=(self.reduction, "mean"),
                           label_smoothing=(self.label_smoothing, 0.0))


def check_logits_and_targets(who, logits: np.ndarray, targets: np.ndarray) -> None:
    """Raise a clear error for logits that are not (N, C) float or targets not (N,) in [0, C)."""
    check_input(who, logits)
    if logits.ndim != 2:
        hint = "; for one sample use logits[None, :]" if logits.ndim == 1 else ""
        raise ValueError(f"{who!r}: expected logits of shape (N, C), got {logits.shape}{hint}")
    n, c = logits.shape
    if n == 0:
        raise ValueError(f"{who!r}: expected at least one sample, got an empty batch "
                         f"of shape {logits.shape}")
    if not isinstance(targets, np.ndarray):
        raise TypeError(f"{who!r}: expected targets as a numpy array of class indices, "
                        f"got {type(targets).__name__}")
    if targets.dtype.kind not in "iu":
        raise TypeError(f"{who!r}: expected integer class indices as targets, got dtype "
                        f"{targets.dtype}; convert with targets.astype(np.int64)")
    if targets.shape != (n,):
        hint = "; flatten them with targets.ravel()" if targets.size == n else ""
        raise ValueError(f"{who!r}: expected targets of shape (N,) = ({n},) to match logits "
                         f"{logits.shape}, got {targets.shape}{hint}")
    if targets.min() < 0 or targets.max() >= c:
        bad = np.flatnonzero((targets < 0) | (targets >= c))
        i = bad[0]
        raise ValueError(f"{who!r}: expected class indices in [0, {c}) for {c} classes, got "
                         f"{targets[i]} at position {i} ({bad.size} out of range in all)")


def staged_backward(logits: np.ndarray, targets: np.ndarray, reduction: str = "mean",
                    label_smoothing: float = 0.0, dloss: float = 1.0) -> np.ndarray:
    """d loss / d logits, one gate at a time; slower than the fused backward, equal to it.

    Recomputes the forward graph (max-shift, exp, sum, log, pick the target, mean) and walks
    it in reverse, one local derivative per line. Returns dlogits (N, C).
    """
    n, c = logits.shape
    rows = np.arange(n)
    s = label_smoothing
    # forward
    m = logits.max(axis=1, keepdims=True)                 # (N, 1)
    shifted = logits - m                                  # (N, C)  m broadcast over C
    e = np.exp(shifted)                                   # (N, C)
    total = e.sum(axis=1, keepdims=True)                  # (N, 1)
    lse = np.log(total)                                   # (N, 1)
    log_probs = shifted - lse                             # (N, C)  lse broadcast over C
    picked = log_probs[rows, targets]                     # (N,)
    nll = -(1 - s) * picked - s * log_probs.mean(axis=1)  # (N,)  # noqa: F841 (the graph, for reading)
    # loss = nll.mean() or nll.sum()

    # backward
    dnll = np.full(n, dloss / n if reduction == "mean" else dloss)  # (N,)
    dlog_probs = np.zeros_like(log_probs)                 # (N, C)
    dlog_probs[rows, targets] = -(1 - s) * dnll           # picking scatters back to the target
    dlog_probs += -s * dnll[:, None] / c                  # second branch (smoothing): they add
    dshifted = dlog_probs.copy()                          # first branch into shifted
    dlse = -dlog_probs.sum(axis=1, keepdims=True)         # (N, 1)  broadcast over C -> sum
    dtotal = dlse / total                                 # (N, 1)  d log(t)/dt = 1/t
    de = dtotal * np.ones_like(e)                         # (N, C)  sum over C -> broadcast back
    dshifted += de * e                                    # second branch into shifted: add
    dm = -dshifted.sum(axis=1, keepdims=True)             # (N, 1)  is 0 up to rounding
    dlogits = dshifted.copy()                             # first branch into logits
    dlogits[rows, logits.argmax(axis=1)] += dm[:, 0]      # the max passes its gradient to argmax
    return dlogits

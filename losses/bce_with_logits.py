"""Binary cross-entropy on logits, fused and numerically stable, as ``torch.nn.BCEWithLogitsLoss``.

Derivation: docs/derivations/losses.md#binary-cross-entropy-with-logits, beside softmax
cross-entropy's: a sigmoid is a softmax over the two logits (0, z), and the same max-shift
keeps it finite. ``BCEWithLogitsLoss.backward`` is the fused result; ``staged_backward`` walks
the gates, and a test holds them equal.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from .elementwise import ElementwiseLoss, check_pred_and_target


class Saved(NamedTuple):
    """What backward needs: both sigmoids (each accurate where the other rounds to 1),
    the targets and the positive weights broadcast against them."""

    sig: np.ndarray           # sigmoid(z), (...)
    sig_neg: np.ndarray       # sigmoid(-z) = 1 - sigmoid(z), (...)
    target: np.ndarray        # y, (...)
    pos_weight: np.ndarray | float  # p, (C,) broadcast over the last axis, or 1.0


class BCEWithLogitsLoss(ElementwiseLoss):
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1].

    Shapes: logits z and targets y of any shape, the same (never broadcast), the same float
    dtype; a binary classifier with one output unit has z and y of shape (N, 1). Targets are
    probabilities of the positive class (0 or 1, or soft labels). ``forward`` returns a Python
    float, or for ``reduction="none"`` the per-element losses as an array of z's shape and
    dtype (PyTorch returns a tensor), and ``backward`` then takes the per-element upstream
    gradient. ``pos_weight`` (C,) weighs the positive term of each of C outputs (the last axis),
    as PyTorch's does; PyTorch's per-sample ``weight`` is not offered.

    Forward, with p = pos_weight (1 without it) and softplus(a) = log(1 + exp(a))::

        loss_i = -p y log sigmoid(z) - (1 - y) log(1 - sigmoid(z))
               = p y softplus(-z) + (1 - y) softplus(z)

    The second form is what is computed, never log(sigmoid(z)): 1 / (1 + exp(-z)) is 0 below
    z = -710 in float64 (-89 in float32), where exp(-z) overflows, and 1 - sigmoid(z) is 0
    above z = 37 (17 in float32); the log of either is -inf. Each softplus is a
    log-sum-exp of (0, +-z), shifted by its maximum as in softmax cross-entropy:
    softplus(a) = max(a, 0) + log1p(exp(-|a|)), so no exp overflows.

    Backward, fused: ``dz = dL/dloss * ((1 - y) sigmoid(z) - p y sigmoid(-z))``, which is
    ``sigmoid(z) - y`` without pos_weight: softmax cross-entropy's "probabilities minus target".

    Examples
    --------
    >>> import numpy as np
    >>> bce = BCEWithLogitsLoss()
    >>> round(bce.forward(np.array([[0.0], [1e4]]), np.array([[1.0], [0.0]])), 6)  # (log 2 + 1e4) / 2
    5000.346574
    >>> bce.backward()                                     # (sigmoid(z) - y) / n
    array([[-0.25],
           [ 0.5 ]])
    """

    def __init__(self, *, reduction: str = "mean", pos_weight: npt.ArrayLike | None = None) -> None:
        super().__init__(reduction=reduction)
        self.pos_weight = None if pos_weight is None else _check_pos_weight(pos_weight)

    def forward(self, logits: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        """logits, target (...) -> the reduced loss (a float), or losses (...) for "none"."""
        check_pred_and_target(self, logits, target)
        check_probabilities(self, target)
        p = self._pos_weight_for(logits)
        z, y = logits, target
        # softplus(+-z) = max(+-z, 0) + log(1 + exp(-|z|)): exp of a non-positive number only
        e = np.exp(-np.abs(z))                              # (...) in (0, 1]
        log1p_e = np.log1p(e)                               # (...) the shared log-sum-exp part
        softplus_pos = np.maximum(z, 0) + log1p_e           # -log(1 - sigmoid(z))
        softplus_neg = np.maximum(-z, 0) + log1p_e          # -log sigmoid(z)
        losses = (1 - y) * softplus_pos + (p * y) * softplus_neg
        # both sigmoids from e = exp(-|z|): 1 / (1 + e) for the larger, e / (1 + e) the smaller
        big, small = 1 / (1 + e), e / (1 + e)
        nonneg = z >= 0
        self.cache = Saved(np.where(nonneg, big, small), np.where(nonneg, small, big), y, p)
        return self.reduce(losses)

    def backward(self, dloss: float | np.ndarray = 1.0) -> np.ndarray:
        """dL/dlogits (...), in the logits' dtype."""
        sig, sig_neg, y, p = self._saved()
        return self.upstream(dloss, sig) * ((1 - y) * sig - (p * y) * sig_neg)

    def count_correct(self, logits: np.ndarray, target: np.ndarray) -> int:
        """Decisions right: logit > 0 (probability > 1/2) against target > 1/2."""
        return int(np.count_nonzero((logits > 0) == (target > 0.5)))

    def _pos_weight_for(self, logits: np.ndarray) -> np.ndarray | float:
        """pos_weight in the logits' dtype, checked against their last axis; 1.0 without it."""
        if self.pos_weight is None:
            return 1.0
        if self.pos_weight.size not in (1, logits.shape[-1]):
            raise ValueError(f"{self!r}: expected logits whose last axis matches pos_weight's "
                             f"{self.pos_weight.size} entries (one per output), got logits "
                             f"of shape {logits.shape}")
        return self.pos_weight.astype(logits.dtype, copy=False)

    def extra_repr(self) -> str:
        shown = [super().extra_repr()]
        if self.pos_weight is not None:
            weights = self.pos_weight.tolist()
            shown.append(f"pos_weight={weights}" if len(weights) <= 4
                         else f"pos_weight=<{len(weights)} values>")
        return ", ".join(s for s in shown if s)


def _check_pos_weight(pos_weight: object) -> np.ndarray:
    """pos_weight as a float64 vector (C,) of finite non-negative weights."""
    expected = "expected pos_weight as a number or a vector (C,) of weights, one per output"
    weights = np.array(pos_weight, ndmin=1)
    if weights.dtype.kind not in "fiu":
        raise TypeError(f"BCEWithLogitsLoss: {expected}, got {pos_weight!r}")
    if weights.ndim != 1:
        raise ValueError(f"BCEWithLogitsLoss: {expected}, got shape {weights.shape}")
    weights = weights.astype(np.float64)
    if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise ValueError(f"BCEWithLogitsLoss: expected finite pos_weight >= 0, got {weights.tolist()}")
    return weights


def check_probabilities(who: object, target: np.ndarray) -> None:
    """Targets must be probabilities: class indices 2, 3, ... belong to SoftmaxCrossEntropy."""
    outside = ~((target >= 0) & (target <= 1))              # NaN is outside too
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(f"{who!r}: expected targets in [0, 1] (the probability of the "
                         f"positive class), got {target.flat[i].item()!r} at flat position {i} "
                         f"({int(outside.sum())} outside in all); for class indices use "
                         f"SoftmaxCrossEntropy")


def staged_backward(logits: np.ndarray, target: np.ndarray, reduction: str = "mean",
                    pos_weight: np.ndarray | None = None, dloss: float = 1.0) -> np.ndarray:
    """d loss / d logits, one gate at a time; slower than the fused backward, equal to it.

    Recomputes the forward graph (|z|, exp, log1p, the two max-shifts, the weighted sum, the
    reduction) and walks it in reverse, one local derivative per line. At z = 0 the max and
    |z| have kinks; taking the z >= 0 side for both keeps their sum exact (the loss is smooth).
    """
    z, y = logits, target
    p = 1.0 if pos_weight is None else pos_weight
    # forward
    a = np.abs(z)                                           # (...)
    e = np.exp(-a)                                          # (...)
    lg = np.log1p(e)                                        # (...)  feeds both softplus
    softplus_pos = np.maximum(z, 0) + lg                    # (...)  # noqa: F841 (the graph, for reading)
    softplus_neg = np.maximum(-z, 0) + lg                   # (...)  # noqa: F841
    # losses = (1 - y) * softplus_pos + p * y * softplus_neg; L = losses.mean() or .sum()

    # backward
    if reduction == "none":
        dlosses = np.asarray(dloss)                         # (...)  given per element
    else:
        dlosses = np.full(z.shape, dloss / z.size if reduction == "mean" else dloss)
    dsoftplus_pos = (1 - y) * dlosses                       # (...)
    dsoftplus_neg = p * y * dlosses                         # (...)
    dlg = dsoftplus_pos + dsoftplus_neg                     # two branches into lg: they add
    de = dlg / (1 + e)                                      # d log1p(e) / de = 1 / (1 + e)
    da = -e * de                                            # d exp(-a) / da = -exp(-a)
    positive_side = z >= 0                                  # the side taken at the kinks
    dz = np.where(positive_side, dsoftplus_pos, 0.0)        # d max(z, 0) / dz = [z >= 0]
    dz -= np.where(positive_side, 0.0, dsoftplus_neg)       # d max(-z, 0) / dz = -[z < 0]
    dz += np.where(positive_side, da, -da)                  # d |z| / dz = sign(z), +1 at 0
    return dz

"""The losses' checks: SoftmaxCrossEntropy, MSELoss, L1Loss, HuberLoss and BCEWithLogitsLoss
with each reduction; ``reduction="none"`` is checked through ``PerElement``, which makes the
loss a layer of its prediction."""
from __future__ import annotations

import numpy as np

from ...layers import Layer
from ...losses import BCEWithLogitsLoss, HuberLoss, L1Loss, MSELoss, SoftmaxCrossEntropy
from .common import Checks, normal


class PerElement(Layer):
    """A loss with reduction="none" as a layer of its prediction, for ``gradcheck(layer, x)``:
    its per-element losses are the output, checked against a random per-element upstream
    gradient; the target is held fixed."""

    def __init__(self, loss, target: np.ndarray) -> None:
        super().__init__()
        self.loss = loss
        self.buffers["target"] = target  # held fixed: state, not a parameter

    def forward(self, pred: np.ndarray) -> np.ndarray:
        return self.loss.forward(pred, self.buffers["target"])

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.loss.backward(dout)

    def __repr__(self) -> str:
        return f"{self.loss!r} per element"


def loss_checks(seed: int = 0) -> Checks:
    """(name, make) pairs for every loss: each reduction, its options, batch 1."""
    return [*classification_loss_checks(seed), *regression_loss_checks(seed)]


def classification_loss_checks(seed: int = 0) -> Checks:
    """SoftmaxCrossEntropy on integer classes; BCEWithLogitsLoss on 0/1 or soft targets."""
    def classes(n, c, s):
        rng = np.random.default_rng(seed + s)
        return 3 * rng.standard_normal((n, c)), rng.integers(0, c, n)

    def binary(n, c, s, soft=False):
        rng = np.random.default_rng(seed + s)
        targets = rng.uniform(size=(n, c)) if soft else rng.integers(0, 2, (n, c)).astype(np.float64)
        return 3 * rng.standard_normal((n, c)), targets

    def per_element(loss, pred, target):
        return (PerElement(loss, target), pred)

    return [
        ("SoftmaxCrossEntropy mean", lambda: (SoftmaxCrossEntropy(), *classes(6, 4, 11))),
        ("SoftmaxCrossEntropy sum", lambda: (SoftmaxCrossEntropy(reduction="sum"), *classes(5, 3, 12))),
        ("SoftmaxCrossEntropy smoothing", lambda: (SoftmaxCrossEntropy(label_smoothing=0.1),
                                                   *classes(6, 4, 13))),
        ("SoftmaxCrossEntropy batch 1", lambda: (SoftmaxCrossEntropy(), *classes(1, 5, 14))),
        ("BCEWithLogitsLoss mean", lambda: (BCEWithLogitsLoss(), *binary(6, 2, 51))),
        ("BCEWithLogitsLoss sum", lambda: (BCEWithLogitsLoss(reduction="sum"), *binary(6, 2, 52))),
        ("BCEWithLogitsLoss pos_weight", lambda: (BCEWithLogitsLoss(pos_weight=[3.0, 0.5]),
                                                  *binary(6, 2, 53))),
        ("BCEWithLogitsLoss soft targets", lambda: (BCEWithLogitsLoss(pos_weight=2.0),
                                                    *binary(5, 1, 54, soft=True))),
        ("BCEWithLogitsLoss none", lambda: per_element(
            BCEWithLogitsLoss(reduction="none", pos_weight=[2.0, 1.0, 0.5]), *binary(4, 3, 55))),
        ("BCEWithLogitsLoss batch 1", lambda: (BCEWithLogitsLoss(), *binary(1, 1, 56))),
    ]


def regression_loss_checks(seed: int = 0) -> Checks:
    """MSELoss, L1Loss and HuberLoss: pred and target of one shape."""
    def values(n, d, s):
        return normal(seed + s, (n, d)), normal(seed + s + 100, (n, d))

    def some_ties(n, d, s):  # a few predictions exactly at their targets (the kink), most not
        pred, target = values(n, d, s)
        target[0] = pred[0]
        return pred, target

    def per_element(loss, pred, target):
        return (PerElement(loss, target), pred)

    return [
        ("MSELoss mean", lambda: (MSELoss(), *values(5, 3, 40))),
        ("MSELoss sum", lambda: (MSELoss(reduction="sum"), *values(5, 3, 41))),
        ("MSELoss none", lambda: per_element(MSELoss(reduction="none"), *values(4, 3, 42))),
        ("L1Loss mean", lambda: (L1Loss(), *values(5, 3, 43))),
        ("L1Loss sum", lambda: (L1Loss(reduction="sum"), *values(5, 3, 44))),
        ("L1Loss none", lambda: per_element(L1Loss(reduction="none"), *values(4, 3, 45))),
        ("L1Loss some pred == target", lambda: (L1Loss(), *some_ties(4, 2, 46))),
        ("HuberLoss mean", lambda: (HuberLoss(), *values(5, 3, 47))),
        ("HuberLoss delta=0.3", lambda: (HuberLoss(delta=0.3), *values(5, 3, 48))),
        ("HuberLoss sum delta=2", lambda: (HuberLoss(reduction="sum", delta=2.0), *values(5, 3, 49))),
        ("HuberLoss none", lambda: per_element(HuberLoss(reduction="none", delta=0.5), *values(4, 3, 50))),
    ]

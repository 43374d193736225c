"""Regression losses: MSELoss, L1Loss, HuberLoss, as ``torch.nn``'s.

Derivation: docs/derivations/losses.md#mse-l1-and-huber. Each is one term per element of the
difference ``d = pred - target``; the reduction and its share of the gradient (``dL/dloss_i``,
``upstream``) are ElementwiseLoss's, so each backward is that share times the term's local
derivative.
"""
from __future__ import annotations

import numpy as np

from ..layers.validate import real
from .elementwise import ElementwiseLoss, check_pred_and_target


class MSELoss(ElementwiseLoss):
    """Mean squared error, as ``torch.nn.MSELoss``.

    Shapes: pred and target of any shape, the same (never broadcast), the same float dtype.
    ``forward`` returns a Python float, or for ``reduction="none"`` the array of per-element
    losses, of pred's shape and dtype (PyTorch returns a tensor); ``backward`` then takes the
    per-element upstream gradient, an array of that shape.

    Forward and local derivative, with ``d = pred - target``::

        loss_i = d_i ** 2,          d loss_i / d pred_i = 2 d_i

    Examples
    --------
    >>> import numpy as np
    >>> mse = MSELoss()
    >>> mse.forward(np.array([1.0, 2.0]), np.array([0.0, 0.0]))   # (1 + 4) / 2
    2.5
    >>> mse.backward()                                             # 2 d / n
    array([1., 2.])
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        """pred, target (...) -> the reduced loss (a float), or losses (...) for "none"."""
        check_pred_and_target(self, pred, target)
        diff = pred - target
        self.cache = diff
        return self.reduce(diff * diff)

    def backward(self, dloss: float | np.ndarray = 1.0) -> np.ndarray:
        """dL/dpred (...), in pred's dtype."""
        diff = self._saved()
        return (2 * self.upstream(dloss, diff)) * diff


class L1Loss(ElementwiseLoss):
    """Mean absolute error, as ``torch.nn.L1Loss``.

    Shapes and ``reduction`` as ``MSELoss``. With ``d = pred - target``::

        loss_i = |d_i|,             d loss_i / d pred_i = sign(d_i)

    At ``d_i = 0`` the derivative does not exist; like PyTorch we take 0 (``np.sign(0) = 0``),
    so an exact prediction gets no gradient.

    Examples
    --------
    >>> import numpy as np
    >>> l1 = L1Loss(reduction="sum")
    >>> l1.forward(np.array([1.0, -2.0, 3.0]), np.array([0.0, 0.0, 3.0]))
    3.0
    >>> l1.backward()
    array([ 1., -1.,  0.])
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        """pred, target (...) -> the reduced loss (a float), or losses (...) for "none"."""
        check_pred_and_target(self, pred, target)
        diff = pred - target
        self.cache = diff
        return self.reduce(np.abs(diff))

    def backward(self, dloss: float | np.ndarray = 1.0) -> np.ndarray:
        """dL/dpred (...), in pred's dtype; 0 where pred equals target."""
        diff = self._saved()
        return self.upstream(dloss, diff) * np.sign(diff)


class HuberLoss(ElementwiseLoss):
    """Huber loss, as ``torch.nn.HuberLoss(reduction="mean", delta=1.0)``: squared near the
    target, linear beyond ``delta``, so an outlier pulls with a bounded force.

    Shapes and ``reduction`` as ``MSELoss``. With ``d = pred - target``::

        loss_i = d_i ** 2 / 2                      if |d_i| <= delta
                 delta * (|d_i| - delta / 2)       otherwise
        d loss_i / d pred_i = clip(d_i, -delta, delta)

    The two pieces meet at ``|d| = delta`` with the same value (delta**2 / 2) and the same
    slope (delta * sign d), so the derivative is continuous and needs no convention there.

    Examples
    --------
    >>> import numpy as np
    >>> huber = HuberLoss(reduction="none", delta=1.0)
    >>> huber.forward(np.array([0.5, 3.0]), np.array([0.0, 0.0]))  # 0.5**2 / 2, 1 * (3 - 0.5)
    array([0.125, 2.5  ])
    >>> huber.backward(np.ones(2))
    array([0.5, 1. ])
    """

    def __init__(self, *, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = real("HuberLoss", "delta", delta, low=0, low_open=True)

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        """pred, target (...) -> the reduced loss (a float), or losses (...) for "none"."""
        check_pred_and_target(self, pred, target)
        delta = self.delta
        diff = pred - target
        abs_diff = np.abs(diff)
        quadratic = abs_diff <= delta
        losses = np.where(quadratic, 0.5 * diff * diff, delta * (abs_diff - 0.5 * delta))
        self.cache = diff
        return self.reduce(losses)

    def backward(self, dloss: float | np.ndarray = 1.0) -> np.ndarray:
        """dL/dpred (...), in pred's dtype."""
        diff = self._saved()
        return self.upstream(dloss, diff) * np.clip(diff, -self.delta, self.delta)

    def extra_repr(self) -> str:
        shown = [super().extra_repr(), f"delta={self.delta:g}" if self.delta != 1.0 else ""]
        return ", ".join(s for s in shown if s)

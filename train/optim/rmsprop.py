"""RMSprop: ``torch.optim.RMSprop``."""
from __future__ import annotations

import numpy as np

from ...layers import validate
from .base import Optimizer, nonnegative, unit_interval
from .inplace import addcmul, lerp


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), ``torch.optim.RMSprop``.

    With g the gradient, in place::

        g   = g + weight_decay * p                    (L2 penalty)
        s   = alpha * s + (1 - alpha) * g * g         (square_avg)
        a   = alpha * a + (1 - alpha) * g             (grad_avg, centered only)
        d   = sqrt(s - a * a) if centered else sqrt(s);   d = d + eps
        b   = momentum * b + g / d                    (momentum_buffer, momentum > 0 only)
        p   = p - lr * b   if momentum > 0   else   p - lr * g / d

    No bias correction: s starts at 0, so the first steps are larger than later ones (by
    1 / sqrt(1 - alpha) = 10 at the first step with alpha = 0.99).

    Parameters
    ----------
    model : Layer
        Its ``params`` are updated from its ``grads``; both become views of flat buffers.
    lr : float
        Learning rate, > 0.
    alpha : float
        Decay rate of the averages, in [0, 1].
    eps : float
        Added to the denominator, >= 0, and not rounded to 0 in the parameters' dtype. A
        float16 model is refused (a TypeError): eps=1e-8 is 0 there and small gradients
        square to 0, so a zero gradient would make every weight NaN.
    weight_decay : float
        L2 penalty, >= 0.
    momentum : float
        >= 0.
    centered : bool
        Divide by an estimate of the gradient's variance instead of its second moment.
    """

    options = {"alpha": unit_interval, "eps": nonnegative, "weight_decay": nonnegative,
               "momentum": nonnegative, "centered": validate.flag}
    divides_by_root = True
    state_buffers = {"square_avg": None, "momentum_buffer": "momentum", "grad_avg": "centered"}
    alpha: float
    eps: float
    weight_decay: float
    momentum: float
    centered: bool

    def __init__(self, model, lr: float = 1e-2, *, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(model, lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered)

    def step(self) -> None:
        """One update of every parameter from its current gradient (formulas above)."""
        self._check_views()
        p, g, scratch, scaled = self.flat_params, self.flat_grads, self._scratch, self._scaled
        s, alpha = self.flat_state["square_avg"], self.alpha
        if self.weight_decay:  # built aside: grads stay as backward left them
            np.multiply(p, self.weight_decay, out=scratch)
            g = np.add(g, scratch, out=scratch)                       # g + weight_decay * p
        s *= alpha
        addcmul(s, g, g, 1 - alpha, scaled)                           # s = alpha s + (1 - alpha) g g
        if self.centered:
            a = self.flat_state["grad_avg"]
            lerp(a, g, 1 - alpha, scaled)                             # a = alpha a + (1 - alpha) g
            np.multiply(a, -1.0, out=scaled)
            scaled *= a
            denom = np.add(s, scaled, out=scaled)                     # s - a * a
            np.sqrt(denom, out=denom)
        else:
            denom = np.sqrt(s, out=scaled)
        denom += self.eps
        if self.momentum:
            b = self.flat_state["momentum_buffer"]
            b *= self.momentum
            np.divide(g, denom, out=denom)
            b += denom                                                # b = momentum b + g / d
            update = np.multiply(b, -self.lr, out=scaled)
        else:
            update = np.multiply(g, -self.lr, out=scratch)            # g is not needed any more
            update /= denom
        p += update

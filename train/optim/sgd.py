"""SGD: ``torch.optim.SGD`` without dampening."""
from __future__ import annotations

import numpy as np

from ...layers import validate
from .base import Optimizer, nonnegative


class SGD(Optimizer):
    """Stochastic gradient descent, ``torch.optim.SGD`` without dampening.

    With p the parameters and g their gradients (one flat buffer each), in place::

        g = g + weight_decay * p                                (weight decay)
        b = momentum * b + g                                    (buffer; b = g at step 1)
        g = g + momentum * b   if nesterov   else   b
        p = p - lr * g

    Parameters
    ----------
    model : Layer
        Its ``params`` are updated from its ``grads``; both become views of flat buffers.
    lr : float
        Learning rate, > 0; may be changed between steps (``opt.lr = 0.01``).
    momentum : float
        >= 0; the buffer is ``momentum_buffers`` (by name) and saved by checkpoints.
    weight_decay : float
        L2 penalty, >= 0, added to the gradient (not decoupled as in AdamW).
    nesterov : bool
        Nesterov momentum; needs momentum > 0.

    Options after ``lr`` are keyword-only, so a call ported from ``torch.optim.SGD`` cannot
    silently mean something else.

    Examples
    --------
    >>> import numpy as np
    >>> from handprop.layers import Linear
    >>> layer = Linear(2, 1, rng=0, dtype=np.float64)
    >>> opt = SGD(layer, lr=0.5, momentum=0.9)
    >>> before = layer.params["W"].copy()
    >>> layer.grads["W"][...] = 1.0           # as backward would leave it
    >>> opt.step()
    >>> layer.params["W"] - before            # p - lr * b, with b = g at the first step
    array([[-0.5],
           [-0.5]])
    """

    options = {"momentum": nonnegative, "nesterov": validate.flag, "weight_decay": nonnegative}
    state_buffers = {"momentum_buffers": "momentum"}
    momentum: float
    nesterov: bool
    weight_decay: float

    def __init__(self, model, lr: float, *, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(model, lr, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay)

    def _check_together(self, options: dict) -> None:
        if options["nesterov"] and options["momentum"] == 0:
            raise ValueError("SGD: Nesterov momentum needs momentum > 0, got momentum=0")

    @property
    def momentum_buffers(self) -> dict[str, np.ndarray]:
        """The momentum buffer of each parameter, by name (views; empty without momentum)."""
        flat = self.flat_state.get("momentum_buffers")
        return {} if flat is None else self._by_name(flat)

    def step(self) -> None:
        """Update every parameter of the model in place from its current gradient."""
        self._check_views()
        p, g, scratch, scaled = self.flat_params, self.flat_grads, self._scratch, self._scaled
        if self.weight_decay:  # built aside: grads stay as backward left them
            np.multiply(p, self.weight_decay, out=scratch)
            g = np.add(g, scratch, out=scratch)               # g + weight_decay * p
        if self.momentum:
            b = self.flat_state["momentum_buffers"]
            b *= self.momentum
            b += g                                            # b = momentum * b + g
            if self.nesterov:
                np.multiply(b, self.momentum, out=scaled)
                g = np.add(g, scaled, out=scaled)             # g + momentum * b
            else:
                g = b
        np.multiply(g, self.lr, out=scaled)
        p -= scaled                                           # p - lr * g

    def __repr__(self) -> str:
        return (f"SGD(lr={self.lr:g}, momentum={self.momentum:g}, nesterov={self.nesterov}, "
                f"weight_decay={self.weight_decay:g})")

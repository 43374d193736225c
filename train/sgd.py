"""SGD with momentum, Nesterov momentum and weight decay: the update of torch.optim.SGD."""
from __future__ import annotations

import numpy as np


class SGD:
    """Stochastic gradient descent, ``torch.optim.SGD`` without dampening.

    For each parameter p with gradient g, in place::

        g = g + weight_decay * p                                (weight decay)
        b = momentum * b + g                                    (buffer, 0 before step 1)
        g = g + momentum * b   if nesterov   else   b
        p = p - lr * g

    Parameters
    ----------
    model : Layer
        Its ``params`` are updated from its ``grads`` (read afresh at every step).
    lr : float
        Learning rate, > 0; may be changed between steps (``opt.lr = 0.01``).
    momentum : float
        >= 0; the buffers are kept in ``momentum_buffers`` and saved by checkpoints.
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

    def __init__(self, model, lr: float, *, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        if not momentum >= 0:
            raise ValueError(f"SGD: expected momentum >= 0, got {momentum}")
        if not weight_decay >= 0:
            raise ValueError(f"SGD: expected weight_decay >= 0, got {weight_decay}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: Nesterov momentum needs momentum > 0, got momentum=0")
        self.model = model
        self.lr = lr
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.weight_decay = float(weight_decay)
        params = model.params
        self.momentum_buffers = {k: np.zeros_like(p) for k, p in params.items()} if momentum else {}
        # two scratch arrays per parameter, so a step allocates nothing parameter-sized
        self._scratch = {k: np.empty_like(p) for k, p in params.items()}
        self._scaled = {k: np.empty_like(p) for k, p in params.items()}

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"SGD: expected the learning rate lr as a number, got {value!r}")
        if not (value > 0 and np.isfinite(value)):
            raise ValueError(f"SGD: expected a finite learning rate lr > 0, got {value!r}")
        self._lr = float(value)

    def step(self) -> None:
        """Update every parameter of the model in place from its current gradient."""
        grads = self.model.grads
        for name, p in self.model.params.items():
            self._update(p, grads[name], self.momentum_buffers.get(name), self._scratch[name],
                         self._scaled[name])

    def _update(self, p, g, b, scratch, scaled) -> None:
        """The update of one parameter, in place, allocating nothing parameter-sized."""
        if self.weight_decay:  # built aside: grads stay as backward left them
            np.multiply(p, self.weight_decay, out=scratch)
            g = np.add(g, scratch, out=scratch)               # g + weight_decay * p
        if self.momentum:
            b *= self.momentum
            b += g                                            # b = momentum * b + g
            if self.nesterov:
                np.multiply(b, self.momentum, out=scaled)
                g = np.add(g, scaled, out=scaled)             # g + momentum * b
            else:
                g = b
        np.multiply(g, self.lr, out=scaled)
        p -= scaled                                           # p - lr * g

    def state_dict(self) -> dict:
        """Settings and momentum buffers, for checkpoints."""
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay, "momentum_buffers": self.momentum_buffers}

    def load_state_dict(self, state: dict) -> None:
        """Restore settings and momentum buffers saved by ``state_dict``. As in PyTorch, the
        saved lr, momentum, nesterov and weight_decay replace the current ones. Everything is
        checked first: on an error the optimizer is unchanged."""
        missing = {"lr", "momentum", "nesterov", "weight_decay", "momentum_buffers"} - state.keys()
        if missing:
            raise ValueError(f"SGD: the state lacks {', '.join(sorted(missing))}")
        checked = SGD(self.model, state["lr"], momentum=state["momentum"],
                      nesterov=state["nesterov"], weight_decay=state["weight_decay"])
        buffers, params = state["momentum_buffers"], self.model.params
        expected = set(params) if checked.momentum else set()
        if set(buffers) != expected:
            raise ValueError(f"SGD: expected momentum buffers for {sorted(expected)}, "
                             f"got {sorted(buffers)}")
        for name, buffer in buffers.items():
            if np.shape(buffer) != params[name].shape:
                raise ValueError(f"SGD: the momentum buffer of {name} has shape "
                                 f"{np.shape(buffer)}, the parameter {params[name].shape}")
        self.lr, self.momentum, self.nesterov = checked.lr, checked.momentum, checked.nesterov
        self.weight_decay = checked.weight_decay
        self.momentum_buffers = {k: np.array(v, dtype=params[k].dtype) for k, v in buffers.items()}

    def __repr__(self) -> str:
        return (f"SGD(lr={self.lr:g}, momentum={self.momentum:g}, nesterov={self.nesterov}, "
                f"weight_decay={self.weight_decay:g})")

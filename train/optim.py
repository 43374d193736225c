"""Optimizers over one flat parameter buffer: SGD, Adam, AdamW and RMSprop, with the update
rules of ``torch.optim`` (docs/optimizers.md derives them).

Building an optimizer moves the model's parameters and gradients into two flat buffers
(``handprop.layers.flatten_params``): arrays fetched from ``model.params`` or ``model.grads``
before that are no longer the model's (they are made read-only, so writing into one is an
error, not a silent no-op); fetch them again afterwards. Each step is then a fixed handful of
numpy calls over the whole buffer, however many layers the model has.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..layers.flat_params import flat_layout, flatten_params


def _number(who: str, name: str, value: object) -> float:
    """A real number (not a bool), as a float; a TypeError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{who}: expected {name} as a number, got {value!r}")
    return float(value)


def _at_least(who: str, name: str, value: object, minimum: float = 0.0) -> float:
    value = _number(who, name, value)
    if not np.isfinite(value):
        raise ValueError(f"{who}: expected a finite {name}, got {value!r}")
    if not value >= minimum:
        raise ValueError(f"{who}: expected {name} >= {minimum:g}, got {value!r}")
    return value


def _positive(who: str, name: str, value: object) -> float:
    value = _number(who, name, value)
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"{who}: expected a finite {name} > 0, got {value!r}")
    return value


def _flag(who: str, name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: expected {name} to be True or False, got {value!r}")
    return bool(value)


class Optimizer:
    """The common part of every optimizer: the model, the learning rate, the flat buffers, and
    the state that ``state_dict``/``load_state_dict`` save and restore.

    Attributes
    ----------
    model : Layer
        The model whose parameters are updated.
    lr : float
        Learning rate; setting it checks it (a TypeError for a non-number, a ValueError for
        one that is not finite and > 0). A schedule may lower it to 0 (cosine's end).
    initial_lr : float or None
        The lr when the first schedule was built on this optimizer (torch's
        ``group["initial_lr"]``), the base of every schedule built on it.
    flat_params, flat_grads : ndarray
        The model's parameters and gradients as 1-D buffers; ``model.params`` are views.
    flat_state : dict of ndarray
        The per-parameter state (momentum buffers, moment estimates), each a buffer like
        ``flat_params``; ``state_dict`` gives it by parameter name.

    Subclasses name their settings in ``option_names`` (validated by ``_check_options``), their
    state buffers in ``state_names`` and their step counters in ``counters``.
    """

    option_names: ClassVar[tuple[str, ...]] = ()
    state_names: ClassVar[tuple[str, ...]] = ()
    counters: ClassVar[dict[str, str]] = {}  # state_dict key -> attribute ("step" -> "step_count")

    def __init__(self, model, lr: float, **options) -> None:
        checked = self._check_options(**options)
        self.model = model
        self.lr = lr
        self.initial_lr: float | None = None
        self.flat_params, self.flat_grads = flatten_params(model)
        self._layout = flat_layout(model, self.flat_params)
        # two scratch buffers, so a step allocates nothing parameter-sized
        self._scratch = np.empty_like(self.flat_params)
        self._scaled = np.empty_like(self.flat_params)
        self._apply(checked, {key: 0 for key in self.counters}, {})

    # --- the learning rate -------------------------------------------------------------
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = self._check_lr(value)

    def _check_lr(self, value: object, *, zero_ok: bool = False) -> float:
        name = type(self).__name__
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name}: expected the learning rate lr as a number, got {value!r}")
        if not ((value >= 0 if zero_ok else value > 0) and np.isfinite(value)):
            raise ValueError(f"{name}: expected a finite learning rate lr {'>=' if zero_ok else '>'} "
                             f"0, got {value!r}")
        return float(value)

    def _schedule_lr(self, value: float) -> None:
        """Set lr from a schedule, which may take it to 0 (cosine annealing's last epoch)."""
        self._lr = self._check_lr(value, zero_ok=True)

    # --- what subclasses define --------------------------------------------------------
    def _check_options(self, *args: Any, **options: Any) -> dict:
        """The settings besides lr, checked and normalized; TypeError/ValueError naming one."""
        return options

    def _in_use(self, key: str, options: dict) -> bool:
        """Whether state buffer ``key`` is kept under these settings (SGD's momentum buffers
        only with momentum > 0); one not in use is saved as an empty dict."""
        return True

    def step(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define step")

    # --- state -------------------------------------------------------------------------
    def _apply(self, options: dict, counters: dict, arrays: dict) -> None:
        """Take on checked settings, counters and per-name state arrays (zeros where absent)."""
        for key, value in options.items():
            setattr(self, key, value)
        for key, value in counters.items():
            setattr(self, self.counters[key], value)
        self.flat_state = {key: np.zeros_like(self.flat_params) for key in self.state_names
                           if self._in_use(key, options)}
        for key, by_name in arrays.items():
            for name, value in by_name.items():
                start, stop, _ = self._layout[name]
                self.flat_state[key][start:stop] = np.reshape(value, -1)

    def _by_name(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Views of ``flat`` shaped as each parameter, by parameter name."""
        return {name: flat[start:stop].reshape(shape)
                for name, (start, stop, shape) in self._layout.items()}

    def state_dict(self) -> dict:
        """Settings, counters and state, for checkpoints: JSON values and, for each state
        buffer, a dict of parameter name -> array (copies, so a saved state stays as it was;
        an empty dict for a buffer the settings do not use)."""
        state: dict[str, Any] = {"lr": self.lr, "initial_lr": self.initial_lr}
        state.update({key: getattr(self, key) for key in self.option_names})
        state.update({key: getattr(self, attr) for key, attr in self.counters.items()})
        for key in self.state_names:
            flat = self.flat_state.get(key)
            state[key] = {} if flat is None else {k: v.copy() for k, v in self._by_name(flat).items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` gave. As in PyTorch, the saved lr and settings replace
        the current ones. Everything is checked first, as the constructor checks it: on an
        error (a ValueError or TypeError naming the entry) the optimizer is unchanged."""
        who = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"{who}: expected a state dict, got {type(state).__name__}")
        required = ("lr", *self.option_names, *self.counters, *self.state_names)
        missing = [key for key in required if key not in state]
        unexpected = sorted(map(str, state.keys() - {*required, "initial_lr"}))
        if missing or unexpected:
            what = [f"missing {', '.join(missing)}"] if missing else []
            what += [f"unexpected {', '.join(unexpected)}"] if unexpected else []
            raise ValueError(f"{who}: the state does not match a {who}'s: {'; '.join(what)}")
        lr = self._check_lr(state["lr"], zero_ok=True)
        initial_lr = state.get("initial_lr")
        if initial_lr is not None:
            initial_lr = self._check_lr(initial_lr)
        options = self._check_options(**{key: state[key] for key in self.option_names})
        counters = {}
        for key in self.counters:
            value = state[key]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{who}: expected the counter {key} as a whole number >= 0, "
                                 f"got {value!r}")
            counters[key] = int(value)
        arrays = {key: self._checked_arrays(key, state[key], self._in_use(key, options))
                  for key in self.state_names}
        self._lr, self.initial_lr = lr, initial_lr
        self._apply(options, counters, arrays)

    def _checked_arrays(self, key: str, by_name: object, in_use: bool) -> dict:
        who = type(self).__name__
        if not isinstance(by_name, dict):
            raise TypeError(f"{who}: expected {key} as a dict of parameter name -> array, got "
                            f"{type(by_name).__name__}")
        expected = set(self._layout) if in_use else set()
        if set(by_name) != expected:
            raise ValueError(f"{who}: expected {key} for {sorted(expected)} (the settings "
                             f"{'use' if in_use else 'do not use'} it), got {sorted(by_name)}")
        for name, value in by_name.items():
            if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
                got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
                raise TypeError(f"{who}: expected {key}/{name} as a floating-point array, got {got}")
            shape = self._layout[name][2]
            if value.shape != shape:
                raise ValueError(f"{who}: {key}/{name} has shape {value.shape}, the parameter {shape}")
        return by_name

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={getattr(self, key)!r}" for key in self.option_names)
        return f"{type(self).__name__}(lr={self.lr:g}{', ' if options else ''}{options})"


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

    option_names = ("momentum", "nesterov", "weight_decay")
    state_names = ("momentum_buffers",)
    momentum: float
    nesterov: bool
    weight_decay: float

    def __init__(self, model, lr: float, *, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(model, lr, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay)

    def _check_options(self, *, momentum, nesterov, weight_decay) -> dict:
        momentum = _at_least("SGD", "momentum", momentum)
        weight_decay = _at_least("SGD", "weight_decay", weight_decay)
        nesterov = _flag("SGD", "nesterov", nesterov)
        if nesterov and momentum == 0:
            raise ValueError("SGD: Nesterov momentum needs momentum > 0, got momentum=0")
        return {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay}

    def _in_use(self, key: str, options: dict) -> bool:
        return options["momentum"] > 0

    @property
    def momentum_buffers(self) -> dict[str, np.ndarray]:
        """The momentum buffer of each parameter, by name (views; empty without momentum)."""
        flat = self.flat_state.get("momentum_buffers")
        return {} if flat is None else self._by_name(flat)

    def step(self) -> None:
        """Update every parameter of the model in place from its current gradient."""
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


def _lerp(start: np.ndarray, end: np.ndarray, weight: float, scratch: np.ndarray) -> None:
    """start += weight * (end - start), in place, rounded as torch's ``lerp_`` rounds it
    (from the nearer end, so a weight near 1 loses nothing)."""
    np.subtract(end, start, out=scratch)
    if weight < 0.5:
        scratch *= weight
        start += scratch
    else:
        scratch *= 1 - weight
        np.subtract(end, scratch, out=start)


def _addcmul(target: np.ndarray, a: np.ndarray, b: np.ndarray, value: float,
             scratch: np.ndarray) -> None:
    """target += value * a * b, in place, in torch's ``addcmul_`` order ((value * a) * b)."""
    np.multiply(a, value, out=scratch)
    scratch *= b
    target += scratch


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015), ``torch.optim.Adam``.

    With g the gradient and t the step count (1 at the first step), in place::

        g     = g + weight_decay * p                  (L2 penalty; AdamW decouples it)
        m     = beta1 * m + (1 - beta1) * g           (first moment, exp_avg)
        v     = beta2 * v + (1 - beta2) * g * g       (second moment, exp_avg_sq)
        vmax  = max(vmax, v);  v_used = vmax if amsgrad else v
        p     = p - lr / (1 - beta1**t) * m / (sqrt(v_used) / sqrt(1 - beta2**t) + eps)

    m and v start at 0, so after t steps of a constant gradient g, m = (1 - beta1**t) * g and
    v = (1 - beta2**t) * g * g: dividing by those factors (the bias correction,
    docs/optimizers.md) makes the first steps as large as the later ones, about lr.

    Parameters
    ----------
    model : Layer
        Its ``params`` are updated from its ``grads``; both become views of flat buffers.
    lr : float
        Learning rate, > 0.
    betas : (float, float)
        Decay rates of the two moment estimates, each in [0, 1).
    eps : float
        Added to the denominator, >= 0.
    weight_decay : float
        L2 penalty, >= 0, added to the gradient.
    amsgrad : bool
        Divide by the largest second moment so far (Reddi et al., 2018).

    The state (``flat_state`` / ``state_dict``): ``exp_avg``, ``exp_avg_sq``,
    ``max_exp_avg_sq`` (with amsgrad) and the step count ``step``.

    Examples
    --------
    >>> import numpy as np
    >>> from handprop.layers import Linear
    >>> layer = Linear(2, 1, rng=0, dtype=np.float64)
    >>> opt = Adam(layer, lr=0.01)
    >>> before = layer.params["W"].copy()
    >>> layer.grads["W"][...] = 5.0
    >>> opt.step()                            # the first step is lr * g / |g|, whatever |g|
    >>> np.round(layer.params["W"] - before, 12)
    array([[-0.01],
           [-0.01]])
    """

    option_names = ("betas", "eps", "weight_decay", "amsgrad")
    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    counters = {"step": "step_count"}
    decoupled: ClassVar[bool] = False
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    amsgrad: bool
    step_count: int

    def __init__(self, model, lr: float = 1e-3, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        super().__init__(model, lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)

    def _check_options(self, *, betas, eps, weight_decay, amsgrad) -> dict:
        who = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{who}: expected betas as a pair (beta1, beta2), got {betas!r}")
        checked = []
        for i, beta in enumerate(betas):
            beta = _number(who, f"betas[{i}]", beta)
            if not 0 <= beta < 1:
                raise ValueError(f"{who}: expected betas[{i}] in [0, 1), got {beta!r}")
            checked.append(beta)
        return {"betas": tuple(checked), "eps": _at_least(who, "eps", eps),
                "weight_decay": _at_least(who, "weight_decay", weight_decay),
                "amsgrad": _flag(who, "amsgrad", amsgrad)}

    def _in_use(self, key: str, options: dict) -> bool:
        return key != "max_exp_avg_sq" or options["amsgrad"]

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["betas"] = list(self.betas)  # as JSON gives it back
        return state

    def step(self) -> None:
        """One update of every parameter from its current gradient (formulas above)."""
        p, g, scratch, scaled = self.flat_params, self.flat_grads, self._scratch, self._scaled
        m, v = self.flat_state["exp_avg"], self.flat_state["exp_avg_sq"]
        beta1, beta2 = self.betas
        self.step_count += 1
        t = float(self.step_count)
        if self.weight_decay:
            if self.decoupled:
                p *= 1 - self.lr * self.weight_decay                  # AdamW: p shrinks apart
            else:  # built aside: grads stay as backward left them
                np.multiply(p, self.weight_decay, out=scratch)
                g = np.add(g, scratch, out=scratch)                   # g + weight_decay * p
        _lerp(m, g, 1 - beta1, scaled)                                # m = b1 m + (1 - b1) g
        v *= beta2
        _addcmul(v, g, g, 1 - beta2, scaled)                          # v = b2 v + (1 - b2) g g
        if self.amsgrad:
            v = np.maximum(self.flat_state["max_exp_avg_sq"], v,
                           out=self.flat_state["max_exp_avg_sq"])
        step_size = self.lr / (1 - beta1 ** t)
        denom = np.sqrt(v, out=scaled)
        denom /= (1 - beta2 ** t) ** 0.5
        denom += self.eps                                             # sqrt(v / (1 - b2^t)) + eps
        update = np.multiply(m, -step_size, out=scratch)              # g is not needed any more
        update /= denom
        p += update                                                   # p - step_size * m / denom


class AdamW(Adam):
    """AdamW (Loshchilov and Hutter, 2019), ``torch.optim.AdamW``: Adam whose weight decay is
    decoupled from the gradient. Before Adam's update (without the L2 term)::

        p = p * (1 - lr * weight_decay)

    so the decay does not pass through the moment estimates and the per-coordinate scaling:
    every weight shrinks by the same fraction. Parameters are Adam's, with
    ``weight_decay=1e-2`` by default.
    """

    decoupled: ClassVar[bool] = True

    def __init__(self, model, lr: float = 1e-3, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(model, lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)


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
        Added to the denominator, >= 0.
    weight_decay : float
        L2 penalty, >= 0.
    momentum : float
        >= 0.
    centered : bool
        Divide by an estimate of the gradient's variance instead of its second moment.
    """

    option_names = ("alpha", "eps", "weight_decay", "momentum", "centered")
    state_names = ("square_avg", "momentum_buffer", "grad_avg")
    alpha: float
    eps: float
    weight_decay: float
    momentum: float
    centered: bool

    def __init__(self, model, lr: float = 1e-2, *, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(model, lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered)

    def _check_options(self, *, alpha, eps, weight_decay, momentum, centered) -> dict:
        alpha = _at_least("RMSprop", "alpha", alpha)
        if alpha > 1:
            raise ValueError(f"RMSprop: expected alpha in [0, 1], got {alpha!r}")
        return {"alpha": alpha, "eps": _at_least("RMSprop", "eps", eps),
                "weight_decay": _at_least("RMSprop", "weight_decay", weight_decay),
                "momentum": _at_least("RMSprop", "momentum", momentum),
                "centered": _flag("RMSprop", "centered", centered)}

    def _in_use(self, key: str, options: dict) -> bool:
        return {"square_avg": True, "momentum_buffer": options["momentum"] > 0,
                "grad_avg": options["centered"]}[key]

    def step(self) -> None:
        """One update of every parameter from its current gradient (formulas above)."""
        p, g, scratch, scaled = self.flat_params, self.flat_grads, self._scratch, self._scaled
        s, alpha = self.flat_state["square_avg"], self.alpha
        if self.weight_decay:  # built aside: grads stay as backward left them
            np.multiply(p, self.weight_decay, out=scratch)
            g = np.add(g, scratch, out=scratch)                       # g + weight_decay * p
        s *= alpha
        _addcmul(s, g, g, 1 - alpha, scaled)                          # s = alpha s + (1 - alpha) g g
        if self.centered:
            a = self.flat_state["grad_avg"]
            _lerp(a, g, 1 - alpha, scaled)                            # a = alpha a + (1 - alpha) g
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

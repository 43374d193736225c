"""The plumbing every optimizer shares, written once: the learning rate, the flat buffers,
the option checks each optimizer declares, and ``state_dict``/``load_state_dict``.

Building an optimizer moves the model's parameters and gradients into two flat buffers
(``handprop.layers.flatten_params``): arrays fetched from ``model.params`` or ``model.grads``
before that are no longer the model's (they are made read-only, so writing into one is an
error, not a silent no-op); fetch them again afterwards. Each step is then a fixed handful of
numpy calls over the whole buffer, however many layers the model has.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...layers import validate
from ...layers.flat_params import flat_layout, flatten_params
from ..protocols import named_layers

MAX_STEPS = 10**15
"""The bound of a step counter loaded from a state dict: far past any run, and exact as a float,
so a damaged checkpoint's ``step=10**400`` is refused on loading, not an OverflowError later."""

Check = Callable[[str, str, object], Any]
"""An option's check: ``check(who, name, value)`` returns the value normalized, or raises a
TypeError (wrong type) or ValueError (out of range) naming ``who`` and ``name``."""


def nonnegative(who: str, name: str, value: object) -> float:
    """A finite real number >= 0 (momentum, eps, weight_decay)."""
    return validate.real(who, name, value, low=0)


def unit_interval(who: str, name: str, value: object) -> float:
    """A real number in [0, 1] (RMSprop's alpha)."""
    return validate.real(who, name, value, low=0, high=1)


def decay_pair(who: str, name: str, value: object) -> tuple[float, float]:
    """Two decay rates, each in [0, 1) (Adam's betas)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{who}: expected {name} as a pair ({name}[0], {name}[1]), got {value!r}")
    first, second = (validate.real(who, f"{name}[{i}]", v, low=0, high=1, high_open=True)
                     for i, v in enumerate(value))
    return first, second


PYTORCH_NAMES = {
    "zero_grad": "{cls} has no zero_grad(): handprop's backward overwrites model.grads (it does "
                 "not accumulate), so there is nothing to zero; a step is model.backward(dout) "
                 "then optimizer.step()",
    "parameters": "{cls} has no parameters(): it was built on the model, SGD(model, lr=...), "
                  "and holds its parameters in one flat buffer, optimizer.flat_params "
                  "(by name: optimizer.model.params)",
    "param_groups": "{cls} has no param_groups: one group, its settings are attributes "
                    "(optimizer.lr, ...); Adam and AdamW take param_groups=[...] of weight "
                    "decays",
}


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

    A subclass declares, and then only writes its docstring and ``step()``:

    - ``options``: each setting besides lr and its ``Check`` (``{"momentum": nonnegative}``);
      checked the same way by the constructor and by ``load_state_dict``;
    - ``state_buffers``: each state buffer and the option that switches it on (None: always kept);
      one switched off is saved as an empty dict;
    - ``counters``: state_dict key -> attribute of a step counter (``{"step": "step_count"}``).
    """

    options: ClassVar[dict[str, Check]] = {}
    state_buffers: ClassVar[dict[str, str | None]] = {}
    counters: ClassVar[dict[str, str]] = {}
    divides_by_root: ClassVar[bool] = False       # divides by sqrt(v) + eps (Adam, RMSprop)
    option_names: ClassVar[tuple[str, ...]] = ()  # derived: the keys of ``options``
    state_names: ClassVar[tuple[str, ...]] = ()   # derived: the keys of ``state_buffers``

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.option_names, cls.state_names = tuple(cls.options), tuple(cls.state_buffers)

    def __init__(self, model, lr: float, **options) -> None:
        self.model = model  # first: a check may look at its parameters (parameter groups)
        checked = self._check_options(**options)
        self._check_dtype(next((p.dtype for p in model.params.values()), np.dtype(np.float64)), checked)
        self.lr = lr
        self.initial_lr: float | None = None
        self.flat_params, self.flat_grads = flatten_params(model)
        self._layout = flat_layout(model, self.flat_params)
        # two scratch buffers, so a step allocates nothing parameter-sized
        self._scratch = np.empty_like(self.flat_params)
        self._scaled = np.empty_like(self.flat_params)
        self._apply(checked, {key: 0 for key in self.counters}, {})
        # the arrays a step updates and reads, to see that they are still the model's
        self._views = {name: (model.params[name], model.grads[name]) for name in self._layout}

    def _check_views(self) -> None:
        """Raise unless every entry of ``model.params`` and ``model.grads`` is still the view
        of the flat buffers this optimizer steps: a replaced parameter would no longer be
        updated, and a replaced gradient (a backward that assigned ``self.grads[k] = ...``
        instead of writing into it) would no longer be seen. Identity checks only."""
        params, grads = self.model.params, self.model.grads
        for name, (p, g) in self._views.items():
            if params.get(name) is not p:
                raise ValueError(f"{type(self).__name__}: model.params[{name!r}] of {_owner(self.model, name)} "
                                 f"was replaced after the optimizer was built, so a step would update "
                                 f"an array the model no longer holds; write into it "
                                 f"(params[...][...] = new) or build the optimizer again")
            if grads.get(name) is not g:
                raise ValueError(f"{type(self).__name__}: model.grads[{name!r}] of {_owner(self.model, name)} "
                                 f"is not the array the optimizer reads: its backward replaced it "
                                 f"(self.grads[k] = ...) instead of writing into it "
                                 f"(self.grads[k][...] = ...), so the step would not see the gradient")

    # --- the learning rate -------------------------------------------------------------
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = self._check_lr(value)

    def _check_lr(self, value: object, *, zero_ok: bool = False, name: str = "lr") -> float:
        return validate.real(type(self).__name__, name, value, low=0, low_open=not zero_ok)

    def _schedule_lr(self, value: float) -> None:
        """Set lr from a schedule, which may take it to 0 (cosine annealing's last epoch)."""
        self._lr = self._check_lr(value, zero_ok=True)

    # --- the declared options ----------------------------------------------------------
    def _check_options(self, **options: Any) -> dict:
        """The settings besides lr, each through its declared check, then together."""
        who = type(self).__name__
        checked = {name: check(who, name, options[name]) for name, check in self.options.items()}
        self._check_together(checked)
        return checked

    def _check_together(self, options: dict) -> None:
        """A rule between settings (SGD: Nesterov needs momentum); a ValueError if broken."""

    def _check_dtype(self, dtype: np.dtype, options: dict) -> None:
        """A rule between the settings and the parameters' dtype, checked before the model is
        touched. An optimizer that divides by ``sqrt(v) + eps`` (``divides_by_root``: Adam,
        RMSprop) refuses float16, where eps=1e-8 rounds to 0 and a gradient below 2.4e-4
        squares to 0, so one zero gradient makes every weight 0/0 = NaN; and an eps > 0 that
        rounds to 0 in the dtype, for the same reason."""
        if not self.divides_by_root:
            return
        who = type(self).__name__
        if dtype == np.float16:
            raise TypeError(f"{who}: float16 parameters are refused: eps={options['eps']:g} "
                            f"rounds to {float(np.float16(options['eps'])):g} in float16 and a "
                            f"gradient below 2.4e-4 squares to 0, so a zero or small gradient "
                            f"makes every weight NaN (0/0); build the model in float32")
        if options["eps"] > 0 and dtype.type(options["eps"]) == 0:
            raise ValueError(f"{who}: eps={options['eps']:g} rounds to 0 in {dtype}, so a zero "
                             f"gradient makes every weight NaN (0/0); use an eps >= "
                             f"{float(np.finfo(dtype).smallest_normal):g}")

    def _in_use(self, key: str, options: dict) -> bool:
        """Whether state buffer ``key`` is kept under these settings."""
        switch = self.state_buffers[key]
        return switch is None or bool(options[switch])

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
        state.update({key: _plain(getattr(self, key)) for key in self.option_names})
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
            raise ValueError(f"{who}: the state does not match a {who}'s: "
                             f"{validate.mismatch(missing, unexpected)}")
        lr = self._check_lr(state["lr"], zero_ok=True)
        initial_lr = state.get("initial_lr")
        if initial_lr is not None:
            initial_lr = self._check_lr(initial_lr, name="initial_lr")
        options = self._check_options(**{key: state[key] for key in self.option_names})
        self._check_dtype(self.flat_params.dtype, options)
        counters = {key: _counter(who, key, state[key]) for key in self.counters}
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

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute
        def __getattr__(self, name: str):
            """PyTorch's names that handprop has not (``zero_grad``, ``parameters``): an
            AttributeError that says the handprop way. Called only for a missing attribute."""
            if name in PYTORCH_NAMES:
                raise AttributeError(PYTORCH_NAMES[name].format(cls=type(self).__name__)
                                     + ' (see "Coming from PyTorch" in the README)')
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _owner(model, name: str) -> str:
    """The layer that holds parameter ``name`` ("1.layer.0.W": the layer at "1.layer.0"), by
    its repr and path."""
    path = name.rpartition(".")[0]
    for at, layer in named_layers(model):
        if at == path:
            return f"{layer!r} (layer {path!r})" if path else repr(layer)
    return f"the layer at {path!r}"


def _counter(who: str, key: str, value: object) -> int:
    """A step counter from a state dict: an int in [0, MAX_STEPS]."""
    number = validate.integer(who, f"the counter {key}", value, low=0)
    if number > MAX_STEPS:
        raise ValueError(f"{who}: expected the counter {key} <= {MAX_STEPS:.0e}, got an int of "
                         f"{len(str(number)) if number.bit_length() < 10_000 else 'over 3000'} digits")
    return number


def _plain(value: object) -> object:
    """A setting as JSON gives it back (a tuple as a list: Adam's betas)."""
    return list(value) if isinstance(value, tuple) else value

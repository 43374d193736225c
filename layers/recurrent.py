"""The time loop that RNN, LSTM and GRU share: one step applied T times, and its reverse (BPTT).

Not a layer itself. Derivation: docs/derivations/recurrent.md#backpropagation-through-time.

A recurrent layer is one step function applied at every time step with the same weights::

    xw_t            = x_t @ W_ih + b_ih                 (N, G*H)   for all t at once
                      (+ b_hh too where it adds as b_ih does: RNN, LSTM)
    state_t, step_t = step(xw_t, state_{t-1})           state = (h,) or (h, c)
    out[:, t]       = h_t                               (N, H)

Backward through time walks the steps in reverse. The hidden state ``h_t`` feeds two places,
the output ``out[:, t]`` and the next step, so its gradient is the sum of the two::

    dh_t = dout[:, t] + (gradient from step t+1 into h_t)

Each step's backward turns the gradients of its new state into the gradients of its
pre-activations (``da_i`` on the input side, ``da_h`` on the hidden side; they differ only in
the GRU) and of the previous state. The weights are shared by every step, so their gradients
are sums over steps; the fast ``backward`` makes each sum one matrix product after the loop::

    dW_ih = sum_t x_t.T @ da_i_t        dW_hh = sum_t h_{t-1}.T @ da_h_t
    db_ih = sum_t,n da_i_t              db_hh = sum_t,n da_h_t
    dx_t  = da_i_t @ W_ih.T

``staged_backward`` adds them up step by step instead, as the sums read; a test holds the two
equal.
"""
from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np

from .base import Layer, batch_sum, check_grad, check_input, non_default
from .validate import flag, float_dtype, generator, integer, parameter_budget


class Saved(NamedTuple):
    """What the forward pass keeps for backward (time-major, so that each step is contiguous)."""

    xs: np.ndarray            # (T, N, D) the input, time first
    hs: np.ndarray            # (T+1, N, H) h_0 (the initial state), h_1, ..., h_T
    steps: list               # T per-step caches, each the layer's own Step NamedTuple
    given: int                # how many initial states the caller passed (0: return dx alone)


class Recurrent(Layer):
    """Base of RNN, LSTM and GRU: parameters, checks, the loop over time and its reverse.

    A subclass sets ``gates`` (G) and ``state_names``, and defines ``_step`` and
    ``_step_backward`` (one time step and its derivative).
    """

    gates: int = 1
    state_names: tuple[str, ...] = ("h0",)
    # b_hh adds to the pre-activation as b_ih does (RNN, LSTM; not the GRU, where r scales it):
    # then it joins b_ih in xw once, before the loop, instead of once per step
    hidden_bias_in_xw: ClassVar[bool] = True
    # the step's da_i and da_h are one array (RNN, LSTM): backward keeps one (T, N, G*H) buffer
    da_shared: ClassVar[bool] = True
    W_hh_T: np.ndarray        # set by backward (and staged_backward) for the steps

    def __init__(self, input_size: int, hidden_size: int, *, stateful: bool = False,
                 rng: int | np.random.Generator | None = None, dtype=np.float32) -> None:
        super().__init__()
        name = type(self).__name__
        self.input_size = integer(name, "input_size", input_size, low=1)
        self.hidden_size = integer(name, "hidden_size", hidden_size, low=1)
        self.stateful = flag(name, "stateful", stateful)
        self.dtype = float_dtype(name, dtype)
        parameter_budget(name, self.gates * self.hidden_size * (self.input_size + self.hidden_size + 2),
                         self.dtype)
        rng = generator(name, rng)
        k = 1.0 / np.sqrt(self.hidden_size)                  # PyTorch: U(-1/sqrt(H), 1/sqrt(H))
        gh = self.gates * self.hidden_size
        shapes = {"W_ih": (self.input_size, gh), "W_hh": (self.hidden_size, gh),
                  "b_ih": (gh,), "b_hh": (gh,)}
        for key, shape in shapes.items():
            self.params[key] = rng.uniform(-k, k, shape).astype(self.dtype)
        self.grads = {key: np.zeros_like(p) for key, p in self.params.items()}
        self.carried: tuple[np.ndarray, ...] | None = None   # stateful: the last final states
        self.h_n: np.ndarray | None = None
        self.c_n: np.ndarray | None = None
        self.dh0: np.ndarray | None = None
        self.dc0: np.ndarray | None = None

    def __call__(self, x: np.ndarray, *states: np.ndarray) -> np.ndarray:
        return self.forward(x, *states)

    def reset_state(self) -> None:
        """Forget the carried states: the next forward starts from zeros (stateful=True)."""
        self.carried = None

    def _step(self, xw: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[tuple, Any]:
        raise NotImplementedError

    def _step_backward(self, dstate: tuple[np.ndarray, ...],
                       step: Any) -> tuple[np.ndarray, np.ndarray, tuple]:
        raise NotImplementedError

    def hidden_weight_T(self) -> np.ndarray:
        """W_hh.T as a contiguous (G*H, H) array, made once per backward for the steps'
        ``dh_prev = da @ W_hh.T`` (OpenBLAS takes about 1.5x longer with the transposed view
        at (32, 512) @ (512, 128))."""
        return np.ascontiguousarray(self.params["W_hh"].T)

    def _staged_step_backward(self, dstate: tuple[np.ndarray, ...],
                              step: Any) -> tuple[np.ndarray, np.ndarray, tuple]:
        """The step's backward as its derivation reads; a layer whose ``_step_backward`` is a
        fused in-place form overrides this with the readable one."""
        return self._step_backward(dstate, step)

    def _run(self, x: np.ndarray, initial: tuple[np.ndarray | None, ...]) -> np.ndarray:
        """The forward loop: x (N, T, D) and the initial states (each (N, H) or None)."""
        state, given = self._initial_states(x, initial)
        xs = np.ascontiguousarray(x.transpose(1, 0, 2))     # (T, N, D)
        xw = (xs.reshape(-1, xs.shape[2]) @ self.params["W_ih"]).reshape(xs.shape[:2] + (-1,))
        xw += self.params["b_ih"]                            # (T, N, G*H): every step at once
        if self.hidden_bias_in_xw:
            xw += self.params["b_hh"]
        hs = np.empty((xs.shape[0] + 1,) + state[0].shape, self.dtype)
        hs[0] = state[0]
        steps = []
        for t in range(xs.shape[0]):
            state, step = self._step(xw[t], state)
            hs[t + 1] = state[0]
            steps.append(step)
        self.cache = Saved(xs, hs, steps, given)
        self.h_n = state[0].copy()
        self.c_n = state[1].copy() if len(state) > 1 else None
        if self.stateful:
            self.carried = tuple(s.copy() for s in state)
        return np.ascontiguousarray(hs[1:].transpose(1, 0, 2))   # (N, T, H)

    def backward(self, dout: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:  # type: ignore[override]
        """dout (N, T, H) -> dx (N, T, D), or (dx, dh0[, dc0]) when the initial states were
        given; fills the four weight gradients and ``dh0`` (``dc0``)."""
        xs, hs, steps, given = self._saved()
        self.W_hh_T = self.hidden_weight_T()
        check_grad(self, dout, (xs.shape[1], xs.shape[0], self.hidden_size), self.dtype)
        douts = dout.transpose(1, 0, 2)                      # (T, N, H), a view
        da_i = np.empty(xs.shape[:2] + (self.params["b_ih"].size,), self.dtype)  # (T, N, G*H)
        da_h = da_i if self.da_shared else np.empty_like(da_i)
        dstate = tuple(np.zeros_like(hs[0]) for _ in self.state_names)
        for t in reversed(range(len(steps))):
            dstate = (dstate[0] + douts[t],) + dstate[1:]    # h_t fed the output and step t+1
            da_i[t], step_da_h, dstate = self._step_backward(dstate, steps[t])
            if da_h is not da_i:
                da_h[t] = step_da_h
        rows_i, rows_h = da_i.reshape(-1, da_i.shape[2]), da_h.reshape(-1, da_h.shape[2])
        np.matmul(xs.reshape(-1, xs.shape[2]).T, rows_i, out=self.grads["W_ih"])
        np.matmul(hs[:-1].reshape(-1, hs.shape[2]).T, rows_h, out=self.grads["W_hh"])
        batch_sum(rows_i, out=self.grads["b_ih"])
        batch_sum(rows_h, out=self.grads["b_hh"])
        dx = (rows_i @ self.params["W_ih"].T).reshape(xs.shape)   # (T, N, D)
        dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
        return self._result(dx, dstate, given)

    def staged_backward(self, dout: np.ndarray) -> dict[str, np.ndarray]:
        """Backpropagation through time step by step, as the sums read; changes nothing.

        Returns the gradients by name: ``x``, ``h0`` (``c0``), ``W_ih``, ``W_hh``, ``b_ih``,
        ``b_hh``. Kept for reading and for the test that holds ``backward`` equal to it.
        """
        xs, hs, steps, _ = self._saved()
        self.W_hh_T = self.hidden_weight_T()
        check_grad(self, dout, (xs.shape[1], xs.shape[0], self.hidden_size), self.dtype)
        grads = {key: np.zeros_like(p) for key, p in self.params.items()}
        dx = np.zeros_like(xs)                               # (T, N, D)
        dstate = tuple(np.zeros_like(hs[0]) for _ in self.state_names)   # no step T+1
        for t in reversed(range(len(steps))):
            dh_from_output = dout[:, t]                      # (N, H)
            dh_next = dstate[0]                              # from step t+1, through W_hh
            dh = dh_from_output + dh_next                    # the two paths into h_t add
            da_i, da_h, dstate = self._staged_step_backward((dh,) + dstate[1:], steps[t])
            dx[t] = da_i @ self.params["W_ih"].T             # (N, D)
            grads["W_ih"] += xs[t].T @ da_i                  # shared weights: summed over t
            grads["W_hh"] += hs[t].T @ da_h                  # hs[t] is h_{t-1}
            grads["b_ih"] += da_i.sum(axis=0)
            grads["b_hh"] += da_h.sum(axis=0)
        grads["x"] = dx.transpose(1, 0, 2)
        grads.update(zip(self.state_names, dstate))
        return grads

    def _result(self, dx: np.ndarray, dstate: tuple[np.ndarray, ...],
                given: int) -> np.ndarray | tuple[np.ndarray, ...]:
        self.dh0 = dstate[0]
        self.dc0 = dstate[1] if len(dstate) > 1 else None
        return (dx,) + tuple(dstate) if given else dx

    def _initial_states(self, x: np.ndarray, initial: tuple[np.ndarray | None, ...]
                        ) -> tuple[tuple[np.ndarray, ...], int]:
        """The checked initial states, and how many the caller gave: all or none of them."""
        check_input(self, x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            hint = "; for one sequence use x[None]" if x.shape[-1:] == (self.input_size,) else ""
            raise ValueError(f"{self!r}: expected input of shape (N, T, {self.input_size}) "
                             f"(batch first), got {x.shape}{hint}")
        shape = (x.shape[0], self.hidden_size)
        given = {name: s for name, s in zip(self.state_names, initial) if s is not None}
        if given and len(given) < len(initial):
            raise ValueError(f"{self!r}: expected all of {', '.join(self.state_names)} or none, "
                             f"got only {', '.join(given)}")
        for name, s in given.items():
            if not isinstance(s, np.ndarray) or s.dtype != self.dtype:
                got = s.dtype if isinstance(s, np.ndarray) else type(s).__name__
                raise TypeError(f"{self!r}: expected {name} as a {self.dtype} array (the layer's "
                                f"dtype), got {got}")
            if s.shape != shape:
                raise ValueError(f"{self!r}: expected {name} of shape {shape} (N, H), got {s.shape}")
        if given:
            return tuple(given.values()), len(given)
        if self.carried is not None:
            if self.carried[0].shape != shape:
                raise ValueError(f"{self!r}: the carried state has batch size "
                                 f"{self.carried[0].shape[0]}, the input {x.shape[0]}; call "
                                 f"reset_state() before a batch of another size")
            return self.carried, 0
        return tuple(np.zeros(shape, self.dtype) for _ in self.state_names), 0

    def extra_repr(self) -> str:
        options = non_default(stateful=(self.stateful, False), dtype=(self.dtype, np.float32))
        return ", ".join(filter(None, [f"{self.input_size}, {self.hidden_size}", options]))


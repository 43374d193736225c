"""RNN: the Elman recurrent layer, h_t = tanh(x_t @ W_ih + b_ih + h_{t-1} @ W_hh + b_hh).

Derivation: docs/derivations/recurrent.md#rnn. The loop over time is ``recurrent.Recurrent``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .recurrent import Recurrent
from .validate import choice


class Step(NamedTuple):
    """What one time step keeps for backward."""

    h_prev: np.ndarray        # (N, H) h_{t-1}
    h: np.ndarray             # (N, H) h_t = phi(a), which gives phi'(a) for tanh and relu


class RNN(Recurrent):
    """A one-layer Elman RNN over batch-first sequences, PyTorch's ``nn.RNN(batch_first=True)``.

    One step, for x_t (N, D) and h_{t-1} (N, H)::

        a   = x_t @ W_ih + b_ih + h_{t-1} @ W_hh + b_hh     (N, H)
        h_t = phi(a)                                         phi = tanh or relu

    Local derivatives of the step, with dh the gradient reaching h_t (from the output and
    from step t+1, added)::

        da      = dh * (1 - h_t**2)       (tanh)     or   dh * (a > 0)   (relu)
        dh_prev = da @ W_hh.T             (N, H)
        dx_t    = da @ W_ih.T             (N, D),  and  dW_ih += x_t.T @ da, dW_hh += h_{t-1}.T @ da

    Shapes: x (N, T, D) -> out (N, T, H), every hidden state. Parameters W_ih (D, H), W_hh
    (H, H), b_ih (H,), b_hh (H,): PyTorch's ``weight_ih_l0.T``, ``weight_hh_l0.T``,
    ``bias_ih_l0``, ``bias_hh_l0``; all initialised U(-1/sqrt(H), 1/sqrt(H)) as PyTorch does.

    ``forward(x, h0=None)``: h0 (N, H), zeros by default. ``backward(dout)`` returns dx, or
    ``(dx, dh0)`` when h0 was given; ``dh0`` and the last state ``h_n`` are kept as
    attributes. With ``stateful=True`` the last state is carried into the next forward (as
    a constant: truncated backpropagation through time) until ``reset_state()``.

    Parameters
    ----------
    input_size, hidden_size : int
        D and H.
    nonlinearity : {"tanh", "relu"}
        phi.
    stateful : bool
        Carry h_n into the next forward when no h0 is given.
    rng : int or numpy.random.Generator, optional
        Seed or generator for the initial weights.
    dtype : numpy dtype
        Floating-point type of parameters, outputs and gradients (float32 by default).

    Examples
    --------
    >>> rnn = RNN(3, 5, rng=0)
    >>> out = rnn.forward(np.ones((2, 4, 3), np.float32))
    >>> out.shape, rnn.h_n.shape
    ((2, 4, 5), (2, 5))
    >>> dx = rnn.backward(np.ones_like(out))
    >>> dx.shape, rnn.grads["W_hh"].shape, rnn.dh0.shape
    ((2, 4, 3), (5, 5), (2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, *, nonlinearity: str = "tanh",
                 stateful: bool = False, rng: int | np.random.Generator | None = None,
                 dtype=np.float32) -> None:
        self.nonlinearity = choice("RNN", "nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(input_size, hidden_size, stateful=stateful, rng=rng, dtype=dtype)

    def forward(self, x: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
        """x (N, T, D), h0 (N, H) or None -> out (N, T, H)."""
        return self._run(x, (h0,))

    def _step(self, xw: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[tuple, Step]:
        (h_prev,) = state
        a = h_prev @ self.params["W_hh"]                     # (N, H)
        a += xw                                              # xw = x_t @ W_ih + b_ih + b_hh
        h = np.tanh(a, out=a) if self.nonlinearity == "tanh" else np.maximum(a, 0, out=a)
        return (h,), Step(h_prev, h)

    def _step_backward(self, dstate: tuple[np.ndarray, ...], step: Step):
        (dh,) = dstate
        if self.nonlinearity == "tanh":
            da = dh * (1 - step.h * step.h)                  # tanh' = 1 - tanh^2
        else:
            da = dh * (step.h > 0)                           # relu' = [a > 0] = [h > 0]
        dh_prev = da @ self.W_hh_T                           # (N, H)
        return da, da, (dh_prev,)                            # input and hidden side alike

    def extra_repr(self) -> str:
        base = super().extra_repr()
        return base + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")

"""GRU: reset and update gates (r, z in PyTorch's order) and a candidate n with b_hn inside r * (...).

Derivation: docs/derivations/recurrent.md#gru. The loop over time is ``recurrent.Recurrent``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .recurrent import Recurrent
from .special import expit


class Step(NamedTuple):
    """What one time step keeps for backward; every field (N, H)."""

    h_prev: np.ndarray
    r: np.ndarray             # reset gate   sigmoid
    z: np.ndarray             # update gate  sigmoid
    n: np.ndarray             # candidate    tanh
    hw_n: np.ndarray          # h_{t-1} @ W_hn + b_hn, the part the reset gate scales


class GRU(Recurrent):
    """A one-layer GRU over batch-first sequences, PyTorch's ``nn.GRU(batch_first=True)``.

    One step, for x_t (N, D) and h_{t-1} (N, H); each (N, 3H) product is split into three
    (N, H) blocks in PyTorch's order r, z, n::

        xw         = x_t @ W_ih + b_ih                       (N, 3H)
        hw         = h_{t-1} @ W_hh + b_hh                   (N, 3H)
        r, z       = sigmoid(xw_r + hw_r), sigmoid(xw_z + hw_z)
        n          = tanh(xw_n + r * hw_n)                   b_hn inside the product
        h_t        = (1 - z) * n + z * h_{t-1}

    Because r scales ``hw_n`` only, the input side and the hidden side of the n block have
    different gradients. Local derivatives, with dh reaching h_t (output and step t+1)::

        dn      = dh * (1 - z);      dz = dh * (h_{t-1} - n)
        dan     = dn * (1 - n**2)                            n's pre-activation
        dr      = dan * hw_n;        dhw_n = dan * r
        da_i    = [dr * r(1-r), dz * z(1-z), dan]            (N, 3H), input side
        da_h    = [dr * r(1-r), dz * z(1-z), dhw_n]          (N, 3H), hidden side
        dh_prev = da_h @ W_hh.T + dh * z                     through hw, and directly

    Shapes: x (N, T, D) -> out (N, T, H). Parameters W_ih (D, 3H), W_hh (H, 3H), b_ih (3H,),
    b_hh (3H,): PyTorch's ``weight_ih_l0.T``, ``weight_hh_l0.T``, ``bias_ih_l0``,
    ``bias_hh_l0``, initialised U(-1/sqrt(H), 1/sqrt(H)).

    ``forward(x, h0=None)``; ``backward(dout)`` returns dx, or ``(dx, dh0)`` when h0 was
    given; ``dh0`` and ``h_n`` are kept. ``stateful=True`` carries h_n into the next forward
    until ``reset_state()``.

    Parameters
    ----------
    input_size, hidden_size : int
        D and H.
    stateful : bool
        Carry h_n into the next forward when no h0 is given.
    rng : int or numpy.random.Generator, optional
        Seed or generator for the initial weights.
    dtype : numpy dtype
        Floating-point type of parameters, outputs and gradients (float32 by default).

    Examples
    --------
    >>> gru = GRU(3, 2, rng=0)
    >>> out = gru.forward(np.ones((4, 5, 3), np.float32))
    >>> out.shape, gru.params["W_hh"].shape
    ((4, 5, 2), (2, 6))
    """

    gates = 3
    hidden_bias_in_xw = False                                # b_hn sits inside r * (...)
    da_shared = False                                        # da_h carries dhw_n, da_i dan

    def forward(self, x: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
        """x (N, T, D), h0 (N, H) or None -> out (N, T, H)."""
        return self._run(x, (h0,))

    def _step(self, xw: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[tuple, Step]:
        (h_prev,) = state
        hw = h_prev @ self.params["W_hh"]                    # (N, 3H)
        hw += self.params["b_hh"]
        xw_r, xw_z, xw_n = np.split(xw, 3, axis=1)
        hw_r, hw_z, hw_n = np.split(hw, 3, axis=1)
        r = expit(xw_r + hw_r)
        z = expit(xw_z + hw_z)
        n = np.tanh(xw_n + r * hw_n)
        h = (1 - z) * n + z * h_prev
        return (h,), Step(h_prev, r, z, n, hw_n)

    def _step_backward(self, dstate: tuple[np.ndarray, ...], step: Step):
        (dh,) = dstate
        h_prev, r, z, n, hw_n = step
        dn = dh * (1 - z)
        dz = dh * (h_prev - n)
        dan = dn * (1 - n * n)                               # tanh'
        dr = dan * hw_n
        dhw_n = dan * r                                      # the reset gate scales hw_n
        dar = dr * r * (1 - r)
        daz = dz * z * (1 - z)
        da_i = np.concatenate([dar, daz, dan], axis=1)       # (N, 3H)
        da_h = np.concatenate([dar, daz, dhw_n], axis=1)     # (N, 3H)
        dh_prev = da_h @ self.W_hh_T + dh * z                # through hw, and directly
        return da_i, da_h, (dh_prev,)

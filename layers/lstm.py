"""LSTM: four gates (i, f, g, o in PyTorch's order) and a cell that carries the long memory.

Derivation: docs/derivations/recurrent.md#lstm. The loop over time is ``recurrent.Recurrent``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .recurrent import Recurrent
from .validate import choice

GATE_ORDERS = {"ifgo": "PyTorch (ours)", "ifog": "CS231n", "fgio": "Deep Learning from Scratch 2"}


class Step(NamedTuple):
    """What one time step keeps for backward."""

    h_prev: np.ndarray        # (N, H)
    c_prev: np.ndarray        # (N, H)
    gates: np.ndarray         # (N, 4H) i, f, g, o: sigmoid, sigmoid, tanh, sigmoid
    tanh_c: np.ndarray        # (N, H) tanh(c_t)


def gate_views(gates: np.ndarray) -> tuple[np.ndarray, ...]:
    """The four (N, H) blocks of (N, 4H) in PyTorch's order i, f, g, o: views, no copies."""
    H = gates.shape[1] // 4
    return gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]


def gate_affine(hidden_size: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """scale and shift (4H,) that make tanh give sigmoid on the i, f, o blocks and tanh on g:
    gate = scale * tanh(scale * a) + shift."""
    scale = np.full((4, hidden_size), 0.5, dtype)
    scale[2] = 1.0
    shift = np.full((4, hidden_size), 0.5, dtype)
    shift[2] = 0.0
    return scale.reshape(-1), shift.reshape(-1)


class LSTM(Recurrent):
    """A one-layer LSTM over batch-first sequences, PyTorch's ``nn.LSTM(batch_first=True)``.

    One step, for x_t (N, D), h_{t-1} and c_{t-1} (N, H); the pre-activation a (N, 4H) is
    split into four (N, H) blocks in PyTorch's order i, f, g, o::

        a          = x_t @ W_ih + b_ih + h_{t-1} @ W_hh + b_hh
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), tanh(a_g), sigmoid(a_o)
        c_t        = f * c_{t-1} + i * g
        h_t        = o * tanh(c_t)

    Local derivatives, with dh reaching h_t (from the output and step t+1) and dc_next
    reaching c_t from step t+1::

        do      = dh * tanh(c_t)
        dc      = dc_next + dh * o * (1 - tanh(c_t)**2)    c_t feeds h_t and c_{t+1}: add
        di, dg  = dc * g, dc * i
        df      = dc * c_{t-1};      dc_prev = dc * f
        da      = [di * i(1-i), df * f(1-f), dg * (1-g**2), do * o(1-o)]     (N, 4H)
        dh_prev = da @ W_hh.T

    Shapes: x (N, T, D) -> out (N, T, H). Parameters W_ih (D, 4H), W_hh (H, 4H), b_ih (4H,),
    b_hh (4H,): PyTorch's ``weight_ih_l0.T``, ``weight_hh_l0.T``, ``bias_ih_l0``,
    ``bias_hh_l0``, initialised U(-1/sqrt(H), 1/sqrt(H)). Weights in another gate order
    (CS231n's i, f, o, g) load with ``LSTM.from_gate_order`` or ``reorder_gates``.

    ``forward(x, h0=None, c0=None)``: both initial states or neither, zeros by default.
    ``backward(dout)`` returns dx, or ``(dx, dh0, dc0)`` when they were given; ``dh0``,
    ``dc0``, ``h_n`` and ``c_n`` are kept as attributes. ``stateful=True`` carries (h_n, c_n)
    into the next forward until ``reset_state()``.

    Parameters
    ----------
    input_size, hidden_size : int
        D and H.
    stateful : bool
        Carry the last states into the next forward when none are given.
    rng : int or numpy.random.Generator, optional
        Seed or generator for the initial weights.
    dtype : numpy dtype
        Floating-point type of parameters, outputs and gradients (float32 by default).

    Examples
    --------
    >>> lstm = LSTM(3, 2, rng=0)
    >>> out = lstm.forward(np.ones((4, 5, 3), np.float32))
    >>> out.shape, lstm.params["W_ih"].shape, lstm.c_n.shape
    ((4, 5, 2), (3, 8), (4, 2))
    """

    gates = 4
    state_names = ("h0", "c0")
    gate_affine: tuple[np.ndarray, np.ndarray]      # set by forward for the steps

    def forward(self, x: np.ndarray, h0: np.ndarray | None = None,
                c0: np.ndarray | None = None) -> np.ndarray:
        """x (N, T, D), h0 and c0 (N, H) or None -> out (N, T, H)."""
        self.gate_affine = gate_affine(self.hidden_size, self.dtype)
        return self._run(x, (h0, c0))

    def _step(self, xw: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[tuple, Step]:
        h_prev, c_prev = state
        a = h_prev @ self.params["W_hh"]                     # (N, 4H)
        a += xw                                              # xw = x_t @ W_ih + b_ih + b_hh
        # the nonlinearities overwrite a in place: a becomes the gates i, f, g, o. One tanh
        # over all four blocks, sigmoid(a) = tanh(a/2)/2 + 1/2 where scale is 1/2 and shift
        # 1/2, tanh(a) where they are 1 and 0 (numpy's tanh is 3-5x faster than scipy's
        # expit on these blocks)
        scale, shift = self.gate_affine
        a *= scale
        np.tanh(a, out=a)
        a *= scale
        a += shift
        i, f, g, o = gate_views(a)
        c = f * c_prev
        c += i * g
        tanh_c = np.tanh(c)
        h = o * tanh_c
        return (h, c), Step(h_prev, c_prev, a, tanh_c)

    def _step_backward(self, dstate: tuple[np.ndarray, ...], step: Step):
        dh, dc_next = dstate
        h_prev, c_prev, gates, tanh_c = step
        i, f, g, o = gate_views(gates)
        # da starts as each gate's local derivative, then takes its upstream factors in place
        da = np.subtract(1, gates)                           # (N, 4H)
        da *= gates                                          # sigmoid' = s(1-s): i, f, o
        da_i, da_f, da_g, da_o = gate_views(da)
        np.multiply(g, g, out=da_g)
        np.subtract(1, da_g, out=da_g)                       # tanh' = 1 - g**2
        dc = tanh_c * tanh_c
        np.subtract(1, dc, out=dc)                           # tanh'(c_t)
        dc *= o
        dc *= dh
        dc += dc_next                                        # c_t fed h_t and c_{t+1}
        da_o *= tanh_c                                       # do = dh * tanh(c_t)
        da_o *= dh
        da_i *= g                                            # di = dc * g
        da_i *= dc
        da_f *= c_prev                                       # df = dc * c_{t-1}
        da_f *= dc
        da_g *= i                                            # dg = dc * i
        da_g *= dc
        dc_prev = dc * f
        dh_prev = da @ self.W_hh_T
        return da, da, (dh_prev, dc_prev)

    def _staged_step_backward(self, dstate: tuple[np.ndarray, ...], step: Step):
        """``_step_backward`` as the derivation reads, one local derivative per line (used by
        ``staged_backward``; the test that holds the two backwards equal covers both)."""
        dh, dc_next = dstate
        h_prev, c_prev, gates, tanh_c = step
        i, f, g, o = gate_views(gates)
        do = dh * tanh_c
        dc = dc_next + dh * o * (1 - tanh_c * tanh_c)        # c_t fed h_t and c_{t+1}
        di = dc * g
        dg = dc * i
        df = dc * c_prev
        dc_prev = dc * f
        da = np.concatenate([di * i * (1 - i), df * f * (1 - f),   # (N, 4H), order i, f, g, o
                             dg * (1 - g * g), do * o * (1 - o)], axis=1)
        dh_prev = da @ self.params["W_hh"].T
        return da, da, (dh_prev, dc_prev)

    @classmethod
    def from_gate_order(cls, W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray,
                        b_hh: np.ndarray | None = None, *, order: str, **options) -> LSTM:
        """An LSTM holding weights whose four gate blocks are in ``order``.

        ``W_ih`` (D, 4H), ``W_hh`` (H, 4H) act as ``x @ W`` (as CS231n's ``Wx``, ``Wh`` and
        Deep Learning from Scratch 2's ``Wx``, ``Wh`` do); a single bias (theirs) goes in
        ``b_ih`` with ``b_hh`` left as zeros. ``options`` go to the constructor (``dtype``).

        >>> H, rng = 2, np.random.default_rng(0)
        >>> Wx, Wh, b = rng.normal(size=(3, 4 * H)), rng.normal(size=(H, 4 * H)), np.zeros(4 * H)
        >>> lstm = LSTM.from_gate_order(Wx, Wh, b, order="ifog", dtype=np.float64)
        >>> bool((lstm.params["W_ih"][:, 2 * H:3 * H] == Wx[:, 3 * H:]).all())   # g moved
        True
        """
        lstm = cls(W_ih.shape[0], W_hh.shape[0], **options)
        given = {"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih,
                 "b_hh": np.zeros_like(b_ih) if b_hh is None else b_hh}
        for key, value in given.items():
            if np.shape(value) != lstm.params[key].shape:
                raise ValueError(f"{lstm!r}: expected {key} of shape {lstm.params[key].shape}, "
                                 f"got {np.shape(value)}")
            lstm.params[key][...] = reorder_gates(value, order)
        return lstm


def reorder_gates(W: np.ndarray, source: str, target: str = "ifgo") -> np.ndarray:
    """``W``'s four gate blocks along its last axis, from ``source`` order into ``target``.

    Orders name the blocks by gate: ``"ifgo"`` (PyTorch and handprop), ``"ifog"`` (CS231n),
    ``"fgio"`` (Deep Learning from Scratch 2). Works on weights (..., 4H) and biases (4H,).

    >>> reorder_gates(np.array([1, 2, 3, 4]), "ifog")      # i f o g -> i f g o
    array([1, 2, 4, 3])
    """
    source = choice("reorder_gates", "source", source, GATE_ORDERS)
    target = choice("reorder_gates", "target", target, GATE_ORDERS)
    if W.shape[-1] % 4:
        raise ValueError(f"reorder_gates: expected a last axis of 4H, got shape {W.shape}")
    blocks = dict(zip(source, np.split(W, 4, axis=-1)))
    return np.concatenate([blocks[gate] for gate in target], axis=-1)

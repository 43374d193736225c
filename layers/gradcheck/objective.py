"""The objective: the scalar that is differentiated, for a layer or for a loss.

A layer's is ``sum(forward(x) * dout)`` with a random ``dout``; a loss's ``dloss * loss`` with a
random scalar ``dloss``. The objective owns the checker's deep copies of the subject and its
input, and replays the subject's random generators before every forward.
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from .members import describe, get_state, random_states, set_state


@dataclass(frozen=True)
class Objective:
    """The scalar gradcheck differentiates, as a function of the inputs and the parameters.

    A layer's is ``sum(forward(*inputs) * dout)``, a loss's ``dloss * forward(pred, targets)``.
    Built by ``layer_objective`` or ``loss_objective``, which make the checker's own copies.
    An input that is not differentiated (integer token ids, or one the caller marks) is passed
    through unperturbed, and what backward returns for it is not read.
    """

    subject: Any                    # the checker's deep copy of the layer or loss
    names: tuple[str, ...]          # one per input: "x", "logits", "pred" or forward's names
    inputs: tuple[np.ndarray, ...]  # the checker's copies of the inputs, perturbed in place
    differentiated: tuple[bool, ...]
    several: bool                   # forward took several inputs: backward returns a tuple
    targets: np.ndarray | None      # a loss's targets, passed through, never differentiated
    upstream: Any                   # dout (an array of the output's shape) or dloss (a float)
    replays: tuple                  # (generator, state): restored before every forward

    @property
    def is_loss(self) -> bool:
        return self.targets is not None

    @property
    def x(self) -> np.ndarray:
        """The first input (the only one of most layers)."""
        return self.inputs[0]

    @property
    def input_name(self) -> str:
        return self.names[0]

    def checked_inputs(self) -> dict[str, np.ndarray]:
        """The differentiated inputs by name."""
        return {name: x for name, x, d in zip(self.names, self.inputs, self.differentiated) if d}

    def forward(self, inputs: tuple[np.ndarray, ...] | None = None) -> Any:
        """The output at the current values, with the same random draws every time.

        The subject gets copies of the inputs, so a forward that writes into its input (a
        problem that ``check_contract`` reports) cannot corrupt the differences; the output is
        copied, so a layer that reuses its own memory for it cannot overwrite an earlier one.
        """
        for generator, state in self.replays:
            set_state(generator, state)
        if inputs is None:
            inputs = tuple(x.copy() for x in self.inputs)
        if self.targets is not None:  # a loss
            return self.subject.forward(inputs[0], self.targets.copy())
        out = self.subject.forward(*inputs)
        return out.copy() if isinstance(out, np.ndarray) else out

    def backward(self, upstream: Any = None) -> Any:
        """What backward returns for the upstream gradient (a copy of ours by default)."""
        if self.is_loss:
            return self.subject.backward(self.upstream)
        return self.subject.backward(self.upstream.copy() if upstream is None else upstream)

    def split(self, returned: Any) -> tuple[dict[str, Any], str | None]:
        """Backward's return value as {input name: gradient} for the differentiated inputs, and
        what is wrong with its form (several inputs need a tuple with one entry per input)."""
        if not self.several:
            if isinstance(returned, (tuple, list)) and len(returned) == 1:
                returned = returned[0]  # (dx,) for (x,) is as good as dx
            return {self.names[0]: returned} if self.differentiated[0] else {}, None
        count = len(self.inputs)
        if not isinstance(returned, (tuple, list)) or len(returned) != count:
            got = (f"a {type(returned).__name__} of {len(returned)}"
                   if isinstance(returned, (tuple, list)) else describe(returned))
            return {}, (f"backward returned {got} for {count} inputs ({', '.join(self.names)}); "
                        f"expected a tuple of {count}, one gradient per input (None for one that "
                        f"is not differentiated)")
        return {name: grad for name, grad, d in zip(self.names, returned, self.differentiated) if d}, None

    def change(self, a: Any, b: Any) -> float:
        """L(a) - L(b) for two outputs, without forming L (no cancellation)."""
        if self.is_loss:
            return float((a - b) * self.upstream)
        return float(np.sum((np.asarray(a, np.float64) - b) * self.upstream))

    def magnitude(self, out: Any) -> float:
        """The size of the terms of L, which sets the rounding noise of a difference."""
        if self.is_loss:
            return abs(float(out) * self.upstream)
        return float(np.sum(np.abs(np.asarray(out, np.float64) * self.upstream)))


def is_ids(x: np.ndarray) -> bool:
    """Integer (or boolean) arrays are indices or masks: passed through, never perturbed."""
    return x.dtype.kind in "iub"


def input_names(subject: Any, count: int) -> tuple[str, ...]:
    """"x" for one input; for several, forward's own parameter names (q, k) where it has them."""
    if count == 1:
        return ("x",)
    try:
        params = list(inspect.signature(subject.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    named = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(named) >= count and len(set(named[:count])) == count:
        return tuple(named[:count])
    return tuple(f"x{i}" for i in range(count))


def layer_objective(layer: Any, inputs: tuple[np.ndarray, ...], rng: np.random.Generator, *,
                    several: bool = False, not_differentiated: tuple[int, ...] = ()) -> Objective:
    """L = sum(forward(*inputs) * dout) for a layer, with a random dout drawn from ``rng``.

    Integer inputs (token ids) and those whose index is in ``not_differentiated`` are passed
    through unperturbed; the others are copied as float64 and checked.
    """
    layer = copy.deepcopy(layer)
    differentiated = tuple(not is_ids(x) and i not in not_differentiated for i, x in enumerate(inputs))
    inputs = tuple(np.array(x, dtype=np.float64 if d else x.dtype, copy=True)
                   for x, d in zip(inputs, differentiated))
    names = input_names(layer, len(inputs))
    replays = tuple((g, get_state(g)) for g in random_states(layer))
    probe = Objective(layer, names, inputs, differentiated, several, None, None, replays)
    dout = rng.standard_normal(np.shape(probe.forward()))
    return Objective(layer, names, inputs, differentiated, several, None, dout, replays)


def loss_objective(loss: Any, pred: np.ndarray, targets: np.ndarray,
                   rng: np.random.Generator) -> Objective:
    """L = dloss * forward(pred, targets) for a loss, with a random scalar dloss."""
    loss = copy.deepcopy(loss)
    targets = np.array(targets, copy=True)
    name = "logits" if targets.dtype.kind in "iu" else "pred"
    replays = tuple((g, get_state(g)) for g in random_states(loss))
    return Objective(loss, (name,), (np.array(pred, dtype=np.float64, copy=True),), (True,), False,
                     targets, float(rng.uniform(0.5, 2.0)), replays)

"""The objective: the scalar that is differentiated, for a layer or for a loss.

A layer's is ``sum(forward(x) * dout)`` with a random ``dout``; a loss's ``dloss * loss`` with a
random scalar ``dloss``. The objective owns the checker's deep copies of the subject and its
input, and replays the subject's random generators before every forward.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from .members import get_state, random_states, set_state


@dataclass(frozen=True)
class Objective:
    """The scalar gradcheck differentiates, as a function of the input and the parameters.

    A layer's is ``sum(forward(x) * dout)``, a loss's ``dloss * forward(pred, targets)``. Built
    by ``layer_objective`` or ``loss_objective``, which make the checker's own copies.
    """

    subject: Any                  # the checker's deep copy of the layer or loss
    input_name: str               # "x", "logits" (integer targets) or "pred"
    x: np.ndarray                 # the checker's copy of the input, perturbed in place
    targets: np.ndarray | None    # a loss's targets, passed through, never differentiated
    upstream: Any                 # dout (an array of the output's shape) or dloss (a float)
    replays: tuple                # (generator, state): restored before every forward

    @property
    def is_loss(self) -> bool:
        return self.targets is not None

    def forward(self, x: np.ndarray | None = None) -> Any:
        """The output at the current values, with the same random draws every time.

        The subject gets a copy of x, so a forward that writes into its input (a problem that
        ``check_contract`` reports) cannot corrupt the differences; the output is copied, so a
        layer that reuses its own memory for it cannot overwrite an earlier evaluation.
        """
        for generator, state in self.replays:
            set_state(generator, state)
        x = self.x.copy() if x is None else x
        if self.targets is not None:  # a loss
            return self.subject.forward(x, self.targets.copy())
        out = self.subject.forward(x)
        return out.copy() if isinstance(out, np.ndarray) else out

    def backward(self, upstream: Any = None) -> Any:
        """What backward returns for the upstream gradient (a copy of ours by default)."""
        if self.is_loss:
            return self.subject.backward(self.upstream)
        return self.subject.backward(self.upstream.copy() if upstream is None else upstream)

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


def layer_objective(layer: Any, x: np.ndarray, rng: np.random.Generator) -> Objective:
    """L = sum(forward(x) * dout) for a layer, with a random dout drawn from ``rng``."""
    layer = copy.deepcopy(layer)
    x = np.array(x, dtype=np.float64, copy=True)
    replays = tuple((g, get_state(g)) for g in random_states(layer))
    probe = Objective(layer, "x", x, None, None, replays)
    dout = rng.standard_normal(np.shape(probe.forward()))
    return Objective(layer, "x", x, None, dout, replays)


def loss_objective(loss: Any, pred: np.ndarray, targets: np.ndarray,
                   rng: np.random.Generator) -> Objective:
    """L = dloss * forward(pred, targets) for a loss, with a random scalar dloss."""
    loss = copy.deepcopy(loss)
    targets = np.array(targets, copy=True)
    name = "logits" if targets.dtype.kind in "iu" else "pred"
    replays = tuple((g, get_state(g)) for g in random_states(loss))
    return Objective(loss, name, np.array(pred, dtype=np.float64, copy=True), targets,
                     float(rng.uniform(0.5, 2.0)), replays)


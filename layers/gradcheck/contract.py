"""Contract problems: what breaks the Layer contract, found before any differencing.

Each finder runs forward or backward the way the differences will and appends a Problem
(kinds in ``report.PROBLEM_KINDS``) instead of raising, so one report lists them all.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .members import describe, differs, is_float_array, walk
from .objective import Objective
from .report import Problem


def check_contract(objective: Objective, problems: list[Problem]) -> tuple[Any, dict] | None:
    """Run forward and backward the way the differences will, appending what breaks the contract.

    Returns the unperturbed output and the analytic gradients that can be compared (float64,
    the tensor's shape), or None when forward is random in a way the checker cannot replay.
    """
    subject, x, what = objective.subject, objective.x, objective.input_name
    x_in = x.copy()
    out = objective.forward(x_in)
    changed = differs(x_in, x)
    if changed:
        problems.append(Problem("modifies-input", (
            f"forward changed its input {what} in place ({changed} of {x.size} elements); a value "
            f"that feeds two branches must survive the first: write the result to a new array "
            f"(y = x * m, not x *= m)")))
    again = objective.forward()
    if differs(out, again):
        replayed = f" (it replayed {len(objective.replays)} generator(s))" if objective.replays else ""
        problems.append(Problem("stochastic", (
            f"forward gave different outputs for the same {what}{replayed}: it draws random numbers "
            f"the checker cannot replay (np.random.*, a fresh default_rng()); draw them from a "
            f"np.random.Generator kept as an attribute (self.rng = np.random.default_rng(seed))")))
        return None
    if not objective.is_loss and not is_float_array(out, x.dtype):
        problems.append(Problem("dtype", (f"forward returned {describe(out)} for a float64 {what}; "
                                          f"expected a float64 ndarray")))

    params = getattr(subject, "params", {})
    for grad in getattr(subject, "grads", {}).values():
        if isinstance(grad, np.ndarray) and grad.flags.writeable:
            grad[...] = 0  # a gradient backward never writes then reads as zero, not as stale
    dout = None if objective.is_loss else objective.upstream.copy()
    dx = objective.backward(dout)
    if dout is not None and differs(dout, objective.upstream):
        problems.append(Problem("modifies-input", (
            f"backward changed dout in place ({differs(dout, objective.upstream)} of {dout.size} "
            f"elements); the same dout may feed another branch: write dx to a new array "
            f"(dx = dout * mask, not dout *= mask)")))
    first = {what: dx, **{k: getattr(subject, "grads", {}).get(k) for k in params}}
    first = {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in first.items()}
    analytic = {}
    for key, tensor in {what: x, **params}.items():
        grad = _usable_gradient(key, first[key], tensor, "dx" if key == what else "grads", problems)
        if grad is not None:
            analytic[key] = grad

    _check_repeatable(objective, first, out, problems)
    if hasattr(subject, "params"):
        _check_unregistered(objective, out, problems)
    return out, analytic


def _usable_gradient(key: str, grad: Any, tensor: np.ndarray, source: str,
                     problems: list[Problem]) -> np.ndarray | None:
    """``grad`` as float64 of the tensor's shape for the differences, or None; problems noted."""
    name = "dx" if source == "dx" else f"grads[{key!r}]"
    if grad is None:
        got = "backward returned None" if source == "dx" else f"grads has no entry {key!r}"
        problems.append(Problem("dtype", f"{got}; expected a {tensor.dtype} array of shape {tensor.shape}"))
        return None
    if not isinstance(grad, np.ndarray):
        problems.append(Problem("dtype", (f"{name} is {describe(grad)}, not an ndarray; backward must "
                                          f"give {tensor.dtype} arrays (np.asarray does it)")))
    elif grad.dtype != tensor.dtype:
        problems.append(Problem("dtype", (
            f"{name} is {grad.dtype} for a {tensor.dtype} {key}; a gradient has its tensor's dtype "
            f"(look for an astype or an array made with another dtype)")))
    try:
        grad = np.array(grad, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if grad.shape != tensor.shape:
        problems.append(Problem("shape", (f"{name} has shape {grad.shape} but {key} has shape "
                                          f"{tensor.shape}{_shape_cause(grad.shape, tensor.shape)}")))
        return None
    return grad


def _shape_cause(got: tuple, want: tuple) -> str:
    """Why a gradient of shape ``got`` was computed for a tensor of shape ``want``, where it shows."""
    if len(got) == len(want) + 1 and got[1:] == want:
        return (f": {want} was broadcast over the batch in forward, so backward must sum over "
                f"axis 0 (.sum(axis=0))")
    if len(got) == 2 and got == want[::-1]:
        return ": the gradient is transposed (x.T @ dout, not dout.T @ x)"
    if tuple(n for n in got if n != 1) == tuple(n for n in want if n != 1):
        return ": a reduction lost or gained a size-1 axis (keepdims=True, or reshape)"
    return ""


def _check_repeatable(objective: Objective, first: dict, out: Any, problems: list[Problem]) -> None:
    """A second backward with the same dout gives the same gradients; forward is unchanged."""
    what, grads = objective.input_name, getattr(objective.subject, "grads", {})
    try:
        second = {what: objective.backward(), **{k: grads.get(k) for k in first if k != what}}
    except Exception as err:  # any error of a second backward is the finding, not a crash
        problems.append(Problem("not-repeatable", (
            f"a second backward with the same dout raised {type(err).__name__}: {err}")))
        return
    for key, before in first.items():
        after = second[key]
        if not isinstance(before, np.ndarray) or not isinstance(after, np.ndarray):
            continue
        if before.shape == after.shape and not differs(before, after):
            continue
        name = "dx" if key == what else f"grads[{key!r}]"
        if before.shape == after.shape and np.allclose(after, 2 * before, rtol=1e-9, atol=0) \
                and np.any(before):
            problems.append(Problem("not-repeatable", (
                f"a second backward with the same dout doubled {name}: backward adds into it (+=) "
                f"instead of overwriting it (grads[{key!r}][...] = ..., or out=)")))
        else:
            problems.append(Problem("not-repeatable", (
                f"a second backward with the same dout changed {name}: backward must depend only "
                f"on forward's cache and dout, and overwrite grads")))
    if differs(objective.forward(), out):
        problems.append(Problem("not-repeatable", (
            "forward gave another output after backward: backward changed state that forward "
            "reads (params, buffers or attributes)")))


def _check_unregistered(objective: Objective, out: Any, problems: list[Problem]) -> None:
    """Float arrays kept as attributes that change the output but are not in params."""
    subject = objective.subject
    layers = [subject] + [v for _, v in walk(subject, "", set(), layers=True) if v is not subject]
    exempt = []
    for layer in layers:
        for kind in ("params", "grads", "buffers"):
            exempt += [a for a in getattr(layer, kind, {}).values() if isinstance(a, np.ndarray)]
        exempt += [a for _, a in walk(getattr(layer, "cache", None), "", set())
                   if isinstance(a, np.ndarray)]
    noise = np.random.default_rng(12345)
    for path, array in walk(subject, "", set()):
        if (not isinstance(array, np.ndarray) or array.dtype.kind != "f" or not array.size
                or not array.flags.writeable or any(np.may_share_memory(array, e) for e in exempt)):
            continue
        saved = array.copy()
        array += 1e-3 * (1 + np.abs(array)) * noise.standard_normal(array.shape)
        try:
            moved = differs(objective.forward(), out)
        finally:
            array[...] = saved
        if moved:
            problems.append(Problem("unregistered", (
                f"the attribute {path} {array.shape} changes the output but is not in params, so it "
                f"is neither trained nor checked; put it in self.params (its gradient in "
                f"self.grads), or in self.buffers if it is state that is not trained")))


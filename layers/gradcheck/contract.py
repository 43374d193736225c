"""Contract problems: what breaks the Layer contract, found before any differencing.

Each finder runs forward or backward the way the differences will and appends a Problem
(kinds in ``report.PROBLEM_KINDS``) instead of raising, so one report lists them all.
"""
from __future__ import annotations

import numbers
import re
from typing import Any

import numpy as np

from .members import describe, differs, is_float_array, modules, walk
from .objective import Objective
from .report import Problem


def check_contract(objective: Objective, problems: list[Problem]) -> tuple[Any, dict] | None:
    """Run forward and backward the way the differences will, appending what breaks the contract.

    Returns the unperturbed output and the analytic gradients that can be compared (float64,
    the tensor's shape), or None when differences would mislead: forward is random in a way the
    checker cannot replay, or it returns something other than a float64 array.
    """
    out = _check_forward(objective, problems)
    if out is None:
        return None
    subject = objective.subject
    params = getattr(subject, "params", {})
    layers = [layer for _, layer in modules(subject)]
    for grad in [g for layer in layers for g in getattr(layer, "grads", {}).values()]:
        if isinstance(grad, np.ndarray) and grad.flags.writeable:
            grad[...] = 0  # a gradient backward never writes then reads as zero, not as stale
    held = _grads_held(subject)
    dout = None if objective.is_loss else objective.upstream.copy()
    try:
        returned = objective.backward(dout)
    except ValueError as err:
        found = _broadcast_problem(err, objective.x.shape)
        if found is None:
            raise  # the layer's own error: its traceback says where
        problems.append(found)
        return None
    if dout is not None and differs(dout, objective.upstream):
        problems.append(Problem("modifies-input", (
            f"backward changed dout in place ({differs(dout, objective.upstream)} of {dout.size} "
            f"elements); the same dout may feed another branch: write dx to a new array "
            f"(dx = dout * mask, not dout *= mask)")))
    returned_grads, wrong_form = objective.split(returned)
    if wrong_form:
        problems.append(Problem("shape", wrong_form))
    first = {**returned_grads, **{k: getattr(subject, "grads", {}).get(k) for k in params}}
    first = {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in first.items()}
    analytic = {}
    sources = {name: gradient_name(objective, name) for name in returned_grads}
    for key, tensor in {**objective.checked_inputs(), **params}.items():
        if key not in first:
            continue
        grad = _usable_gradient(key, first[key], tensor, sources.get(key, "grads"), problems,
                                objective.x.shape)
        if grad is not None:
            analytic[key] = grad
    _check_replaced(held, _grads_held(subject), problems)
    _check_repeatable(objective, first, out, problems)
    if not objective.is_loss or hasattr(subject, "params"):
        # any layer, a plain class too; a loss's constant arrays (class weights) are its settings
        _check_unregistered(objective, out, problems)
    return out, analytic


def _broadcast_problem(err: ValueError, x_shape: tuple) -> Problem | None:
    """numpy's "could not broadcast input array from shape (T, D) into shape (D,)", raised by
    backward writing a gradient into a grads array of another shape, as a ``shape`` problem."""
    found = re.search(r"could not broadcast input array from shape \(([\d, ]*)\) into shape "
                      r"\(([\d, ]*)\)", str(err))
    if found is None:
        return None
    got, want = (tuple(int(n) for n in part.split(",") if n.strip()) for part in found.groups())
    return Problem("shape", (f"backward raised ValueError ({err}): it wrote a gradient of shape "
                             f"{got} into an array of shape {want}{shape_cause(got, want, x_shape)}"))


def gradient_name(objective: Objective, name: str) -> str:
    """How a report names the gradient backward returns for an input: dx, or dq and dk."""
    return "dx" if not objective.several else f"d{name}"


def _check_forward(objective: Objective, problems: list[Problem]) -> Any:
    """The unperturbed output, or None (with the problem) when differences would mislead."""
    inputs = tuple(x.copy() for x in objective.inputs)
    out = objective.forward(inputs)
    for name, x, x_in in zip(objective.names, objective.inputs, inputs):
        changed = differs(x_in, x)
        if changed:
            problems.append(Problem("modifies-input", (
                f"forward changed its input {name} in place ({changed} of {x.size} elements); a "
                f"value that feeds two branches must survive the first: write the result to a "
                f"new array (y = x * m, not x *= m)")))
    what = " and ".join(objective.names)
    if out is None or not isinstance(out, (np.ndarray, numbers.Real)):
        # before the comparison below, which would call a None "stochastic"
        expected = "a number (the loss)" if objective.is_loss else "a float64 ndarray"
        problems.append(Problem("dtype", (
            f"forward returned {'None' if out is None else describe(out)}; expected {expected} "
            f"(a forward that ends without a return statement returns None), so nothing was "
            f"differenced")))
        return None
    if differs(out, objective.forward()):
        replayed = f" (it replayed {len(objective.replays)} generator(s))" if objective.replays else ""
        problems.append(Problem("stochastic", (
            f"forward gave different outputs for the same {what}{replayed}: it draws random numbers "
            f"the checker cannot replay (np.random.*, a fresh default_rng()); draw them from a "
            f"np.random.Generator kept as an attribute (self.rng = np.random.default_rng(seed))")))
        return None
    if not objective.is_loss and not is_float_array(out, np.dtype(np.float64)):
        problems.append(Problem("dtype", (
            f"forward returned {describe(out)} for float64 inputs and parameters; expected a "
            f"float64 ndarray (differences of a lower precision would only mislead, so nothing "
            f"was differenced)")))
        return None
    return out


def _grads_held(subject: Any) -> dict[str, tuple[dict, str, Any]]:
    """{path: (grads dict, the array in it)} for every layer's grads before backward runs."""
    held = {}
    for path, layer in modules(subject):
        grads = getattr(layer, "grads", None)
        if isinstance(grads, dict):
            for key, array in grads.items():
                where = f"{path}.grads[{key!r}]" if path else f"grads[{key!r}]"
                held[where] = (grads, key, array)
    return held


def _check_replaced(before: dict, after: dict, problems: list[Problem]) -> None:
    """A backward that puts a new array into grads instead of writing into the one there: an
    optimizer reads the old one (its flat buffer holds it), so the parameter would never move.
    Shown only where the new array fits (a shape or dtype problem says more otherwise)."""
    for where, (grads, key, array) in before.items():
        new = grads.get(key)
        if new is array or not isinstance(new, np.ndarray) or not isinstance(array, np.ndarray):
            continue
        if new.shape != array.shape or new.dtype != array.dtype:
            continue
        problems.append(Problem("replaced-grads", (
            f"backward replaced {where} with a new array instead of writing into it; an optimizer "
            f"reads the array that was there (its flat buffer holds it), so this parameter would "
            f"never train: write into it, self.grads[{key!r}][...] = ... "
            f"(or np.matmul(..., out=self.grads[{key!r}]))")))


def _usable_gradient(key: str, grad: Any, tensor: np.ndarray, source: str,
                     problems: list[Problem], x_shape: tuple) -> np.ndarray | None:
    """``grad`` as float64 of the tensor's shape for the differences, or None; problems noted.

    ``source`` is how the gradient is named (``dx``, ``dq``) or ``"grads"`` for a parameter's.
    """
    name = source if source != "grads" else f"grads[{key!r}]"
    if grad is None:
        got = (("backward returned None" if name == "dx" else f"backward returned None for {key}")
               if source != "grads" else f"grads has no entry {key!r}")
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
        cause = shape_cause(grad.shape, tensor.shape, x_shape)
        problems.append(Problem("shape", f"{name} has shape {grad.shape} but {key} has shape "
                                         f"{tensor.shape}{cause}"))
        return None
    return grad


def axis_name(axis: int, x_shape: tuple) -> str:
    """How a hint names an axis of the input: the batch, the T axis of (N, T, D), or its number."""
    if axis == 0:
        return f"the batch axis (axis 0, N = {x_shape[0]})"
    if axis == 1 and len(x_shape) == 3:
        return f"the T axis (axis 1, T = {x_shape[1]})"
    return f"axis {axis} (size {x_shape[axis]})"


def shape_cause(got: tuple, want: tuple, x_shape: tuple = ()) -> str:
    """Why a gradient of shape ``got`` was computed for a tensor of shape ``want``, where it shows.

    ``x_shape`` is the input's shape: a parameter broadcast over its leading axes (a bias over
    (N, T)) needs its gradient summed over every one of them, and the hint names the one left.
    """
    extra = len(got) - len(want)
    if extra > 0 and got[extra:] == want:
        leading = tuple(x_shape[:-1]) if len(x_shape) > 1 else ()
        left = _unsummed_axes(got[:extra], leading)
        every = tuple(range(len(leading))) if len(leading) > 1 else (0,)
        how = f".sum(axis={every[0]})" if len(every) == 1 else f".sum(axis={every})"
        if left and len(leading) > 1 and len(left) < len(leading):
            named = " and ".join(axis_name(a, x_shape) for a in left)
            return (f": {want} was broadcast over every leading axis of the input {x_shape} in "
                    f"forward, and backward did not sum over {named}; sum over all of them "
                    f"({how}, or reshape to (-1, {want[-1]}) and .sum(axis=0))")
        if len(leading) > 1:
            return (f": {want} was broadcast over every leading axis of the input {x_shape} in "
                    f"forward, so backward must sum over all of them ({how})")
        return (f": {want} was broadcast over the batch in forward, so backward must sum over "
                f"axis 0 (.sum(axis=0))")
    if len(got) == 2 and got == want[::-1]:
        return ": the gradient is transposed (x.T @ dout, not dout.T @ x)"
    if len(got) > 2 and got == want[:-2] + want[:-3:-1]:
        return (": the gradient is transposed over its last two axes (swap them: "
                ".swapaxes(-1, -2), or the other operand order of the matmul)")
    if tuple(n for n in got if n != 1) == tuple(n for n in want if n != 1):
        return ": a reduction lost or gained a size-1 axis (keepdims=True, or reshape)"
    return ""


def _unsummed_axes(kept: tuple, leading: tuple) -> tuple[int, ...]:
    """Which of the input's leading axes a gradient still has (kept in order), when it shows."""
    axes, start = [], 0
    for size in kept:
        found = next((a for a in range(start, len(leading)) if leading[a] == size), None)
        if found is None:
            return ()
        axes.append(found)
        start = found + 1
    return tuple(axes)


def _check_repeatable(objective: Objective, first: dict, out: Any, problems: list[Problem]) -> None:
    """A second backward with the same dout gives the same gradients; forward is unchanged."""
    grads = getattr(objective.subject, "grads", {})
    try:
        returned, _ = objective.split(objective.backward())
        second = {**returned, **{k: grads.get(k) for k in first if k not in returned}}
    except Exception as err:  # any error of a second backward is the finding, not a crash
        problems.append(Problem("not-repeatable", (
            f"a second backward with the same dout raised {type(err).__name__}: {err}")))
        return
    for key, before in first.items():
        after = second.get(key)
        if not isinstance(before, np.ndarray) or not isinstance(after, np.ndarray):
            continue
        if before.shape == after.shape and not differs(before, after):
            continue
        name = gradient_name(objective, key) if key in returned else f"grads[{key!r}]"
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
    layers = [layer for _, layer in modules(subject)]
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


"""A subject's members found through its attributes, and small helpers on values.

The walk goes through attributes, lists, tuples and dicts at any depth, so it finds the arrays
and random generators of a user's plain object as well as of a Layer tree.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np

# Two evaluations of deterministic code agree to the last bits; a random draw differs by O(1).
SAME = 1e-12

RANDOM_STATES = (np.random.Generator, np.random.RandomState)


def walk(value: Any, path: str, seen: set, layers: bool = False) -> Iterator[tuple[str, Any]]:
    """(path, member) for the arrays and random generators of a layer, its sub-layers (in
    attributes, lists, tuples and dicts, at any depth) and their containers; the ``cache``
    attribute is left out. With ``layers=True``, the layer objects themselves instead."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, (np.ndarray, *RANDOM_STATES)):
        if not layers:
            yield path, value
        return
    if isinstance(value, dict):
        items = [(f"{path}[{k!r}]", v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    elif is_layer(value):
        if layers:
            yield path, value
        items = [(f"{path}.{k}" if path else k, v) for k, v in vars(value).items() if k != "cache"]
    else:
        return
    for sub_path, sub in items:
        yield from walk(sub, sub_path, seen, layers)


def is_layer(value: Any) -> bool:
    return (hasattr(value, "__dict__") and callable(getattr(value, "forward", None))
            and callable(getattr(value, "backward", None)) and not isinstance(value, type))


def modules(subject: Any) -> list[tuple[str, Any]]:
    """(path, layer) for the subject and every layer inside it, each once: the Layer tree walk
    (``named_modules``) where the subject has one, and the attribute walk for what it does not
    reach (a user's plain object, a layer kept in an attribute of a user's Layer subclass)."""
    found: dict[int, tuple[str, Any]] = {}
    named = getattr(subject, "named_modules", None)
    if callable(named):
        try:
            found.update((id(layer), (path, layer)) for path, layer in named())
        except Exception:  # a user's override that misbehaves: the attribute walk still works
            found.clear()
    for path, layer in walk(subject, "", set(), layers=True):
        found.setdefault(id(layer), (path, layer))
    found.setdefault(id(subject), ("", subject))
    return list(found.values())


def random_states(subject: Any) -> list:
    """Every random generator of the subject's layers, each once, replayed before every forward."""
    states: dict[int, Any] = {}
    for _, layer in modules(subject):
        states.update((id(v), v) for _, v in walk(layer, "", set()) if isinstance(v, RANDOM_STATES))
    return list(states.values())


def get_state(generator: Any) -> Any:
    if isinstance(generator, np.random.Generator):
        return copy.deepcopy(generator.bit_generator.state)
    return generator.get_state()


def set_state(generator: Any, state: Any) -> None:
    if isinstance(generator, np.random.Generator):
        generator.bit_generator.state = state
    else:
        generator.set_state(state)


def differs(a: Any, b: Any) -> int:
    """How many elements of a and b differ beyond the last bits (all of them if shapes differ)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return max(a.size, b.size, 1)
    size = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return int(np.count_nonzero(~(np.abs(a - b) <= SAME * size)))


def is_float_array(value: Any, dtype: np.dtype) -> bool:
    return isinstance(value, np.ndarray) and value.dtype == dtype


def describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} ndarray"
    return f"a {type(value).__name__}"


"""Parameter groups: a weight decay of its own for each group of parameters, as in
``torch.optim``'s ``param_groups``, and ``decay_groups``, nanoGPT's split (decay the matrices,
not the biases and the norms' gains).

A group is a dict ``{"params": [parameter names], "weight_decay": w}`` (``weight_decay`` left
out: the optimizer's). Every parameter is in exactly one group; the flat buffer stays one
buffer, and a step applies each group's decay through a boolean mask over it (a couple of
numpy passes whatever the number of parameters).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ...layers import validate

GROUP_KEYS = ("params", "weight_decay")


def decay_groups(model, weight_decay: float) -> list[dict[str, Any]]:
    """nanoGPT's two groups: every parameter with two or more axes (the Linear and attention
    matrices, the token and position embeddings) decays by ``weight_decay``; the others (biases,
    LayerNorm's gamma and beta) do not.

    Examples
    --------
    >>> from handprop.layers import Linear
    >>> decay_groups(Linear(3, 2), 0.1)
    [{'params': ['W'], 'weight_decay': 0.1}, {'params': ['b'], 'weight_decay': 0.0}]
    """
    weight_decay = validate.real("decay_groups", "weight_decay", weight_decay, low=0)
    names = parameter_names(model)
    matrices = [name for name, p in names.items() if p.ndim >= 2]
    others = [name for name, p in names.items() if p.ndim < 2]
    return [{"params": matrices, "weight_decay": weight_decay},
            {"params": others, "weight_decay": 0.0}]


def parameter_names(model) -> dict[str, np.ndarray]:
    """Each parameter array once, under its first name (a shared array appears once in the flat
    buffer, under that name)."""
    first: dict[int, tuple[str, np.ndarray]] = {}
    for name, p in model.params.items():
        first.setdefault(id(p), (name, p))
    return dict(first.values())


def checked_param_groups(who: str, name: str, value: object) -> list[dict[str, Any]] | None:
    """The groups' form (a list of dicts with a list of names and an optional weight decay
    >= 0); which names they hold is checked against the model by ``check_cover``."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value:
        raise TypeError(f"{who}: expected {name} as a non-empty list of dicts "
                        f"{{'params': [names], 'weight_decay': w}}, got {value!r}")
    groups = []
    for i, group in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{who}: expected {where} as a dict with 'params' (a list of "
                            f"parameter names), got {group!r}")
        unknown = sorted(map(str, set(group) - set(GROUP_KEYS)))
        if unknown:
            raise ValueError(f"{who}: {where} has {unknown}; a group sets only 'weight_decay' "
                             f"(the other settings are the optimizer's, for every group)")
        names = group["params"]
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"{who}: expected {where}['params'] as a list of parameter names "
                            f"(strings, as in model.params), got {names!r}")
        checked: dict[str, Any] = {"params": list(names)}
        if "weight_decay" in group:
            checked["weight_decay"] = validate.real(who, f"{where}['weight_decay']",
                                                    group["weight_decay"], low=0)
        groups.append(checked)
    return groups


def check_cover(who: str, groups: list[dict[str, Any]], names: list[str]) -> None:
    """Every parameter in exactly one group, and no name that is not a parameter."""
    counts = Counter(n for group in groups for n in group["params"])
    twice = sorted(n for n, count in counts.items() if count > 1)
    if twice:
        raise ValueError(f"{who}: param_groups name {twice} in more than one group")
    missing = [n for n in names if n not in counts]
    unexpected = sorted(set(counts) - set(names))
    if missing or unexpected:
        raise ValueError(f"{who}: param_groups must hold each of the model's parameters once: "
                         f"{validate.mismatch(missing, unexpected)}")


def group_spans(groups: list[dict[str, Any]], default: float,
                layout: dict) -> list[tuple[float, list[slice]]]:
    """(weight decay, the slices of the flat buffer it covers) for each distinct decay of the
    groups, neighbouring slices merged; ``layout`` maps a name to its (start, stop, shape) in
    the buffer. Slices, not boolean masks: filling a few dozen slices takes a third of the
    time of one masked copy over the buffer."""
    spans: dict[float, list[tuple[int, int]]] = {}
    for group in groups:
        decay = group.get("weight_decay", default)
        spans.setdefault(decay, []).extend(layout[name][:2] for name in group["params"])
    merged: dict[float, list[slice]] = {}
    for decay, pieces in spans.items():
        runs: list[list[int]] = []
        for start, stop in sorted(pieces):
            if runs and runs[-1][1] == start:
                runs[-1][1] = stop
            else:
                runs.append([start, stop])
        merged[decay] = [slice(start, stop) for start, stop in runs]
    return list(merged.items())

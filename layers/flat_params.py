"""One flat buffer: a model's parameters as views into one contiguous array, its gradients into
another, so an optimizer updates every parameter with a handful of numpy calls over one array.

``flatten_params(model)`` copies each parameter (and its current gradient) into its slot of the two
buffers and makes the slot's view the model's ``params``/``grads`` entry in place of the old
array::

    flat_params = [ 0.W (2*8) | 1.gamma (8) | 1.beta (8) | 3.W (8*3) | 3.b (3) ]
    model.params["0.W"]   is a (2, 8) view of flat_params[0:16]
    model.grads["0.W"]    is a (2, 8) view of flat_grads[0:16]

Layers write their gradients into ``grads`` in place and read ``params`` afresh at every call
(the Layer contract), so they keep working on the views; so do ``load_state_dict``,
checkpoints (both copy in place) and the gradient checker (it deep-copies the layer).

The arrays the model held before are detached: the model no longer reads or updates them. So
that nothing goes on silently using one, they are made read-only: an array fetched from
``model.params`` before the model was flattened (``W = layer.params["W"]``) still shows the
old values, and writing into it raises ``ValueError: assignment destination is read-only``.
Fetch arrays again after building an optimizer. A model that is already flat is left as it is,
so several optimizers built on one model share the same buffers.
"""
from __future__ import annotations

import numpy as np

from .base import Layer


def flatten_params(model) -> tuple[np.ndarray, np.ndarray]:
    """The model's parameters and gradients as two flat, contiguous 1-D arrays of one dtype,
    whose slices are the model's ``params`` and ``grads`` entries (see the module docstring).

    The arrays the model held before are read-only afterwards: writing into one fetched
    earlier raises numpy's ``ValueError: assignment destination is read-only``. Fetch it
    again from ``model.params`` (the optimizers call this when they are built).

    Raises
    ------
    TypeError
        If the parameters have several dtypes (one buffer holds one dtype: build every layer
        with the same ``dtype``), or if the model's ``params`` cannot be rebound (a layer made
        of layers that does not pass ``Layer.rebind`` on to its members). The model is then
        unchanged.
    ValueError
        If a gradient's shape differs from its parameter's.
    """
    params, grads = model.params, model.grads
    slots = _slots(model, params, grads)
    existing = _existing_buffers(params, grads, slots)
    if existing is not None:
        return existing
    dtype = next(iter(params.values())).dtype if params else np.dtype(np.float64)
    total = sum(p.size for p, _ in slots.values())
    flat_params, flat_grads = np.empty(total, dtype), np.empty(total, dtype)
    views, start = {}, 0
    for key, (p, g) in slots.items():
        stop = start + p.size
        flat_params[start:stop] = p.reshape(-1)
        flat_grads[start:stop] = g.reshape(-1)
        views[key] = (flat_params[start:stop].reshape(p.shape),
                      flat_grads[start:stop].reshape(p.shape))
        start = stop
    _rebind_all(model, params, grads, views)
    for p, g in slots.values():
        p.flags.writeable = False  # detached: writing into one would otherwise go unnoticed
        g.flags.writeable = False
    return flat_params, flat_grads


def flat_layout(model, flat_params: np.ndarray) -> dict[str, tuple[int, int, tuple[int, ...]]]:
    """``name -> (start, stop, shape)`` of each parameter's slot in ``flat_params``, in order.

    A parameter shared under several names (one layer used twice) appears once, under its
    first name. The model must have been flattened onto ``flat_params``.
    """
    layout, seen = {}, set()
    base = flat_params.ctypes.data
    for name, p in model.params.items():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if p.base is not flat_params and p is not flat_params:
            raise ValueError(f"flat_layout: {name} is not a view of the flat buffer; the model "
                             f"was changed after it was flattened")
        start = (p.ctypes.data - base) // p.itemsize
        layout[name] = (start, start + p.size, p.shape)
    return layout


def flat_buffers(model) -> tuple[np.ndarray, np.ndarray] | None:
    """The two buffers of a model that ``flatten_params`` has flattened, or None (changing nothing)."""
    params, grads = model.params, model.grads
    if params.keys() != grads.keys():
        return None
    return _existing_buffers(params, grads, {id(p): (p, grads[name]) for name, p in params.items()})


def _slots(model, params: dict, grads: dict) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each distinct parameter array (keyed by identity) with its gradient, checked."""
    if params.keys() != grads.keys():
        raise ValueError(f"{model!r}: params and grads have different names: "
                         f"{sorted(params.keys() ^ grads.keys())}")
    slots: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    dtypes: dict[np.dtype, str] = {}
    for name, p in params.items():
        g = grads[name]
        dtypes.setdefault(p.dtype, name)
        if g.shape != p.shape or g.dtype != p.dtype:
            raise ValueError(f"{model!r}: the gradient of {name} is {g.dtype} {g.shape}, its "
                             f"parameter {p.dtype} {p.shape}; they must match")
        if id(p) in slots and slots[id(p)][1] is not g:
            raise TypeError(f"{model!r}: {name} shares its parameter array with another entry "
                            f"but not its gradient array; tied parameters are not supported")
        slots[id(p)] = (p, g)
    if len(dtypes) > 1:
        found = ", ".join(f"{dt} ({name})" for dt, name in dtypes.items())
        raise TypeError(f"{model!r}: one flat buffer holds one dtype, but the parameters have "
                        f"several: {found}; build every layer with the same dtype")
    return slots


def _existing_buffers(params: dict, grads: dict, slots: dict) -> tuple | None:
    """The two buffers if the model is already flat (every slot a view at the same offset of
    one params buffer and one grads buffer, the slots tiling them), else None."""
    if not params:
        return None
    p0, g0 = next(iter(slots.values()))
    flat_params, flat_grads = p0.base, g0.base
    if (flat_params is None or flat_grads is None or flat_params.ndim != 1
            or flat_grads.ndim != 1 or flat_params.size != flat_grads.size):
        return None
    spans = []
    for p, g in slots.values():
        if p.base is not flat_params or g.base is not flat_grads or not (
                p.flags.c_contiguous and g.flags.c_contiguous):
            return None
        start = (p.ctypes.data - flat_params.ctypes.data) // p.itemsize
        if (g.ctypes.data - flat_grads.ctypes.data) // g.itemsize != start:
            return None
        spans.append((start, start + p.size))
    spans.sort()
    if [s for s, _ in spans] != [0, *(stop for _, stop in spans[:-1])] or spans[-1][1] != flat_params.size:
        return None
    return flat_params, flat_grads


def _rebind_all(model, params: dict, grads: dict, views: dict) -> None:
    """Make each view the model's entry; all or nothing: on a failure the old arrays are put
    back and a TypeError says which entry could not be rebound.

    A Layer is walked with ``named_modules``: each layer without children rebinds its own
    entries (``views`` is keyed by the identity of the old parameter array, so a layer used
    twice is moved once); a layer with children only gathers theirs. Any other model's
    ``params`` and ``grads`` are plain dicts, set by name.
    """
    def put(arrays_of: dict) -> None:
        """Rebind every entry to ``arrays_of[id(its current params array)]``."""
        if not isinstance(model, Layer):
            for name, p in list(model.params.items()):
                _rebind(model, "params", name, arrays_of[id(p)][0])
                _rebind(model, "grads", name, arrays_of[id(p)][1])
            return
        for _, layer in model.named_modules():
            if next(layer.children(), None) is None:
                for name, p in list(layer.params.items()):
                    layer.rebind("params", name, arrays_of[id(p)][0])
                    layer.rebind("grads", name, arrays_of[id(p)][1])

    views_by_name = {name: views[id(p)] for name, p in params.items()}
    old = {id(p): (p, grads[name]) for name, p in params.items()}
    old.update({id(views[key][0]): pair for key, pair in old.items()})  # undo from either
    try:
        put(views)
        now_params, now_grads = model.params, model.grads
        for name, (p_view, g_view) in views_by_name.items():
            if now_params.get(name) is not p_view or now_grads.get(name) is not g_view:
                raise TypeError(f"{model!r}: could not move {name} into the flat buffer: after "
                                f"rebind, model.params[{name!r}] is still another array; a layer "
                                f"made of layers must name its members in named_children (as "
                                f"Sequential does), or pass Layer.rebind on to the member that "
                                f"owns the entry")
    except Exception:
        put(old)
        raise


def _rebind(model, kind: str, name: str, array: np.ndarray) -> None:
    rebind = getattr(model, "rebind", None)
    if rebind is None:  # a model that is not a Layer: its params and grads are plain dicts
        getattr(model, kind)[name] = array
    else:
        rebind(kind, name, array)

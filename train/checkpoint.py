"""Checkpoints: one .npz file, written atomically, read without pickle.

Layout of the file (every entry a plain numeric array, except ``meta``, a JSON string)::

    params/{name}              every entry of model.params ("params/0.W")
    buffers/{name}             every entry of model.buffers ("buffers/1.running_var")
    optimizer/{name}           SGD's momentum buffers, when it has them
    meta                       {"format": "handprop-checkpoint", "version": 1,
                                "optimizer": {"lr": ..., ...}, "extra": {...}}
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .files import atomic_write

FORMAT, VERSION = "handprop-checkpoint", 1


def save(path: str | os.PathLike, model, optimizer=None, **extra) -> None:
    """Save the model's params and buffers, the optimizer's state and ``extra`` to ``path``.

    ``extra`` holds plain JSON values (numbers, strings, lists, dicts; numpy scalars are
    converted). The file is written to a temporary file in the same directory, fsynced and
    renamed over ``path``: a save that fails half-way leaves the previous checkpoint whole.
    """
    arrays = _model_arrays(model)
    meta = {"format": FORMAT, "version": VERSION, "extra": extra}
    if optimizer is not None:
        state = dict(optimizer.state_dict())
        arrays.update({f"optimizer/{k}": v for k, v in state.pop("momentum_buffers").items()})
        meta["optimizer"] = state
    try:
        arrays["meta"] = np.array(json.dumps(meta, default=_plain))
    except (TypeError, ValueError) as err:
        raise TypeError(f"checkpoint.save: extra values must be plain JSON data (numbers, "
                        f"strings, lists, dicts): {err}") from None
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load(path: str | os.PathLike, model, optimizer=None) -> dict:
    """Load a checkpoint written by ``save`` into ``model`` (and ``optimizer``); return extra.

    Never unpickles (``allow_pickle=False``). Every name and shape is checked against the
    model before anything is copied, and the first that differs is named; on any error the
    model and optimizer are left as they were. Values are copied into the existing arrays.
    """
    path = Path(path)
    meta, arrays = _read(path)
    targets = _model_arrays(model)
    saved_opt = meta.get("optimizer")
    if optimizer is not None:
        if saved_opt is None:
            raise ValueError(f"{path}: holds no optimizer state to load into {optimizer!r}")
        if saved_opt.get("momentum"):
            targets.update({f"optimizer/{k}": v for k, v in model.params.items()})
    stored = {k for k in arrays if optimizer is not None or not k.startswith("optimizer/")}
    for key, target in targets.items():
        if key not in arrays:
            raise ValueError(f"{path}: the model has {key} of shape {target.shape}, "
                             f"the checkpoint does not")
        if arrays[key].shape != target.shape:
            raise ValueError(f"{path}: {key} has shape {arrays[key].shape} in the checkpoint "
                             f"but {target.shape} in the model")
        if arrays[key].dtype.kind != "f":
            raise ValueError(f"{path}: {key} holds {arrays[key].dtype} values, expected floats")
    unexpected = sorted(stored - targets.keys())
    if unexpected:
        raise ValueError(f"{path}: the checkpoint has {unexpected[0]}, which the model does not")

    for key, target in targets.items():
        if not key.startswith("optimizer/"):
            target[...] = arrays[key]
    if optimizer is not None:
        buffers = {k[len("optimizer/"):]: arrays[k] for k in targets if k.startswith("optimizer/")}
        optimizer.load_state_dict({**saved_opt, "momentum_buffers": buffers})
    return meta["extra"]


def _model_arrays(model) -> dict[str, np.ndarray]:
    """The model's params and buffers under their checkpoint names: the model's own arrays."""
    arrays = {f"params/{k}": v for k, v in model.params.items()}
    arrays.update({f"buffers/{k}": v for k, v in getattr(model, "buffers", {}).items()})
    return arrays


def read_extra(path: str | os.PathLike) -> dict:
    """The ``extra`` metadata of a checkpoint, without a model."""
    return _read(Path(path))[0]["extra"]


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata and arrays of a checkpoint, or a ValueError that says what is wrong."""
    unreadable = (zipfile.BadZipFile, EOFError, zlib.error, UnicodeDecodeError,
                  json.JSONDecodeError, IsADirectoryError)
    try:
        loaded = np.load(path, allow_pickle=False)
    except unreadable as err:
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    except ValueError as err:  # pickled data, a bad header: refused, never unpickled
        raise _refusal(path, err) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not a handprop checkpoint (a single array, not an .npz file)")
    with loaded as npz:
        if "meta" not in npz.files:
            raise ValueError(f"{path}: not a handprop checkpoint (no 'meta' entry)")
        try:
            meta = json.loads(str(npz["meta"]))
            arrays = {k: npz[k] for k in npz.files if k != "meta"}
        except unreadable as err:
            raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
        except ValueError as err:  # object arrays need pickle: refused
            raise _refusal(path, err) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a handprop checkpoint (its meta entry is not one)")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {meta.get('version')!r}; this handprop "
                         f"reads version {VERSION}")
    return meta, arrays


def _refusal(path: Path, err: ValueError) -> ValueError:
    if "pickle" in str(err):
        return ValueError(f"{path}: refused: it holds pickled Python objects, which a checkpoint "
                          f"never needs and load never unpickles (allow_pickle=False)")
    return ValueError(f"{path}: refused: {err}")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON data")

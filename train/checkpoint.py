"""Checkpoints: one .npz file, written atomically, read without pickle.

A checkpoint is file I/O over ``state_dict()``s; nothing here knows a layer or an optimizer.
Layout of the file (every entry a plain numeric array, except ``meta``, a JSON string)::

    model/{name}               every entry of model.state_dict() ("model/0.W", "model/1.running_var")
    optimizer/{path}           every array in optimizer.state_dict(), by its path of keys
                               ("optimizer/momentum_buffers/0.W")
    meta                       {"format": "handprop-checkpoint", "version": 2,
                                "optimizer": {"class": "SGD", "state": {"lr": ..., ...}},
                                "extra": {...}}

Version 1 files (``params/``, ``buffers/`` and ``optimizer/{name}`` for SGD's momentum) are
still read.
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .files import atomic_write

FORMAT, VERSION = "handprop-checkpoint", 2


def save(path: str | os.PathLike, model, optimizer=None, **extra) -> None:
    """Save ``model.state_dict()``, the optimizer's ``state_dict()`` and ``extra`` to ``path``.

    ``extra`` holds plain JSON values (numbers, strings, lists, dicts; numpy scalars are
    converted). The file is written to a temporary file in the same directory, fsynced and
    renamed over ``path``: a save that fails half-way leaves the previous checkpoint whole.
    """
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "version": VERSION, "extra": extra}
    if optimizer is not None:
        settings, optimizer_arrays = split_state(optimizer.state_dict())
        arrays.update({f"optimizer/{k}": v for k, v in optimizer_arrays.items()})
        meta["optimizer"] = {"class": type(optimizer).__name__, "state": settings}
    try:
        arrays["meta"] = np.array(json.dumps(meta, default=_plain))
    except (TypeError, ValueError) as err:
        raise TypeError(f"checkpoint.save: extra values must be plain JSON data (numbers, "
                        f"strings, lists, dicts): {err}") from None
    with atomic_write(path) as f:
        write_npz(f, arrays)


def write_npz(f, arrays: dict[str, np.ndarray]) -> None:
    """What ``np.savez`` writes, with the archive closed however the block is left: an
    interrupt mid-write (Ctrl-C) then leaves no half-open ZipFile behind to complain on
    exit, on every numpy version (numpy 1.24's savez does leave one)."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", mode="w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)


def load(path: str | os.PathLike, model, optimizer=None) -> dict:
    """Load a checkpoint written by ``save`` into ``model`` (and ``optimizer``); return extra.

    Never unpickles (``allow_pickle=False``). All or nothing: the model's state is checked
    (every name and shape, the first that differs named) and the optimizer's loaded, which
    checks it too, before any of the model's arrays is overwritten; on any error both are
    left as they were. Values are copied into the model's existing arrays.
    """
    path = Path(path)
    meta, arrays = _read(path)
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    try:
        model.check_state_dict(model_state, source=str(path))
    except (TypeError, ValueError) as err:  # the file is what is wrong: a ValueError either way
        raise ValueError(str(err)) from None
    if optimizer is not None:
        saved = meta.get("optimizer")
        if saved is None:
            raise ValueError(f"{path}: holds no optimizer state to load into {optimizer!r}")
        if saved["class"] != type(optimizer).__name__:
            raise ValueError(f"{path}: holds the state of a {saved['class']} optimizer, which "
                             f"does not load into {optimizer!r}")
        state = join_state(saved["state"], {k[len("optimizer/"):]: v for k, v in arrays.items()
                                            if k.startswith("optimizer/")})
        try:
            optimizer.load_state_dict(state)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: the optimizer state does not load into {optimizer!r}: "
                             f"{err}") from None
    model.load_state_dict(model_state)
    return meta["extra"]


def split_state(state: dict, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
    """Split a nested state dict into its JSON part and its arrays, keyed by "a/b/c" paths."""
    settings, arrays = {}, {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            arrays[prefix + key] = value
        elif isinstance(value, dict):
            settings[key], inner = split_state(value, f"{prefix}{key}/")
            arrays.update(inner)
        else:
            settings[key] = value
    return settings, arrays


def join_state(settings: dict, arrays: dict[str, np.ndarray]) -> dict:
    """The inverse of ``split_state``: put each array back at its path."""
    state = json.loads(json.dumps(settings))  # a deep copy: the caller's dicts stay as they are
    for path, array in arrays.items():
        *parents, name = path.split("/")
        node = state
        for key in parents:
            node = node.setdefault(key, {})
        node[name] = array
    return state


def read_extra(path: str | os.PathLike) -> dict:
    """The ``extra`` metadata of a checkpoint, without a model."""
    return _read(Path(path))[0]["extra"]


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata and arrays of a checkpoint, or a ValueError that says what is wrong."""
    unreadable = (zipfile.BadZipFile, EOFError, zlib.error, UnicodeDecodeError,
                  json.JSONDecodeError)
    if path.is_dir():
        raise ValueError(f"{path}: not a readable checkpoint (a directory)")
    with open(path, "rb") as f:
        magic = f.read(6)
    # decided by the first bytes, not by numpy's error text, which differs between versions
    if magic == b"\x93NUMPY":
        raise ValueError(f"{path}: not a handprop checkpoint (a single array, not an .npz file)")
    if magic[:1] == b"\x80":
        raise _refusal(path, ValueError("pickle"))
    if magic[:4] != b"PK\x03\x04":
        what = "an empty file" if not magic else f"it starts with {magic.hex(' ')}"
        raise ValueError(f"{path}: not a readable checkpoint (not an .npz file: {what})")
    try:
        loaded = np.load(path, allow_pickle=False)
    except unreadable as err:
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    except ValueError as err:  # a bad header: refused, never unpickled
        raise _refusal(path, err) from None
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
    if meta.get("version") == 1:
        return _from_version_1(meta, arrays)
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {meta.get('version')!r}; this handprop "
                         f"reads versions 1 and {VERSION}")
    return meta, arrays


def _from_version_1(meta: dict, arrays: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """A version 1 checkpoint's entries under version 2's names (SGD was the only optimizer)."""
    renamed = {}
    for key, value in arrays.items():
        kind, _, name = key.partition("/")
        new = {"params": "model/", "buffers": "model/",
               "optimizer": "optimizer/momentum_buffers/"}.get(kind, kind + "/")
        renamed[new + name] = value
    if "optimizer" in meta:
        meta["optimizer"] = {"class": "SGD", "state": {**meta["optimizer"], "momentum_buffers": {}}}
    return meta, renamed


def _refusal(path: Path, err: ValueError) -> ValueError:
    if "pickle" in str(err):
        return ValueError(f"{path}: refused: it holds pickled Python objects, which a checkpoint "
                          f"never needs and load never unpickles (allow_pickle=False)")
    return ValueError(f"{path}: refused: {err}")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON data")

"""Checkpoints: one .npz file, written atomically, read without pickle.

A checkpoint is file I/O over ``state_dict()``s; nothing here knows a layer or an optimizer.
Layout of the file (every entry a plain numeric array, except ``meta``, a JSON string)::

    model/{name}               every entry of model.state_dict() ("model/0.W", "model/1.running_var")
    optimizer/{path}           every array in optimizer.state_dict(), by its path of keys
                               ("optimizer/momentum_buffers/0.W")
    meta                       {"format": "handprop-checkpoint", "version": 2,
                                "optimizer": {"class": "SGD", "state": {"lr": ..., ...}},
                                "extra": {...}}

Version 1 files (``params/``, ``buffers/``, ``optimizer/{name}`` for SGD's momentum) are read.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .files import atomic_write
from .protocols import LoadsState

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


def load(path: str | os.PathLike, model, optimizer=None, *,
         check_extra: Callable[[dict], None] | None = None) -> dict:
    """Load a checkpoint written by ``save`` into ``model`` (and ``optimizer``); return extra.

    All or nothing, in two steps named for what they do: ``check`` reads the file and checks
    all of it (every entry's declared shape and dtype against the model before any data is
    read, the metadata, the optimizer state's structure, and ``extra`` through
    ``check_extra``, a function that raises ValueError), then ``copy`` loads the optimizer's
    state (its ``load_state_dict`` validates everything before changing anything) and copies
    the values into the model's existing arrays. On any error the model and the optimizer are
    left as they were. Never unpickles (object arrays are refused, unread).
    """
    checked = check(path, model, optimizer, check_extra=check_extra)
    copy(checked, model, optimizer)
    return checked.meta["extra"]


class Checked(NamedTuple):
    """A checkpoint read whole and checked against a model; nothing loaded yet."""

    path: Path
    meta: dict                      # format, version, extra, optimizer ({"class", "state"})
    model_state: dict               # name -> array, every name and shape the model's
    optimizer_state: dict | None    # the optimizer's state dict, arrays joined in


def check(path: str | os.PathLike, model, optimizer=None, *,
          check_extra: Callable[[dict], None] | None = None) -> Checked:
    """Read ``path`` and check everything in it against ``model`` and ``optimizer``, changing
    nothing. Bounded: what each entry declares (name, shape, dtype, size) is checked against
    what the model can hold before its data is read, and no entry is inflated past its
    declared size. Every problem is a ValueError naming the file."""
    path = Path(path)
    if optimizer is not None and not isinstance(optimizer, LoadsState):
        raise TypeError(f"checkpoint.load: {optimizer!r} has no load_state_dict; pass "
                        f"optimizer=None to load the model alone")
    with _open(path) as archive:
        entries = _entries(archive, path)
        meta = _read_meta(archive, entries, path)
        entries = _current_names(meta, entries, path)
        model_state = _read_model_state(archive, entries, model, path)
        optimizer_state = (None if optimizer is None else
                           _read_optimizer_state(archive, entries, meta, model, optimizer, path))
    if check_extra is not None:
        check_extra(meta["extra"])
    return Checked(path, meta, model_state, optimizer_state)


def copy(checked: Checked, model, optimizer=None) -> None:
    """Load what ``check`` checked: the optimizer first (its ``load_state_dict`` validates
    its state before changing anything), then the model, whose load cannot fail any more."""
    if optimizer is not None:
        try:
            optimizer.load_state_dict(checked.optimizer_state)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{checked.path}: the optimizer state does not load into "
                             f"{optimizer!r}: {err}") from None
    model.load_state_dict(checked.model_state)


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
            if not isinstance(node, dict):
                raise ValueError(f"the optimizer state holds both a value and arrays under {key!r}")
        if name in node:
            raise ValueError(f"the optimizer state holds {path!r} twice")
        node[name] = array
    return state


def read_extra(path: str | os.PathLike) -> dict:
    """The ``extra`` metadata of a checkpoint, without a model (only the metadata is read)."""
    path = Path(path)
    with _open(path) as archive:
        return _read_meta(archive, _entries(archive, path), path)["extra"]


# ----------------------------------------------------------------------------------------------
# Reading, bounded: headers first, then data no larger than they declared

MAX_META_BYTES = 64 << 20     # the metadata entry: JSON text stored as UTF-32, 16 M characters
# every way zipfile fails on damaged bytes (a flipped "version needed" bit: NotImplementedError)
_UNREADABLE = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, UnicodeDecodeError,
               OSError, NotImplementedError, RuntimeError, struct.error, OverflowError)


class Declared(NamedTuple):
    """What an entry's .npy header declares, checked against the entry's size."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype


@contextlib.contextmanager
def _open(path: Path):
    """The checkpoint's zip archive, or a ValueError saying what the file is instead."""
    mode = os.stat(path).st_mode  # a missing file stays a FileNotFoundError
    if stat.S_ISDIR(mode):
        raise ValueError(f"{path}: not a readable checkpoint (a directory)")
    if not stat.S_ISREG(mode):  # opening a FIFO would wait for a writer forever
        raise ValueError(f"{path}: not a readable checkpoint (not a regular file)")
    with open(path, "rb") as f:
        magic = f.read(6)
        # decided by the first bytes, not by numpy's error text, which differs between versions
        if magic == b"\x93NUMPY":
            raise ValueError(f"{path}: not a handprop checkpoint (a single array, not an .npz file)")
        if magic[:1] == b"\x80":
            raise _refusal(path)
        if magic[:4] != b"PK\x03\x04":
            what = "an empty file" if not magic else f"it starts with {magic.hex(' ')}"
            raise ValueError(f"{path}: not a readable checkpoint (not an .npz file: {what})")
        try:
            archive = zipfile.ZipFile(f)
        except (*_UNREADABLE, ValueError) as err:
            raise _unreadable(path, err) from None
        with archive:
            try:
                yield archive
            except _UNREADABLE as err:
                raise _unreadable(path, err) from None


def _entries(archive: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's entries by array name; anything but plain or deflated .npy refused."""
    entries = {}
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(".npy") or name[:-4] in entries:
            what = "twice" if name.endswith(".npy") else "which is not an .npy array"
            raise ValueError(f"{path}: refused: it holds an entry {name!r} {what}")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 1:
            raise ValueError(f"{path}: refused: entry {name!r} is encrypted or compressed with "
                             f"method {info.compress_type} (np.savez uses stored or deflated)")
        entries[name[:-4]] = info
    return entries


def _declared(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> Declared:
    """An entry's header, read without its data: refused if it holds objects or if its size
    is not exactly the header's plus the data it declares."""
    with archive.open(info) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f".npy format version {version}")
        except ValueError as err:
            raise ValueError(f"{path}: refused: entry {info.filename!r} is not a plain .npy "
                             f"array ({err})") from None
        offset = stream.tell()
    if dtype.hasobject:
        raise _refusal(path)
    if len(shape) > 32 or any(n < 0 for n in shape):
        raise ValueError(f"{path}: refused: entry {info.filename!r} declares the shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size != offset + nbytes:
        raise ValueError(f"{path}: refused: entry {info.filename!r} declares {shape} of "
                         f"{dtype}, {offset + nbytes} bytes with its header, but the archive "
                         f"says it holds {info.file_size}")
    if nbytes > sys.maxsize:
        raise ValueError(f"{path}: refused: entry {info.filename!r} declares {shape} of {dtype}, "
                         f"more bytes than this machine can address")
    return Declared(shape, fortran, dtype)


def _read_data(archive: zipfile.ZipFile, info: zipfile.ZipInfo, declared: Declared) -> np.ndarray:
    """An entry's array, read chunk by chunk into memory the size its checked header declared
    (zipfile stops inflating at the entry's declared size and checks its CRC at the end)."""
    shape, fortran, dtype = declared
    array = np.empty(shape[::-1] if fortran else shape, dtype)
    flat = array.reshape(-1).view(np.uint8)
    with archive.open(info) as stream:
        _declared_header_skip(stream)
        filled = 0
        while filled < flat.size:
            chunk = stream.read(min(1 << 20, flat.size - filled))
            if not chunk:
                raise EOFError(f"entry {info.filename!r} ends after {filled} of {flat.size} bytes")
            flat[filled:filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
            filled += len(chunk)
        if stream.read(1):  # reading to the end is what makes zipfile check the CRC
            raise EOFError(f"entry {info.filename!r} holds more than it declared")
    return array.T if fortran else array


def _declared_header_skip(stream) -> None:
    version = np.lib.format.read_magic(stream)
    (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(stream)


def _read_meta(archive: zipfile.ZipFile, entries: dict, path: Path) -> dict:
    """The metadata: a bounded string entry holding a JSON object of the expected structure."""
    if "meta" not in entries:
        raise ValueError(f"{path}: not a handprop checkpoint (no 'meta' entry)")
    declared = _declared(archive, entries["meta"], path)
    if declared.dtype.kind != "U" or declared.shape != () or declared.dtype.itemsize > MAX_META_BYTES:
        raise ValueError(f"{path}: not a handprop checkpoint (its meta entry is {declared.shape} "
                         f"of {declared.dtype}, not a JSON string of at most {MAX_META_BYTES} bytes)")
    text = str(_read_data(archive, entries["meta"], declared))
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as err:
        raise _unreadable(path, err) from None
    return _checked_meta(meta, path)


def _checked_meta(meta, path: Path) -> dict:
    """The metadata with every field fit's and load's code reads checked; version 1 settings
    put into version 2's form."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a handprop checkpoint (its meta entry is not one)")
    version = meta.get("version")
    if version not in (1, VERSION) or isinstance(version, bool):
        raise ValueError(f"{path}: checkpoint version {version!r}; this handprop "
                         f"reads versions 1 and {VERSION}")
    extra = meta.setdefault("extra", {})
    if not isinstance(extra, dict):
        raise ValueError(f"{path}: its meta entry's extra is {type(extra).__name__}, not a dict")
    optimizer = meta.get("optimizer")
    if optimizer is None:
        return meta
    if version == 1 and isinstance(optimizer, dict):
        optimizer = meta["optimizer"] = {"class": "SGD", "state": {**optimizer, "momentum_buffers": {}}}
    if (not isinstance(optimizer, dict) or not isinstance(optimizer.get("class"), str)
            or not isinstance(optimizer.get("state"), dict)):
        raise ValueError(f"{path}: its meta entry's optimizer is not "
                         f'{{"class": NAME, "state": {{...}}}}')
    return meta


def _current_names(meta: dict, entries: dict, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The entries under version 2's names (a version 1 file's params/, buffers/ and SGD's
    optimizer/NAME momentum buffers renamed); the meta entry left out."""
    if meta["version"] == VERSION:
        return {k: v for k, v in entries.items() if k != "meta"}
    renamed = {}
    for key, info in entries.items():
        if key == "meta":
            continue
        kind, _, name = key.partition("/")
        new = {"params": "model/", "buffers": "model/",
               "optimizer": "optimizer/momentum_buffers/"}.get(kind, kind + "/") + name
        if new in renamed:
            raise ValueError(f"{path}: refused: it holds {name!r} twice")
        renamed[new] = info
    return renamed


def _read_model_state(archive, entries: dict, model, path: Path) -> dict[str, np.ndarray]:
    """The model's arrays: names, shapes and dtypes checked against the model from the headers
    (``check_state_dict`` on zero-memory stand-ins), then the data read."""
    unknown = sorted(k for k in entries if not k.startswith(("model/", "optimizer/")))
    if unknown:
        raise ValueError(f"{path}: refused: unexpected entries {', '.join(unknown)}")
    declared = {k[len("model/"):]: _declared(archive, info, path)
                for k, info in entries.items() if k.startswith("model/")}
    stand_ins = {name: np.broadcast_to(np.zeros((), d.dtype), d.shape) for name, d in declared.items()}
    try:
        model.check_state_dict(stand_ins, source=str(path))
    except (TypeError, ValueError) as err:  # the file is what is wrong: a ValueError either way
        raise ValueError(str(err)) from None
    return {name: _read_data(archive, entries[f"model/{name}"], d) for name, d in declared.items()}


def _read_optimizer_state(archive, entries: dict, meta: dict, model, optimizer, path: Path) -> dict:
    """The optimizer's state dict, its arrays bounded by the model's: none larger than the
    largest of the model's arrays, together at most 8 times the model's values."""
    saved = meta.get("optimizer")
    if saved is None:
        raise ValueError(f"{path}: holds no optimizer state to load into {optimizer!r}")
    if saved["class"] != type(optimizer).__name__:
        raise ValueError(f"{path}: holds the state of a {saved['class']} optimizer, which "
                         f"does not load into {optimizer!r}")
    sizes = [a.size for a in {**model.params, **model.buffers}.values()] or [0]
    largest, budget = max(sizes), 8 * sum(sizes) + 1024
    names = [k for k in entries if k.startswith("optimizer/")]
    if len(names) > 8 * len(sizes) + 64:
        raise ValueError(f"{path}: refused: {len(names)} optimizer entries for a model of "
                         f"{len(sizes)} arrays")
    arrays = {}
    for key in names:
        d = _declared(archive, entries[key], path)
        size = math.prod(d.shape)
        budget -= size
        if d.dtype.kind not in "fiub" or size > largest or budget < 0:
            raise ValueError(f"{path}: refused: entry {key!r} declares {d.shape} of {d.dtype}, "
                             f"more than an optimizer of this model holds")
        arrays[key[len("optimizer/"):]] = _read_data(archive, entries[key], d)
    try:
        return join_state(saved["state"], arrays)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{path}: the optimizer state is malformed: {err}") from None


def _unreadable(path: Path, err: BaseException) -> ValueError:
    return ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})")


def _refusal(path: Path) -> ValueError:
    return ValueError(f"{path}: refused: it holds pickled Python objects, which a checkpoint "
                      f"never needs and load never unpickles (allow_pickle=False)")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON data")

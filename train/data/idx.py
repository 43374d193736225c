"""IDX files, the format of MNIST and Fashion-MNIST: read with every size checked against the
header before any data is, and the four files of a data set as arrays."""
from __future__ import annotations

import contextlib
import gzip
import math
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

from ...layers import validate

# IDX element types, from the third byte of the magic number; multi-byte types are big-endian
IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 1 << 32          # the most data load_idx reads, and the most bytes each array
                                 # load_mnist returns as float32 or int64 (4 GiB)
DEFLATE_MAX_RATIO = 1032         # deflate never expands one byte into more than this

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def load_idx(path: str | os.PathLike, *, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (raw or gzipped), the format of MNIST and Fashion-MNIST.

    The element type and the dimensions come from the header: two zero bytes, a type byte, the
    number of dimensions, then each dimension as a big-endian uint32. Returns an array of that
    shape in native byte order. What the header declares is checked before any data is read:
    against the file's size (raw), against what the file can inflate to (gzip: at most 1032
    times its size) and against ``max_bytes``; gzipped data is inflated only up to the size
    the header declares. A wrong magic number, a truncated file or a size that disagrees with
    the header is a ValueError naming the file.
    """
    max_bytes = validate.integer("load_idx", "max_bytes", max_bytes, low=0)
    path = Path(path)
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: not an IDX file: not a regular file")
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        try:
            with gzip.GzipFile(fileobj=f) if gz else contextlib.nullcontext(f) as stream:
                shape, dtype, header = _idx_header(stream, path)
                expected = math.prod(shape) * dtype.itemsize
                _check_idx_size(path, shape, dtype, expected, info.st_size, header, gz, max_bytes)
                data = _read_at_most(stream, expected + 1)  # one byte more: is there more?
        except (OSError, EOFError, zlib.error) as err:
            if not gz:
                raise
            raise ValueError(f"{path}: a broken or truncated gzip file ({err})") from None
    if len(data) != expected:
        raise ValueError(f"{path}: the header promises {shape} of {dtype.name}, {expected} bytes of "
                         f"data, but the file " + ("holds more (stopped reading there)"
                                                   if len(data) > expected else
                                                   f"holds {len(data)} (truncated)"))
    return np.frombuffer(data, dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _check_converted_size(path: Path, converted: np.dtype, max_bytes: int) -> None:
    """The array an IDX file becomes once converted to ``converted`` must fit ``max_bytes``:
    checked from the header alone, before any data is read."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        try:
            with gzip.GzipFile(fileobj=f) if gz else contextlib.nullcontext(f) as stream:
                shape, dtype, _ = _idx_header(stream, path)
        except (OSError, EOFError, zlib.error) as err:
            if not gz:
                raise
            raise ValueError(f"{path}: a broken or truncated gzip file ({err})") from None
    size = math.prod(shape) * converted.itemsize
    if size > max_bytes:
        raise ValueError(f"{path}: the header promises {shape} of {dtype.name}, {size} bytes as "
                         f"{converted.name}, more than max_bytes={max_bytes}")


def _idx_header(stream, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """The shape, element type and header length an IDX stream declares."""
    magic = _read_at_most(stream, 4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file: expected a magic number 00 00 TT DD with a "
                         f"known type TT, got {bytes(magic).hex(' ') or 'an empty file'}")
    ndim = magic[3]
    if ndim > 32:
        raise ValueError(f"{path}: not an IDX file: the header names {ndim} dimensions")
    dims = _read_at_most(stream, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{path}: truncated: the header names {ndim} dimensions but the file "
                         f"ends after {4 + len(dims)} bytes")
    return struct.unpack(f">{ndim}I", dims), np.dtype(IDX_TYPES[magic[2]]), 4 + 4 * ndim


def _check_idx_size(path: Path, shape, dtype, expected: int, file_size: int, header: int,
                    gz: bool, max_bytes: int) -> None:
    """What the header declares against what the file can hold, before reading data."""
    promise = f"the header promises {shape} of {dtype.name}, {expected} bytes of data"
    if not gz and file_size - header != expected:
        got = file_size - header
        raise ValueError(f"{path}: {promise}, but the file holds {got}"
                         + (" (truncated)" if got < expected else ""))
    if gz and expected + header > DEFLATE_MAX_RATIO * file_size:
        raise ValueError(f"{path}: {promise}, more than a gzip file of {file_size} bytes can "
                         f"hold (deflate expands at most {DEFLATE_MAX_RATIO} times)")
    if expected > max_bytes:
        raise ValueError(f"{path}: {promise}, more than max_bytes={max_bytes}")


def _read_at_most(stream, limit: int) -> bytearray:
    """Up to ``limit`` bytes, read in chunks: memory grows with what the stream really holds."""
    data = bytearray()
    while len(data) < limit:
        chunk = stream.read(min(1 << 20, limit - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def load_mnist(directory: str | os.PathLike, *, flatten: bool = True,
               max_bytes: int = MAX_IDX_BYTES) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) from the four standard MNIST-format files.

    Each file may be raw or ``.gz``; where both are there, the ``.gz`` file (what ``download``
    fetches and verifies) is read, never a stale raw file beside it. Images are float32 scaled
    to [0, 1], flattened to (N, rows * cols), or with ``flatten=False`` kept as one-channel
    images (N, 1, rows, cols) for a convolutional network; labels are int64 (a labels file of
    floats must hold whole numbers: 2.5 or NaN is a ValueError naming the file and position).
    Works for MNIST and Fashion-MNIST alike.

    ``max_bytes`` bounds each array returned, as converted (float32 images, int64 labels:
    four and eight times the bytes of a file of uint8), checked against each file's header
    before its data is read.
    """
    max_bytes = validate.integer("load_mnist", "max_bytes", max_bytes, low=0)
    directory = Path(directory)
    arrays, paths = [], []
    for name in MNIST_FILES:
        candidates = [directory / f"{name}.gz", directory / name]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{directory}: no {name} (or {name}.gz); "
                                    f"train.data.download() fetches the four files")
        _check_converted_size(found, np.dtype(np.int64 if "labels" in name else np.float32), max_bytes)
        arrays.append(load_idx(found, max_bytes=max_bytes))
        paths.append(found)
    train_images, train_labels, test_images, test_labels = arrays
    out: list[np.ndarray] = []
    for images, labels, split, labels_path in ((train_images, train_labels, "train", paths[1]),
                                               (test_images, test_labels, "t10k", paths[3])):
        if images.ndim < 2 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{directory}: {split} images of shape {images.shape} do not match "
                             f"labels of shape {labels.shape}")
        if not flatten and images.ndim != 3:
            raise ValueError(f"{directory}: expected {split} images of shape (N, rows, cols) to "
                             f"keep as (N, 1, rows, cols), got {images.shape}")
        shape = (len(images), -1) if flatten else (len(images), 1, *images.shape[1:])
        X = images.reshape(shape).astype(np.float32)
        X /= 255
        out += [X, _whole_labels(labels, labels_path)]
    X_train, y_train, X_test, y_test = out
    return X_train, y_train, X_test, y_test


def _whole_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    """Class labels as int64. An IDX file of floats may hold them, but only as whole numbers:
    a fraction (2.5), NaN, infinity or a number past 2**53 is a ValueError naming the file and
    the first such position, never truncated (2.5 -> 2) and trained on."""
    if labels.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(labels) | (labels != np.round(labels)) | (np.abs(labels) >= 2.0**53)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}: expected whole-number class labels, got {labels[i].item()!r} at "
                             f"position {i} ({int(bad.sum())} such labels)")
    return labels.astype(np.int64)

"""Data: the spiral toy problem, MNIST-format IDX files (and their download), minibatches."""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import math
import os
import stat
import struct
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..layers.base import check_size
from .files import atomic_write, remove_stale_temporaries

# IDX element types, from the third byte of the magic number; multi-byte types are big-endian
IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 1 << 32          # the most data load_idx reads unless told otherwise (4 GiB)
DEFLATE_MAX_RATIO = 1032         # deflate never expands one byte into more than this
MAX_DOWNLOAD_BYTES = 1 << 30     # a download's cap when no published size is known

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Where --download fetches from, the published SHA-256 of each .gz file, the most bytes a
# download may send (MNIST: the exact published sizes; Fashion-MNIST publishes rounded sizes,
# "26 MBytes", so its caps are generous: about 1.2 times those) and the number of classes.
DATASETS: dict[str, dict[str, Any]] = {
    "mnist": {
        "base_url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "sha256": {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        "max_bytes": {"train-images-idx3-ubyte.gz": 9_912_422, "train-labels-idx1-ubyte.gz": 28_881,
                      "t10k-images-idx3-ubyte.gz": 1_648_877, "t10k-labels-idx1-ubyte.gz": 4_542},
        "classes": 10,
    },
    "fashion-mnist": {
        "base_url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "sha256": {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        "max_bytes": {"train-images-idx3-ubyte.gz": 32_000_000, "train-labels-idx1-ubyte.gz": 36_000,
                      "t10k-images-idx3-ubyte.gz": 5_400_000, "t10k-labels-idx1-ubyte.gz": 6_400},
        "classes": 10,
    },
}


def spiral(n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: int = 0,
           dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The classic two-dimensional toy problem: ``n_classes`` interleaved spiral arms.

    Point i of arm k sits at radius r = i / (n - 1) and angle 4 (k + r) plus Gaussian noise of
    standard deviation ``noise``, so no linear model separates the arms.

    Returns
    -------
    X : ndarray (n_per_class * n_classes, 2) of ``dtype``
    y : ndarray (n_per_class * n_classes,) of int64, the arm of each point
    """
    if n_per_class < 1 or n_classes < 2:
        raise ValueError(f"spiral: expected n_per_class >= 1 and n_classes >= 2, "
                         f"got {n_per_class} and {n_classes}")
    rng = np.random.default_rng(seed)
    r = np.linspace(0.0, 1.0, n_per_class)
    arms = []
    for k in range(n_classes):
        angle = 4 * (k + r) + noise * rng.standard_normal(n_per_class)
        arms.append(np.column_stack([r * np.sin(angle), r * np.cos(angle)]))
    X = np.concatenate(arms).astype(dtype)
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y


def moons(n_samples: int = 200, noise: float = 0.1, seed: int = 0,
          dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half-moons, a binary toy problem (as scikit-learn's ``make_moons``).

    Class 0 is the upper half-circle (cos t, sin t), class 1 the lower one shifted to
    (1 - cos t, 1/2 - sin t), for t evenly spaced in [0, pi]; Gaussian noise of standard
    deviation ``noise`` is added to both coordinates. No line separates the two.

    Returns
    -------
    X : ndarray (n_samples, 2) of ``dtype``
    y : ndarray (n_samples,) of int64, 0 or 1; ``y[:, None]`` for a one-logit model's targets
    """
    n_samples = check_size("moons", "n_samples", n_samples, minimum=2)
    rng = np.random.default_rng(seed)
    n_upper = n_samples // 2
    t_upper = np.linspace(0.0, np.pi, n_upper)
    t_lower = np.linspace(0.0, np.pi, n_samples - n_upper)
    upper = np.column_stack([np.cos(t_upper), np.sin(t_upper)])
    lower = np.column_stack([1 - np.cos(t_lower), 0.5 - np.sin(t_lower)])
    X = np.concatenate([upper, lower]) + noise * rng.standard_normal((n_samples, 2))
    y = np.repeat([0, 1], [n_upper, n_samples - n_upper])
    return X.astype(dtype), y


def noisy_curve(n_samples: int = 200, noise: float = 0.1, seed: int = 0,
                dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """A 1-D regression toy problem: y = sin(3 x) + Gaussian noise, for x uniform in [-1, 1].

    ``noise`` is the noise's standard deviation, so ``noise ** 2`` is the smallest mean squared
    error any model can reach on fresh samples: a model that gets close has learned the curve
    and not the noise.

    Returns
    -------
    X : ndarray (n_samples, 1) of ``dtype``, the inputs
    y : ndarray (n_samples, 1) of ``dtype``, the noisy values, shaped as a one-output model's
    """
    n_samples = check_size("noisy_curve", "n_samples", n_samples)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n_samples, 1))
    y = np.sin(3 * x) + noise * rng.standard_normal((n_samples, 1))
    return x.astype(dtype), y.astype(dtype)


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each minibatch. A lone last sample joins the batch before it, since
    BatchNorm cannot train on a batch of one."""
    batch_size = check_size("minibatches", "batch_size", batch_size)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


def minibatches(X: np.ndarray, y: np.ndarray, batch_size: int,
                rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (X_batch, y_batch) pairs covering every sample once.

    With ``rng`` the samples are shuffled by ``rng.permutation`` (one draw per call, so a seeded
    generator gives the same batches every run); without it they come in order, as views.
    """
    if len(X) != len(y):
        raise ValueError(f"minibatches: X has {len(X)} samples but y has {len(y)}")
    order = None if rng is None else rng.permutation(len(X))
    for start, stop in batch_bounds(len(X), batch_size):
        if order is None:
            yield X[start:stop], y[start:stop]
        else:
            index = order[start:stop]
            yield X[index], y[index]


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


def load_mnist(directory: str | os.PathLike, *,
               flatten: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) from the four standard MNIST-format files.

    Each file may be raw or ``.gz``; where both are there, the ``.gz`` file (what ``download``
    fetches and verifies) is read, never a stale raw file beside it. Images are float32 scaled
    to [0, 1], flattened to (N, rows * cols), or with ``flatten=False`` kept as one-channel
    images (N, 1, rows, cols) for a convolutional network; labels are int64. Works for MNIST
    and Fashion-MNIST alike.
    """
    directory = Path(directory)
    arrays = []
    for name in MNIST_FILES:
        candidates = [directory / f"{name}.gz", directory / name]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{directory}: no {name} (or {name}.gz); "
                                    f"train.data.download() fetches the four files")
        arrays.append(load_idx(found))
    train_images, train_labels, test_images, test_labels = arrays
    out: list[np.ndarray] = []
    for images, labels, split in ((train_images, train_labels, "train"),
                                  (test_images, test_labels, "t10k")):
        if images.ndim < 2 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{directory}: {split} images of shape {images.shape} do not match "
                             f"labels of shape {labels.shape}")
        if not flatten and images.ndim != 3:
            raise ValueError(f"{directory}: expected {split} images of shape (N, rows, cols) to "
                             f"keep as (N, 1, rows, cols), got {images.shape}")
        shape = (len(images), -1) if flatten else (len(images), 1, *images.shape[1:])
        X = images.reshape(shape).astype(np.float32)
        X /= 255
        out += [X, labels.astype(np.int64)]
    X_train, y_train, X_test, y_test = out
    return X_train, y_train, X_test, y_test


def default_data_dir(dataset: str) -> Path:
    """Where downloads go unless told otherwise: $XDG_CACHE_HOME/handprop/DATASET."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "handprop" / dataset


def download(dataset: str = "mnist", directory: str | os.PathLike | None = None, *,
             base_url: str | None = None, sha256: dict[str, str] | None = None,
             max_bytes: dict[str, int] | None = None, progress: bool = True,
             timeout: float = 60.0, deadline: float = 1800.0) -> Path:
    """Fetch the four files of ``dataset`` into ``directory`` and verify their SHA-256.

    Files already there with the right checksum are kept. Each download is written atomically
    (an interrupted one leaves no file behind) and bounded: a body longer than the file's
    published size (``max_bytes``; 1 GiB where none is known) is cut off, one shorter than its
    Content-Length is reported as truncated, a server silent for ``timeout`` seconds is
    dropped, and the whole call gives up after ``deadline`` seconds. Each failure is reported
    with the URL and the partial file deleted; a checksum that does not match is a ValueError.
    ``base_url``, ``sha256`` and ``max_bytes`` default to the published location, checksums
    and sizes. Returns the directory.
    """
    if dataset not in DATASETS:
        raise ValueError(f"download: expected a dataset in {sorted(DATASETS)}, got {dataset!r}")
    directory = Path(directory) if directory is not None else default_data_dir(dataset)
    base_url = base_url or DATASETS[dataset]["base_url"]
    if max_bytes is None:
        max_bytes = DATASETS[dataset]["max_bytes"] if sha256 is None else {}
    sha256 = sha256 or DATASETS[dataset]["sha256"]
    ends = time.monotonic() + deadline
    directory.mkdir(parents=True, exist_ok=True)
    for name, expected in sha256.items():
        target, cap = directory / name, max_bytes.get(name, MAX_DOWNLOAD_BYTES)
        remove_stale_temporaries(target)
        if target.is_file():
            if target.stat().st_size <= cap and _sha256_file(target) == expected:
                continue
            target.unlink()  # a damaged earlier download
        url = base_url.rstrip("/") + "/" + name
        _fetch(url, target, expected, cap, ends, deadline, timeout, progress)
    return directory


def _fetch(url: str, target: Path, expected: str, cap: int, ends: float, deadline: float,
           timeout: float, progress: bool) -> None:
    """One file, at most ``cap`` bytes, before the monotonic time ``ends``; deleted unless whole
    and matching ``expected``."""
    digest, received = hashlib.sha256(), 0
    gone = "; the partial file was deleted"
    try:
        # the bar is built before the temporary file exists: an interrupt that lands while a
        # bar is being built (old tqdm then prints a traceback from the half-built bar's
        # __del__) finds nothing of ours to clean up
        with tqdm(desc=target.name, unit="B", unit_scale=True, disable=not progress,
                  leave=False) as bar, atomic_write(target) as f, urllib.request.urlopen(
                url, timeout=max(0.001, min(timeout, ends - time.monotonic()))) as response:
            length = response.headers.get("Content-Length", "")
            declared = int(length) if length.isdigit() else None
            if declared is not None and declared > cap:
                raise ValueError(f"download: {url} is {declared} bytes, more than the published "
                                 f"size ({cap} bytes); refused")
            bar.reset(total=declared)
            while True:
                if time.monotonic() > ends:
                    raise TimeoutError(f"download: {url} did not finish within the "
                                       f"{deadline:g} s deadline ({received} bytes arrived){gone}")
                try:
                    chunk = response.read1(1 << 16)
                except http.client.IncompleteRead:
                    chunk, declared = b"", max(declared or 0, received + 1)
                if not chunk:
                    break
                received += len(chunk)
                if received > cap:
                    raise ValueError(f"download: {url} sent more than the published size "
                                     f"({cap} bytes); stopped{gone}")
                f.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
            if declared is not None and received < declared:
                raise ValueError(f"download: {url} was truncated: {received} of {declared} "
                                 f"bytes arrived{gone}")
            if digest.hexdigest() != expected:  # raising here discards the download
                raise ValueError(f"download: {url} has SHA-256 {digest.hexdigest()}, not the "
                                 f"published {expected}; the bad file was deleted")
    except TimeoutError as err:
        if str(err).startswith("download:"):
            raise
        raise TimeoutError(f"download: {url}: no data for {timeout:g} s ({received} bytes "
                           f"arrived){gone}") from None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

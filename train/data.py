"""Data: the spiral toy problem, MNIST-format IDX files (and their download), minibatches."""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .files import atomic_write

# IDX element types, from the third byte of the magic number; multi-byte types are big-endian
IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Where --download fetches from, and the published SHA-256 of each .gz file.
DATASETS = {
    "mnist": {
        "base_url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "sha256": {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    },
    "fashion-mnist": {
        "base_url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "sha256": {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
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


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each minibatch. A lone last sample joins the batch before it, since
    BatchNorm cannot train on a batch of one."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"expected batch_size to be an int >= 1, got {batch_size!r}")
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


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzipped), the format of MNIST and Fashion-MNIST.

    The element type and the dimensions come from the header: two zero bytes, a type byte, the
    number of dimensions, then each dimension as a big-endian uint32. Returns an array of that
    shape in native byte order. A wrong magic number, a truncated file or a size that
    disagrees with the header is a ValueError naming the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: a broken or truncated gzip file ({err})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file: expected a magic number 00 00 TT DD with a "
                         f"known type TT, got {raw[:4].hex(' ') or 'an empty file'}")
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise ValueError(f"{path}: truncated: the header names {ndim} dimensions but the file "
                         f"ends after {len(raw)} bytes")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected, got = math.prod(shape) * dtype.itemsize, len(raw) - header
    if got != expected:
        raise ValueError(f"{path}: the header promises {shape} of {dtype.name}, {expected} bytes "
                         f"of data, but the file holds {got}"
                         + (" (truncated)" if got < expected else ""))
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(directory: str | os.PathLike, *,
               flatten: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) from the four standard MNIST-format files.

    Each file may be raw or ``.gz``. Images are float32 scaled to [0, 1], flattened to
    (N, rows * cols), or with ``flatten=False`` kept as one-channel images (N, 1, rows, cols)
    for a convolutional network; labels are int64. Works for MNIST and Fashion-MNIST alike.
    """
    directory = Path(directory)
    arrays = []
    for name in MNIST_FILES:
        candidates = [directory / name, directory / f"{name}.gz"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{directory}: no {name} (or {name}.gz); "
                                    f"train.data.download() fetches the four files")
        arrays.append(load_idx(found))
    train_images, train_labels, test_images, test_labels = arrays
    out = []
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
    return tuple(out)


def default_data_dir(dataset: str) -> Path:
    """Where downloads go unless told otherwise: $XDG_CACHE_HOME/handprop/DATASET."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "handprop" / dataset


def download(dataset: str = "mnist", directory: str | os.PathLike | None = None, *,
             base_url: str | None = None, sha256: dict[str, str] | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Fetch the four files of ``dataset`` into ``directory`` and verify their SHA-256.

    Files already there with the right checksum are kept. Each download is written atomically;
    one whose checksum does not match is deleted and reported with a ValueError. ``base_url``
    and ``sha256`` default to the published location and checksums. Returns the directory.
    """
    if dataset not in DATASETS:
        raise ValueError(f"download: expected a dataset in {sorted(DATASETS)}, got {dataset!r}")
    directory = Path(directory) if directory is not None else default_data_dir(dataset)
    base_url = base_url or DATASETS[dataset]["base_url"]
    sha256 = sha256 or DATASETS[dataset]["sha256"]
    directory.mkdir(parents=True, exist_ok=True)
    for name, expected in sha256.items():
        target = directory / name
        if target.is_file():
            if _sha256(target.read_bytes()) == expected:
                continue
            target.unlink()  # a damaged earlier download
        url = base_url.rstrip("/") + "/" + name
        digest = hashlib.sha256()
        with atomic_write(target) as f, urllib.request.urlopen(url, timeout=timeout) as response:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, desc=name, unit="B", unit_scale=True, disable=not progress,
                      leave=False) as bar:
                while chunk := response.read(1 << 16):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if digest.hexdigest() != expected:  # raising here discards the download
                raise ValueError(f"download: {url} has SHA-256 {digest.hexdigest()}, not the "
                                 f"published {expected}; the bad file was deleted")
    return directory


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

"""Verified downloads: a table of data sets (their files, where they are published, each file's
SHA-256 and size), and ``download``, which fetches a data set's files bounded in size and time,
atomically, and checked against the table.

A new data set is one entry in ``DATASETS``; ``download_file`` fetches any single file the same
way.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ...layers import validate
from ..files import atomic_write, remove_stale_temporaries

MAX_DOWNLOAD_BYTES = 1 << 30     # a download's cap when no published size is known

# The data sets ``download`` knows, one entry each:
#   "base_url"  where the files are published; a file's URL is base_url + its name
#   "sha256"    {file name: its published SHA-256}: the files to fetch, each verified
#   "max_bytes" {file name: the most bytes its download may send} (MNIST: the exact published
#               sizes; Fashion-MNIST publishes rounded sizes, "26 MBytes", so its caps are
#               generous: about 1.2 times those); a file left out is capped at 1 GiB
#   "classes"   the number of classes, where the set has labels (the CLI checks them)
# A text data set (one file, say input.txt) is one more entry of the same shape.
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
    "names": {  # makemore's 32,033 names, one per line
        "base_url": "https://raw.githubusercontent.com/karpathy/makemore/master/",
        "sha256": {"names.txt": "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"},
        "max_bytes": {"names.txt": 228_145},
    },
    "shakespeare": {  # tiny Shakespeare, char-rnn's input.txt
        "base_url": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",
        "sha256": {"input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"},
        "max_bytes": {"input.txt": 1_115_394},
    },
}


def default_data_dir(dataset: str) -> Path:
    """Where downloads go unless told otherwise: $XDG_CACHE_HOME/handprop/DATASET."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "handprop" / dataset


def download(dataset: str = "mnist", directory: str | os.PathLike | None = None, *,
             base_url: str | None = None, sha256: dict[str, str] | None = None,
             max_bytes: dict[str, int] | None = None, progress: bool = True,
             timeout: float = 60.0, deadline: float = 1800.0) -> Path:
    """Fetch the files of ``dataset`` (an entry of ``DATASETS``) into ``directory`` and verify
    their SHA-256.

    Files already there with the right checksum are kept. Each download is written atomically
    (an interrupted one leaves no file behind) and bounded: a body longer than the file's
    published size (``max_bytes``; 1 GiB where none is known) is cut off, one shorter than its
    Content-Length is reported as truncated, a server silent for ``timeout`` seconds is
    dropped, and the whole call gives up after ``deadline`` seconds. Each failure (a refused
    connection, an HTTP error, a connection closed early, a redirect loop or one to another
    kind of URL) is reported with the URL and the partial file deleted; a checksum that does
    not match is a ValueError. ``base_url``, ``sha256`` and ``max_bytes`` default to the
    published location, checksums and sizes. Returns the directory.
    """
    validate.choice("download", "dataset", dataset, DATASETS)
    timeout, deadline = _bounds("download", timeout, deadline)
    directory = Path(directory) if directory is not None else default_data_dir(dataset)
    base_url = base_url or DATASETS[dataset]["base_url"]
    if max_bytes is None:
        max_bytes = DATASETS[dataset]["max_bytes"] if sha256 is None else {}
    sha256 = sha256 or DATASETS[dataset]["sha256"]
    ends = time.monotonic() + deadline
    directory.mkdir(parents=True, exist_ok=True)
    for name, expected in sha256.items():  # one deadline for them all
        _fetch_unless_there(base_url.rstrip("/") + "/" + name, directory / name, expected,
                            max_bytes.get(name, MAX_DOWNLOAD_BYTES), ends, deadline, timeout, progress)
    return directory


def download_file(url: str, target: str | os.PathLike, sha256: str, *,
                  max_bytes: int = MAX_DOWNLOAD_BYTES, progress: bool = True,
                  timeout: float = 60.0, deadline: float = 1800.0) -> Path:
    """Fetch one file from ``url`` to ``target`` unless a file with the SHA-256 ``sha256`` is
    there already; bounded and reported as ``download`` describes. Returns ``target``."""
    target = Path(target)
    max_bytes = validate.integer("download_file", "max_bytes", max_bytes, low=0)
    timeout, deadline = _bounds("download_file", timeout, deadline)
    _fetch_unless_there(url, target, sha256, max_bytes, time.monotonic() + deadline, deadline,
                        timeout, progress)
    return target


def _bounds(who: str, timeout: object, deadline: object) -> tuple[float, float]:
    return (validate.real(who, "timeout", timeout, low=0, low_open=True),
            validate.real(who, "deadline", deadline, low=0, low_open=True))


def _fetch_unless_there(url: str, target: Path, expected: str, cap: int, ends: float,
                        deadline: float, timeout: float, progress: bool) -> None:
    """``_fetch``, unless ``target`` is there already, whole and matching ``expected``."""
    remove_stale_temporaries(target)
    if target.is_file():
        if target.stat().st_size <= cap and _sha256_file(target) == expected:
            return
        target.unlink()  # a damaged earlier download
    _fetch(url, target, expected, cap, ends, deadline, timeout, progress)


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
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError) as err:
        raise OSError(f"download: {url}: {_network_failure(err)}"
                      + (gone if received else "")) from err


def _network_failure(err: BaseException) -> str:
    """What went wrong on the way, in words (urllib's own messages leave out the URL)."""
    if isinstance(err, urllib.error.HTTPError):
        first_line = str(err.msg).strip().splitlines()[0] if err.msg else ""
        if 300 <= err.code < 400:  # a redirect urllib refused to follow: a loop, or to file://
            return f"a redirect that was not followed (HTTP {err.code}): {first_line}"
        return f"the server answered HTTP {err.code} {first_line}".rstrip()
    if isinstance(err, urllib.error.URLError):
        reason = err.reason
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        return f"could not connect ({text})"
    return f"the connection was closed before the file arrived ({err or type(err).__name__})"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

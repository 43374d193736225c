"""Character-level text: a vocabulary (characters <-> integer ids), makemore's names as one
sequence per name with a start/end token, and tiny Shakespeare as random windows.

Names (makemore's way): the vocabulary is the names' sorted characters after a start/end token
``"."`` at id 0; the name "emma" is the input ".emma" and the target "emma.", each position
predicting the next character, the last one the end. A batch pads the inputs with the token
and the targets with ``IGNORE_INDEX`` (-100), which ``SoftmaxCrossEntropy`` leaves out of the
loss. The names are split 80/10/10 (train, validation, test) by a seeded permutation.

A running text (tiny Shakespeare): the vocabulary is its sorted characters; the first 90% of
it trains and the last 10% validates, read as windows ``x = ids[i:i+T]``, ``y = ids[i+1:i+T+1]``
at random starts ``i``.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ...layers import validate

IGNORE_INDEX = -100              # a target position left out of the loss (SoftmaxCrossEntropy's default)
BOUNDARY = "."                   # makemore's start/end token of a name, at id 0
MAX_TEXT_BYTES = 1 << 28         # the largest text file read (256 MiB): beyond is a slip


class Vocabulary:
    """The characters of a text, each with an integer id: ``encode`` and ``decode``.

    ``tokens`` lists the characters in id order: ``boundary`` first (id 0) when there is one,
    then ``chars`` sorted. A character outside the vocabulary is a ValueError naming it and
    its position, never a silent id.

    Examples
    --------
    >>> vocab = Vocabulary("cab", boundary=".")
    >>> vocab
    Vocabulary('.abc', boundary='.')
    >>> ids = vocab.encode("cab")
    >>> ids.tolist(), vocab.decode(ids)
    ([3, 1, 2], 'cab')
    """

    def __init__(self, chars: Iterable[str], *, boundary: str | None = None) -> None:
        chars = list(chars)
        for c in chars + ([] if boundary is None else [boundary]):
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"Vocabulary: expected single characters, got {c!r}")
        if boundary is not None and boundary in chars:
            raise ValueError(f"Vocabulary: the boundary token {boundary!r} is also one of the "
                             f"characters; choose another boundary")
        self.boundary = boundary
        self.tokens: tuple[str, ...] = (() if boundary is None else (boundary,)) + tuple(sorted(set(chars)))
        if not self.tokens:
            raise ValueError("Vocabulary: expected at least one character, got none")
        self.index = {c: i for i, c in enumerate(self.tokens)}

    @property
    def boundary_id(self) -> int | None:
        """The id of the start/end token (0), or None without one."""
        return None if self.boundary is None else 0

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Vocabulary) and self.tokens == other.tokens
                and self.boundary == other.boundary)

    def __hash__(self) -> int:
        return hash((self.tokens, self.boundary))

    def __repr__(self) -> str:
        shown = "".join(self.tokens)
        shown = repr(shown) if len(shown) <= 40 else f"{len(self.tokens)} characters"
        return f"Vocabulary({shown}" + (f", boundary={self.boundary!r})" if self.boundary else ")")

    def encode(self, text: str) -> np.ndarray:
        """The ids of ``text``'s characters, int64 (len(text),)."""
        if not isinstance(text, str):
            raise TypeError(f"{self!r}: expected text as a str, got {type(text).__name__}")
        unknown = [i for i, c in enumerate(text) if c not in self.index]
        if unknown:
            i = unknown[0]
            raise ValueError(f"{self!r}: {text[i]!r} at position {i} of the text is not in the "
                             f"vocabulary ({len(unknown)} such characters)")
        return np.array([self.index[c] for c in text], dtype=np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The characters of integer ``ids``, one per id."""
        ids = np.asarray(ids)
        if ids.size and (ids.dtype.kind not in "iu" or ids.ndim != 1):
            raise ValueError(f"{self!r}: expected a 1-d sequence of integer ids, got an array of "
                             f"shape {ids.shape} and dtype {ids.dtype}")
        bad = (ids < 0) | (ids >= len(self.tokens))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{self!r}: id {ids[i]} at position {i} is not in [0, {len(self)})")
        return "".join(self.tokens[i] for i in ids.tolist())

    def to_dict(self) -> dict:
        """The vocabulary as plain JSON data (a checkpoint's recorded settings keep it)."""
        return {"chars": "".join(t for t in self.tokens if t != self.boundary),
                "boundary": self.boundary}

    @classmethod
    def from_dict(cls, data: object, who: str = "Vocabulary.from_dict") -> Vocabulary:
        """The inverse of ``to_dict``; a ValueError naming ``who`` for anything else."""
        if not isinstance(data, dict) or not isinstance(data.get("chars"), str) or \
                not isinstance(data.get("boundary"), (str, type(None))):
            raise ValueError(f"{who}: expected a vocabulary {{'chars': str, 'boundary': str or "
                             f"None}}, got {data!r:.200}")
        try:
            return cls(data["chars"], boundary=data["boundary"])
        except ValueError as err:
            raise ValueError(f"{who}: {err}") from None


def read_text(path: str | os.PathLike, *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A UTF-8 text file, whole; its size checked against ``max_bytes`` before reading. A file
    that is not a regular file, too large, or not UTF-8 is a ValueError naming it."""
    path = Path(path)
    info = os.stat(path)  # FileNotFoundError for a missing file, as open() says it
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: not a text file: not a regular file")
    if info.st_size > max_bytes:
        raise ValueError(f"{path}: {info.st_size} bytes, more than max_bytes={max_bytes}")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None


def read_names(path: str | os.PathLike) -> list[str]:
    """One name per line, stripped of surrounding white space; blank lines skipped."""
    names = [line.strip() for line in read_text(path).splitlines()]
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"{path}: expected one name per line, found none")
    return names


def names_vocabulary(names: Iterable[str]) -> Vocabulary:
    """The names' characters after makemore's start/end token ``"."`` (id 0)."""
    chars = set("".join(names))
    if BOUNDARY in chars:
        raise ValueError(f"names_vocabulary: a name holds {BOUNDARY!r}, the start/end token")
    return Vocabulary(chars, boundary=BOUNDARY)


def encode_names(names: Sequence[str], vocab: Vocabulary, *,
                 length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets (N, length) of int64: name n is ``[0, c_1 ... c_k]`` against
    ``[c_1 ... c_k, 0]``; past that, inputs hold the start/end token (0) and targets
    ``IGNORE_INDEX``. ``length`` defaults to the longest name's length + 1.

    >>> X, Y = encode_names(["ab", "b"], Vocabulary("ab", boundary="."))
    >>> X.tolist(), Y.tolist()
    ([[0, 1, 2], [0, 2, 0]], [[1, 2, 0], [2, 0, -100]])
    """
    if vocab.boundary_id is None:
        raise ValueError(f"encode_names: {vocab!r} has no start/end token; build it with "
                         f"names_vocabulary(names)")
    longest = max((len(name) for name in names), default=0) + 1
    length = longest if length is None else validate.integer("encode_names", "length", length, low=1)
    if longest > length:
        raise ValueError(f"encode_names: a name of {longest - 1} characters needs length >= "
                         f"{longest}, got length={length}")
    X = np.full((len(names), length), vocab.boundary_id, dtype=np.int64)
    Y = np.full((len(names), length), IGNORE_INDEX, dtype=np.int64)
    for n, name in enumerate(names):
        ids = vocab.encode(name)
        X[n, 1:len(ids) + 1] = ids
        Y[n, :len(ids)] = ids
        Y[n, len(ids)] = vocab.boundary_id
    return X, Y


def split_names(names: Sequence[str], *, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(train, validation, test): 80%, 10% and the rest of the names, in the order of a
    permutation seeded with ``seed``."""
    if len(names) < 3:
        raise ValueError(f"split_names: expected at least 3 names to split 80/10/10, got {len(names)}")
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    n_val = max(1, int(0.1 * len(names)))
    n_train = min(max(1, int(0.8 * len(names))), len(names) - n_val - 1)   # a test name left
    return (shuffled[:n_train], shuffled[n_train:n_train + n_val], shuffled[n_train + n_val:])


class NamesData(NamedTuple):
    """Names encoded for a language model: each split an (inputs, targets) pair, (N, T) each."""

    vocab: Vocabulary
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def load_names(directory: str | os.PathLike, *, seed: int = 0) -> NamesData:
    """``names.txt`` from ``directory``: the vocabulary of all its names and the seeded 80/10/10
    split, every split padded to the same length (the longest name + 1)."""
    names = read_names(Path(directory) / "names.txt")
    vocab = names_vocabulary(names)
    length = max(len(name) for name in names) + 1
    train, val, test = (encode_names(part, vocab, length=length)
                        for part in split_names(names, seed=seed))
    return NamesData(vocab, train, val, test)


def split_text(ids: np.ndarray, *, train_fraction: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """(the first ``train_fraction`` of ``ids``, the rest): training and validation, as views."""
    fraction = validate.real("split_text", "train_fraction", train_fraction, low=0, high=1,
                             low_open=True, high_open=True)
    cut = int(fraction * len(ids))
    return ids[:cut], ids[cut:]


def random_windows(ids: np.ndarray, block_size: int, count: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` windows of ``block_size`` ids at starts drawn from ``rng``: inputs
    ``ids[i:i+T]`` and targets ``ids[i+1:i+T+1]``, (count, T) each.

    >>> x, y = random_windows(np.arange(10), 3, 2, np.random.default_rng(0))
    >>> bool((y == x + 1).all()), x.shape
    (True, (2, 3))
    """
    block_size = validate.integer("random_windows", "block_size", block_size, low=1)
    count = validate.integer("random_windows", "count", count, low=1)
    if len(ids) < block_size + 1:
        raise ValueError(f"random_windows: {len(ids)} ids hold no window of block_size="
                         f"{block_size} with its next id; expected at least {block_size + 1}")
    starts = rng.integers(0, len(ids) - block_size, count)
    offsets = starts[:, None] + np.arange(block_size)
    return ids[offsets], ids[offsets + 1]


class TextData(NamedTuple):
    """A running text's vocabulary and ids, split into training (first 90%) and validation."""

    vocab: Vocabulary
    train: np.ndarray
    val: np.ndarray


def load_text(directory: str | os.PathLike, name: str = "input.txt") -> TextData:
    """``input.txt`` (tiny Shakespeare) from ``directory``: the vocabulary of its characters,
    the first 90% of its ids for training and the last 10% for validation."""
    text = read_text(Path(directory) / name)
    if len(text) < 2:
        raise ValueError(f"{Path(directory) / name}: expected a text, got {len(text)} characters")
    vocab = Vocabulary(set(text))
    return TextData(vocab, *split_text(vocab.encode(text)))

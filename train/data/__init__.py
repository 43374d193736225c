"""Data for training, one concern per module:

- ``toy``: problems made on the fly: ``spiral``, ``moons`` (classification), ``noisy_curve``
  (regression);
- ``batches``: ``batch_bounds`` and ``minibatches``;
- ``idx``: IDX files (``load_idx``) and the four files of MNIST or Fashion-MNIST (``load_mnist``);
- ``download``: the table of published data sets (``DATASETS``: files, URL, SHA-256, sizes) and
  the verified, bounded ``download`` of one (``download_file`` for any single file);
- ``text``: character-level text (names, tiny Shakespeare): a ``Vocabulary`` (encode/decode),
  names as per-name sequences with a start/end token and a seeded 80/10/10 split
  (``load_names``), running text as random windows over a 90/10 split (``load_text``); their
  files are entries of ``DATASETS``.

Everything is importable from ``handprop.train.data`` itself.
"""
from .batches import batch_bounds, minibatches
from .download import DATASETS, MAX_DOWNLOAD_BYTES, default_data_dir, download, download_file
from .idx import DEFLATE_MAX_RATIO, IDX_TYPES, MAX_IDX_BYTES, MNIST_FILES, load_idx, load_mnist
from .text import (
    IGNORE_INDEX,
    NamesData,
    TextData,
    Vocabulary,
    encode_names,
    load_names,
    load_text,
    names_vocabulary,
    random_windows,
    read_names,
    read_text,
    split_names,
    split_text,
)
from .toy import MAX_TOY_SAMPLES, moons, noisy_curve, spiral

__all__ = ["batch_bounds", "minibatches", "DATASETS", "MAX_DOWNLOAD_BYTES", "default_data_dir",
           "download", "download_file", "DEFLATE_MAX_RATIO", "IDX_TYPES", "MAX_IDX_BYTES",
           "MNIST_FILES", "load_idx", "load_mnist", "MAX_TOY_SAMPLES", "moons", "noisy_curve", "spiral",
           "IGNORE_INDEX", "NamesData", "TextData", "Vocabulary", "encode_names", "load_names",
           "load_text", "names_vocabulary", "random_windows", "read_names", "read_text",
           "split_names", "split_text"]

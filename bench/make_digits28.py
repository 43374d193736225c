"""Write scikit-learn's 8x8 digits as 28x28 MNIST-format IDX files, for the CNN accuracy check.

scikit-learn ships the 1,797 8x8 digits inside the package (``load_digits`` downloads
nothing). Each image (values 0..16) is upscaled to 28x28 by bilinear interpolation with pixel
centres aligned (the centre of target pixel i sits at (i + 0.5) * 8 / 28 - 0.5 in the source,
clamped to the edge), scaled to 0..255 and rounded to uint8. A stratified split, seeded,
keeps 450 images for the test files and 1,347 for the training files. The four files are
written gzipped under the names ``load_mnist`` looks for.

scikit-learn is not a dependency of handprop: run this with any python that has it, e.g.

    python -m venv /tmp/skl-venv && /tmp/skl-venv/bin/pip install scikit-learn
    /tmp/skl-venv/bin/python bench/make_digits28.py /tmp/digits28
    python -m handprop.train --dataset mnist --data-dir /tmp/digits28 --model cnn
"""
from __future__ import annotations

import argparse
import gzip
import struct
import sys
from pathlib import Path

import numpy as np


def upscale(images: np.ndarray, size: int) -> np.ndarray:
    """(N, h, w) -> (N, size, size), bilinear with pixel centres aligned."""
    n, h, w = images.shape

    def weights(src: int) -> np.ndarray:
        """(size, src): row i interpolates target pixel i from the source pixels."""
        pos = np.clip((np.arange(size) + 0.5) * src / size - 0.5, 0, src - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, src - 1)
        m = np.zeros((size, src))
        np.add.at(m, (np.arange(size), lo), 1 - (pos - lo))
        np.add.at(m, (np.arange(size), hi), pos - lo)
        return m

    return np.einsum("ih,nhw,jw->nij", weights(h), images, weights(w))


def idx_gz(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes: 00 00 08 ndim, each dimension as a big-endian uint32."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("directory", nargs="?", default="/tmp/digits28")
    p.add_argument("--test-size", type=int, default=450)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.rint(upscale(digits.images, args.size) * (255 / 16)).clip(0, 255).astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=args.test_size, stratify=labels, random_state=args.seed)
    out = Path(args.directory)
    out.mkdir(parents=True, exist_ok=True)
    for name, array in (("train-images-idx3-ubyte", train_x), ("train-labels-idx1-ubyte", train_y),
                        ("t10k-images-idx3-ubyte", test_x), ("t10k-labels-idx1-ubyte", test_y)):
        idx_gz(out / f"{name}.gz", array)
    print(f"{out}: {len(train_x)} training and {len(test_x)} test images of "
          f"{args.size}x{args.size}, uint8 0..255")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Everything the data can get wrong is said before epoch 1: samples of another shape in the
test split, samples that hold nothing, images too small for the cnn."""
import struct
from pathlib import Path

import numpy as np
import pytest

from handprop.train.cli import main


def write_idx(path: Path, array: np.ndarray) -> None:
    path.write_bytes(bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.astype(np.uint8).tobytes())


def image_files(directory: Path, train_shape: tuple, test_shape: tuple) -> Path:
    rng = np.random.default_rng(0)
    for split, shape in (("train", train_shape), ("t10k", test_shape)):
        write_idx(directory / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (20, *shape)))
        write_idx(directory / f"{split}-labels-idx1-ubyte", np.arange(20) % 10)
    return directory


def run(directory: Path, *flags: str) -> int:
    return main(["--dataset", "mnist", "--data-dir", str(directory), "--epochs", "1", "--no-progress",
                 "--hidden", "8", *flags])


@pytest.mark.parametrize("model, shown", [("mlp", "(25,) but the train samples (16,)"),
                                          ("cnn", "(1, 5, 5) but the train samples (1, 4, 4)")])
def test_test_images_of_another_size_are_refused_before_epoch_one(tmp_path, capsys, model, shown):
    flags = ["--model", model] + (["--hidden", "100,100"] if model == "cnn" else [])
    assert run(image_files(tmp_path, (4, 4), (5, 5)), *flags) == 1
    captured = capsys.readouterr()
    assert f"error: {tmp_path}: the test samples have shape {shown}; a model takes one shape" in captured.err
    assert "epoch=" not in captured.out and "Traceback" not in captured.err


@pytest.mark.parametrize("model, shown", [("mlp", "(0,)"), ("cnn", "(1, 4, 0)")])
def test_images_of_width_zero_are_refused_as_data_not_as_a_traceback(tmp_path, capsys, model, shown):
    flags = ["--model", model] + (["--hidden", "100,100"] if model == "cnn" else [])
    assert run(image_files(tmp_path, (4, 0), (4, 0)), *flags) == 1
    assert f"{tmp_path}: the samples have shape {shown}: they hold no values" in capsys.readouterr().err


def test_images_too_small_for_the_cnn_are_a_usage_error_before_building(tmp_path, capsys):
    assert run(image_files(tmp_path, (3, 3), (3, 3)), "--model", "cnn", "--hidden", "100,100") == 2
    captured = capsys.readouterr()
    assert (f"error: --model cnn on {tmp_path}: cnn: 2 poolings by 2 leave nothing of a 3x3 input; "
            f"expected height and width >= 4") in captured.err
    assert "Traceback" not in captured.err and "Conv2d" not in captured.out

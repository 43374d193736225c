"""Memory bounded before allocation: the widths the flags ask for and the input width the data
brings are held to MAX_MODEL_BYTES, estimated before any layer is built."""
import gzip
import struct

import numpy as np
import pytest

from handprop.layers import cnn, mlp
from handprop.train.cli import main, parser
from handprop.train.cli_registry import MAX_MODEL_BYTES, MODELS, estimated_bytes


def idx_gz(path, shape):
    header = bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    path.write_bytes(gzip.compress(header + bytes(int(np.prod(shape))), compresslevel=1))


def test_hidden_widths_past_the_memory_budget_are_a_usage_error_saying_the_size(capsys):
    assert MAX_MODEL_BYTES == 4 << 30
    assert main(["--hidden", "65536,65536", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert ("--model mlp on samples of shape (2,) (float32) would have 4,295,688,201 parameters, "
            "64.0 GiB with their gradients and optimizer state, and keep 2.5 GiB per batch of 1024: "
            "more than the 4 GiB a model may take (at most 268,435,456 float32 parameters); use fewer "
            "or narrower --hidden layers, or samples of fewer values") in captured.err
    assert "Linear" not in captured.out  # nothing was built


def test_the_input_width_from_the_data_is_held_to_the_same_budget(tmp_path, capsys):
    idx_gz(tmp_path / "train-images-idx3-ubyte.gz", (2, 1, 1 << 22))  # 4 MB of pixels: 4M inputs
    idx_gz(tmp_path / "t10k-images-idx3-ubyte.gz", (2, 1, 1 << 22))
    for split in ("train", "t10k"):
        idx_gz(tmp_path / f"{split}-labels-idx1-ubyte.gz", (2,))
    assert main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "--model mlp on samples of shape (4194304,) (float32) would have 419,442,030 parameters" in captured.err
    assert "Linear" not in captured.out


def test_a_big_batch_of_large_images_is_refused_for_what_it_keeps(capsys):
    args = parser().parse_args(["--model", "cnn", "--batch-size", "65536", "--dtype", "float64"])
    parameters, weights, batch = estimated_bytes(args, (1, 28, 28), 10)
    assert weights + batch > MAX_MODEL_BYTES and weights < 1 << 20  # the batch, not the weights


@pytest.mark.parametrize("argv, shape, build", [
    (["--hidden", "100,100"], (784,), lambda a: mlp(784, a.hidden, 10, dtype=np.float32)),
    (["--hidden", "64,32", "--norm", "layer"], (784,),
     lambda a: mlp(784, a.hidden, 10, norm="layer", dtype=np.float32)),
    (["--model", "cnn"], (1, 28, 28), lambda a: cnn((1, 28, 28), 10)),
    (["--model", "cnn", "--norm", "none"], (1, 12, 20), lambda a: cnn((1, 12, 20), 10, batchnorm=False)),
])
def test_the_parameter_estimate_is_an_upper_bound_within_a_few_percent(argv, shape, build):
    args = parser().parse_args(argv)
    estimate, _ = MODELS[args.model].size(args, shape, 10)
    actual = sum(p.size for p in build(args).params.values())
    assert actual <= estimate <= 1.02 * actual

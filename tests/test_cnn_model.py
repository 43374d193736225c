"""The small CNN: its factory, MNIST-format images kept as (N, 1, H, W), and --model cnn."""
import gzip
import re
import struct

import numpy as np
import pytest

from handprop.layers import cnn
from handprop.train import SGD
from handprop.train.__main__ import main
from handprop.train.data import load_mnist

SUMMARY = re.compile(r"^val_accuracy=(\d\.\d{3}) val_loss=\d+\.\d{3} train_accuracy=(\d\.\d{3}) "
                     r"train_loss=\d+\.\d{3} epochs=(\d+) seconds=\d+\.\d$")


def write_images(directory, height=12, width=16, n_train=64, n_test=32, seed=0):
    """Four gzipped IDX files of height x width images; class k (of 4) is a bright square in
    quadrant k over dim noise: learnable by a CNN in one short epoch."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 4
        images = rng.integers(0, 40, (n, height, width)).astype(np.uint8)
        for image, k in zip(images, labels):
            top, left = (k // 2) * height // 2, (k % 2) * width // 2
            image[top + 1: top + height // 2 - 1, left + 1: left + width // 2 - 1] = 255
        for name, array in ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte", labels)):
            header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            (directory / f"{name}.gz").write_bytes(gzip.compress(header + array.tobytes()))
    return directory


def test_load_mnist_keeps_images_for_a_cnn(tmp_path):
    directory = write_images(tmp_path / "img")
    flat = load_mnist(directory)
    images = load_mnist(directory, flatten=False)
    assert flat[0].shape == (64, 12 * 16) and images[0].shape == (64, 1, 12, 16)
    assert images[2].shape == (32, 1, 12, 16) and images[0].dtype == np.float32
    for a, b in zip(flat, images):  # the same numbers, only the shape differs
        np.testing.assert_array_equal(a.reshape(b.shape), b)


def test_load_mnist_cannot_keep_images_that_are_not_2d(tmp_path):
    directory = write_images(tmp_path / "img")
    array = np.zeros((64, 192), np.uint8)  # train images stored flat: (N, pixels)
    header = bytes([0, 0, 0x08, 2]) + struct.pack(">2I", *array.shape)
    (directory / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + array.tobytes()))
    assert load_mnist(directory)[0].shape == (64, 192)
    with pytest.raises(ValueError, match=r"expected train images of shape \(N, rows, cols\) to "
                                         r"keep as \(N, 1, rows, cols\), got \(64, 192\)"):
        load_mnist(directory, flatten=False)


def test_cli_cnn_needs_images(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--model", "cnn"])
    assert exc.value.code == 2
    assert "--model cnn needs images: add --dataset mnist or fashion-mnist" in capsys.readouterr().err


def test_cnn_factory_shapes_and_layers():
    model = cnn((1, 12, 16), 4, seed=3)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2 + ["Flatten", "Linear"]
    assert model[-1].params["W"].shape == (32 * 3 * 4, 4)  # 12x16 pooled twice is 3x4
    assert "b" not in model[0].params  # BatchNorm2d's beta does the bias's work
    assert model[0].params["W"].shape == (16, 1, 3, 3) and model[4].params["W"].shape == (32, 16, 3, 3)
    x = np.random.default_rng(0).standard_normal((2, 1, 12, 16)).astype(np.float32)
    out = model.forward(x)
    assert out.shape == (2, 4) and out.dtype == np.float32

    plain = cnn((3, 9, 9), 2, channels=(4,), activation="tanh", batchnorm=False, dtype=np.float64)
    assert [type(layer).__name__ for layer in plain] == ["Conv2d", "Tanh", "MaxPool2d", "Flatten", "Linear"]
    assert "b" in plain[0].params and plain[-1].params["W"].shape == (4 * 4 * 4, 2)
    assert plain[0].params["W"].dtype == np.float64


@pytest.mark.parametrize("kwargs,error,message", [
    ({"in_shape": (1, 3, 28)}, ValueError, r"cnn: 2 poolings by 2 leave nothing of a 3x28 input"),
    ({"in_shape": (28, 28)}, ValueError, r"cnn: expected in_shape as \(channels, height, width\)"),
    ({"n_classes": 0}, ValueError, r"cnn: expected n_classes >= 1, got 0"),
    ({"channels": (16, 2.5)}, TypeError, r"cnn: expected channels\[1\] to be an int, got 2.5"),
    ({"activation": "softplus"}, ValueError, r"cnn: expected activation as one of 'relu', 'tanh', "
                                             r"'gelu', 'leaky_relu', 'sigmoid', got 'softplus'"),
    ({"activation": None}, TypeError, r"cnn: expected activation as one of 'relu'"),
    ({"in_shape": 28}, TypeError, r"cnn: expected in_shape as \(channels, height, width\), got 28"),
    ({"batchnorm": 1}, TypeError, r"cnn: expected batchnorm to be True or False, got 1"),
    ({"dtype": np.int32}, TypeError, r"cnn: expected a floating-point dtype, got int32"),
])
def test_cnn_factory_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        cnn(**kwargs)


def test_cli_trains_a_cnn_on_images_of_any_size(tmp_path, capsys, monkeypatch):
    directory = write_images(tmp_path / "img")
    rates, init = [], SGD.__init__

    def recording_init(self, model, lr, **options):  # however the CLI reaches SGD
        rates.append(lr)
        init(self, model, lr, **options)
    monkeypatch.setattr(SGD, "__init__", recording_init)
    assert main(["--dataset", "mnist", "--data-dir", str(directory), "--model", "cnn",
                 "--epochs", "1", "--batch-size", "8", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    table = "\n".join(out)
    assert out[0].split() == ["#", "layer", "params"]
    assert [line.split()[1].split("(")[0] for line in out[1:11]] == (
        ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2 + ["Flatten", "Linear"])
    # 32 channels x 3 x 4 after two poolings of 12x16; --dataset mnist has its 10 classes,
    # whichever of them the files' labels use
    assert "Linear(384, 10)" in table
    total = 16 * 9 + 2 * 16 + 32 * 16 * 9 + 2 * 32 + 384 * 10 + 10
    assert out[11].split() == ["total", f"{total:,}"]
    match = SUMMARY.match(out[-1])
    assert match and match.group(3) == "1"
    assert float(match.group(1)) >= 0.9  # a bright quadrant: one epoch of 8 steps learns it
    assert rates == [0.01]  # the MLP's default of 0.1 makes this CNN diverge on 8x8 digits


@pytest.mark.parametrize("flags,named", [
    (["--dropout", "0.2"], "--dropout"), (["--norm", "layer"], "--norm layer"),
    (["--hidden", "8"], "--hidden")])
def test_cli_mlp_only_flags_with_a_cnn_are_usage_errors(flags, named, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--model", "cnn", *flags])
    assert exc.value.code == 2
    assert f"{named} go with --model mlp" in capsys.readouterr().err

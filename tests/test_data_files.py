"""IDX/MNIST files and their download, against a loopback HTTP server the test runs itself."""
import functools
import gzip
import hashlib
import http.server
import re
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from handprop.train.__main__ import main
from handprop.train.data import MNIST_FILES, download, load_idx, load_mnist

CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
         np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array):
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, CODES[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def write_idx(path, array, gz=False):
    data = idx_bytes(array)
    Path(path).write_bytes(gzip.compress(data) if gz else data)
    return Path(path)


def make_mnist(directory, n_train=300, n_test=100, gz=True, seed=0):
    """Four MNIST-format files of 28x28 images whose class is where a bright bar sits."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label + 4, 4:24] = 255
        suffix = ".gz" if gz else ""
        write_idx(directory / f"{split}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", labels, gz)
    return directory


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, dtype, gz):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    loaded = load_idx(write_idx(tmp_path / "a.idx", array, gz))
    assert loaded.shape == (2, 3, 4) and loaded.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(loaded, array)
    assert loaded.flags.writeable


@pytest.mark.parametrize("damage,message", [
    (lambda b: b"\x08\x03" + b[2:], r"not an IDX file: expected a magic number 00 00 TT DD .* got 08 03 08 03"),
    (lambda b: b[:2] + b"\x07" + b[3:], r"not an IDX file"),
    (lambda b: b"", r"not an IDX file: .* got an empty file"),
    (lambda b: b[:-5], r"the header promises \(2, 3, 4\) of uint8, 24 bytes of data, but the file "
                       r"holds 19 \(truncated\)"),
    (lambda b: b + b"xx", r"the header promises \(2, 3, 4\) of uint8, 24 bytes of data, but the file holds 26$"),
    (lambda b: b[:9], r"truncated: the header names 3 dimensions but the file ends after 9 bytes"),
    (lambda b: gzip.compress(b)[:-12], r"a broken or truncated gzip file"),
])
def test_broken_idx_files_name_the_file(tmp_path, damage, message):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(damage(idx_bytes(np.zeros((2, 3, 4), np.uint8))))
    with pytest.raises(ValueError, match=rf"^{path}: {message}"):
        load_idx(path)


def test_load_mnist(tmp_path):
    directory = make_mnist(tmp_path / "mnist", gz=False)
    gzip_one = directory / "t10k-labels-idx1-ubyte"
    (directory / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(gzip_one.read_bytes()))
    gzip_one.unlink()  # raw and .gz files mix freely
    X, y, X_test, y_test = load_mnist(directory)
    assert X.shape == (300, 784) and X_test.shape == (100, 784)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert 0 <= X.min() and X.max() == 1.0
    assert set(np.unique(y)) <= set(range(10))


def test_load_mnist_says_what_is_missing_or_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no train-images-idx3-ubyte \(or train-images-idx3-ubyte.gz\)"):
        load_mnist(tmp_path)
    directory = make_mnist(tmp_path / "m")
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", np.zeros(99, np.uint8), gz=True)
    with pytest.raises(ValueError, match=r"t10k images of shape \(100, 28, 28\) do not match labels of shape \(99,\)"):
        load_mnist(directory)


def test_cli_trains_on_mnist_format_files(tmp_path, capsys):
    directory = make_mnist(tmp_path / "mnist")
    assert main(["--dataset", "mnist", "--data-dir", str(directory), "--epochs", "3",
                 "--hidden", "32", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Linear(784, 32, bias=False)" in out and "Linear(32, 10)" in out  # sizes from the data
    accuracy = float(out.splitlines()[-1].split()[0].split("=")[1])
    assert accuracy > 0.9


def test_cli_missing_data_mentions_download(tmp_path, capsys):
    assert main(["--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "no train-images-idx3-ubyte" in err and "add --download to fetch fashion-mnist" in err


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served; yields (base_url, directory, log)."""
    served = tmp_path / "served"
    served.mkdir()
    log = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            log.append(self.path)

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served, log
    httpd.shutdown()
    httpd.server_close()


def checksums(directory):
    return {f"{name}.gz": hashlib.sha256((directory / f"{name}.gz").read_bytes()).hexdigest()
            for name in MNIST_FILES}


def test_download_verifies_and_writes_each_file(server, tmp_path):
    base_url, served, log = server
    make_mnist(served)
    target = tmp_path / "cache"
    assert download("mnist", target, base_url=base_url, sha256=checksums(served), progress=False) == target
    for name in MNIST_FILES:
        assert (target / f"{name}.gz").read_bytes() == (served / f"{name}.gz").read_bytes()
    assert len(load_mnist(target)[0]) == 300
    assert len(log) == 4
    download("mnist", target, base_url=base_url, sha256=checksums(served), progress=False)
    assert len(log) == 4  # verified files are not fetched again
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)


def test_a_checksum_mismatch_deletes_the_file_and_says_so(server, tmp_path):
    base_url, served, _ = server
    make_mnist(served)
    sums = checksums(served)
    sums["train-labels-idx1-ubyte.gz"] = "0" * 64
    target = tmp_path / "cache"
    (target).mkdir()
    (target / "train-labels-idx1-ubyte.gz").write_bytes(b"an earlier, damaged download")
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz has SHA-256 [0-9a-f]{64}, not "
                                         r"the published 0{64}; the bad file was deleted"):
        download("mnist", target, base_url=base_url, sha256=sums, progress=False)
    assert sorted(p.name for p in target.iterdir()) == ["train-images-idx3-ubyte.gz"]  # no temp files


def test_cli_download_checks_the_published_checksums(server, tmp_path, capsys):
    base_url, served, _ = server
    make_mnist(served)  # our own files: they cannot match MNIST's published checksums
    target = tmp_path / "cache"
    assert main(["--dataset", "mnist", "--download", "--base-url", base_url,
                 "--data-dir", str(target), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "not the published 440fcabf" in err and "the bad file was deleted" in err
    assert list(target.iterdir()) == []


def test_download_of_a_missing_file_fails_cleanly(server, tmp_path):
    base_url, _, _ = server
    with pytest.raises(OSError, match="404"):
        download("mnist", tmp_path / "c", base_url=base_url, progress=False)
    assert list((tmp_path / "c").iterdir()) == []


@pytest.mark.parametrize("bad, shown", [(2.5, "2.5"), (np.nan, "nan"), (np.inf, "inf"), (1e300, "1e+300")])
def test_float_labels_must_be_whole_numbers_and_are_never_truncated(tmp_path, bad, shown):
    directory = make_mnist(tmp_path / "m", gz=False)
    labels = np.arange(100, dtype=">f8") % 10
    write_idx(directory / "t10k-labels-idx1-ubyte", labels)
    assert (load_mnist(directory)[3] == np.arange(100) % 10).all()  # whole floats are labels
    labels[7] = bad
    write_idx(directory / "t10k-labels-idx1-ubyte", labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning on the way
        with pytest.raises(ValueError, match=rf"t10k-labels-idx1-ubyte: expected whole-number class "
                                             rf"labels, got {re.escape(shown)} at position 7 \(1 such labels\)"):
            load_mnist(directory)


def test_the_cli_refuses_a_fractional_label_before_training(tmp_path, capsys):
    directory = make_mnist(tmp_path / "m", gz=False)
    labels = np.arange(300, dtype=">f4") % 10
    labels[3] = 2.5
    write_idx(directory / "train-labels-idx1-ubyte", labels)
    assert main(["--dataset", "mnist", "--data-dir", str(directory), "--epochs", "1", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "got 2.5 at position 3" in captured.err and "epoch=" not in captured.out


def test_the_size_cap_holds_the_converted_float32_copy_not_just_the_file(tmp_path):
    directory = make_mnist(tmp_path / "m", gz=False)  # 300 images of 784 bytes: 940,800 as float32
    X = load_mnist(directory, max_bytes=300 * 784 * 4)[0]
    assert X.nbytes == 300 * 784 * 4
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: the header promises \(300, 28, 28\) "
                                         r"of uint8, 940800 bytes as float32, more than max_bytes=940799"):
        load_mnist(directory, max_bytes=300 * 784 * 4 - 1)  # the uint8 file (235,200 bytes) fits
    for split in ("train", "t10k"):  # images of one pixel: 1200 bytes as float32, labels 2400 as int64
        write_idx(directory / f"{split}-images-idx3-ubyte", np.zeros((300, 1, 1), np.uint8))
        write_idx(directory / f"{split}-labels-idx1-ubyte", np.zeros(300, np.uint8))
        (directory / f"{split}-images-idx3-ubyte.gz").unlink(missing_ok=True)
        (directory / f"{split}-labels-idx1-ubyte.gz").unlink(missing_ok=True)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: .* 2400 bytes as int64, more than "
                                         r"max_bytes=2399"):
        load_mnist(directory, max_bytes=2399)

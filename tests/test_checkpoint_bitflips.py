"""A damaged checkpoint is a ValueError naming the file, whatever byte is damaged: a flipped bit
anywhere in the zip's central directory, or in a sample of the rest of the file."""
import numpy as np
import pytest

from handprop.layers import Linear
from handprop.train import SGD
from handprop.train.checkpoint import load, save


def small_checkpoint(path):
    model = Linear(2, 2, rng=0)
    save(path, model, SGD(model, lr=0.1, momentum=0.9), epoch=1)
    return path.read_bytes()


def outcomes(tmp_path, flips):
    """Load the checkpoint with each (byte, bit) flipped; the set of outcomes, where
    "loaded" and "ValueError naming the file" are the two allowed ones."""
    good = small_checkpoint(tmp_path / "good.npz")
    bad, seen = tmp_path / "flipped.npz", {}
    for byte, bit in flips(len(good), good.find(b"PK\x01\x02")):
        data = bytearray(good)
        data[byte] ^= 1 << bit
        bad.write_bytes(bytes(data))
        model = Linear(2, 2, rng=0)
        try:
            load(bad, model, SGD(model, lr=0.1, momentum=0.9))
            outcome = "loaded"
        except ValueError as err:
            outcome = "ValueError naming the file" if str(err).startswith(str(bad)) else repr(err)
        except Exception as err:  # noqa: BLE001 - what the test is about
            outcome = f"{type(err).__name__}: {err}"
        seen.setdefault(outcome, (byte, bit))
    return seen


def test_every_byte_of_the_central_directory_flipped_is_a_value_error_naming_the_file(tmp_path):
    # bit 6 of byte 6 of an entry's central header is its "version needed" field: a
    # NotImplementedError from zipfile before; two bits per byte keeps the sweep fast
    seen = outcomes(tmp_path, lambda size, start: [(i, bit) for i in range(start, size)
                                                    for bit in {6, i % 8}])
    assert set(seen) <= {"loaded", "ValueError naming the file"}, seen


def test_a_sample_of_flipped_bits_elsewhere_is_a_value_error_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    seen = outcomes(tmp_path, lambda size, start: zip(rng.integers(0, start, 100),
                                                       rng.integers(0, 8, 100)))
    assert set(seen) <= {"loaded", "ValueError naming the file"}, seen


@pytest.mark.slow
def test_every_bit_of_the_file_flipped_is_a_value_error_naming_the_file(tmp_path):
    seen = outcomes(tmp_path, lambda size, start: [(i, bit) for i in range(size) for bit in range(8)])
    assert set(seen) <= {"loaded", "ValueError naming the file"}, seen

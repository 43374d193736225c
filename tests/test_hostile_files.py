"""Hostile files: every loader checks what a file declares before it allocates or inflates.

The files are made here, each under 5 MB on disk, and loaded in one child process under an
address-space limit (RLIMIT_AS) this test chooses: a loader that trusts a declared size fails
the test with a MemoryError instead of taking the machine down.
"""
import gzip
import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from handprop.layers import mlp
from handprop.train import SGD
from handprop.train.checkpoint import save

resource = pytest.importorskip("resource")  # POSIX: the limit is what makes the test safe

LIMIT = 640 << 20   # address space of the child: numpy and handprop need about 160 MB


def npy_header(shape, descr="<f4") -> bytes:
    """The .npy header (format 1.0) declaring ``shape`` of ``descr``, without any data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False,
                                                  "shape": tuple(shape)})
    return buffer.getvalue()


def zeros_deflated(prefix: bytes, mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``prefix`` then 64 KiB + ``mib`` MiB of zeros, built in
    milliseconds: one compressed MiB of zeros, cut at a sync flush, repeats verbatim (its
    back references only reach zeros). Returns (compressed, inflated size)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix + bytes(1 << 16)) + c.flush(zlib.Z_SYNC_FLUSH)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_SYNC_FLUSH)
    return head + block * mib + c.flush(), len(prefix) + (1 << 16) + (mib << 20)


def write_zip(path: Path, entries) -> Path:
    """A zip archive of (name, method, stored bytes, inflated size) entries, written by hand
    so that an entry can hold a pre-built deflate stream; CRCs are left 0 (never reached)."""
    body, central = bytearray(), bytearray()
    for name, method, data, size in entries:
        offset, raw = len(body), name.encode()
        crc = zlib.crc32(data) if method == 0 else 0
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(data),
                            size, len(raw), 0) + raw + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc,
                               len(data), size, len(raw), 0, 0, 0, 0, 0, offset) + raw
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central),
                      len(body), 0)
    path.write_bytes(bytes(body + central + end))
    return path


def stored(name: str, array: np.ndarray):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return (f"{name}.npy", 0, buffer.getvalue(), len(buffer.getvalue()))


def good_entries(model, opt, extra=None):
    """The entries of a genuine checkpoint of (model, opt), to mix a hostile one into."""
    from handprop.train.checkpoint import split_state
    meta = {"format": "handprop-checkpoint", "version": 2, "extra": extra or {}}
    settings, arrays = split_state(opt.state_dict())
    meta["optimizer"] = {"class": "SGD", "state": settings}
    entries = {f"model/{k}": v for k, v in model.state_dict().items()}
    entries.update({f"optimizer/{k}": v for k, v in arrays.items()})
    entries["meta"] = np.array(json.dumps(meta))
    return {k: stored(k, v) for k, v in entries.items()}


BOMB_FLOATS = ((1 << 16) + (1023 << 20)) // 8     # 1 GiB of float64 zeros


def bomb(name: str):
    """An entry whose .npy header declares BOMB_FLOATS float64 values and whose deflated data
    (about 1 MB) inflates to exactly that."""
    header = npy_header((BOMB_FLOATS,), "<f8")
    data, size = zeros_deflated(header, 1023)
    assert size == len(header) + 8 * BOMB_FLOATS
    return (f"{name}.npy", 8, data, size)


def gzip_bomb(idx_header: bytes, mib: int) -> bytes:
    """A gzip file: an IDX header, then ``mib`` MiB of zeros (and a wrong CRC, never reached)."""
    data, size = zeros_deflated(idx_header, mib)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + data + struct.pack("<2L", 0, size & 0xFFFFFFFF)


CHILD = """
import json, sys, time
from handprop.train import SGD
from handprop.layers import mlp
from handprop.train.checkpoint import load
from handprop.train.data import load_idx
outcomes = {}
for name, path in json.loads(sys.argv[1]).items():
    model = mlp(2, [8], 3)
    started = time.perf_counter()
    try:
        if name == "trusting":  # what a loader that believed a declared size would do
            import numpy as np
            np.ones(1 << 30, np.uint8)
        elif name.startswith("idx"):
            load_idx(path)
        else:
            load(path, model, SGD(model, lr=0.1, momentum=0.9))
        outcome = "loaded"
    except BaseException as err:
        outcome = f"{type(err).__name__}: {err}"
    outcomes[name] = [outcome, time.perf_counter() - started]
print(json.dumps(outcomes))
"""


def limited(rlimit):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (rlimit, rlimit))
    return apply


def test_hostile_files_are_refused_before_anything_large_is_allocated(tmp_path):
    model = mlp(2, [8], 3)
    opt = SGD(model, lr=0.1, momentum=0.9)
    good = good_entries(model, opt)
    files = {}

    def checkpoint(name, **replace):
        entries = {**good, **replace}
        files[name] = write_zip(tmp_path / f"{name}.npz", [e for e in entries.values() if e])

    # a 2^40-float header, a few hundred bytes of file (numpy would allocate 4 TiB)
    checkpoint("tebibytes", **{"model/0.W": ("model/0.W.npy", 0, npy_header((1 << 20, 1 << 20)),
                                             len(npy_header((1 << 20, 1 << 20))))})
    # headers declaring 1 GiB, the archive agreeing, the data missing: a header is believed
    # only as far as the model allows
    gib_floats = npy_header((1 << 27,), "<f8")
    checkpoint("optimizer_gibibyte", **{"optimizer/momentum_buffers/0.W": (
        "optimizer/momentum_buffers/0.W.npy", 0, gib_floats, len(gib_floats) + (1 << 30))})
    gib_text = npy_header((), "<U268435456")
    checkpoint("meta_gibibyte", meta=("meta.npy", 0, gib_text, len(gib_text) + (1 << 30)))
    # deflate bombs of 1 GiB in about 1 MB: an entry the model does not have, and a known name
    # whose header declares 1 GiB
    checkpoint("bomb_unknown_entry", **{"model/junk": bomb("model/junk")})
    checkpoint("bomb_known_entry", **{"model/0.W": bomb("model/0.W")})
    # IDX: a sparse 20 GB raw file; a 1 MB gzip file declaring 10 bytes but inflating to 1 GiB;
    # one inflating to 1 GiB and declaring 2^40 bytes
    raw = tmp_path / "sparse-idx1-ubyte"
    with open(raw, "wb") as f:
        f.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 10))
        f.truncate(20 * 10**9)
    files["idx_sparse_20GB"] = raw
    files["idx_gzip_bomb"] = tmp_path / "bomb-idx1-ubyte.gz"
    files["idx_gzip_bomb"].write_bytes(gzip_bomb(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 10), 1024))
    files["idx_gzip_declares_tebibyte"] = tmp_path / "huge-idx2-ubyte.gz"
    files["idx_gzip_declares_tebibyte"].write_bytes(
        gzip_bomb(bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 1 << 20, 1 << 20), 1024))
    files["genuine_by_hand"] = write_zip(tmp_path / "genuine.npz", list(good.values()))
    save(tmp_path / "saved.npz", model, opt)
    files["genuine_saved"] = tmp_path / "saved.npz"
    files["trusting"] = tmp_path
    for path in files.values():
        assert os.stat(path).st_blocks * 512 < 5e6, path  # small on disk, sparse file included

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps({k: str(v) for k, v in files.items()})],
                          capture_output=True, text=True, timeout=120, env=env, preexec_fn=limited(LIMIT))
    assert done.returncode == 0, done.stderr
    outcomes = json.loads(done.stdout)
    expected = {
        "tebibytes": r"refused: entry 'model/0.W.npy' declares \(1048576, 1048576\) of float32, "
                     r"4398046511232 bytes with its header, but the archive says it holds 128",
        "optimizer_gibibyte": r"refused: entry 'optimizer/momentum_buffers/0.W' declares \(134217728,\) "
                              r"of float64, more than an optimizer of this model holds",
        "meta_gibibyte": r"its meta entry is \(\) of <U268435456, not a JSON string of at most 67108864 bytes",
        "bomb_unknown_entry": r"does not match the model's params and buffers: unexpected junk",
        "bomb_known_entry": rf"0.W has shape \({BOMB_FLOATS},\) in .* but \(2, 8\) in the model",
        "idx_sparse_20GB": r"the header promises \(10,\) of uint8, 10 bytes of data, but the file holds 19999999992$",
        "idx_gzip_bomb": r"the header promises \(10,\) of uint8, 10 bytes of data, but the file holds more",
        "idx_gzip_declares_tebibyte": r"1099511627776 bytes of data, more than a gzip file of \d+ bytes can hold",
    }
    assert outcomes["genuine_by_hand"][0] == outcomes["genuine_saved"][0] == "loaded"
    assert outcomes["trusting"][0].startswith("MemoryError")  # the limit catches a trusting loader
    for name, pattern in expected.items():
        outcome, seconds = outcomes[name]
        assert outcome.startswith("ValueError: ") and re.search(pattern, outcome), (name, outcome)
        assert str(files[name]) in outcome, (name, outcome)  # the message names the file
        assert seconds < 5, (name, seconds)  # nothing inflated or read whole


def test_gzip_idx_inflates_only_what_the_header_declares(tmp_path):
    """In process, for the record: the bomb above stops after the 10 declared bytes plus one."""
    from handprop.train.data import load_idx
    path = tmp_path / "small-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 3) + b"\x01\x02\x03"))
    assert load_idx(path).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match=r"more than max_bytes=2"):
        load_idx(path, max_bytes=2)

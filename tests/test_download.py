"""Downloads that are bounded (size, time), say what went wrong with the URL, leave nothing
behind, and never lose to a stale file: against a loopback server on 127.0.0.1 only."""
import gzip
import hashlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from handprop.train import data
from handprop.train.data import MNIST_FILES, download, load_mnist

NAME = "train-images-idx3-ubyte.gz"


@pytest.fixture
def server():
    """A loopback HTTP server; ``routes[path]`` is a function(handler) that answers."""
    routes = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            try:
                routes[self.path.lstrip("/")](self)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up, as it should

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", routes
    httpd.shutdown()
    httpd.server_close()


def endless(handler):
    handler.send_response(200)
    handler.end_headers()  # no Content-Length: the body ends when the server says so
    while True:
        handler.wfile.write(b"\0" * 65536)


def promising(length, sent, delay=0.0):
    def answer(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(length))
        handler.end_headers()
        for _ in range(sent):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(delay)
    return answer


def fetch(url, tmp_path, **options):
    return download("mnist", tmp_path / "d", base_url=url, sha256={NAME: "0" * 64}, progress=False, **options)


def test_an_endless_body_is_cut_off_at_the_size_cap(server, tmp_path):
    url, routes = server
    routes[NAME] = endless
    started = time.monotonic()
    with pytest.raises(ValueError, match=rf"download: {url}{NAME} sent more than the published size "
                                         rf"\(100000 bytes\); stopped; the partial file was deleted"):
        fetch(url, tmp_path, max_bytes={NAME: 100_000})
    assert time.monotonic() - started < 10
    assert os.listdir(tmp_path / "d") == []


def test_a_declared_length_above_the_cap_is_refused_unread(server, tmp_path):
    url, routes = server
    routes[NAME] = promising(10**12, 0)
    with pytest.raises(ValueError, match=rf"{NAME} is 1000000000000 bytes, more than the published size "
                                         rf"\(100000 bytes\); refused"):
        fetch(url, tmp_path, max_bytes={NAME: 100_000})
    assert os.listdir(tmp_path / "d") == []


def test_the_published_sizes_cap_the_published_files(server, tmp_path, monkeypatch):
    url, routes = server
    routes[NAME] = endless
    assert data.DATASETS["mnist"]["max_bytes"][NAME] == 9_912_422
    monkeypatch.setitem(data.DATASETS["mnist"]["max_bytes"], NAME, 50_000)
    with pytest.raises(ValueError, match=r"sent more than the published size \(50000 bytes\)"):
        download("mnist", tmp_path / "d", base_url=url, progress=False)


def test_truncation_is_reported_as_truncation_with_the_url(server, tmp_path):
    url, routes = server
    routes[NAME] = promising(5000, 2000)
    with pytest.raises(ValueError, match=rf"download: {url}{NAME} was truncated: 2000 of 5000 bytes "
                                         rf"arrived; the partial file was deleted"):
        fetch(url, tmp_path)
    assert os.listdir(tmp_path / "d") == []


def test_a_trickling_server_meets_the_overall_deadline(server, tmp_path):
    url, routes = server
    routes[NAME] = promising(10**6, 10**6, delay=0.01)  # each byte in time, the file never
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=rf"download: {url}{NAME} did not finish within the 0.5 s "
                                           rf"deadline \(\d+ bytes arrived\); the partial file was deleted"):
        fetch(url, tmp_path, deadline=0.5, timeout=5)
    assert time.monotonic() - started < 3
    assert os.listdir(tmp_path / "d") == []


def idx_gz(array: np.ndarray) -> bytes:
    dims = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(bytes([0, 0, 0x08, array.ndim]) + dims + array.astype(np.uint8).tobytes())


def test_verified_files_are_preferred_over_a_stale_raw_file(server, tmp_path):
    url, routes = server
    rng = np.random.default_rng(0)
    served = {f"{split}-images-idx3-ubyte.gz": idx_gz(rng.integers(0, 255, (n, 2, 2))) for split, n in
              (("train", 6), ("t10k", 3))}
    served |= {f"{split}-labels-idx1-ubyte.gz": idx_gz(np.arange(n) % 3) for split, n in (("train", 6), ("t10k", 3))}
    for name, body in served.items():
        routes[name] = lambda handler, body=body: (handler.send_response(200),
                                                   handler.send_header("Content-Length", str(len(body))),
                                                   handler.end_headers(), handler.wfile.write(body))
    directory = tmp_path / "d"
    directory.mkdir()
    stale = gzip.decompress(idx_gz(np.full(6, 7)))  # an old unpacked copy: every label 7
    (directory / "train-labels-idx1-ubyte").write_bytes(stale)
    sums = {name: hashlib.sha256(body).hexdigest() for name, body in served.items()}
    download("mnist", directory, base_url=url, sha256=sums, progress=False)
    X, y, X_test, y_test = load_mnist(directory)
    assert y.tolist() == [0, 1, 2, 0, 1, 2]  # the verified .gz file, not the stale raw one
    assert sorted(os.listdir(directory)) == sorted([*served, "train-labels-idx1-ubyte"])
    assert set(served) == {f"{n}.gz" for n in MNIST_FILES}


DOWNLOADING = """
import sys
from handprop.train.__main__ import main
sys.exit(main(["--dataset", "mnist", "--download", "--base-url", sys.argv[1], "--data-dir", sys.argv[2],
               "--no-progress"]))
"""


def test_sigterm_during_a_download_leaves_no_temporary_file(server, tmp_path):
    url, routes = server
    routes[NAME] = promising(10**6, 10**6, delay=0.005)
    directory = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-c", DOWNLOADING, url, str(directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and not (
            directory.is_dir() and any(p.name.endswith(".tmp") for p in directory.iterdir())):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip() == "terminated (SIGTERM); nothing was saved (--checkpoint PATH keeps each finished epoch)"
    assert os.listdir(directory) == []


def answering(code, **headers):
    def answer(handler):
        handler.send_response(code)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


def hanging_up(handler):
    handler.close_connection = True  # no status line at all: the server closes the connection


def closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.parametrize("failure,words", [
    ("refused", "could not connect"),
    ("404", "the server answered HTTP 404"),
    ("closed", "the connection was closed before the file arrived"),
    ("redirect loop", "a redirect that was not followed (HTTP 302)"),
    ("redirect to file://", "a redirect that was not followed (HTTP 302)"),
])
def test_every_network_failure_names_the_url(server, tmp_path, failure, words):
    url, routes = server
    if failure == "refused":
        url = f"http://127.0.0.1:{closed_port()}/"
    routes[NAME] = {"404": answering(404), "closed": hanging_up,
                    "redirect loop": answering(302, Location=f"{url}{NAME}"),
                    "redirect to file://": answering(302, Location="file:///etc/passwd")}.get(failure)
    with pytest.raises(OSError) as err:
        fetch(url, tmp_path)
    assert str(err.value).startswith(f"download: {url}{NAME}: {words}"), str(err.value)
    assert os.listdir(tmp_path / "d") == []


@pytest.mark.parametrize("call,error,message", [
    (lambda d: download("cifar", d), ValueError, "download: expected dataset as one of 'mnist', 'fashion-mnist'"),
    (lambda d: download("mnist", d, timeout=0), ValueError, "download: expected timeout > 0, got 0"),
    (lambda d: download("mnist", d, deadline=True), TypeError, "download: expected deadline as a real number"),
    (lambda d: data.download_file("http://127.0.0.1:9/x", d / "x", "0" * 64, max_bytes=-1), ValueError,
     "download_file: expected max_bytes >= 0, got -1"),
    (lambda d: data.load_idx(d / "x", max_bytes=1.5), TypeError, "load_idx: expected max_bytes to be an int"),
])
def test_download_arguments_are_checked_before_anything_is_fetched(call, error, message, tmp_path):
    with pytest.raises(error, match=message):
        call(tmp_path)
    assert os.listdir(tmp_path) == []

"""char_lm: Embedding -> RNN/LSTM/GRU -> Linear, ids (N, T) to logits (N, T, V); trained with
fit on per-position targets and ignored padding."""
import numpy as np
import pytest

from handprop.layers import GRU, LSTM, RNN, Embedding, Linear, char_lm
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import Adam, evaluate, fit
from handprop.train.checkpoint import read_extra
from handprop.train.cli import main, parser


@pytest.mark.parametrize("cell, recurrent", [("lstm", LSTM), ("rnn", RNN), ("gru", GRU)])
def test_char_lm_is_an_embedding_a_recurrent_layer_and_a_linear(cell, recurrent):
    model = char_lm(11, cell=cell, embedding_dim=5, hidden_size=7)
    assert [type(layer) for layer in model] == [Embedding, recurrent, Linear]
    assert (model[0].num_embeddings, model[0].embedding_dim) == (11, 5)
    assert (model[1].input_size, model[1].hidden_size) == (5, 7)
    assert model[2].params["W"].shape == (7, 11) and model.takes_ids
    logits = model.forward(np.zeros((3, 4), dtype=np.int64))
    assert logits.shape == (3, 4, 11) and logits.dtype == np.float32


def test_defaults_are_makemores_sizes_and_float64_is_there_for_checking():
    model = char_lm(27)
    assert repr(model) == "Sequential(Embedding(27, 64), LSTM(64, 128), Linear(128, 27))"
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert all(p.dtype == np.float64 for p in char_lm(5, dtype=np.float64).params.values())


def test_a_position_sees_only_the_ids_up_to_it():
    model = char_lm(6, cell="gru", embedding_dim=4, hidden_size=5, dtype=np.float64)
    ids = np.random.default_rng(0).integers(0, 6, (2, 8))
    changed = ids.copy()
    changed[:, 5:] = (changed[:, 5:] + 1) % 6
    a, b = model.forward(ids), model.forward(changed)
    np.testing.assert_array_equal(a[:, :5], b[:, :5])
    assert not np.allclose(a[:, 5:], b[:, 5:])


def test_layer_i_draws_its_weights_from_seed_plus_i():
    model = char_lm(7, cell="rnn", embedding_dim=5, hidden_size=6, seed=3)
    for name, value in Embedding(7, 5, rng=3).params.items():
        np.testing.assert_array_equal(model.params[f"0.{name}"], value)
    for name, value in RNN(5, 6, rng=4).params.items():
        np.testing.assert_array_equal(model.params[f"1.{name}"], value)
    for name, value in Linear(6, 7, rng=5).params.items():
        np.testing.assert_array_equal(model.params[f"2.{name}"], value)


@pytest.mark.parametrize("options, error, message", [
    ({"cell": "transformer"}, ValueError, "char_lm: expected cell as one of 'rnn', 'lstm', 'gru'"),
    ({"hidden_size": 0}, ValueError, "char_lm: expected hidden_size >= 1, got 0"),
    ({"embedding_dim": 2.0}, TypeError, "char_lm: expected embedding_dim to be an int"),
    ({"dtype": np.int32}, TypeError, "char_lm: expected a floating-point dtype"),
])
def test_bad_options_name_char_lm(options, error, message):
    with pytest.raises(error, match=message):
        char_lm(5, **options)


def test_the_backward_pass_matches_finite_differences_through_all_three_layers():
    model = char_lm(5, cell="lstm", embedding_dim=3, hidden_size=4, dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, (2, 4))
    targets = rng.integers(0, 5, (2, 4))
    targets[1, 2:] = -100                                # ignored padding
    loss_fn = SoftmaxCrossEntropy()

    def loss():
        return loss_fn.forward(model.forward(ids), targets)
    loss()
    model.param_backward(loss_fn.backward())
    for name in ("0.W", "1.W_hh", "1.b_ih", "2.W"):
        p, analytic = model.params[name], model.grads[name].copy()
        index = tuple(rng.integers(0, s) for s in p.shape)
        if name == "0.W":
            index = (int(ids[0, 0]), 1)                  # a row that was looked up
        saved = p[index]
        p[index] = saved + 1e-6
        up = loss()
        p[index] = saved - 1e-6
        down = loss()
        p[index] = saved
        assert abs((up - down) / 2e-6 - analytic[index]) < 1e-7, name


def test_fit_teaches_it_a_repeating_text():
    text = np.array([0, 1, 2, 3] * 40)
    X = np.stack([text[i:i + 8] for i in range(0, 150, 3)])
    Y = np.stack([text[i + 1:i + 9] for i in range(0, 150, 3)])
    model = char_lm(4, embedding_dim=8, hidden_size=16)
    loss_fn = SoftmaxCrossEntropy()
    fit(model, loss_fn, Adam(model, lr=0.02), X, Y, epochs=15, batch_size=10, progress=False)
    scores = evaluate(model, loss_fn, X, Y)
    assert scores["loss"] < 0.05 and scores["accuracy"] == 1.0


# --- the command line: python -m handprop.train --dataset names --model lstm (rnn, gru) ------

SYLLABLES = [c + v for c in "bdklmnrst" for v in "aeiou"]
TINY = ["--embedding-dim", "4", "--hidden-size", "8", "--no-progress"]


def made_up_names(n, seed=0):
    """Names of two or three consonant-vowel syllables: a grammar a model can learn."""
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(SYLLABLES, rng.integers(2, 4))) for _ in range(n)]


@pytest.fixture
def names_dir(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "names.txt").write_text("\n".join(made_up_names(120)) + "\n")
    return folder


def summary(out):
    line = out.strip().splitlines()[-1]
    return {key: float(value) for key, value in (pair.split("=") for pair in line.split())}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_cli_trains_a_names_model_and_reports_the_loss_per_character(names_dir, tmp_path,
                                                                        capsys, cell):
    path = str(tmp_path / "names.npz")
    assert main(["--dataset", "names", "--model", cell, "--data-dir", str(names_dir), *TINY,
                 "--epochs", "2", "--checkpoint", path]) == 0
    out = capsys.readouterr().out
    assert f"{cell.upper()}(4, 8)" in out and "Embedding(15, 4)" in out
    figures = summary(out)
    assert set(figures) == {"test_loss", "val_loss", "train_loss", "epochs", "seconds", "blas_threads"}
    assert 1.0 < figures["test_loss"] < np.log(15) + 0.3 and figures["epochs"] == 2
    saved = read_extra(path)["cli"]
    assert saved["vocab"] == {"chars": "abdeiklmnorstu", "boundary": "."}
    assert (saved["optimizer"], saved["lr"], saved["schedule"], saved["batch_size"]) == ("adam", 2e-3, "cosine", 32)
    assert (saved["model"], saved["embedding_dim"], saved["hidden_size"]) == (cell, 4, 8)
    assert saved["blas_threads"] == figures["blas_threads"] == 1


def test_a_language_model_trains_with_one_blas_thread(names_dir, monkeypatch):
    from threadpoolctl import threadpool_info

    import handprop.train.cli as cli
    seen, real_fit = [], cli.fit

    def fit(*args, **options):
        seen.append({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})
        return real_fit(*args, **options)
    monkeypatch.setattr(cli, "fit", fit)
    assert main(["--dataset", "names", "--model", "lstm", "--data-dir", str(names_dir), *TINY,
                 "--epochs", "1"]) == 0
    assert seen == [{1}]


def test_the_loss_per_character_leaves_padding_out(names_dir):
    from handprop.train.cli_text import load_names_set, loss_per_token
    args = parser().parse_args(["--dataset", "names", "--model", "lstm", "--data-dir", str(names_dir)])
    data = load_names_set(args, np.dtype(np.float32), False)
    model = char_lm(len(data.vocab), embedding_dim=4, hidden_size=8, dtype=np.float64)
    X, y = data.X_test, data.y_test
    logits = model.forward(X)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    keep = y != -100
    expected = -log_probs[keep, y[keep]].mean()
    assert keep.sum() < y.size                           # there is padding to leave out
    assert loss_per_token(model, X, y, batch_size=5) == pytest.approx(expected, rel=1e-12)


def test_resume_continues_a_names_run_and_refuses_other_data(names_dir, tmp_path, capsys):
    path = str(tmp_path / "names.npz")
    flags = ["--dataset", "names", "--model", "rnn", "--data-dir", str(names_dir), *TINY,
             "--checkpoint", path]
    assert main([*flags, "--epochs", "1", "--schedule", "none"]) == 0
    assert main(["--checkpoint", path, "--resume", "--epochs", "2", "--no-progress",
                 "--data-dir", str(names_dir)]) == 0
    assert read_extra(path)["fit"]["epoch"] == 2 and summary(capsys.readouterr().out)["epochs"] == 2
    (names_dir / "names.txt").write_text("zoe\nzack\nzed\nzia\n")
    assert main(["--checkpoint", path, "--resume", "--epochs", "3", "--no-progress",
                 "--data-dir", str(names_dir)]) == 1
    assert "was trained on Vocabulary('.abdeiklmnorstu'" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--model", "lstm"], "--model lstm needs text: add --dataset names"),
    (["--dataset", "names"], "--dataset names is text, for a language model: --model lstm or rnn or gru"),
    (["--dataset", "names", "--model", "gru", "--hidden", "10"], "--hidden go with --model mlp"),
    (["--dataset", "names", "--model", "gru", "--hidden-size", "0"], "--hidden-size: expected a finite number > 0"),
    (["--hidden-size", "32"], "--embedding-dim and --hidden-size go with a language model: --model lstm or rnn or gru"),
])
def test_a_language_model_and_its_data_go_together(flags, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(flags)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_names_file_says_to_download_it(tmp_path, capsys):
    assert main(["--dataset", "names", "--model", "lstm", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "names.txt" in err and "add --download to fetch names" in err and "Traceback" not in err


def test_the_names_download_is_registered_with_its_published_size_and_checksum():
    from handprop.train.data import DATASETS
    names, shakespeare = DATASETS["names"], DATASETS["shakespeare"]
    assert names["sha256"] == {"names.txt": "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"}
    assert names["max_bytes"] == {"names.txt": 228_145}
    assert names["base_url"] + "names.txt" == "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
    assert shakespeare["max_bytes"] == {"input.txt": 1_115_394}
    assert shakespeare["sha256"]["input.txt"] == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


@pytest.mark.slow
def test_the_default_lstm_learns_a_grammar_of_names_and_samples_from_it(tmp_path, capsys):
    import re

    from handprop.train.sample import main as sample_main
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "names.txt").write_text("\n".join(made_up_names(2000, seed=1)) + "\n")
    path = str(tmp_path / "lstm.npz")
    assert main(["--dataset", "names", "--model", "lstm", "--data-dir", str(folder), "--no-progress",
                 "--checkpoint", path]) == 0
    figures = summary(capsys.readouterr().out)
    # the grammar's own entropy is about 1.70 nats per character (this run: 1.717); uniform
    # over 15 ids is 2.71
    assert figures["test_loss"] < 1.78 and figures["epochs"] == 4
    assert sample_main(["--checkpoint", path, "--num", "50", "--seed", "1"]) == 0
    names = capsys.readouterr().out.splitlines()
    assert len(names) == 50
    assert sum(bool(re.fullmatch(r"([bdklmnrst][aeiou]){2,3}", name)) for name in names) >= 40


@pytest.fixture
def names_server():
    """A loopback HTTP server on 127.0.0.1 that serves made-up names as names.txt."""
    import http.server
    import threading
    body = ("\n".join(made_up_names(80)) + "\n").encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            found = self.path == "/names.txt"
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            self.wfile.write(body if found else b"")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", body
    httpd.shutdown()
    httpd.server_close()


def test_download_fetches_names_txt_and_checks_it_against_the_published_checksum(
        names_server, tmp_path, capsys, monkeypatch):
    import hashlib

    from handprop.train.data import DATASETS
    url, body = names_server
    flags = ["--dataset", "names", "--model", "gru", "--download", "--base-url", url, *TINY,
             "--epochs", "1", "--data-dir", str(tmp_path / "d")]
    assert main(flags) == 1                              # not makemore's file: refused, deleted
    assert "has SHA-256" in capsys.readouterr().err and not (tmp_path / "d" / "names.txt").exists()
    monkeypatch.setitem(DATASETS["names"], "sha256", {"names.txt": hashlib.sha256(body).hexdigest()})
    monkeypatch.setitem(DATASETS["names"], "max_bytes", {"names.txt": len(body)})
    assert main(flags) == 0 and (tmp_path / "d" / "names.txt").read_bytes() == body
    assert "test_loss=" in capsys.readouterr().out

"""sample(): text from any model that maps ids (N, T) to logits (N, T, V), on hand-made
bigram tables whose next-character distribution is known exactly."""
import numpy as np
import pytest

from handprop.layers import Layer, char_lm
from handprop.train.data.text import Vocabulary
from handprop.train.sample import next_distribution, sample


class Bigram(Layer):
    """logits[n, t] = W[ids[n, t]]: the next id depends on the last one alone. A stand-in
    language model; it records the contexts it was given and the mode it ran in."""

    takes_ids = True

    def __init__(self, W, block_size=None):
        super().__init__()
        self.params["W"] = np.asarray(W, dtype=np.float32)
        self.grads["W"] = np.zeros_like(self.params["W"])
        if block_size is not None:
            self.block_size = block_size
        self.contexts, self.modes = [], []

    def forward(self, ids):
        assert ids.dtype.kind == "i" and ids.ndim == 2
        self.contexts.append(ids.shape[1])
        self.modes.append(self.training)
        return self.params["W"][ids]


NAMES = Vocabulary("abc", boundary=".")      # . a b c


def chain_model():
    """After '.' comes 'a', then 'b', then 'c', then the end: every sample is 'abc'."""
    W = np.full((4, 4), -30.0)
    for prev, nxt in ((0, 1), (1, 2), (2, 3), (3, 0)):
        W[prev, nxt] = 0.0
    return Bigram(W)


def uniform_model(V=4):
    return Bigram(np.zeros((V, V)))


def test_a_names_model_stops_at_its_end_token_and_prints_no_boundary():
    model = chain_model()
    assert sample(model, NAMES, num=3, length=50) == ["abc"] * 3
    assert model.contexts == [1, 2, 3, 4]                               # no step after the end
    assert sample(chain_model(), NAMES, num=2, length=2) == ["ab"] * 2     # capped
    assert sample(chain_model(), NAMES, num=1, start="bc", length=9) == ["bc"]


def test_the_same_seed_gives_the_same_samples_and_another_seed_others():
    vocab = Vocabulary("abcdefgh", boundary=".")
    first = sample(uniform_model(9), vocab, num=20, length=12, seed=5)
    assert sample(uniform_model(9), vocab, num=20, length=12, seed=5) == first
    assert sample(uniform_model(9), vocab, num=20, length=12, seed=6) != first
    assert len(set(first)) > 15
    assert sample(uniform_model(9), vocab, num=7, length=12, seed=5) == first[:7]  # independent of num


def test_samples_hold_only_the_vocabularys_characters_and_continue_the_start():
    vocab = Vocabulary("xy z\n")
    texts = sample(uniform_model(len(vocab)), vocab, num=5, length=40, start="zz", seed=1)
    assert all(t.startswith("zz") and len(t) == 42 and set(t) <= set("xy z\n") for t in texts)


def test_the_start_must_be_in_the_vocabulary():
    with pytest.raises(ValueError, match="'Q' at position 1"):
        sample(chain_model(), NAMES, start="aQ")
    with pytest.raises(ValueError, match="start 'a.' holds the start/end token '.'"):
        sample(chain_model(), NAMES, start="a.")


def test_top_k_1_always_picks_the_most_likely_id():
    W = np.log(np.array([[0.1, 0.5, 0.2, 0.2]] * 4))    # 'a' most likely after anything
    texts = sample(Bigram(W), NAMES, num=5, length=6, top_k=1, seed=3)
    assert texts == ["aaaaaa"] * 5


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_draws_follow_the_softmax_of_the_logits_over_the_temperature(temperature):
    logits = np.array([0.0, 1.0, 2.0, -1.0])
    W = np.tile(logits, (4, 1))
    vocab = Vocabulary("abcd")
    drawn = "".join(sample(Bigram(W), vocab, num=40, length=100, temperature=temperature, seed=0))
    freq = np.array([drawn.count(c) for c in "abcd"]) / len(drawn)
    expected = np.exp(logits / temperature) / np.exp(logits / temperature).sum()
    np.testing.assert_allclose(freq, expected, atol=0.025)     # 4000 draws: 3 sigma < 0.025


def test_top_k_keeps_the_k_largest_and_renormalizes():
    probs = next_distribution(np.array([[0.0, 1.0, 2.0, -1.0]]), 1.0, 2)
    expected = np.exp([1.0, 2.0]) / np.exp([1.0, 2.0]).sum()
    np.testing.assert_allclose(probs, [[0.0, expected[0], expected[1], 0.0]])
    assert next_distribution(np.zeros((1, 3)), 1.0, 10).tolist() == [[1 / 3] * 3]


def test_the_context_is_cropped_to_the_models_block_size():
    model = Bigram(np.zeros((4, 4)), block_size=5)
    sample(model, Vocabulary("abcd"), num=2, length=20, start="abc")
    assert max(model.contexts) == 5 and model.contexts[:3] == [3, 4, 5]
    unbounded = uniform_model()
    sample(unbounded, Vocabulary("abcd"), num=1, length=20, start="abc")
    assert max(unbounded.contexts) == 22


def test_the_model_samples_in_eval_mode_and_is_put_back():
    model = chain_model()
    sample(model, NAMES, num=1)
    assert not any(model.modes) and model.training
    model.eval()
    sample(model, NAMES, num=1)
    assert not model.training


def test_a_model_whose_logits_do_not_fit_the_vocabulary_is_refused():
    with pytest.raises(ValueError, match=r"expected Bigram\(\) to map ids \(2, 1\) to logits \(2, 1, 4\)"):
        sample(uniform_model(5), NAMES, num=2)


@pytest.mark.parametrize("option, value", [("num", 0), ("length", 0), ("temperature", 0.0),
                                           ("top_k", 0), ("seed", -1)])
def test_bad_options_are_refused(option, value):
    with pytest.raises(ValueError, match=f"sample: expected {option}"):
        sample(chain_model(), NAMES, **{option: value})


# --- python -m handprop.train.sample on checkpoints of python -m handprop.train ---------------

@pytest.fixture(scope="module")
def names_checkpoint(tmp_path_factory):
    """A tiny LSTM trained for one epoch on made-up names by the command line."""
    from handprop.train.cli import main as train
    folder = tmp_path_factory.mktemp("names")
    rng = np.random.default_rng(0)
    names = ["".join(rng.choice(list("abcde"), rng.integers(2, 7))) for _ in range(60)]
    (folder / "names.txt").write_text("\n".join(names))
    path = str(folder / "lstm.npz")
    assert train(["--dataset", "names", "--model", "lstm", "--data-dir", str(folder), "--epochs", "1",
                  "--embedding-dim", "4", "--hidden-size", "8", "--no-progress", "--checkpoint", path]) == 0
    return path


def run_sample(capsys, *flags):
    from handprop.train.sample import main
    code = main(list(flags))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command_prints_num_names_of_the_vocabulary_the_same_for_the_same_seed(names_checkpoint, capsys):
    code, out, _ = run_sample(capsys, "--checkpoint", names_checkpoint, "--num", "8", "--seed", "3")
    names = out.split("\n")[:-1]
    assert code == 0 and len(names) == 8 and set("".join(names)) <= set("abcde")
    assert run_sample(capsys, "--checkpoint", names_checkpoint, "--num", "8", "--seed", "3")[1] == out
    assert run_sample(capsys, "--checkpoint", names_checkpoint, "--num", "8", "--seed", "4")[1] != out
    code, out, _ = run_sample(capsys, "--checkpoint", names_checkpoint, "--num", "5", "--length", "3",
                              "--start", "ab", "--top-k", "2", "--temperature", "0.5")
    assert code == 0 and all(n.startswith("ab") and len(n) <= 5 for n in out.split("\n")[:-1])


def test_sample_loads_the_model_with_its_recorded_settings(names_checkpoint):
    from handprop.train.sample import load_model
    model, vocab = load_model(names_checkpoint)
    assert repr(model) == "Sequential(Embedding(6, 4), LSTM(4, 8), Linear(8, 6))"
    assert vocab == Vocabulary("abcde", boundary=".")
    untrained = char_lm(6, embedding_dim=4, hidden_size=8)         # the weights it started from
    assert not np.array_equal(model.params["1.W_hh"], untrained.params["1.W_hh"])
    assert sample(model, vocab, num=3, seed=1) == sample(model, vocab, num=3, seed=1)


@pytest.mark.parametrize("flags, message", [
    (["--num", "0"], "argument --num: expected a finite number > 0"),
    (["--temperature", "-1"], "argument --temperature"),
    (["--top-k", "0"], "argument --top-k"),
    (["--start", "xaz"], "--start 'xaz': 'x', 'z' not in the model's vocabulary 'abcde'"),
    (["--start", "a.b"], "--start 'a.b': '.' not in the model's vocabulary"),
    (["--length", "ten"], "argument --length: invalid int value"),
])
def test_bad_flags_are_usage_errors(names_checkpoint, capsys, flags, message):
    with pytest.raises(SystemExit) as exc:
        run_sample(capsys, "--checkpoint", names_checkpoint, *flags)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_file_that_is_not_a_language_models_checkpoint_is_a_one_line_error(tmp_path, capsys):
    from handprop.train.cli import main as train
    mlp_path, junk = str(tmp_path / "mlp.npz"), tmp_path / "junk.npz"
    assert train(["--hidden", "4", "--epochs", "1", "--no-progress", "--checkpoint", mlp_path]) == 0
    junk.write_bytes(b"not a checkpoint")
    from handprop.train.checkpoint import save
    settings = {"model": "lstm", "embedding_dim": 4, "hidden_size": 8,
                "vocab": {"chars": "abcde", "boundary": "."}}
    huge, other = str(tmp_path / "huge.npz"), str(tmp_path / "other.npz")
    save(huge, char_lm(6, embedding_dim=4, hidden_size=8), cli={**settings, "hidden_size": 60000})
    save(other, char_lm(6, embedding_dim=4, hidden_size=8), cli={**settings, "vocab": {"chars": "ab", "boundary": "."}})
    bad_vocab = str(tmp_path / "bad_vocab.npz")
    save(bad_vocab, char_lm(6, embedding_dim=4, hidden_size=8), cli={**settings, "vocab": {"chars": "ab", "boundary": ""}})
    capsys.readouterr()
    for path, message in ((mlp_path, "not a language model's checkpoint (it records no vocabulary"),
                          (str(junk), "not a readable checkpoint"),
                          (huge, "its settings describe 57607200120 bytes of weights, more than the file holds"),
                          (other, "other.npz"),
                          (bad_vocab, "bad_vocab.npz: its recorded vocabulary: Vocabulary: expected single characters"),
                          (str(tmp_path / "none.npz"), "none.npz: no such file")):
        code, out, err = run_sample(capsys, "--checkpoint", path)
        assert code == 1 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_python_m_handprop_train_sample_runs_and_ends_quietly_when_its_reader_has_gone(names_checkpoint):
    import subprocess
    import sys
    command = [sys.executable, "-m", "handprop.train.sample", "--checkpoint", names_checkpoint]
    done = subprocess.run([*command, "--num", "2"], capture_output=True, text=True)
    assert done.returncode == 0 and len(done.stdout.split("\n")) == 3, done.stderr
    closed = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    closed.stdout.close()                                # `| head -0`: nobody reads
    assert closed.wait(timeout=60) == 141 and closed.stderr.read() == b""

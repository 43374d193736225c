"""Text data: the vocabulary, makemore-style names with a start/end token, the seeded 80/10/10
split, and running text as random windows (first 90% train, last 10% validation). Every text
here is made by the test itself."""
import numpy as np
import pytest

from handprop.train.data.text import (
    IGNORE_INDEX,
    Vocabulary,
    encode_names,
    load_names,
    load_text,
    names_vocabulary,
    random_windows,
    read_names,
    split_names,
    split_text,
)

NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn",
         "abigail", "emily", "ella", "zoe", "lily", "nora", "anna", "leo", "max", "kai", "eli"]


def test_a_vocabulary_lists_sorted_characters_after_the_boundary_token_at_id_0():
    vocab = Vocabulary("hello", boundary=".")
    assert vocab.tokens == (".", "e", "h", "l", "o") and len(vocab) == 5
    assert vocab.boundary_id == 0 and Vocabulary("ba").tokens == ("a", "b")
    assert Vocabulary("ba").boundary_id is None


def test_encode_and_decode_are_inverse():
    vocab = Vocabulary("abc xyz\n")
    text = "a cab\nzy"
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.tolist() == [vocab.index[c] for c in text]
    assert vocab.decode(ids) == text and vocab.decode(ids.tolist()) == text
    assert vocab.decode([]) == ""


def test_an_unknown_character_is_named_with_its_position():
    vocab = Vocabulary("abc")
    with pytest.raises(ValueError, match=r"'Z' at position 2 of the text is not in the vocabulary \(2 such"):
        vocab.encode("abZdc")


@pytest.mark.parametrize("ids, message", [([0, 3], r"id 3 at position 1 is not in \[0, 3\)"),
                                          ([-1], r"id -1 at position 0"),
                                          ([0.5], "integer ids"), ([[0]], "1-d")])
def test_decode_refuses_ids_outside_the_vocabulary(ids, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary("abc").decode(ids)


def test_a_vocabulary_survives_its_plain_json_form():
    for vocab in (Vocabulary("xyz", boundary="."), Vocabulary("a\n b")):
        assert Vocabulary.from_dict(vocab.to_dict()) == vocab
    with pytest.raises(ValueError, match="who: expected a vocabulary"):
        Vocabulary.from_dict({"chars": 3}, who="who")


@pytest.mark.parametrize("chars, boundary, message", [("ab", "a", "also one of the characters"),
                                                      (["ab"], None, "single characters"),
                                                      ("", None, "at least one")])
def test_a_bad_vocabulary_is_refused(chars, boundary, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary(chars, boundary=boundary)


def test_each_name_is_the_start_token_and_its_characters_against_its_characters_and_the_end():
    vocab = names_vocabulary(["emma", "bo"])
    X, Y = encode_names(["emma", "bo"], vocab)
    e, m, a, b, o = (vocab.index[c] for c in "emabo")
    assert X.tolist() == [[0, e, m, m, a], [0, b, o, 0, 0]]
    assert Y.tolist() == [[e, m, m, a, 0], [b, o, 0, IGNORE_INDEX, IGNORE_INDEX]]
    assert IGNORE_INDEX == -100 and X.dtype == Y.dtype == np.int64


def test_names_pad_to_a_given_length_and_a_longer_name_is_refused():
    vocab = names_vocabulary(["ab"])
    X, Y = encode_names(["ab"], vocab, length=5)
    assert X.shape == Y.shape == (1, 5) and (Y[0, 3:] == IGNORE_INDEX).all()
    with pytest.raises(ValueError, match="a name of 2 characters needs length >= 3, got length=2"):
        encode_names(["ab"], vocab, length=2)
    with pytest.raises(ValueError, match="no start/end token"):
        encode_names(["ab"], Vocabulary("ab"))
    with pytest.raises(ValueError, match="the start/end token"):
        names_vocabulary(["a.b"])


def test_the_names_split_is_80_10_10_disjoint_and_the_same_for_the_same_seed():
    names = [f"n{i:03d}" for i in range(1000)]
    train, val, test = split_names(names, seed=3)
    assert (len(train), len(val), len(test)) == (800, 100, 100)
    assert sorted(train + val + test) == names
    assert split_names(names, seed=3) == (train, val, test)
    assert split_names(names, seed=4)[0] != train
    assert [len(part) for part in split_names(["a", "b", "c"])] == [1, 1, 1]


def test_load_names_reads_names_txt_and_splits_it(tmp_path):
    (tmp_path / "names.txt").write_text("\n".join(NAMES) + "\n\n  \n")
    assert read_names(tmp_path / "names.txt") == NAMES
    data = load_names(tmp_path, seed=1)
    assert data.vocab == names_vocabulary(NAMES) and len(data.vocab) == 1 + len(set("".join(NAMES)))
    assert [len(x) for x, _ in (data.train, data.val, data.test)] == [16, 2, 2]
    assert {x.shape[1] for x, _ in (data.train, data.val, data.test)} == {len("isabella") + 1}
    decoded = {data.vocab.decode(x[x > 0]) for split in (data.train, data.val, data.test) for x in split[0]}
    assert decoded == set(NAMES)


def test_a_missing_empty_or_binary_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_names(tmp_path)
    (tmp_path / "names.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="names.txt: expected one name per line"):
        load_names(tmp_path)
    (tmp_path / "names.txt").write_bytes(b"ab\xff\n")
    with pytest.raises(ValueError, match="names.txt: not UTF-8"):
        load_names(tmp_path)
    (tmp_path / "input.txt").mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        load_text(tmp_path)


def test_a_windows_target_is_its_input_shifted_by_one():
    ids = np.arange(100) * 7
    x, y = random_windows(ids, 8, 50, np.random.default_rng(0))
    assert x.shape == y.shape == (50, 8)
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    np.testing.assert_array_equal(y[:, -1], x[:, -1] + 7)       # the id after the window
    assert len({tuple(row) for row in x}) > 30                   # the starts vary
    x2, _ = random_windows(ids, 8, 50, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)
    last, _ = random_windows(np.arange(9), 8, 20, np.random.default_rng(1))
    assert (last == np.arange(8)).all()                          # the only window there is
    with pytest.raises(ValueError, match="expected at least 9"):
        random_windows(np.arange(8), 8, 1, np.random.default_rng(0))


def test_running_text_trains_on_its_first_90_percent_and_validates_on_the_last_10(tmp_path):
    text = "".join(chr(ord("a") + i % 26) for i in range(1000)) + "\n"
    (tmp_path / "input.txt").write_text(text)
    data = load_text(tmp_path)
    assert data.vocab.tokens == tuple(sorted(set(text))) and data.vocab.boundary is None
    assert len(data.train) == 900 and len(data.val) == 101
    assert data.vocab.decode(data.train) == text[:900] and data.vocab.decode(data.val) == text[900:]
    train, val = split_text(np.arange(10), train_fraction=0.5)
    assert train.tolist() == [0, 1, 2, 3, 4] and val.tolist() == [5, 6, 7, 8, 9]

"""fit, evaluate and predict for a model that takes integer token ids (``takes_ids``), and
labels of shape (N, T) against logits (N, T, C)."""
import numpy as np
import pytest

from handprop.layers import Layer, Linear, Sequential
from handprop.losses import Loss, SoftmaxCrossEntropy
from handprop.train import SGD, evaluate, fit, predict


class Lookup(Layer):
    """A hand-written table lookup, out = W[ids]: ids (N, ...) -> (N, ..., D). A stand-in for
    Embedding, which another branch writes; it refuses anything but integer ids."""

    takes_ids = True

    def __init__(self, num_embeddings, dim, seed=0):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.params["W"] = np.random.default_rng(seed).normal(0.0, 0.1, (num_embeddings, dim))
        self.grads["W"] = np.zeros_like(self.params["W"])

    def forward(self, ids):
        if ids.dtype.kind not in "iu":
            raise TypeError(f"Lookup: expected integer ids, got {ids.dtype}")
        self.cache = ids
        return self.params["W"][ids]

    def backward(self, dout):
        ids = self._saved()
        self.grads["W"][...] = 0.0
        np.add.at(self.grads["W"], ids.reshape(-1), dout.reshape(-1, dout.shape[-1]))
        return None  # no gradient for ids


class PerPositionCrossEntropy(Loss):
    """Cross-entropy of logits (N, T, C) against labels (N, T): the mean over every position
    (SoftmaxCrossEntropy over the flattened positions)."""

    targets = "classes"

    def __init__(self):
        super().__init__()
        self.inner = SoftmaxCrossEntropy()

    def forward(self, pred, target):
        self.cache = pred.shape
        return self.inner.forward(pred.reshape(-1, pred.shape[-1]), target.reshape(-1))

    def backward(self, dloss=1.0):
        return self.inner.backward(dloss).reshape(self._saved())


def next_id_data(n=200, vocab=5, seed=0):
    """ids and the id that follows each: y = (x + 1) % vocab."""
    X = np.random.default_rng(seed).integers(0, vocab, n)
    return X, (X + 1) % vocab


def test_a_model_that_takes_ids_trains_with_fit_from_an_int_array():
    X, y = next_id_data()
    model = Lookup(5, 5)
    history = fit(model, SoftmaxCrossEntropy(), SGD(model, lr=1.0), X, y, epochs=5,
                  batch_size=20, progress=False)
    assert history["loss"][-1] < history["loss"][0] and history["accuracy"][-1] == 1.0
    assert evaluate(model, SoftmaxCrossEntropy(), X, y)["accuracy"] == 1.0
    np.testing.assert_array_equal(predict(model, X[:4]), model.params["W"][X[:4]])


def test_whole_float_ids_become_integers_and_fractional_ones_are_refused():
    X, y = next_id_data(n=20)
    model = Lookup(5, 5)
    np.testing.assert_array_equal(predict(model, X.astype(np.float64)), predict(model, X))
    with pytest.raises(ValueError, match=r"predict: expected whole-number token ids X, got 2.5 at X\[1\]"):
        predict(model, [0.0, 2.5])
    with pytest.raises(ValueError, match=r"predict: X\[1\] = 5 is not a token id of Lookup"):
        predict(model, [4, 5])  # one past the table's last row


@pytest.mark.parametrize("call", ["fit", "evaluate", "predict", "validation"])
def test_ids_outside_the_table_are_named_before_anything_changes(call):
    X, y = next_id_data(n=20)
    X2 = np.stack([X, X], axis=1)
    bad = X2.copy()
    bad[3, 1], bad[5, 0] = 5, -1
    model = Lookup(5, 5)
    before = {k: v.copy() for k, v in model.params.items()}
    name = "X_val" if call == "validation" else "X"
    with pytest.raises(ValueError, match=rf"{name}\[3, 1\] = 5 is not a token id of Lookup.*"
                                         rf"\(expected ids in \[0, 5\); 2 such ids\)"):
        if call == "fit":
            fit(model, PerPositionCrossEntropy(), SGD(model, lr=0.1), bad, y[:, None].repeat(2, 1),
                epochs=1, progress=False)
        elif call == "validation":
            fit(model, PerPositionCrossEntropy(), SGD(model, lr=0.1), X2, y[:, None].repeat(2, 1),
                epochs=1, progress=False, validation=(bad, y[:, None].repeat(2, 1)))
        elif call == "evaluate":
            evaluate(model, PerPositionCrossEntropy(), bad, y[:, None].repeat(2, 1))
        else:
            predict(model, bad)
    for key, value in model.params.items():
        np.testing.assert_array_equal(value, before[key])


def test_labels_of_shape_n_t_count_accuracy_per_position():
    rng = np.random.default_rng(1)
    X = rng.integers(0, 6, (40, 7))
    y = (X + 1) % 6
    y[:, -3:] = rng.integers(0, 6, (40, 3))  # the last positions cannot be learned
    model = Lookup(6, 6)
    history = fit(model, PerPositionCrossEntropy(), SGD(model, lr=2.0), X, y, epochs=4, batch_size=8,
                  progress=False, validation=(X, y))
    hits = predict(model, X).argmax(axis=-1) == y
    assert history["val_accuracy"][-1] == pytest.approx(hits.mean())  # over 280 positions, not 40 rows
    assert 0.5 < history["val_accuracy"][-1] < 1.0


def test_shuffling_keeps_the_positions_of_a_sample_together():
    X = np.arange(30).reshape(10, 3) % 5
    y = (X + 1) % 5
    model = Lookup(5, 5)
    history = fit(model, PerPositionCrossEntropy(), SGD(model, lr=1.0), X, y, epochs=8, batch_size=3,
                  progress=False, seed=4)
    assert history["accuracy"][-1] == 1.0  # a row shuffled apart from its labels could not be learned


@pytest.mark.skipif(not hasattr(Layer, "named_modules"), reason="the tree walk lands on branch i18-layers")
def test_the_table_is_found_inside_a_sequential():
    model = Sequential(Lookup(5, 4), Linear(4, 3, rng=0, dtype=np.float64))
    with pytest.raises(ValueError, match=r"X\[2\] = 5 is not a token id of Lookup"):
        predict(model, [0, 4, 5])
    assert predict(model, [0, 4]).shape == (2, 3)


class PaddedCrossEntropy(PerPositionCrossEntropy):
    """Positions whose label is -100 are padding: out of the loss and the accuracy."""

    ignore_index = -100

    def forward(self, pred, target):
        keep = target != self.ignore_index
        self.cache = (pred.shape, keep)
        return self.inner.forward(pred[keep], target[keep])

    def backward(self, dloss=1.0):
        shape, keep = self._saved()
        dpred = np.zeros(shape)
        dpred[keep] = self.inner.backward(dloss)
        return dpred

    def count_correct(self, pred, target):
        keep = target != self.ignore_index
        return int(np.count_nonzero(pred[keep].argmax(axis=-1) == target[keep]))


def test_ignored_positions_are_left_out_of_the_accuracy():
    X = np.arange(24).reshape(6, 4) % 5
    y = (X + 1) % 5
    y[:, 2:] = -100
    model = Lookup(5, 5)
    model.params["W"][...] = np.eye(5)[(np.arange(5) + 1) % 5]  # right on every kept position
    assert evaluate(model, PaddedCrossEntropy(), X, y)["accuracy"] == 1.0  # 12 of 12, not 12 of 24

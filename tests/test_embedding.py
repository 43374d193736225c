"""Embedding: against PyTorch (repeated ids, padding_idx), scatter-add, shapes, dtypes, errors."""
import numpy as np
import pytest

from handprop.layers import Embedding
from handprop.layers.embedding import scatter_add

F64 = np.float64


def wave(shape, freq, phase, scale=0.5):
    """The inputs of tests/torch_reference_recurrent.py, rebuilt exactly."""
    return scale * np.sin(freq * np.arange(int(np.prod(shape))) + phase).reshape(shape)


# Reference values: torch 2.13.0+cpu, float64, printed by tests/torch_reference_recurrent.py
# (run with /work/venvs/torch/bin/python): torch.nn.Embedding(6, 3[, padding_idx=1]) with
# weight W below, forward on IDS, out.backward(DOUT); out and weight.grad.
W = wave((6, 3), 1.1, 0.3, 1.0)
IDS = np.array([[1, 4, 1, 0], [5, 1, 2, 4]])          # 1 three times, 4 twice, 3 never
DOUT = wave((2, 4, 3), 0.7, 0.2, 1.0)
PLAIN = dict(
    out=[[[-0.44252044329485246, -0.9999232575641008, -0.46460217941375737], [0.803784426551622, 0.8947911721405034, 0.00796318378593379], [-0.44252044329485246, -0.9999232575641008, -0.46460217941375737], [0.29552020666133955, 0.9854497299884603, 0.5984721441039565]], [[-0.8875670335815046, -0.8131571116614864, 0.14987720966295584], [-0.44252044329485246, -0.9999232575641008, -0.46460217941375737], [0.5784397643882001, 0.9893582466233816, 0.3190983623493504], [0.803784426551622, 0.8947911721405034, 0.00796318378593379]]],
    dW=[[0.21511998808781552, 0.7936678638491531, 0.998941341839772], [-1.7095677593646426, -1.0618162983649255, 0.08532395909314477], [0.23150982510153723, 0.8037844265516199, 0.9980266527163617], [0.0, 0.0, 0.0], [1.4685865616886975, 0.24887366035931305, -1.0878884121952699], [0.7343970978741146, 0.12445442350706347, -0.5440211108893683]],
)
PADDED = dict(
    out=[[[-0.44252044329485246, -0.9999232575641008, -0.46460217941375737], [0.803784426551622, 0.8947911721405034, 0.00796318378593379], [-0.44252044329485246, -0.9999232575641008, -0.46460217941375737], [0.29552020666133955, 0.9854497299884603, 0.5984721441039565]], [[-0.8875670335815046, -0.8131571116614864, 0.14987720966295584], [-0.44252044329485246, -0.9999232575641008, -0.46460217941375737], [0.5784397643882001, 0.9893582466233816, 0.3190983623493504], [0.803784426551622, 0.8947911721405034, 0.00796318378593379]]],
    dW=[[0.21511998808781552, 0.7936678638491531, 0.998941341839772], [0.0, 0.0, 0.0], [0.23150982510153723, 0.8037844265516199, 0.9980266527163617], [0.0, 0.0, 0.0], [1.4685865616886975, 0.24887366035931305, -1.0878884121952699], [0.7343970978741146, 0.12445442350706347, -0.5440211108893683]],
)


def loaded(padding_idx=None, dtype=F64):
    emb = Embedding(6, 3, padding_idx=padding_idx, dtype=dtype)
    emb.params["W"][...] = W
    return emb


@pytest.mark.parametrize("padding_idx, ref", [(None, PLAIN), (1, PADDED)])
def test_output_and_weight_gradient_match_pytorch_in_float64(padding_idx, ref):
    emb = loaded(padding_idx)
    out = emb.forward(IDS)
    assert emb.backward(DOUT) is None
    np.testing.assert_allclose(out, ref["out"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(emb.grads["W"], ref["dW"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("padding_idx, ref", [(None, PLAIN), (1, PADDED)])
def test_float32_matches_pytorch_to_1e_4_relative_and_stays_float32(padding_idx, ref):
    emb = loaded(padding_idx, np.float32)
    out = emb.forward(IDS)
    emb.backward(DOUT.astype(np.float32))
    assert out.dtype == emb.grads["W"].dtype == np.float32
    for got, want in [(out, ref["out"]), (emb.grads["W"], ref["dW"])]:
        want = np.asarray(want)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_repeated_ids_add_their_gradients_where_fancy_index_plus_equals_would_lose_them():
    emb = loaded()
    emb.forward(IDS)
    emb.backward(DOUT)
    rows = DOUT.reshape(-1, 3)
    by_hand = rows[[0, 2, 5]].sum(axis=0)              # the three uses of id 1
    np.testing.assert_allclose(emb.grads["W"][1], by_hand, rtol=0, atol=1e-15)
    lossy = np.zeros((6, 3))
    lossy[IDS.reshape(-1)] += rows                     # the classic mistake: one use survives
    assert not np.allclose(lossy[1], by_hand)
    assert not emb.grads["W"][3].any()                 # an id never used gets nothing


@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_the_fast_scatter_add_equals_the_staged_add_at(dtype, atol):
    """scatter_add (sort, one reduceat per run of equal ids) against np.add.at, with ids
    repeated many times, ids never used, and stale values in the output to be cleared."""
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 40, 700)
    ids[ids == 7] = 8                                  # row 7: never used, must come out 0
    rows = rng.standard_normal((700, 5)).astype(dtype)
    staged = np.zeros((41, 5), dtype)
    np.add.at(staged, ids, rows)
    fast = np.full((41, 5), 9.0, dtype)
    scatter_add(fast, ids, rows)
    assert fast.dtype == dtype and not fast[7].any() and not fast[40].any()
    np.testing.assert_allclose(fast, staged, rtol=0, atol=atol)


def test_gradient_matches_central_differences_in_float64():
    emb = loaded(padding_idx=2)
    emb.forward(IDS)
    emb.backward(DOUT)
    numeric = np.zeros_like(W)
    for i in np.ndindex(W.shape):
        saved = emb.params["W"][i]
        sums = []
        for h in (1e-6, -1e-6):
            emb.params["W"][i] = saved + h
            sums.append((emb.forward(IDS) * DOUT).sum())
        emb.params["W"][i] = saved
        numeric[i] = (sums[0] - sums[1]) / 2e-6
    numeric[2] = 0                                     # the padding row is frozen by definition
    assert np.abs(emb.grads["W"] - numeric).max() < 1e-8


def test_padding_row_starts_at_zero_and_others_follow_a_standard_normal():
    emb = Embedding(2000, 8, padding_idx=-1, rng=0)
    W = emb.params["W"]
    assert emb.padding_idx == 1999 and not W[1999].any()
    assert abs(W[:-1].mean()) < 0.02 and abs(W[:-1].std() - 1) < 0.02
    np.testing.assert_array_equal(Embedding(5, 3, rng=4).params["W"],
                                  Embedding(5, 3, rng=4).params["W"])


@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 4)])
def test_ids_of_any_shape_map_to_that_shape_plus_the_embedding_dim(shape):
    emb = Embedding(10, 4, rng=1)
    ids = np.random.default_rng(0).integers(0, 10, shape)
    out = emb.forward(ids)
    assert out.shape == shape + (4,)
    np.testing.assert_array_equal(out, emb.params["W"][ids])
    emb.backward(np.ones(shape + (4,), np.float32))
    assert emb.grads["W"].sum() == 4 * np.prod(shape)


def test_backward_writes_into_its_grads_array_and_changes_neither_ids_nor_dout():
    emb = loaded()
    grad = emb.grads["W"]
    ids, dout = IDS.copy(), DOUT.copy()
    emb.forward(ids)
    emb.backward(dout)
    emb.backward(dout)                                 # overwrites, never accumulates
    assert emb.grads["W"] is grad
    np.testing.assert_allclose(grad, PLAIN["dW"], rtol=0, atol=1e-10)
    np.testing.assert_array_equal(ids, IDS)
    np.testing.assert_array_equal(dout, DOUT)


@pytest.mark.parametrize("ids, error, words", [
    (np.array([[0, 1], [6, 2]]), ValueError, "id 6 at position (1, 0)"),
    (np.array([3, -1, 2]), ValueError, "id -1 at position (1,)"),
    (np.array([1.0, 2.5]), TypeError, "got dtype float64 id 1.0 at position (0,)"),
    (np.array([True, False]), TypeError, "got dtype bool id True at position (0,)"),
    ([1, 2], TypeError, "wrap them with np.asarray"),
])
def test_bad_ids_name_the_layer_the_bad_id_and_its_position(ids, error, words):
    with pytest.raises(error, match="^Embedding\\(6, 3") as info:
        Embedding(6, 3).forward(ids)
    assert words in str(info.value)


def test_bad_constructor_arguments_and_gradients_are_clear_errors():
    with pytest.raises(ValueError, match="padding_idx in \\[-6, 5\\], got 6"):
        Embedding(6, 3, padding_idx=6)
    with pytest.raises(TypeError, match="embedding_dim to be an int"):
        Embedding(6, 3.0)
    with pytest.raises(RuntimeError, match="before forward"):
        Embedding(6, 3).backward(np.zeros((1, 3), np.float32))
    emb = Embedding(6, 3)
    emb.forward(IDS)
    with pytest.raises(ValueError, match="shape \\(2, 4, 3\\)"):
        emb.backward(np.zeros((2, 4), np.float32))
    assert repr(Embedding(6, 3, padding_idx=1, dtype=F64)) == \
        "Embedding(6, 3, padding_idx=1, dtype=float64)"
    assert Embedding.takes_ids is True

"""RNN: against PyTorch (tanh, relu), staged BPTT equals the fast backward, gradcheck; and the
behaviour RNN, LSTM and GRU share (initial states, stateful, dtypes, errors)."""
import runpy
from pathlib import Path

import numpy as np
import pytest

from handprop.layers import GRU, LSTM, RNN
from handprop.layers.gradcheck import gradcheck

F64 = np.float64


# the inputs and helpers the recurrent tests share, loaded by path (no sys.path change)
_shared = runpy.run_path(str(Path(__file__).with_name("recurrent_reference.py")))
wave, loaded, numeric_gradient, assert_close = (
    _shared[k] for k in ("wave", "loaded", "numeric_gradient", "assert_close"))
N, T, D, H, X, H0, C0, DOUT = (_shared[k] for k in ("N", "T", "D", "H", "X", "H0", "C0", "DOUT"))


# Reference values: torch 2.13.0+cpu, float64, printed by tests/torch_reference_recurrent.py
# (run with /work/venvs/torch/bin/python): torch.nn.RNN(3, 4, batch_first=True[, nonlinearity="relu"]) holding
# the weights of `loaded` (transposed), on X with the initial state H0 above, then
# out.backward(DOUT); the weight gradients are printed transposed, in our (in, out) layout.
RNN_TANH = dict(
    out=[[[-0.38571717891370544, 0.5875048001827243, 0.6840363628377668, 0.13189515164368243], [0.7259666149628973, 0.49295970451674254, -0.5958500530404467, -0.5783791234578688], [-0.2244946879874094, 0.22696075780847694, 0.5135228715538191, 0.48433524870950134]], [[0.7094395253328903, 0.8954482539556922, 0.18803868974012306, -0.6865922897351605], [0.43468387145869747, 0.18586720943508417, 0.052918350059296834, 0.39767291193174825], [0.06727213618548407, 0.8356743655790945, 0.5799132442046968, -0.43891899056451567]]],
    h_n=[[-0.2244946879874094, 0.22696075780847694, 0.5135228715538191, 0.48433524870950134], [0.06727213618548407, 0.8356743655790945, 0.5799132442046968, -0.43891899056451567]],
    dx=[[[-0.006573900188994897, 0.09394309330687864, 0.0946017109245938], [0.32967590354107423, 0.29058504508382416, -0.05738802743638738], [0.13950316437930613, -0.2813196926790874, -0.4031090963498082]], [[-0.0062683709245228425, -0.161366246089484, -0.14493718203164213], [-0.15580486491175147, 0.26897500810210623, 0.4078434158297328], [0.13728254416708835, 0.051711866022550505, -0.08882680149585556]]],
    dh0=[[0.49209140317842415, -0.4823819262456067, 0.4710273106391748, -0.4580662806898736], [-0.4047046810870326, 0.3904212446646524, -0.37480629672898313, 0.3579130912543909]],
    W_ih=[[0.2868411781131681, 1.03733367611416, -0.6206142523452463, 0.5936476929824108], [0.9589979733243168, -0.07989226519084491, 0.03351489728912682, 0.2547855818226756], [0.9054042214263507, -1.1366573329748646, 0.6622806408262213, -0.27689317811717934]],
    W_hh=[[0.6871124394906649, -0.8781868881888775, 0.7428185673549816, -0.3538884380834631], [1.0664437311518655, 0.02376706552415429, 1.4545656002572982, 0.3172797776045382], [0.8186774029751593, 0.8520762611252934, 1.2594290601875162, 1.0884516565801754], [0.5864661109567961, 0.8692906676965196, 0.2491226837800834, 0.9336239832291706]],
    b_ih=[2.069350939772912, 0.09669059988373752, 1.8329589607594925, 0.301437233098161],
    b_hh=[2.069350939772912, 0.09669059988373752, 1.8329589607594927, 0.301437233098161],
)
RNN_RELU = dict(
    out=[[[0.0, 0.6738470927995006, 0.8366608265045166, 0.1326680659239195], [1.0700301311354738, 0.765017398606906, 0.0, 0.0], [0.0, 0.2765606313180735, 0.6185701424955972, 0.5542130158270767]], [[0.8860545518836629, 1.4487642544323105, 0.19030318747515648, 0.0], [0.06955240268205531, 0.0, 0.0, 0.47485818811858094], [0.0, 1.0526630759502948, 0.550363007477083, 0.0]]],
    h_n=[[0.0, 0.2765606313180735, 0.6185701424955972, 0.5542130158270767], [0.0, 1.0526630759502948, 0.550363007477083, 0.0]],
    dx=[[[-0.16344756188036305, 0.6392868642120666, 0.7624806691337501], [0.7657454612183452, 0.284980854332317, -0.4987088987061151], [0.23129221740075218, -0.35587462333045605, -0.5647586052468736]], [[-0.77532924316658, -0.41922856855095947, 0.38249809626354453], [0.1377354838258547, -0.1863099626501389, -0.3123141308877361], [0.5020332337822037, 0.725135016529131, 0.1774424545929415]]],
    dh0=[[0.47086131507886225, -0.4340191051976659, 0.3956966955490257, -0.356024782734011], [-1.0458766486211795, 1.0534092809133475, -1.0573493151978255, 1.05768331419095]],
    W_ih=[[-1.2186799333086331, 0.4168268953836861, 0.8971001839825202, 0.6045041263311314], [-0.9901775705990248, -0.43930377838603374, 1.9657976101844383, -0.04311907839416431], [-0.012328563176134552, -0.9629781108711375, 1.5468185962040728, -0.6581106242360454]],
    W_hh=[[0.45595515050589597, -0.5924901700545252, -0.4433778492824276, -0.906214697434734], [1.4171074062727498, 0.6198470480427796, 0.24022909234740542, -0.5806392353804732], [0.865771474659109, 1.3961760876889913, 1.0339905502907702, 0.06365585237426927], [0.4593489682970163, 1.1130853548592983, 1.360265759806474, 0.044661381977864616]],
    b_ih=[0.40951767269978756, 0.4443475945042614, 1.306857573395065, -0.7489045214491649],
    b_hh=[0.40951767269978756, 0.4443475945042614, 1.306857573395065, -0.7489045214491649],
)

CASES = [("tanh", RNN_TANH), ("relu", RNN_RELU)]


@pytest.mark.parametrize("nonlinearity, ref", CASES)
def test_outputs_and_every_gradient_match_pytorch_in_float64(nonlinearity, ref):
    rnn = loaded(RNN, 1, nonlinearity=nonlinearity)
    out = rnn.forward(X, H0)
    dx, dh0 = rnn.backward(DOUT)
    for got, key in [(out, "out"), (rnn.h_n, "h_n"), (dx, "dx"), (dh0, "dh0")]:
        np.testing.assert_allclose(got, ref[key], rtol=0, atol=1e-10, err_msg=key)
    for key in rnn.params:
        np.testing.assert_allclose(rnn.grads[key], ref[key], rtol=0, atol=1e-10, err_msg=key)
    assert rnn.dh0 is dh0


@pytest.mark.parametrize("nonlinearity, ref", CASES)
def test_float32_matches_pytorch_to_1e_4_relative_and_stays_float32(nonlinearity, ref):
    rnn = loaded(RNN, 1, np.float32, nonlinearity=nonlinearity)
    f32 = np.float32
    out = rnn.forward(X.astype(f32), H0.astype(f32))
    dx, dh0 = rnn.backward(DOUT.astype(f32))
    for got, key in [(out, "out"), (dx, "dx"), (dh0, "dh0")] + [(rnn.grads[k], k) for k in rnn.grads]:
        assert got.dtype == f32, key
        assert_close(got, ref[key], 1e-4)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("with_h0", [True, False])
def test_staged_backpropagation_through_time_equals_the_fast_backward(nonlinearity, with_h0):
    rng = np.random.default_rng(3)
    rnn = RNN(5, 6, nonlinearity=nonlinearity, rng=1, dtype=F64)
    x, dout = rng.standard_normal((3, 7, 5)), rng.standard_normal((3, 7, 6))
    rnn.forward(x, rng.standard_normal((3, 6)) if with_h0 else None)
    staged = rnn.staged_backward(dout)
    dx = rnn.backward(dout)
    dx = dx[0] if with_h0 else dx
    assert np.abs(staged["x"] - dx).max() < 1e-12
    assert np.abs(staged["h0"] - rnn.dh0).max() < 1e-12
    for key in rnn.params:
        assert np.abs(staged[key] - rnn.grads[key]).max() < 1e-12, key


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_gradients_match_central_differences_in_float64(nonlinearity):
    rng = np.random.default_rng(5)
    rnn = RNN(3, 4, nonlinearity=nonlinearity, rng=2, dtype=F64)
    x = rng.standard_normal((2, 5, 3))
    report = gradcheck(rnn, x)
    assert report.ok, report
    assert report.worst < 1e-7
    h0, dout = rng.standard_normal((2, 4)), rng.standard_normal((2, 5, 4))
    rnn.forward(x, h0)
    _, dh0 = rnn.backward(dout)
    numeric = numeric_gradient(lambda: (rnn.forward(x, h0) * dout).sum(), h0)
    assert np.abs(dh0 - numeric).max() < 1e-8


# The behaviour the three recurrent layers share, through their common loop (layers/recurrent.py).
LAYERS = [RNN, LSTM, GRU]


def initial(cls, n=2, h=4, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((n, h)) for _ in cls.state_names)


@pytest.mark.parametrize("cls", LAYERS)
def test_backward_returns_dx_alone_without_initial_states_and_a_tuple_with_them(cls):
    layer = cls(3, 4, rng=0, dtype=F64)
    x, dout = X, DOUT
    assert layer.forward(x).shape == (2, 3, 4)
    dx = layer.backward(dout)
    assert isinstance(dx, np.ndarray) and dx.shape == x.shape
    assert layer.dh0.shape == (2, 4)                          # kept even when h0 was zeros
    states = initial(cls)
    layer.forward(x, *states)
    grads = layer.backward(dout)
    assert isinstance(grads, tuple) and len(grads) == 1 + len(states)
    assert grads[1] is layer.dh0 and (cls is not LSTM or grads[2] is layer.dc0)
    np.testing.assert_array_equal(layer.h_n, layer(x, *states)[:, -1])


@pytest.mark.parametrize("cls", LAYERS)
def test_stateful_carries_the_last_states_into_the_next_forward_until_reset(cls):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 3))
    whole = cls(3, 4, rng=0, dtype=F64).forward(x)
    chunked = cls(3, 4, rng=0, dtype=F64, stateful=True)
    halves = np.concatenate([chunked.forward(x[:, :3]), chunked.forward(x[:, 3:])], axis=1)
    np.testing.assert_allclose(halves, whole, rtol=0, atol=1e-14)
    chunked.backward(np.ones((2, 3, 4)))                      # truncated: dx of this chunk only
    chunked.reset_state()
    np.testing.assert_allclose(chunked.forward(x[:, :3]), whole[:, :3], rtol=0, atol=1e-14)
    plain = cls(3, 4, rng=0, dtype=F64)
    plain.forward(x[:, :3])
    np.testing.assert_allclose(plain.forward(x[:, 3:]), cls(3, 4, rng=0, dtype=F64).forward(x[:, 3:]))


@pytest.mark.parametrize("cls", LAYERS)
def test_weights_start_uniform_in_plus_minus_one_over_sqrt_hidden_size(cls):
    layer = cls(20, 64, rng=0)
    for key, p in layer.params.items():
        assert p.dtype == np.float32
        assert p.shape[-1] == cls.gates * 64
        assert np.abs(p).max() <= 1 / 8 and np.abs(p).max() > 0.12, key
    np.testing.assert_array_equal(cls(2, 3, rng=7).params["W_hh"], cls(2, 3, rng=7).params["W_hh"])


@pytest.mark.parametrize("cls", LAYERS)
def test_backward_writes_into_its_grads_arrays_and_changes_neither_x_nor_dout(cls):
    layer = cls(3, 4, rng=0, dtype=F64)
    arrays = dict(layer.grads)
    x, dout = X.copy(), DOUT.copy()
    layer.forward(x)
    layer.backward(dout)
    first = {key: g.copy() for key, g in layer.grads.items()}
    layer.backward(dout)                                      # overwrites, never accumulates
    for key, g in layer.grads.items():
        assert g is arrays[key]
        np.testing.assert_array_equal(g, first[key])
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(dout, DOUT)


@pytest.mark.parametrize("cls", LAYERS)
def test_bad_inputs_are_errors_that_name_the_layer_and_what_it_expected(cls):
    layer = cls(3, 4)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"\(N, T, 3\) \(batch first\), got \(3,\); for one sequence"):
        layer.forward(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, T, 3\)"):
        layer.forward(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(TypeError, match="expected float32 input"):
        layer.forward(np.zeros((2, 5, 3)))
    states = tuple(s.astype(np.float32) for s in initial(cls))
    with pytest.raises(ValueError, match=r"h0 of shape \(1, 4\) \(N, H\), got \(2, 4\)"):
        layer.forward(np.zeros((1, 5, 3), np.float32), *states)
    with pytest.raises(TypeError, match="expected h0 as a float32 array \\(the layer's dtype\\), got float64"):
        layer.forward(np.zeros((2, 5, 3), np.float32), *initial(cls))
    layer.forward(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"upstream gradient of shape \(2, 5, 4\)"):
        layer.backward(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(TypeError, match="hidden_size to be an int"):
        cls(3, 4.0)
    with pytest.raises(TypeError, match="stateful to be True or False"):
        cls(3, 4, stateful=1)


def test_an_lstm_takes_both_initial_states_or_neither_and_rnn_checks_its_nonlinearity():
    with pytest.raises(ValueError, match="LSTM\\(3, 4\\): expected all of h0, c0 or none, got only h0"):
        LSTM(3, 4).forward(np.zeros((2, 5, 3), np.float32), np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="nonlinearity as one of 'tanh', 'relu', got 'sigmoid'"):
        RNN(3, 4, nonlinearity="sigmoid")
    assert repr(RNN(3, 4, nonlinearity="relu", stateful=True)) == \
        "RNN(3, 4, stateful=True, nonlinearity='relu')"


def test_a_carried_state_of_another_batch_size_says_to_reset():
    rnn = RNN(3, 4, stateful=True)
    rnn.forward(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match="reset_state"):
        rnn.forward(np.zeros((3, 5, 3), np.float32))

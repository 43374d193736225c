"""LSTM: against PyTorch, staged BPTT equals the fast backward, gradcheck, gate orders."""
import runpy
from pathlib import Path

import numpy as np
import pytest

from handprop.layers import LSTM, reorder_gates
from handprop.layers.gradcheck import gradcheck

F64 = np.float64


# the inputs and helpers the recurrent tests share, loaded by path (no sys.path change)
_shared = runpy.run_path(str(Path(__file__).with_name("recurrent_reference.py")))
wave, loaded, numeric_gradient, assert_close = (
    _shared[k] for k in ("wave", "loaded", "numeric_gradient", "assert_close"))
N, T, D, H, X, H0, C0, DOUT = (_shared[k] for k in ("N", "T", "D", "H", "X", "H0", "C0", "DOUT"))


# Reference values: torch 2.13.0+cpu, float64, printed by tests/torch_reference_recurrent.py
# (run with /work/venvs/torch/bin/python): torch.nn.LSTM(3, 4, batch_first=True) holding
# the weights of `loaded` (transposed), on X with the initial states H0, C0 above, then
# out.backward(DOUT); the weight gradients are printed transposed, in our (in, out) layout.
TORCH = dict(
    out=[[[0.32987874600881556, 0.2786341900982938, -0.03546683665167052, -0.06368747469944644], [0.04613284810121534, 0.14050441253021081, 0.1002482027297016, 0.09900534029472437], [0.2757182210423178, 0.15362598483626172, -0.1452171724786815, -0.027763780632308825]], [[-0.2640994532481013, -0.14182846063378285, 0.0007153241041204151, 0.077652555865503], [-0.0669057476329875, -0.20210112651165876, -0.16670676215281702, 0.05965986512436747], [-0.12915001384871197, -0.08615366718779578, -0.0865924603861407, 0.07773329268709682]]],
    h_n=[[0.2757182210423178, 0.15362598483626172, -0.1452171724786815, -0.027763780632308825], [-0.12915001384871197, -0.08615366718779578, -0.0865924603861407, 0.07773329268709682]],
    c_n=[[0.4100126861817138, 0.23665003113094146, -0.3516134741227782, -0.07115628700449174], [-0.2193123357683507, -0.1539080352530085, -0.15264512974934208, 0.13131763915669986]],
    dc0=[[0.12586252437176731, 0.08792877684683932, 0.11397966352743046, 0.2801394075950888], [-0.023468613817984207, 0.0002344266415239714, -0.05232279311373399, 0.018588790992961454]],
    dx=[[[0.1669331599597651, 0.0028513532387182275, -0.16904654491951493], [-0.19574698988487105, 0.16962835584736438, 0.07002071678517965], [-0.1052285746470233, 0.028698853670106845, 0.08395736738835838]], [[-0.04471944817577864, -0.018873496760353062, 0.05870823204498902], [0.04290539703358148, 0.051002129201902224, -0.08070749440505018], [-0.08378150432384748, 0.15142730714455097, -0.028454394430827257]]],
    dh0=[[0.0822665960459178, 0.045215010725163506, 0.005706673737677177, -0.03411173461751769], [-0.07315919664085141, -0.07573381361207045, -0.07419344377171228, -0.068621782912656]],
    W_ih=[[-0.07903086329251402, 0.08431248167823135, 0.05498453821730164, -0.008089999528694096, 0.08659449645424049, 0.04601724146501735, -0.021676492234696407, -0.0015213701043743384, 0.17540591353148982, 0.10224997084108961, 0.10754466837770982, 0.0020576863829801784, 0.03793344945703593, 0.10340263986547012, 0.027683129412612834, -0.03929795128267069], [-0.0049232963665751285, 0.08854675599955147, 0.022510851251158818, -0.05192711902472484, 0.012692034974195946, 0.009489596711433186, -0.011014059418619077, 0.02622338979821084, 0.05700630892544972, 0.0928239428458553, 0.24769915012463992, 0.08835998192596704, 0.007866819536589291, 0.03892865420381839, 0.0010711171559431541, -0.04027147814241361], [0.07291012309608629, 0.025770610696471637, -0.026998599153344523, -0.05646683008999837, -0.07081550553904016, -0.03421958564362651, 0.007983593983218377, 0.034122811105204515, -0.10453453376673724, 0.013150605493249867, 0.20039985332158575, 0.10779320473981285, -0.028153262571975285, -0.05500576085655964, -0.026351495209972695, -0.010768353217966322]],
    W_hh=[[-0.01190463675467051, 0.025810244794448555, 0.02495942500367709, -0.013285249731372628, 0.05398019349671525, 0.029931832457415646, 0.010012535063887908, -0.0009713360675607831, 0.031260988841429464, -0.05068957712653857, 0.018488219640894605, -0.05044942994032054, 0.03223811421217519, 0.06411074647624065, 0.03644965628674208, -0.014540126940960043], [0.009891033807307117, 0.026114313785154466, 0.011809841060319145, -0.031023355341469883, 0.0508289582480383, 0.03240298797953895, 0.020726464028268533, 0.00831440245936331, 0.01310696809277169, -0.049721185110958264, 0.06928504561022357, -0.0035855817202824214, 0.028345971637068187, 0.0640560666682965, 0.03001594090708523, -0.015921738828614078], [0.029215327653161007, 0.02046022000379428, -0.01043459815152891, -0.039904503114352396, 0.015505845630969359, 0.01885902496247562, 0.021011924132574786, 0.01683743364998571, -0.031004872203004873, -0.01857126271722296, 0.10440576942931754, 0.06524330882432527, 0.006331967692408597, 0.02752122759838795, 0.0012557185628174032, -0.014013777107339677], [0.02095292681194643, 0.01300837501641967, -0.012871744089474942, -0.029259191928100847, 0.00235567761599945, 0.002229827779022475, 0.005609772005656603, 0.018396516195067474, 0.045132633098974896, 0.06855811411975282, 0.1391410428132199, 0.09992768196661297, -0.018704356759085473, -0.0005332298773378444, -0.01222936471938265, -0.0027348231175415216]],
    b_ih=[0.038419423345038284, -0.016825373392471886, -0.06639621932977835, 0.012302849316900809, 0.05096347243587395, -0.05817123328891271, -0.017396217662757153, 0.04219871567862297, 0.8629284003549456, 0.7783908901478116, 0.5991614845217759, 0.5343764310580819, 0.08228517126520044, 0.12057205974243153, -0.041529075722319925, 0.04648946695664555],
    b_hh=[0.03841942334503829, -0.016825373392471886, -0.06639621932977835, 0.012302849316900802, 0.05096347243587396, -0.0581712332889127, -0.017396217662757146, 0.04219871567862297, 0.8629284003549457, 0.7783908901478115, 0.5991614845217758, 0.5343764310580819, 0.08228517126520044, 0.12057205974243151, -0.041529075722319925, 0.04648946695664554],
)

GRADIENTS = ["dx", "dh0", "dc0"]


def test_outputs_and_every_gradient_match_pytorch_in_float64():
    lstm = loaded(LSTM, 4)
    out = lstm.forward(X, H0, C0)
    grads = dict(zip(GRADIENTS, lstm.backward(DOUT)))
    got = {"out": out, "h_n": lstm.h_n, "c_n": lstm.c_n, **grads, **lstm.grads}
    for key, value in got.items():
        np.testing.assert_allclose(value, TORCH[key], rtol=0, atol=1e-10, err_msg=key)
    assert grads["dc0"] is lstm.dc0


def test_float32_matches_pytorch_to_1e_4_relative_and_stays_float32():
    f32 = np.float32
    lstm = loaded(LSTM, 4, f32)
    out = lstm.forward(X.astype(f32), H0.astype(f32), C0.astype(f32))
    grads = dict(zip(GRADIENTS, lstm.backward(DOUT.astype(f32))))
    for key, value in {"out": out, "c_n": lstm.c_n, **grads, **lstm.grads}.items():
        assert value.dtype == f32, key
        assert_close(value, TORCH[key], 1e-4)


@pytest.mark.parametrize("with_states", [True, False])
def test_staged_backpropagation_through_time_equals_the_fast_backward(with_states):
    rng = np.random.default_rng(3)
    lstm = LSTM(5, 6, rng=1, dtype=F64)
    x, dout = rng.standard_normal((3, 7, 5)), rng.standard_normal((3, 7, 6))
    states = (rng.standard_normal((3, 6)), rng.standard_normal((3, 6))) if with_states else ()
    lstm.forward(x, *states)
    staged = lstm.staged_backward(dout)
    dx = lstm.backward(dout)
    dx = dx[0] if with_states else dx
    assert np.abs(staged["x"] - dx).max() < 1e-12
    assert np.abs(staged["h0"] - lstm.dh0).max() < 1e-12
    assert np.abs(staged["c0"] - lstm.dc0).max() < 1e-12
    for key in lstm.params:
        assert np.abs(staged[key] - lstm.grads[key]).max() < 1e-12, key


def test_gradients_match_central_differences_in_float64():
    rng = np.random.default_rng(5)
    lstm = LSTM(3, 4, rng=2, dtype=F64)
    x = rng.standard_normal((2, 5, 3))
    report = gradcheck(lstm, x)
    assert report.ok, report
    assert report.worst < 1e-7
    h0, c0, dout = rng.standard_normal((2, 4)), rng.standard_normal((2, 4)), rng.standard_normal((2, 5, 4))
    lstm.forward(x, h0, c0)
    _, dh0, dc0 = lstm.backward(dout)
    loss = lambda: (lstm.forward(x, h0, c0) * dout).sum()  # noqa: E731
    assert np.abs(dh0 - numeric_gradient(loss, h0)).max() < 1e-8
    assert np.abs(dc0 - numeric_gradient(loss, c0)).max() < 1e-8


def step_in_order(x, h, c, Wx, Wh, b, order):
    """One LSTM step written for weights whose gate blocks come in `order` (CS231n: ifog)."""
    a = x @ Wx + h @ Wh + b
    blocks = dict(zip(order, np.split(a, 4, axis=1)))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, o, g = sig(blocks["i"]), sig(blocks["f"]), sig(blocks["o"]), np.tanh(blocks["g"])
    c = f * c + i * g
    return o * np.tanh(c), c


@pytest.mark.parametrize("order", ["ifog", "fgio", "ifgo"])
def test_weights_in_another_gate_order_load_and_give_that_layout_s_outputs(order):
    rng = np.random.default_rng(8)
    Wx, Wh, b = rng.standard_normal((3, 8)), rng.standard_normal((2, 8)), rng.standard_normal(8)
    x = rng.standard_normal((4, 5, 3))
    lstm = LSTM.from_gate_order(Wx, Wh, b, order=order, dtype=F64)
    h, c = np.zeros((4, 2)), np.zeros((4, 2))
    for t in range(5):
        h, c = step_in_order(x[:, t], h, c, Wx, Wh, b, order)
        np.testing.assert_allclose(lstm.forward(x)[:, t], h, rtol=0, atol=1e-13)
    assert not lstm.params["b_hh"].any()


def test_reorder_gates_moves_whole_blocks_and_back():
    W = np.arange(24.0).reshape(3, 8)                        # H = 2: blocks of two columns
    ifgo = reorder_gates(W, "ifog")
    np.testing.assert_array_equal(ifgo[:, 4:6], W[:, 6:8])   # g was last, now third
    np.testing.assert_array_equal(ifgo[:, 6:8], W[:, 4:6])   # o was third, now last
    np.testing.assert_array_equal(reorder_gates(ifgo, "ifgo", "ifog"), W)
    np.testing.assert_array_equal(reorder_gates(reorder_gates(W, "fgio"), "ifgo", "fgio"), W)
    with pytest.raises(ValueError, match="source as one of 'ifgo', 'ifog', 'fgio', got 'iofg'"):
        reorder_gates(W, "iofg")
    with pytest.raises(ValueError, match="last axis of 4H"):
        reorder_gates(np.zeros(6), "ifog")
    with pytest.raises(ValueError, match=r"expected W_hh of shape \(2, 8\), got \(2, 4\)"):
        LSTM.from_gate_order(W, np.zeros((2, 4)), np.zeros(8), order="ifog")

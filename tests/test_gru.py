"""GRU: against PyTorch, staged BPTT equals the fast backward, gradcheck, the reset gate."""
import runpy
from pathlib import Path

import numpy as np
import pytest

from handprop.layers import GRU
from handprop.layers.gradcheck import gradcheck

F64 = np.float64


# the inputs and helpers the recurrent tests share, loaded by path (no sys.path change)
_shared = runpy.run_path(str(Path(__file__).with_name("recurrent_reference.py")))
wave, loaded, numeric_gradient, assert_close = (
    _shared[k] for k in ("wave", "loaded", "numeric_gradient", "assert_close"))
N, T, D, H, X, H0, C0, DOUT = (_shared[k] for k in ("N", "T", "D", "H", "X", "H0", "C0", "DOUT"))


# Reference values: torch 2.13.0+cpu, float64, printed by tests/torch_reference_recurrent.py
# (run with /work/venvs/torch/bin/python): torch.nn.GRU(3, 4, batch_first=True) holding
# the weights of `loaded` (transposed), on X with the initial state H0 above, then
# out.backward(DOUT); the weight gradients are printed transposed, in our (in, out) layout.
TORCH = dict(
    out=[[[0.11999936283084779, 0.1699801211454785, 0.07611001734767384, 0.3099835009403906], [0.12455990933571302, 0.11102311464272546, -0.13656618992849925, 0.16284418882400076], [0.11295519340296174, -0.00855029478420527, -0.2374481833268206, 0.19722994236295638]], [[0.18776437279719663, 0.03865215016216614, -0.2178669470210766, -0.15427346921329238], [0.22378286559645869, 0.032014059509608735, -0.28579205456863616, -0.010614392069795905], [0.12622600209800627, 0.003948263342372738, -0.1966704956202787, 0.13102988877786342]]],
    h_n=[[0.11295519340296174, -0.00855029478420527, -0.2374481833268206, 0.19722994236295638], [0.12622600209800627, 0.003948263342372738, -0.1966704956202787, 0.13102988877786342]],
    dx=[[[0.23954098600232454, -0.2190147011740839, 0.1959380449848628], [-0.14882449631511901, 0.17060922493251773, -0.190407251840605], [-0.31981892712420346, 0.31387168375192687, -0.30426948320566916]], [[0.08341215629333276, -0.10435325673306586, 0.12407918962482023], [0.27873577366841473, -0.2630503440678982, 0.2443017590700027], [0.01742538569047075, 0.010782966896517199, -0.03886575453370117]]],
    dh0=[[0.6590366945100522, 0.24075940885423094, 0.566657165622416, 0.21529106999616826], [-0.483922056428434, -0.1759128711017674, -0.3378254020600002, 0.12836602044160267]],
    W_ih=[[-0.024572069798383167, -0.029840979579510166, -0.005890955820233029, 0.02029412763155354, 0.0632873816437522, 0.11556655343858026, 0.008060960295959263, 0.044833486605155785, 0.08069685268750615, -0.011549574425531117, 0.06938194755719418, 0.09089941121480277], [-0.0260820024357494, -0.011163311475433419, 0.008328780135904497, 0.026585304195252128, 0.0893465445965882, 0.10477851037850931, 0.0962050176083853, 0.04075257531014137, 0.3212740215461599, 0.21696740449256777, 0.37248635763809557, 0.29510859045088167], [-0.007853595614659953, 0.015962528195430755, 0.016245461332258862, 0.01275725256299965, 0.047790023859805186, 0.014696179585085033, 0.11154303559009493, 0.005830927485813981, 0.31871741599148773, 0.2812877772703175, 0.39370051834814845, 0.2759854718783422]],
    W_hh=[[-0.0181936755149858, -0.007277498206268308, 0.008630828154052226, 0.01160597568318982, 0.016358839008536123, 0.035242826800515874, 0.037046405949352615, -0.00541070707310636, 0.13821818814874268, 0.09999212125137115, 0.1715625806418825, 0.08373245391435327], [-0.019255496979385233, -0.004745244435407008, 0.00880449826749544, 0.011095451471922856, 0.015284315634481287, 0.03414021825185497, 0.07884366317106008, 0.006026535862835762, 0.1635527146420624, 0.17988084396959078, 0.1781121862732138, 0.0795857839431591], [-0.006518959991053929, 0.0005307595713487853, 0.0032824142305601803, 0.008932215152210717, 0.004446092300042569, 0.021863469990747914, 0.09692388954337826, 0.02203881260581499, 0.07061461789926818, 0.15152902271220192, 0.08749345638516953, 0.05433664565764078], [-0.01975023656733076, -0.0014100680327830471, 0.006810245078074479, 0.003166230190630087, 0.013158676347857414, 0.0062457272159028125, 0.06938336635285036, 0.005797202400851513, 0.18908696541579012, 0.2762177638316232, 0.12850236023279976, 0.02707101895221875]],
    b_ih=[-0.10102761290126773, -0.0404486724633933, 0.04136729323265509, 0.040439213067858235, 0.07553628252502495, 0.18982688121041588, 0.19926572359603673, -0.016571148615673603, 1.316990170774961, 0.7653102847507651, 1.5172844872548605, 0.6664349850543234],
    b_hh=[-0.10102761290126773, -0.0404486724633933, 0.04136729323265508, 0.040439213067858235, 0.07553628252502495, 0.18982688121041588, 0.19926572359603673, -0.016571148615673603, 0.7341528391017952, 0.4664329527707348, 0.8103106556537648, 0.30735183226986806],
)


def test_outputs_and_every_gradient_match_pytorch_in_float64():
    gru = loaded(GRU, 3)
    out = gru.forward(X, H0)
    dx, dh0 = gru.backward(DOUT)
    got = {"out": out, "h_n": gru.h_n, "dx": dx, "dh0": dh0, **gru.grads}
    for key, value in got.items():
        np.testing.assert_allclose(value, TORCH[key], rtol=0, atol=1e-10, err_msg=key)


def test_float32_matches_pytorch_to_1e_4_relative_and_stays_float32():
    f32 = np.float32
    gru = loaded(GRU, 3, f32)
    out = gru.forward(X.astype(f32), H0.astype(f32))
    dx, dh0 = gru.backward(DOUT.astype(f32))
    for key, value in {"out": out, "dx": dx, "dh0": dh0, **gru.grads}.items():
        assert value.dtype == f32, key
        assert_close(value, TORCH[key], 1e-4)


@pytest.mark.parametrize("with_h0", [True, False])
def test_staged_backpropagation_through_time_equals_the_fast_backward(with_h0):
    rng = np.random.default_rng(3)
    gru = GRU(5, 6, rng=1, dtype=F64)
    x, dout = rng.standard_normal((3, 7, 5)), rng.standard_normal((3, 7, 6))
    gru.forward(x, rng.standard_normal((3, 6)) if with_h0 else None)
    staged = gru.staged_backward(dout)
    dx = gru.backward(dout)
    dx = dx[0] if with_h0 else dx
    assert np.abs(staged["x"] - dx).max() < 1e-12
    assert np.abs(staged["h0"] - gru.dh0).max() < 1e-12
    for key in gru.params:
        assert np.abs(staged[key] - gru.grads[key]).max() < 1e-12, key


def test_gradients_match_central_differences_in_float64():
    rng = np.random.default_rng(5)
    gru = GRU(3, 4, rng=2, dtype=F64)
    x = rng.standard_normal((2, 5, 3))
    report = gradcheck(gru, x)
    assert report.ok, report
    assert report.worst < 1e-7
    h0, dout = rng.standard_normal((2, 4)), rng.standard_normal((2, 5, 4))
    gru.forward(x, h0)
    _, dh0 = gru.backward(dout)
    numeric = numeric_gradient(lambda: (gru.forward(x, h0) * dout).sum(), h0)
    assert np.abs(dh0 - numeric).max() < 1e-8


def test_the_reset_gate_scales_the_hidden_bias_of_the_candidate_but_not_the_input_one():
    gru = loaded(GRU, 3)
    base = gru.forward(X, H0)
    for key in ["b_ih", "b_hh"]:                      # move 0.5 between the two n biases
        gru.params[key][2 * H:] += 0.5 if key == "b_ih" else -0.5
    moved = gru.forward(X, H0)
    assert np.abs(moved - base).max() > 1e-3          # r * b_hn differs from b_hn: not the same
    gru.forward(X, H0)
    gru.backward(DOUT)
    assert np.abs(gru.grads["b_ih"][2 * H:] - gru.grads["b_hh"][2 * H:]).max() > 1e-3
    np.testing.assert_array_equal(gru.grads["b_ih"][:2 * H], gru.grads["b_hh"][:2 * H])

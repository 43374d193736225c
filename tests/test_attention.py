"""CausalSelfAttention: against nanoGPT's in PyTorch, staged equals fused, gradcheck, causality,
the masked softmax, dropout, dtypes, errors, and the gradcheck registry's entries."""
import numpy as np
import pytest

from handprop.layers import CausalSelfAttention
from handprop.layers.attention import (
    causal_mask,
    causal_softmax,
    masked_softmax,
    staged_backward,
)
from handprop.layers.gradcheck import gradcheck

F64 = np.float64
LINEAR_WEIGHTS = ("W_qkv", "W_out")


def load_like_reference(layer, rng):
    """The weights tests/torch_reference_gpt.py draws: each parameter in order, with torch's shape
    (a Linear's weight is (out, in): ours stored transposed); matrices 0.4 N(0, 1), biases 0.1 N(0, 1)."""
    for name, p in layer.params.items():
        linear = name.endswith(LINEAR_WEIGHTS)
        draw = rng.standard_normal(p.shape[::-1] if linear else p.shape)
        value = 0.4 * draw if p.ndim == 2 else 0.1 * draw
        p[...] = value.T if linear else value


def assert_close(ours, theirs, tol=1e-10):
    theirs = np.asarray(theirs, F64).reshape(ours.shape)
    err = np.max(np.abs(ours - theirs)) / max(1.0, np.max(np.abs(theirs)))
    assert err <= tol, f"relative error {err:.2e}"


def test_agrees_with_nanogpts_attention_in_pytorch():
    """Output, dx and every gradient to 1e-10, the layer loaded by position from nanoGPT's
    c_attn and c_proj (their weights transposed): q | k | v and the heads laid out alike."""
    rng = np.random.default_rng(220)
    x = rng.standard_normal((2, 4, 6))
    attn = CausalSelfAttention(6, 2, dtype=F64)
    load_like_reference(attn, rng)
    dout = rng.standard_normal((2, 4, 6))
    out = attn.forward(x)
    dx = attn.backward(dout)
    assert_close(out, ATTENTION["out"])
    assert_close(dx, ATTENTION["dx"])
    theirs = [name for name in ATTENTION if name not in ("out", "dx")]
    pairs = list(zip(attn.grads, theirs))
    assert pairs == [("W_qkv", "c_attn.weight"), ("b_qkv", "c_attn.bias"),
                     ("W_out", "c_proj.weight"), ("b_out", "c_proj.bias")]
    for name, torch_name in pairs:
        assert_close(attn.grads[name], ATTENTION[torch_name])


def masks(attn, n, t):
    c = attn.cache
    return c.att_keep, None if c.out_keep is None else c.out_keep.reshape(n, t, -1)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("bias", [True, False])
def test_staged_and_fused_backward_agree(dropout, bias):
    rng = np.random.default_rng(5)
    attn = CausalSelfAttention(12, 3, bias=bias, dropout=dropout, rng=1, dtype=F64)
    x, dout = rng.standard_normal((2, 2, 7, 12))
    attn.forward(x)
    dx = attn.backward(dout)
    staged_dx, staged_grads = staged_backward(x, attn.params, 3, dout, *masks(attn, 2, 7))
    assert np.max(np.abs(dx - staged_dx)) < 1e-12
    assert staged_grads.keys() == attn.grads.keys()
    for name, grad in staged_grads.items():
        assert np.max(np.abs(attn.grads[name] - grad)) < 1e-12, name


@pytest.mark.parametrize("shape,heads,bias,dropout,train", [
    ((2, 5, 6), 2, True, 0.0, True),
    ((1, 4, 6), 3, False, 0.0, True),
    ((2, 4, 4), 1, True, 0.25, True),
    ((2, 4, 4), 2, True, 0.25, False),
])
def test_gradcheck(shape, heads, bias, dropout, train):
    attn = CausalSelfAttention(shape[-1], heads, bias=bias, dropout=dropout, rng=3, dtype=F64)
    report = gradcheck(attn.train(train), np.random.default_rng(4).standard_normal(shape))
    assert report.ok, report
    assert report.worst < 1e-8, report


def test_no_position_sees_the_future():
    """Changing the last position changes no earlier output, and no earlier input gets gradient
    from a later output alone."""
    attn = CausalSelfAttention(8, 2, rng=0, dtype=F64)
    x = np.random.default_rng(1).standard_normal((2, 5, 8))
    out = attn.forward(x)
    later = x.copy()
    later[:, 3:] += 1.0
    assert np.array_equal(attn.forward(later)[:, :3], out[:, :3])
    dout = np.zeros_like(out)
    dout[:, 1] = 1.0                                  # only position 1's output matters
    dx = attn.backward(dout)
    assert np.all(dx[:, 2:] == 0) and np.all(np.abs(dx[:, :2]).sum(axis=-1) > 0)
    att = attn.cache.att
    assert np.all(att[..., ~causal_mask(5)] == 0)
    assert np.allclose(att.sum(axis=-1), 1)


@pytest.mark.parametrize("t", [1, 2, 7, 64])
def test_the_fast_causal_softmax_equals_the_staged_masked_softmax(t):
    """The forward's fast path (in place, the mask added, row sums as a product) against
    masked_softmax of the scaled scores: 1e-12 in float64, a few ulps in float32, exact 0
    above the diagonal; and it writes into the scores it is given."""
    scores = np.random.default_rng(t).standard_normal((3, 2, t, t)) * 4
    staged = masked_softmax(scores * 0.3, causal_mask(t))
    fast_in = scores.copy()
    fast = causal_softmax(fast_in, 0.3)
    assert fast is fast_in
    np.testing.assert_allclose(fast, staged, rtol=0, atol=1e-12)
    assert np.all(fast[..., ~causal_mask(t)] == 0)
    s32 = scores.astype(np.float32)
    fast32 = causal_softmax(s32.copy(), 0.3)
    assert fast32.dtype == np.float32
    np.testing.assert_allclose(fast32, masked_softmax(s32 * np.float32(0.3), causal_mask(t)),
                               rtol=0, atol=1e-6)


def test_the_masked_softmax_is_finite_on_fully_masked_rows():
    scores = np.array([[3.0, -1.0, 2.0], [1e3, -1e3, 0.5], [np.inf, 0.0, 0.0]])
    keep = np.array([[True, False, True], [False, False, False], [False, True, False]])
    with np.errstate(all="raise"):
        att = masked_softmax(scores, keep)
    assert np.all(np.isfinite(att))
    assert np.array_equal(att[1], [0.0, 0.0, 0.0])    # nothing kept: all 0, never NaN
    assert np.array_equal(att[2], [0.0, 1.0, 0.0])    # a masked inf is ignored
    assert att[0, 1] == 0 and np.isclose(att[0].sum(), 1)
    assert np.isclose(att[0, 0] / att[0, 2], np.e)


def test_float32_stays_float32():
    attn = CausalSelfAttention(8, 2, dropout=0.1, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    out = attn.forward(x)
    dx = attn.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in attn.grads.values())
    for field in attn.cache:
        assert field is None or field.dtype == np.float32


def test_backward_writes_into_the_grads_arrays_and_changes_no_input():
    attn = CausalSelfAttention(6, 2, rng=0, dtype=F64)
    grads = dict(attn.grads)
    x, dout = np.random.default_rng(2).standard_normal((2, 2, 3, 6))
    x0, dout0 = x.copy(), dout.copy()
    attn.forward(x)
    attn.backward(dout)
    assert all(attn.grads[name] is grads[name] for name in grads)
    assert np.array_equal(x, x0) and np.array_equal(dout, dout0)
    assert np.abs(attn.grads["W_qkv"]).sum() > 0


def test_dropout_draws_from_the_layers_own_generator():
    x = np.random.default_rng(0).standard_normal((2, 4, 8))
    a, b = (CausalSelfAttention(8, 2, dropout=0.5, rng=7, dtype=F64) for _ in range(2))
    first = a.forward(x)
    assert np.array_equal(first, b.forward(x))           # same seed, same masks
    assert not np.array_equal(first, a.forward(x))       # the next draw differs
    plain = CausalSelfAttention(8, 2, rng=7, dtype=F64)
    assert np.array_equal(a.eval().forward(x), plain.forward(x))    # eval: no dropout
    a.train().forward(x)
    assert set(np.unique(a.cache.att_keep)) == set(np.unique(a.cache.out_keep)) == {0.0, 2.0}
    assert np.all(CausalSelfAttention(8, 2, dropout=1.0, rng=0, dtype=F64).forward(x) == 0)


def test_params_repr_and_layout():
    attn = CausalSelfAttention(8, 2)
    assert {name: p.shape for name, p in attn.params.items()} == {
        "W_qkv": (8, 24), "b_qkv": (24,), "W_out": (8, 8), "b_out": (8,)}
    assert repr(attn) == "CausalSelfAttention(8, 2)"
    assert list(CausalSelfAttention(8, 4, bias=False).params) == ["W_qkv", "W_out"]
    assert repr(CausalSelfAttention(8, 4, bias=False, dropout=0.1, dtype=F64)) == (
        "CausalSelfAttention(8, 4, bias=False, dropout=0.1, dtype=float64)")
    assert attn.params["W_qkv"].dtype == np.float32
    assert np.max(np.abs(attn.params["W_qkv"])) <= 1 / np.sqrt(8)   # PyTorch's Linear init


@pytest.mark.parametrize("call,error,message", [
    (lambda a: a.forward(np.zeros((2, 3, 7))), ValueError, r"\(N, T, 8\), got \(2, 3, 7\)"),
    (lambda a: a.forward(np.zeros((3, 8))), ValueError, r"\(N, T, 8\), got \(3, 8\)"),
    (lambda a: a.forward(np.zeros((2, 3, 8), np.float32)), TypeError, "float64"),
    (lambda a: a.forward(np.zeros((2, 3, 8), int)), TypeError, "floating-point"),
    (lambda a: a.backward(np.zeros((2, 3, 8))), RuntimeError, "before forward"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=r"^CausalSelfAttention\(8, 2, dtype=float64\): .*" + message):
        call(CausalSelfAttention(8, 2, dtype=F64))


def test_bad_upstream_gradient():
    attn = CausalSelfAttention(8, 2, dtype=F64)
    attn.forward(np.zeros((2, 3, 8)))
    with pytest.raises(ValueError, match=r"\(2, 3, 8\).*got \(2, 3, 7\)"):
        attn.backward(np.zeros((2, 3, 7)))


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(embed_dim=10, num_heads=3), ValueError, "divisible by num_heads, got embed_dim=10 and num_heads=3"),
    (dict(embed_dim=0, num_heads=1), ValueError, "embed_dim >= 1"),
    (dict(embed_dim=8, num_heads=2.0), TypeError, "num_heads to be an int"),
    (dict(embed_dim=8, num_heads=2, dropout=1.5), ValueError, r"dropout in \[0, 1\]"),
    (dict(embed_dim=8, num_heads=2, bias=1), TypeError, "bias to be True or False"),
    (dict(embed_dim=8, num_heads=2, dtype=np.int32), TypeError, "floating-point dtype"),
])
def test_bad_construction(kwargs, error, message):
    with pytest.raises(error, match="^CausalSelfAttention: .*" + message):
        CausalSelfAttention(**kwargs)


def registry_entries(takes_ids):
    from handprop.train.gradcheck.attention import attention_checks
    return [(name, make) for name, make in attention_checks(seed=0)
            if name.startswith("GPT") == takes_ids]


def test_the_registry_covers_attention_the_position_embedding_the_block_and_gpt():
    from handprop.train.gradcheck.attention import attention_checks
    subjects = {name.split()[0] for name, _ in attention_checks(seed=0)}
    assert subjects == {"CausalSelfAttention", "PositionEmbedding", "Block", "GPT"}
    for name, make in attention_checks(seed=0):
        subject, inputs = make()
        assert type(subject).__name__ == name.split()[0]
        n = (inputs[0] if isinstance(inputs, tuple) else inputs).shape[0]
        assert ("batch 1" in name) == (n == 1)
        if "train" in name.split() or "eval" in name.split():
            assert subject.training == ("train" in name.split())


@pytest.mark.parametrize("name,make", registry_entries(takes_ids=False),
                         ids=[name for name, _ in registry_entries(takes_ids=False)])
def test_the_registry_entries_pass_gradcheck(name, make):
    report = gradcheck(*make())                     # as python -m handprop.train.gradcheck calls it
    assert report.ok and not report.problems, f"{name}\n{report}"


def test_the_registry_gpt_entries_pass_gradcheck():
    import handprop.layers.gradcheck as checker
    if not hasattr(checker, "__path__"):
        pytest.skip("token ids as a gradcheck input come with the checker package (branch i19-checker)")
    for name, make in registry_entries(takes_ids=True):
        report = gradcheck(*make())
        assert report.ok and not report.problems, f"{name}\n{report}"


# Reference values: tests/torch_reference_gpt.py attention (torch 2.13.0+cpu, float64): nanoGPT's
# CausalSelfAttention(n_embd=6, n_head=2), x (2, 4, 6), L = sum(out * dout); gradients in
# named_parameters() order, Linear weights transposed to (in, out).
ATTENTION = {
    'out': [0.1537088464491439, -0.08747292538956861, 0.07009268620404249, -0.2870567956392788,
        0.1665459635994719, 0.08719044013097824, 0.1481857900543277, 1.157119257739199,
        -0.7072092996132724, 0.02232942087001112, 0.3751937751360784, 1.735642363635826,
        0.1286853213967269, 0.3008221330849518, -0.4497196479434256, 0.06388940468333285,
        0.4654552848479166, 0.6235244897103949, 0.02682582249014176, 0.1988581304876436,
        -0.5292677022487584, 0.1191903599584002, 0.1944998259156805, 0.4798422557722536,
        0.7439976303540685, -0.4426637177667649, -1.878329673013644, -0.02946267446233572,
        0.2591836768137171, 0.1862470619064201, 0.5494539954042356, -0.8900336782218159,
        -1.542449240303845, -0.2207649834844981, -0.07892426133233635, -0.4148661224837643,
        0.5034774104879978, -0.5446113603547073, -1.310737362395017, -0.1158347559309837,
        0.03138702869987484, -0.1269407401208227, 0.1637307621409106, -1.211668773999525,
        -1.424499699491181, -0.6674208816276638, -0.9914745169552187, -0.7263608296122327],
    'dx': [3.232310597945448, -0.1795134295673186, -2.976032720649874, 0.09592712866561123,
        0.728058166893169, 2.531593079451369, -1.606153551164379, -0.5664035471043403,
        -1.715229481974124, 1.502721861898587, -0.09832071671724797, -0.3654045589509143,
        -0.4893770884344663, 0.5815560990401732, -0.5425565546961643, 0.6908322615543092,
        0.001959055258002749, -0.3572411872899973, 0.2686586432981144, -0.2199274370759697,
        -0.3192348103854914, 0.08348117533747067, 0.2318864341758362, 0.006677880055613924,
        1.063428008664707, -0.8708088922416107, 0.3978798479086184, -0.5617100445244029,
        -0.08049000292409275, -0.6203557968966451, 0.4447532853307813, -0.05545979738890261,
        0.3044526851178945, 0.3021782926567712, -0.1697231057815185, 0.3233308557138972,
        -0.7618804380247453, -0.08866661395398073, 0.9503681960067643, -0.6415109159159393,
        0.1035026803005112, 1.071958852934766, 0.1524468425437732, -0.08180791866355724,
        0.4185132733129101, -0.1441164304789446, -0.04129739004356171, 0.1967656105628958],
    'c_attn.weight': [1.063587695833323, -0.8278257197433394, -0.5588912476426042, 0.2489032876686862,
        -0.08972392588877257, 0.4223292108648034, -1.476871882447629, -0.4546553955134295,
        -0.2440268729778582, 1.090749821266481, 0.08787781528598565, -0.6333213424666445,
        1.719039078014867, -1.038603552843672, 0.9258271260629564, 2.149636388945054,
        0.3954075019437283, -0.8388417395935859, -0.7933971110356766, 0.1365245927279136,
        0.5690882667147018, 0.1751319633087587, -1.084492173935198, -0.09616362466212994,
        -0.6692396281260924, -0.4878423291496414, -0.9759259850557842, 1.560057171967439,
        0.1897670721725055, -0.2517355184181599, 2.555359080906581, 0.2756764425828728,
        0.1728863697836421, 0.7476113646320456, 3.028237484331747, 0.07756160660846259,
        0.008973795208402123, -0.6353115148469838, 0.3881129810055529, -0.2248834727603721,
        1.199436412688769, -0.7070864583012511, 2.600339710931157, 1.02166541745659,
        0.9256082365517913, -1.521896171196506, 0.8512876839195276, 1.04229761559147,
        -0.8680157707684675, 1.303587254099899, -1.121434651764329, -1.739441848584253,
        0.5604769763521226, 0.7852840787554705, 0.2337686351770349, -1.224094499842824,
        0.6370568942888339, 0.5463661514715001, -1.251808892776908, -0.4947036822930869,
        -0.06932851865080272, 0.05430245998388415, 0.1460319666579001, 0.3585306878435056,
        0.5281692019658023, -0.3493246735993585, 1.860607891828303, -0.4537364071998129,
        0.1638639379058013, 2.610693933348317, -0.07241358356247274, -0.05800569959522378,
        -1.211336087376035, 1.411100542561595, 0.2688566326210132, -0.3039757895922989,
        -0.5357324809045925, -0.2695558505689465, 0.5585286996409196, -0.06345045591710945,
        -0.5020526438925533, -0.04170048601682, -0.1412961996413404, 0.608147221226456,
        -4.157331810534276, 4.161692945921724, -3.857468390109167, 0.5406445068904681,
        2.514191537596056, -1.59553241638069, -1.22656012670523, 1.760206414956911,
        0.03252433322184758, -0.4791459451349714, 0.03982402926461928, -0.2195068575049207,
        -0.1474778619522691, -0.2464219157906327, -0.5082644474434087, 0.1782052174168087,
        -0.3738290501761896, 0.1702527207830483, -1.923462487629674, 0.4858060116434553,
        -0.2829882289752224, -2.112844294701037, -0.1160734289950848, -0.3915537389468299],
    'c_attn.bias': [-0.6555015383584586, 0.06895882383638725, 0.5102525210356895, 0.1428913019097018,
        -0.9577533970953636, -0.1323579521341022, 8.326672684688674e-17, -2.012279232133096e-16,
        1.431146867680866e-16, -1.387778780781446e-17, -2.775557561562891e-17, -4.163336342344337e-17,
        -1.519377662518969, 1.467597409225531, -1.784359626704901, 1.033634478295801,
        1.152411762529852, -2.163315745963601],
    'c_proj.weight': [-0.9779680592672025, -0.2829081091256496, 0.1759986679102833, -1.001389742862724,
        -1.518193583134387, 1.450080897970579, -0.05417861697735288, -1.16196619269654,
        -2.056038673554325, 0.1793541883711136, 1.482429881799831, -0.2981524925597241,
        -0.3164675211233747, -0.2351853116965436, -1.617576781876313, 0.522880921088799,
        -0.6396977268340481, 1.374586021885057, 1.755993698653372, 2.200826353000569,
        -3.291960959226617, 2.135825731289649, -0.4662614555001048, 1.894621349757462,
        -0.4497463848265412, -0.04772076869688446, 0.8138716683218634, 0.2284012212963433,
        -0.7494024236032444, 0.6627011089339513, -1.853566040295973, -2.136892660653928,
        0.934414693841195, 0.5885212327824203, -0.8412744890351751, -0.2525823081066756],
    'c_proj.bias': [1.286117743151896, -0.1249297584425386, -3.795347594953371, 2.941622696140188,
        1.199532826119032, 0.5823869483581942],
}

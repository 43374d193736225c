"""Adam, AdamW, RMSprop (and SGD) against torch.optim's trajectories; state_dict checked whole."""
import numpy as np
import pytest

from handprop.layers import Layer, Linear, Sequential
from handprop.train import SGD, Adam, AdamW, Optimizer, RMSprop

CLASSES = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW, "RMSprop": RMSprop}

# Final parameters [W, b] after 40 steps, made by tests/torch_reference.py with torch 2.13.0+cpu,
# float64, torch.optim.<name>(params, foreach=False, **settings)
OPTIMIZERS = [
    ('SGD', {'lr': 0.05},
     [[[-0.786349108111084, -0.6210958781749857, 0.04716312149517048], [0.34031632416960395, 0.5445550032102927, 0.7588588953957052]], [0.2730478405744365, -0.02564801416075102, -0.22257705794471]]),
    ('SGD', {'lr': 0.05, 'momentum': 0.9, 'weight_decay': 0.01},
     [[[-1.0446762726298373, -0.5219916580009724, -0.47080582435363805], [0.03680634541705805, 0.614191618322599, 1.063493608912258]], [0.31616761001497956, 0.021097470474195152, -0.3606738148074846]]),
    ('SGD', {'lr': 0.05, 'momentum': 0.9, 'nesterov': True, 'weight_decay': 0.01},
     [[[-0.9524924104776289, -0.5585217398019625, -0.28417287431906835], [0.14542803898147696, 0.5875482203834085, 0.9582996947402944]], [0.3016728026426938, 0.007073205963755455, -0.31631568001224103]]),
    ('Adam', {'lr': 0.05},
     [[[-0.9789427123198103, -0.615053987363193, 0.3539371261137992], [0.13715627598709756, 0.600497220258921, 0.8429501515690658]], [0.2838125246369618, -0.011695788819948915, -0.26000788648177287]]),
    ('Adam', {'lr': 0.05, 'betas': (0.8, 0.99), 'weight_decay': 0.1},
     [[[-0.8177181640208147, -0.5306974459465966, 0.4528487045015126], [0.24358602775612384, 0.5289094962932579, 0.7013127855792197]], [0.2694245760343465, 0.0017637902835535928, -0.26445345861777747]]),
    ('Adam', {'lr': 0.05, 'amsgrad': True},
     [[[-0.9787038824859915, -0.6150538469999153, 0.3539371261137992], [0.13748187600329628, 0.6004565676629297, 0.8429280713501326]], [0.2838360929026751, -0.01167293629101611, -0.2601018409497798]]),
    ('Adam', {'lr': 0.05, 'weight_decay': 0.1, 'amsgrad': True, 'eps': 0.001},
     [[[-0.9320718846275738, -0.5796902987228685, 0.3524195823930283], [0.12470845749639535, 0.5582564960391825, 0.8109565133683527]], [0.25551817872974625, -0.010623896517176497, -0.2273759157559638]]),
    ('AdamW', {'lr': 0.05},
     [[[-0.9733963834005118, -0.6137328544245092, 0.33782153065731557], [0.13233531363014547, 0.5999465806964365, 0.8398177707918144]], [0.28363369550604584, -0.011744409168396999, -0.25943537579906056]]),
    ('AdamW', {'lr': 0.05, 'weight_decay': 0.1, 'amsgrad': True},
     [[[-0.9249211466382887, -0.6022616890185762, 0.21105066446515208], [0.09803624477447248, 0.5945260932380133, 0.8108447439963835]], [0.28239420641956536, -0.011991112861045799, -0.2550622164172681]]),
    ('RMSprop', {'lr': 0.01},
     [[[-0.45669644752706634, -0.5810176469201372, 1.0095011516605703], [0.6070919529001813, 0.5804375045417515, 0.23961073408379635]], [0.2973703792370692, -1.3640824862008185e-12, -0.285624164864397]]),
    ('RMSprop', {'lr': 0.01, 'momentum': 0.9},
     [[[-0.9365414114456236, -0.570759879977134, -0.04162650276125324], [0.2583948919179796, 0.6121841753668386, 0.8098010226582266]], [0.31262749212223384, 0.011043694406992035, -0.22553474502014847]]),
    ('RMSprop', {'lr': 0.01, 'centered': True},
     [[[-0.5072688418508512, -0.5808550103978589, 0.9477595144670035], [0.5660569432626096, 0.5804397324902416, 0.298354778192855]], [0.2973703792372462, -7.727261255845923e-13, -0.28861548831429945]]),
    ('RMSprop', {'lr': 0.01, 'alpha': 0.9, 'momentum': 0.5, 'centered': True, 'weight_decay': 0.1},
     [[[-0.7564148754645186, -0.5317702649821723, 0.4195581255060614], [0.31263150316098387, 0.5317833648464616, 0.6667552603613134]], [0.27091951165478195, 1.390801599368104e-07, -0.27094515895555515]]),
]


class Problem(Layer):
    """The reference problem: W (2, 3), b (3,), gradient g(p) = 0.1 p^3 + p - c."""

    targets = {"W": np.linspace(-1, 1, 6).reshape(2, 3), "b": np.array([0.3, 0.0, -0.3])}

    def __init__(self):
        super().__init__()
        self.params = {"W": np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]),
                       "b": np.array([0.1, -0.2, 0.3])}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def fill_grads(self):
        for k, p in self.params.items():
            self.grads[k][...] = 0.1 * p * p * p + p - self.targets[k]


def build(name, settings, model=None):
    settings = dict(settings)
    model = model or Problem()
    return model, CLASSES[name](model, settings.pop("lr"), **settings)


def run(opt, model, steps):
    for _ in range(steps):
        model.fill_grads()
        opt.step()


@pytest.mark.parametrize("name,settings,expected", OPTIMIZERS,
                         ids=[f"{n}-{'-'.join(k for k in s if k != 'lr') or 'plain'}" for n, s, _ in OPTIMIZERS])
def test_forty_steps_match_torch(name, settings, expected):
    model, opt = build(name, settings)
    run(opt, model, 40)
    np.testing.assert_allclose(model.params["W"], expected[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.params["b"], expected[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name,settings,_", OPTIMIZERS[1:])
def test_state_dict_resumes_exactly(name, settings, _):
    """20 steps, state_dict into a fresh optimizer (other settings), 20 more: bit-identical."""
    model, opt = build(name, settings)
    run(opt, model, 20)
    state, weights = opt.state_dict(), model.state_dict()
    run(opt, model, 20)
    fresh_model, fresh = build(name, {"lr": 0.5})
    fresh_model.load_state_dict(weights)
    fresh.load_state_dict(state)
    run(fresh, fresh_model, 20)
    for k in model.params:
        np.testing.assert_array_equal(model.params[k], fresh_model.params[k])
    assert repr(fresh) == repr(opt)


def test_state_dict_holds_named_copies():
    model, opt = build("Adam", {"lr": 0.1, "amsgrad": True})
    run(opt, model, 3)
    state = opt.state_dict()
    assert state["step"] == 3 and state["betas"] == [0.9, 0.999] and state["initial_lr"] is None
    assert set(state["exp_avg"]) == {"W", "b"} and state["exp_avg"]["W"].shape == (2, 3)
    before = state["exp_avg"]["W"].copy()
    run(opt, model, 1)
    np.testing.assert_array_equal(state["exp_avg"]["W"], before)  # a copy, not a view
    assert Adam(Problem(), 0.1).state_dict()["max_exp_avg_sq"] == {}  # without amsgrad: unused


def test_adam_first_step_is_lr_whatever_the_gradient_scale():
    for scale in (1e-3, 1.0, 1e3):
        model = Problem()
        opt = Adam(model, lr=0.01)
        start = model.params["W"].copy()
        model.grads["W"][...] = scale
        opt.step()
        np.testing.assert_allclose(start - model.params["W"], 0.01, rtol=1e-4)


def test_adamw_decays_apart_from_the_gradient():
    """With a zero gradient Adam's update is 0, so AdamW only shrinks p by lr * weight_decay."""
    model = Problem()
    opt = AdamW(model, lr=0.1, weight_decay=0.5)
    start = model.params["W"].copy()
    opt.step()
    np.testing.assert_allclose(model.params["W"], start * (1 - 0.1 * 0.5), rtol=1e-15)
    assert AdamW(Problem()).weight_decay == 1e-2 and Adam(Problem()).weight_decay == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop])
def test_dtype_is_kept_and_grads_are_left_alone(cls, dtype):
    model = Sequential(Linear(3, 4, rng=0, dtype=dtype), Linear(4, 2, rng=1, dtype=dtype))
    opt = cls(model, 0.01, weight_decay=0.1)
    for g in model.grads.values():
        g[...] = 0.5
    opt.step()
    opt.step()
    assert all(g.dtype == dtype and np.all(g == 0.5) for g in model.grads.values())
    assert {a.dtype for a in [*model.params.values(), *opt.flat_state.values()]} == {np.dtype(dtype)}


@pytest.mark.parametrize("cls,kwargs,error,message", [
    (Adam, {"betas": (0.9, 1.0)}, ValueError, r"Adam: expected betas\[1\] in \[0, 1\), got 1.0"),
    (Adam, {"betas": 0.9}, TypeError, r"Adam: expected betas as a pair"),
    (Adam, {"betas": (0.9, "x")}, TypeError, r"Adam: expected betas\[1\] as a real number, got 'x'"),
    (Adam, {"eps": -1.0}, ValueError, r"Adam: expected eps >= 0, got -1.0"),
    (AdamW, {"weight_decay": float("nan")}, ValueError, r"AdamW: expected a finite weight_decay"),
    (Adam, {"amsgrad": 1}, TypeError, r"Adam: expected amsgrad to be True or False, got 1"),
    (RMSprop, {"alpha": 1.5}, ValueError, r"RMSprop: expected alpha in \[0, 1\], got 1.5"),
    (RMSprop, {"momentum": -0.1}, ValueError, r"RMSprop: expected momentum >= 0"),
    (RMSprop, {"centered": "yes"}, TypeError, r"RMSprop: expected centered to be True or False"),
    (RMSprop, {"lr": 0}, ValueError, r"RMSprop: expected lr > 0, got 0"),
    (Adam, {"lr": "0.1"}, TypeError, r"Adam: expected lr as a real number"),
])
def test_bad_settings_are_named(cls, kwargs, error, message):
    model = Problem()
    W = model.params["W"]
    with pytest.raises(error, match=message):
        cls(model, **kwargs)
    assert model.params["W"] is W and W.flags.writeable  # refused before flattening anything


def test_options_after_lr_are_keyword_only():
    with pytest.raises(TypeError, match=r"positional"):
        Adam(Problem(), 0.1, (0.9, 0.99))


@pytest.mark.parametrize("change,error,message", [
    (lambda s: s.pop("exp_avg"), ValueError, r"Adam: the state does not match a Adam's: missing exp_avg"),
    (lambda s: s.update(extra=1), ValueError, r"unexpected extra"),
    (lambda s: s.update(lr=-0.1), ValueError, r"lr >= 0, got -0.1"),
    (lambda s: s.update(lr="fast"), TypeError, r"lr as a real number, got 'fast'"),
    (lambda s: s.update(initial_lr=0.0), ValueError, r"lr > 0, got 0.0"),
    (lambda s: s.update(betas=[0.9, 1.5]), ValueError, r"betas\[1\] in \[0, 1\)"),
    (lambda s: s.update(amsgrad="no"), TypeError, r"amsgrad to be True or False"),
    (lambda s: s.update(step=-1), ValueError, r"the counter step >= 0, got -1"),
    (lambda s: s.update(step=2.5), TypeError, r"the counter step to be an int"),
    (lambda s: s["exp_avg"].pop("b"), ValueError, r"expected exp_avg for \['W', 'b'\] .* got \['W'\]"),
    (lambda s: s.update(amsgrad=True), ValueError, r"expected max_exp_avg_sq for \['W', 'b'\] \(the settings use it\)"),
    (lambda s: s["exp_avg_sq"].update(W=np.zeros((3, 2))), ValueError, r"exp_avg_sq/W has shape \(3, 2\), the parameter \(2, 3\)"),
    (lambda s: s["exp_avg_sq"].update(W=np.zeros((2, 3), int)), TypeError, r"exp_avg_sq/W as a floating-point array, got int64"),
    (lambda s: s.update(exp_avg=[1.0]), TypeError, r"expected exp_avg as a dict of parameter name -> array, got list"),
])
def test_load_state_dict_checks_everything_and_changes_nothing(change, error, message):
    model, opt = build("Adam", {"lr": 0.05})
    run(opt, model, 2)
    state = opt.state_dict()
    change(state)
    before = opt.state_dict()
    with pytest.raises(error, match=message):
        opt.load_state_dict(state)
    after = opt.state_dict()
    assert {k: v for k, v in before.items() if not isinstance(v, dict)} == \
        {k: v for k, v in after.items() if not isinstance(v, dict)}
    for key in Adam.state_names:
        assert before[key].keys() == after[key].keys()
        for name in before[key]:
            np.testing.assert_array_equal(before[key][name], after[key][name])


def test_loaded_settings_reshape_the_state():
    """Loading momentum > 0 into an SGD built without it brings the buffers; and back."""
    model, opt = build("SGD", {"lr": 0.1, "momentum": 0.9})
    run(opt, model, 2)
    plain = SGD(model, lr=0.3)
    plain.load_state_dict(opt.state_dict())
    assert plain.momentum == 0.9 and set(plain.momentum_buffers) == {"W", "b"}
    opt.load_state_dict(SGD(model, lr=0.3).state_dict())
    assert opt.momentum == 0 and opt.momentum_buffers == {} and opt.lr == 0.3


def test_an_optimizer_without_step_says_so():
    with pytest.raises(NotImplementedError, match=r"Optimizer does not define step"):
        Optimizer(Problem(), 0.1).step()


def test_a_version_1_checkpoint_still_loads_its_sgd_state(tmp_path):
    """Version 1 files (before the flat buffer) kept SGD's settings and momentum buffers by name."""
    import json

    from handprop.train.checkpoint import load, write_npz
    model = Sequential(Linear(3, 4, rng=0, dtype=np.float64), Linear(4, 2, rng=1, dtype=np.float64))
    arrays = {f"params/{k}": np.full(v.shape, 0.5) for k, v in model.params.items()}
    arrays.update({f"optimizer/{k}": np.full(v.shape, 0.25) for k, v in model.params.items()})
    meta = {"format": "handprop-checkpoint", "version": 1, "extra": {"epoch": 3},
            "optimizer": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.001}}
    arrays["meta"] = np.array(json.dumps(meta))
    with open(tmp_path / "v1.npz", "wb") as f:
        write_npz(f, arrays)
    opt = SGD(model, lr=0.1)
    assert load(tmp_path / "v1.npz", model, opt) == {"epoch": 3}
    assert (opt.lr, opt.momentum, opt.nesterov, opt.weight_decay, opt.initial_lr) == (0.05, 0.9, True, 0.001, None)
    assert np.all(opt.flat_state["momentum_buffers"] == 0.25) and np.all(opt.flat_params == 0.5)


@pytest.mark.parametrize("name,says", [("zero_grad", r"overwrites model.grads"),
                                       ("parameters", r"built on the model.*optimizer.flat_params")])
@pytest.mark.parametrize("cls", [SGD, Adam, RMSprop])
def test_pytorch_names_say_the_handprop_way(cls, name, says):
    opt = cls(Problem(), lr=0.1)
    with pytest.raises(AttributeError, match=rf"^{cls.__name__} has no {name}.*{says}.*"
                                             rf"see \"Coming from PyTorch\" in the README"):
        getattr(opt, name)()
    assert not hasattr(opt, name)  # a duck-typing probe still sees no such method
    with pytest.raises(AttributeError, match=rf"'{cls.__name__}' object has no attribute 'momentun'$"):
        opt.momentun  # noqa: B018  (any other name: Python's own message)

"""Parameter groups in Adam and AdamW (a weight decay per group), against torch.optim's, and
decay_groups (nanoGPT's split: matrices decay, biases and gains not)."""
import numpy as np
import pytest

from handprop.layers import Layer, LayerNorm, Linear, Sequential
from handprop.train import Adam, AdamW
from handprop.train.checkpoint import load, save
from handprop.train.optim import decay_groups

# Final [W, b] after 40 steps with two groups, made by tests/torch_reference_groups.py with
# torch 2.13.0+cpu, torch.optim.<name>(groups, foreach=False, **settings)
FLOAT64 = [
    ('AdamW', [{'params': ['W'], 'weight_decay': 0.1}, {'params': ['b'], 'weight_decay': 0.0}], {'lr': 0.05},
     [[[-0.9250889674706144, -0.6022620486172778, 0.21105066446515208], [0.09766462776709395, 0.5945685501372646, 0.810851806818286]], [0.2838125246369618, -0.011695788819948915, -0.26000788648177287]]),
    ('AdamW', [{'params': ['b'], 'weight_decay': 0.5}, {'params': ['W']}], {'lr': 0.05, 'weight_decay': 0.01, 'amsgrad': True, 'betas': (0.9, 0.99)},
     [[[-0.9781461681905786, -0.6121702416917117, 0.3219851573874406], [0.12937821679603476, 0.600905638503085, 0.8496807536073909]], [0.2805348786138785, -0.010830857093014654, -0.24352495359808043]]),
    ('Adam', [{'params': ['W'], 'weight_decay': 0.1}, {'params': ['b'], 'weight_decay': 0.3}], {'lr': 0.05},
     [[[-0.9328852737837804, -0.5797238846021834, 0.35188796975951436], [0.12389634033897412, 0.5582739700852433, 0.8116860167427038]], [0.23926401991341004, -0.011730170361944247, -0.17957120939889926]]),
]
FLOAT32 = [
    ('AdamW', [{'params': ['W'], 'weight_decay': 0.1}, {'params': ['b'], 'weight_decay': 0.0}], {'lr': 0.05},
     [[[-0.9250889420509338, -0.602262020111084, 0.21105091273784637], [0.09766470640897751, 0.5945685505867004, 0.8108518123626709]], [0.283812552690506, -0.01169577706605196, -0.26000791788101196]]),
    ('AdamW', [{'params': ['b'], 'weight_decay': 0.5}, {'params': ['W']}], {'lr': 0.05, 'weight_decay': 0.01, 'amsgrad': True, 'betas': (0.9, 0.99)},
     [[[-0.9781456589698792, -0.6121702194213867, 0.3219846785068512], [0.1293780505657196, 0.6009055972099304, 0.8496804237365723]], [0.28053492307662964, -0.010830861516296864, -0.24352499842643738]]),
    ('Adam', [{'params': ['W'], 'weight_decay': 0.1}, {'params': ['b'], 'weight_decay': 0.3}], {'lr': 0.05},
     [[[-0.9328852891921997, -0.5797239542007446, 0.3518880009651184], [0.12389648705720901, 0.5582740306854248, 0.8116858005523682]], [0.23926399648189545, -0.011730163358151913, -0.17957119643688202]]),
]


class Problem(Layer):
    """tests/torch_reference_groups.py's problem: W (2, 3), b (3,), gradient 0.1 p^3 + p - c."""

    def __init__(self, dtype=np.float64):
        super().__init__()
        self.params = {"W": np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype),
                       "b": np.array([0.1, -0.2, 0.3], dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.targets = {"W": np.linspace(-1, 1, 6).reshape(2, 3).astype(dtype),
                        "b": np.array([0.3, 0.0, -0.3], dtype)}

    def fill_grads(self):
        for k, p in self.params.items():
            self.grads[k][...] = 0.1 * p ** 3 + p - self.targets[k]


def build(name, groups, settings, dtype=np.float64):
    model = Problem(dtype)
    settings = dict(settings)
    return model, {"Adam": Adam, "AdamW": AdamW}[name](model, settings.pop("lr"),
                                                       param_groups=groups, **settings)


def run(model, opt, steps):
    for _ in range(steps):
        model.fill_grads()
        opt.step()


@pytest.mark.parametrize("dtype,table,tol", [(np.float64, FLOAT64, 1e-12), (np.float32, FLOAT32, 2e-6)])
@pytest.mark.parametrize("case", range(3))
def test_forty_steps_with_two_groups_match_torch(case, dtype, table, tol):
    name, groups, settings, expected = table[case]
    model, opt = build(name, groups, settings, dtype)
    run(model, opt, 40)
    assert model.params["W"].dtype == dtype
    np.testing.assert_allclose(model.params["W"], expected[0], rtol=0, atol=tol)
    np.testing.assert_allclose(model.params["b"], expected[1], rtol=0, atol=tol)


def test_decay_groups_decays_the_matrices_only():
    model = Sequential(Linear(3, 4, rng=0), LayerNorm(4), Linear(4, 2, rng=1))
    decay, rest = decay_groups(model, 0.1)
    assert decay == {"params": ["0.W", "2.W"], "weight_decay": 0.1}
    assert rest == {"params": ["0.b", "1.gamma", "1.beta", "2.b"], "weight_decay": 0.0}


def test_only_the_decayed_group_shrinks_under_a_zero_gradient():
    model = Sequential(Linear(3, 4, rng=0, dtype=np.float64), LayerNorm(4, dtype=np.float64))
    model.params["0.b"][...] = 1.0
    model.params["1.beta"][...] = 1.0
    before = {k: v.copy() for k, v in model.params.items()}
    AdamW(model, 0.1, weight_decay=0.5, param_groups=decay_groups(model, 0.5)).step()
    np.testing.assert_array_equal(model.params["0.W"], before["0.W"] * (1 - 0.1 * 0.5))
    for name in ("0.b", "1.gamma", "1.beta"):
        np.testing.assert_array_equal(model.params[name], before[name])


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_groups_of_one_decay_step_as_the_plain_optimizer_bit_for_bit(name):
    grouped_model, grouped = build(name, [{"params": ["W"]}, {"params": ["b"], "weight_decay": 0.2}],
                                   {"lr": 0.05, "weight_decay": 0.2})
    plain_model = Problem()
    plain = {"Adam": Adam, "AdamW": AdamW}[name](plain_model, 0.05, weight_decay=0.2)
    run(grouped_model, grouped, 10)
    run(plain_model, plain, 10)
    for k in plain_model.params:
        np.testing.assert_array_equal(grouped_model.params[k], plain_model.params[k])


def test_groups_are_saved_with_the_state_and_a_checkpoint_resumes_exactly(tmp_path):
    name, groups, settings, _ = FLOAT64[1]
    model, opt = build(name, groups, settings)
    run(model, opt, 15)
    assert opt.state_dict()["param_groups"] == [{"params": ["b"], "weight_decay": 0.5},
                                                {"params": ["W"]}]
    save(tmp_path / "c.npz", model, opt)
    run(model, opt, 10)
    fresh_model, fresh = build(name, None, {"lr": 0.5})
    load(tmp_path / "c.npz", fresh_model, fresh)
    assert fresh.param_groups == opt.param_groups
    run(fresh_model, fresh, 10)
    for k in model.params:
        np.testing.assert_array_equal(model.params[k], fresh_model.params[k])


@pytest.mark.parametrize("groups,error,message", [
    ([{"params": ["W"]}, {"params": ["W", "b"]}], ValueError, r"name \['W'\] in more than one group"),
    ([{"params": ["W"]}], ValueError, "missing b"),
    ([{"params": ["W", "b", "c"]}], ValueError, "unexpected c"),
    ([{"params": ["W", "b"], "lr": 0.1}], ValueError, r"has \['lr'\]; a group sets only 'weight_decay'"),
    ([{"params": ["W", "b"], "weight_decay": -1}], ValueError, r"param_groups\[0\]\['weight_decay'\]"),
    ([{"params": "Wb"}], TypeError, "list of parameter names"),
    ([], TypeError, "non-empty list"),
    ({"params": ["W", "b"]}, TypeError, "non-empty list"),
])
def test_malformed_groups_are_refused_naming_what_is_wrong(groups, error, message):
    with pytest.raises(error, match=message):
        AdamW(Problem(), 0.1, param_groups=groups)


def test_loading_groups_that_do_not_fit_the_model_changes_nothing():
    model, opt = build("AdamW", [{"params": ["W", "b"]}], {"lr": 0.1})
    state = opt.state_dict()
    state["param_groups"] = [{"params": ["W"]}]
    with pytest.raises(ValueError, match="missing b"):
        opt.load_state_dict(state)
    assert opt.param_groups == [{"params": ["W", "b"]}]


def test_the_decay_spans_merge_neighbours_and_cover_the_buffer_once():
    from handprop.train.optim.groups import group_spans
    layout = {"a": (0, 4, (4,)), "b": (4, 6, (2,)), "c": (6, 9, (3,)), "d": (9, 10, (1,))}
    groups = [{"params": ["a", "c", "b"], "weight_decay": 0.1}, {"params": ["d"]}]
    spans = dict(group_spans(groups, 0.0, layout))
    assert spans == {0.1: [slice(0, 9)], 0.0: [slice(9, 10)]}
    covered = np.zeros(10, int)
    for pieces in spans.values():
        for piece in pieces:
            covered[piece] += 1
    assert (covered == 1).all()

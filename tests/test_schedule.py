"""Schedules against torch.optim.lr_scheduler's lr sequences; clip_grad_norm against clip_grad_norm_."""
import json

import numpy as np
import pytest

from handprop.layers import Layer, Linear, Sequential
from handprop.train import SGD, Adam, CosineAnnealingLR, LinearLR, SequentialLR, StepLR, clip_grad_norm

# lr before each of 40 epochs (base lr 0.1), made by tests/torch_reference.py with torch 2.13.0+cpu:
# torch.optim.lr_scheduler.<the same schedule> on SGD([p], lr=0.1), optimizer.step() then
# scheduler.step() per epoch, recording param_groups[0]['lr'] before each epoch
SCHEDULES = [
    (lambda o: StepLR(o, step_size=7, gamma=0.5),
     [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.0125, 0.0125, 0.0125, 0.0125, 0.0125, 0.00625, 0.00625, 0.00625, 0.00625, 0.00625, 0.00625, 0.00625, 0.003125, 0.003125, 0.003125, 0.003125, 0.003125]),
    (lambda o: CosineAnnealingLR(o, T_max=40),
     [0.1, 0.0998458666866564, 0.0993844170297569, 0.09861849601988383, 0.09755282581475767, 0.09619397662556432, 0.09455032620941838, 0.0926320082177046, 0.09045084971874737, 0.08802029828000155, 0.08535533905932736, 0.08247240241650919, 0.07938926261462365, 0.07612492823579743, 0.07269952498697733, 0.06913417161825448, 0.06545084971874737, 0.061672268192795275, 0.05782172325201154, 0.053922954786392245, 0.049999999999999996, 0.046077045213607754, 0.042178276747988463, 0.03832773180720473, 0.034549150281252626, 0.030865828381745508, 0.027300475013022657, 0.023875071764202557, 0.020610737385376346, 0.01752759758349082, 0.014644660940672625, 0.011979701719998452, 0.009549150281252632, 0.00736799178229539, 0.00544967379058161, 0.0038060233744356626, 0.002447174185242323, 0.001381503980116172, 0.000615582970243117, 0.0001541333133436018]),
    (lambda o: CosineAnnealingLR(o, T_max=10, eta_min=0.001),
     [0.1, 0.09757729755661011, 0.0905463412215599, 0.07959536998847742, 0.0657963412215599, 0.0505, 0.03520365877844011, 0.02140463001152259, 0.010453658778440109, 0.0034227024433899004, 0.001, 0.0034227024433899004, 0.01045365877844014, 0.02140463001152267, 0.035203658778440255, 0.05050000000000022, 0.06579634122156018, 0.07959536998847777, 0.09054634122156031, 0.09757729755661054, 0.10000000000000045, 0.09757729755661054, 0.09054634122156033, 0.07959536998847778, 0.0657963412215602, 0.050500000000000225, 0.03520365877844027, 0.021404630011522683, 0.010453658778440154, 0.003422702443389916, 0.001, 0.0034227024433899004, 0.010453658778440112, 0.021404630011522607, 0.03520365877844015, 0.050500000000000086, 0.06579634122156003, 0.07959536998847759, 0.09054634122156009, 0.09757729755661032]),
    (lambda o: LinearLR(o),
     [0.03333333333333333, 0.04666666666666667, 0.060000000000000005, 0.07333333333333335, 0.08666666666666668, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
    (lambda o: LinearLR(o, start_factor=0.2, end_factor=0.5, total_iters=9),
     [0.020000000000000004, 0.023333333333333338, 0.026666666666666672, 0.030000000000000006, 0.03333333333333334, 0.036666666666666674, 0.04000000000000001, 0.04333333333333334, 0.046666666666666676, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001, 0.05000000000000001]),
    (lambda o: SequentialLR(o, [LinearLR(o, start_factor=0.2, total_iters=4), CosineAnnealingLR(o, T_max=36)],
                           milestones=[4]),
     [0.020000000000000004, 0.04000000000000001, 0.06000000000000001, 0.08000000000000002, 0.1, 0.09980973490458728, 0.0992403876506104, 0.0982962913144534, 0.0969846310392954, 0.09531538935183248, 0.09330127018922192, 0.09095760221444958, 0.08830222215594888, 0.08535533905932735, 0.08213938048432695, 0.07867882181755229, 0.07499999999999998, 0.07113091308703495, 0.06710100716628342, 0.06294095225512603, 0.058682408883346505, 0.05435778713738289, 0.04999999999999998, 0.04564221286261708, 0.04131759111665347, 0.037059047744873945, 0.03289899283371657, 0.02886908691296503, 0.025000000000000005, 0.02132117818244769, 0.01786061951567303, 0.014644660940672625, 0.011697777844051103, 0.009042397785550403, 0.006698729810778075, 0.004684610648167503, 0.003015368960704584, 0.0017037086855465843, 0.000759612349389599, 0.00019026509541272276]),
    (lambda o: SequentialLR(o, [LinearLR(o, start_factor=0.5, total_iters=3), StepLR(o, step_size=4, gamma=0.5),
                               CosineAnnealingLR(o, T_max=8, eta_min=0.01)], milestones=[3, 20]),
     [0.05, 0.06666666666666667, 0.08333333333333333, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.0125, 0.0125, 0.00625, 0.1, 0.0965745789630079, 0.08681980515339463, 0.07222075445642905, 0.055, 0.03777924554357096, 0.023180194846605363, 0.013425421036992097, 0.01, 0.013425421036992097, 0.02318019484660537, 0.03777924554357097, 0.055000000000000035, 0.0722207544564291, 0.08681980515339469, 0.09657457896300795, 0.10000000000000005, 0.09657457896300795, 0.08681980515339469, 0.0722207544564291]),
]


def lrs(opt, sched, epochs):
    seen = []
    for _ in range(epochs):
        seen.append(opt.lr)
        sched.step()
    return seen


def one_param_sgd(lr=0.1):
    layer = Linear(1, 1, rng=0, dtype=np.float64)
    return SGD(layer, lr=lr)


@pytest.mark.parametrize("make,expected", SCHEDULES)
def test_forty_epochs_match_torch(make, expected):
    opt = one_param_sgd()
    assert lrs(opt, make(opt), 40) == expected  # bit for bit: the same recursions in Python floats


@pytest.mark.parametrize("make,expected", SCHEDULES)
def test_state_dict_resumes_the_sequence_exactly(make, expected):
    """17 epochs, the states through JSON (as a checkpoint keeps them) into a fresh optimizer and
    schedule, 23 more: the uninterrupted 40, to the bit."""
    opt = one_param_sgd()
    sched = make(opt)
    first = lrs(opt, sched, 17)
    saved_opt, saved = opt.state_dict(), json.loads(json.dumps(sched.state_dict()))
    fresh_opt = one_param_sgd(lr=0.7)
    fresh = make(fresh_opt)
    fresh_opt.load_state_dict(saved_opt)
    fresh.load_state_dict(saved)
    again = one_param_sgd()
    assert first + lrs(fresh_opt, fresh, 23) == lrs(again, make(again), 40)


def test_cosine_recursion_follows_its_closed_form():
    opt = one_param_sgd()
    sched = CosineAnnealingLR(opt, T_max=30, eta_min=0.002)
    for t in range(1, 60):
        sched.step()
        assert opt.lr == pytest.approx(0.002 + 0.098 * (1 + np.cos(np.pi * t / 30)) / 2, rel=1e-12, abs=1e-17)
        assert sched.closed_form() == pytest.approx(opt.lr, rel=1e-12, abs=1e-17)


def test_a_schedule_may_reach_zero_but_a_person_may_not_set_it():
    opt = one_param_sgd()
    sched = CosineAnnealingLR(opt, T_max=3)
    lrs(opt, sched, 3)
    assert opt.lr == 0.0 and sched.get_last_lr() == 0.0
    opt.step()  # a zero step is allowed
    with pytest.raises(ValueError, match=r"lr > 0, got 0"):
        opt.lr = 0


def test_a_second_schedule_starts_from_the_initial_lr():
    opt = one_param_sgd()
    LinearLR(opt, start_factor=0.5)
    assert opt.lr == 0.05 and opt.initial_lr == 0.1
    assert StepLR(opt, step_size=2).base_lr == 0.1
    assert opt.state_dict()["initial_lr"] == 0.1


@pytest.mark.parametrize("make,error,message", [
    (lambda o: StepLR(o, step_size=0), ValueError, r"StepLR: expected step_size >= 1, got 0"),
    (lambda o: StepLR(o, step_size=2.5), TypeError, r"StepLR: expected step_size to be an int"),
    (lambda o: StepLR(o, step_size=2, gamma=-1), ValueError, r"StepLR: expected gamma > 0, got -1"),
    (lambda o: CosineAnnealingLR(o, T_max=10, eta_min=float("inf")), ValueError, r"a finite eta_min"),
    (lambda o: LinearLR(o, start_factor=0), ValueError, r"LinearLR: expected start_factor in \(0, 1\]"),
    (lambda o: LinearLR(o, end_factor=1.5), ValueError, r"LinearLR: expected end_factor in \[0, 1\]"),
    (lambda o: StepLR("sgd", step_size=2), TypeError, r"StepLR: expected an optimizer of handprop.train"),
    (lambda o: SequentialLR(o, [StepLR(o, 2)], milestones=[3]), ValueError, r"expected 0 milestones"),
    (lambda o: SequentialLR(o, [StepLR(o, 2), StepLR(o, 2), StepLR(o, 3)], milestones=[5, 5]), ValueError,
     r"expected increasing milestones, got \[5, 5\]"),
    (lambda o: SequentialLR(o, [StepLR(o, 2), StepLR(one_param_sgd(), 2)], milestones=[5]), ValueError,
     r"schedule 1, StepLR\(step_size=2, gamma=0.1\), was built on another optimizer"),
    (lambda o: SequentialLR(o, [StepLR(o, 2), "cosine"], milestones=[5]), TypeError,
     r"got str at position 1"),
])
def test_bad_settings_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make(one_param_sgd())


@pytest.mark.parametrize("change,error,message", [
    (lambda s: s.pop("last_epoch"), ValueError, r"CosineAnnealingLR: the state does not match .* missing last_epoch"),
    (lambda s: s.update(T_max=0), ValueError, r"expected T_max >= 1, got 0"),
    (lambda s: s.update(last_epoch=-2), ValueError, r"expected last_epoch >= -1"),
    (lambda s: s.update(base_lr=0), ValueError, r"expected base_lr > 0, got 0"),
    (lambda s: s.update(last_lr="x"), TypeError, r"expected last_lr as a real number, got 'x'"),
    (lambda s: s.update(gamma=0.5), ValueError, r"unexpected gamma"),
])
def test_load_state_dict_checks_everything_and_changes_nothing(change, error, message):
    opt = one_param_sgd()
    sched = CosineAnnealingLR(opt, T_max=10)
    lrs(opt, sched, 3)
    state = sched.state_dict()
    change(state)
    before = sched.state_dict()
    with pytest.raises(error, match=message):
        sched.load_state_dict(state)
    assert sched.state_dict() == before


def test_sequential_load_checks_every_schedule_first():
    opt = one_param_sgd()
    sched = SequentialLR(opt, [LinearLR(opt, total_iters=2), StepLR(opt, 3)], milestones=[2])
    lrs(opt, sched, 4)
    state, before = sched.state_dict(), sched.state_dict()
    state["schedulers"][0]["last_epoch"] = 9
    state["schedulers"][1]["step_size"] = -1
    with pytest.raises(ValueError, match=r"StepLR: expected step_size >= 1"):
        sched.load_state_dict(state)
    assert sched.state_dict() == before
    with pytest.raises(ValueError, match=r"milestones \[3\] differ from this schedule's \[2\]"):
        sched.load_state_dict({**before, "milestones": [3]})


class Grads(Layer):
    def __init__(self):
        super().__init__()
        self.params = {"a": np.zeros((2, 2)), "b": np.zeros(3)}
        self.grads = {"a": np.array([[3.0, -4.0], [1.0, 2.0]]), "b": np.array([0.5, -0.25, 12.0])}


# torch 2.13.0+cpu, float64: torch.nn.utils.clip_grad_norm_([a, b], 1.0, foreach=False) with
# a.grad, b.grad as in Grads (tests/torch_reference.py): the total norm and the clipped gradients
TORCH_NORM = 13.202745926510893
TORCH_CLIPPED = [[[0.22722544154626267, -0.3029672553950169], [0.07574181384875422, 0.15148362769750845]],
                 [0.03787090692437711, -0.018935453462188556, 0.9089017661850507]]


@pytest.mark.parametrize("flat", [False, True])
def test_clip_grad_norm_matches_torch(flat):
    model = Grads()
    if flat:
        SGD(model, lr=0.1)
    assert clip_grad_norm(model, 1.0) == pytest.approx(TORCH_NORM, rel=1e-15)
    np.testing.assert_allclose(model.grads["a"], TORCH_CLIPPED[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.grads["b"], TORCH_CLIPPED[1], rtol=0, atol=1e-12)
    before = {k: v.copy() for k, v in model.grads.items()}
    assert clip_grad_norm(model, 100.0) == pytest.approx(TORCH_NORM / (TORCH_NORM + 1e-6), rel=1e-15)
    for k in before:  # below max_norm: unchanged
        np.testing.assert_array_equal(model.grads[k], before[k])


def test_clip_grad_norm_on_float32_keeps_the_dtype_and_counts_shared_arrays_once():
    lin = Linear(3, 3, rng=0)
    model = Sequential(lin, lin)
    lin.grads["W"][...] = 1.0
    lin.grads["b"][...] = 0.0
    assert clip_grad_norm(model, 1.0) == pytest.approx(3.0, rel=1e-7)
    assert lin.grads["W"].dtype == np.float32
    np.testing.assert_allclose(lin.grads["W"], 1 / 3, rtol=1e-6)


@pytest.mark.parametrize("max_norm,error", [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                                             ("1", TypeError)])
def test_clip_grad_norm_bad_max_norm(max_norm, error):
    with pytest.raises(error, match=r"clip_grad_norm: expected"):
        clip_grad_norm(Grads(), max_norm)


def test_schedules_drive_adam_too():
    model = Linear(2, 2, rng=0, dtype=np.float64)
    opt = Adam(model, lr=0.01)
    sched = SequentialLR(opt, [LinearLR(opt, start_factor=0.25, total_iters=3), CosineAnnealingLR(opt, T_max=5)],
                         milestones=[3])
    assert lrs(opt, sched, 4) == pytest.approx([0.0025, 0.005, 0.0075, 0.01], rel=1e-15)

"""fit with a schedule and clipping: the lr per epoch, clipped steps, exact resume after a kill."""
import signal

import numpy as np
import pytest

from handprop.layers import BatchNorm1d, Linear, ReLU, Sequential
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD, Adam, CosineAnnealingLR, LinearLR, SequentialLR, StepLR, fit
from handprop.train.checkpoint import read_extra
from handprop.train.data import spiral


def adam_cosine(seed=0):
    model = Sequential(Linear(2, 8, rng=seed), BatchNorm1d(8), ReLU(), Linear(8, 3, rng=seed + 1))
    opt = Adam(model, lr=0.02, weight_decay=1e-4)
    sched = SequentialLR(opt, [LinearLR(opt, start_factor=0.5, total_iters=1),
                               CosineAnnealingLR(opt, T_max=4)], milestones=[1])
    return model, opt, sched


def run_fit(checkpoint=None, resume=False, epochs=5, loss_fn=None, scheduler=True):
    model, opt, sched = adam_cosine()
    X, y = spiral(40, 3)
    history = fit(model, loss_fn or SoftmaxCrossEntropy(), opt, X, y, epochs=epochs, batch_size=16,
                  validation=spiral(10, 3, seed=1), seed=7, progress=False, checkpoint=checkpoint,
                  resume=resume, scheduler=sched if scheduler else None, clip_grad_norm=1.0)
    return model, opt, sched, history


def assert_same_run(a, b):
    (ma, oa, sa, ha), (mb, ob, sb, hb) = a, b
    for key, value in ma.state_dict().items():
        np.testing.assert_array_equal(value, mb.state_dict()[key], err_msg=key)
    np.testing.assert_array_equal(np.concatenate(list(oa.flat_state.values())),
                                  np.concatenate(list(ob.flat_state.values())))
    assert oa.step_count == ob.step_count and oa.lr == ob.lr and sa.state_dict() == sb.state_dict()
    assert {k: v for k, v in ha.items() if k != "seconds"} == {k: v for k, v in hb.items() if k != "seconds"}


def test_history_records_each_epochs_lr_and_the_schedule_steps_once_per_epoch():
    *_, history = run_fit()
    opt = adam_cosine()[1]
    expected = [0.01, 0.02] + [0.01 * (1 + np.cos(np.pi * t / 4)) for t in (1, 2, 3)]
    assert history["lr"] == pytest.approx(expected, rel=1e-15)
    assert opt.lr == 0.01  # building the warm-up set epoch 1's lr


def test_resume_after_sigkill_is_bit_exact_with_adam_a_schedule_and_clipping(tmp_path, killed_mid_epoch_3):
    path = str(tmp_path / "run.npz")
    done = killed_mid_epoch_3(__file__, path)
    assert done.returncode == -signal.SIGKILL, done.stderr
    saved = read_extra(path)["fit"]
    assert saved["epoch"] == 2 and saved["scheduler"]["class"] == "SequentialLR"
    assert_same_run(run_fit(path, resume=True), run_fit())


def test_resume_needs_the_same_schedule_and_changes_nothing_otherwise(tmp_path):
    path = tmp_path / "run.npz"
    run_fit(path, epochs=2)
    model, opt, sched = adam_cosine(seed=3)
    before = model.state_dict()
    X, y = spiral(40, 3)
    with pytest.raises(ValueError, match=r"was saved with a SequentialLR schedule, but this run has none"):
        fit(model, SoftmaxCrossEntropy(), opt, X, y, epochs=3, checkpoint=path, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"saved with a SequentialLR schedule, but this run has a StepLR"):
        fit(model, SoftmaxCrossEntropy(), opt, X, y, epochs=3, checkpoint=path, resume=True, progress=False,
            scheduler=StepLR(opt, 2))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_a_failed_model_load_rolls_the_schedule_back(tmp_path):
    path = tmp_path / "run.npz"
    run_fit(path, epochs=2)
    model = Sequential(Linear(2, 9, rng=0), BatchNorm1d(9), ReLU(), Linear(9, 3, rng=1))  # another width
    opt = Adam(model, lr=0.02)
    sched = SequentialLR(opt, [LinearLR(opt, start_factor=0.5, total_iters=1),
                               CosineAnnealingLR(opt, T_max=4)], milestones=[1])
    before = sched.state_dict()
    X, y = spiral(40, 3)
    with pytest.raises(ValueError, match=r"0.W has shape \(2, 8\)"):
        fit(model, SoftmaxCrossEntropy(), opt, X, y, epochs=3, checkpoint=path, resume=True, progress=False,
            scheduler=sched)
    assert sched.state_dict() == before


def test_clipping_bounds_every_step():
    """Plain SGD clipped to max_norm moves the weights by at most lr * max_norm a step."""
    model = Sequential(Linear(2, 8, rng=0, dtype=np.float64), ReLU(), Linear(8, 3, rng=1, dtype=np.float64))
    opt = SGD(model, lr=1.0)
    start = opt.flat_params.copy()
    X, y = spiral(40, 3)
    fit(model, SoftmaxCrossEntropy(), opt, X, y, epochs=1, batch_size=40, progress=False,
        clip_grad_norm=1e-3)  # 3 steps
    assert 0 < np.linalg.norm(opt.flat_params - start) <= 3 * 1e-3


def test_bad_schedule_or_clipping_arguments():
    model, opt, _ = adam_cosine()
    other = adam_cosine()[1]
    X, y = spiral(10, 3)
    with pytest.raises(ValueError, match=r"fit: the scheduler StepLR\(.*\) was built on another optimizer"):
        fit(model, SoftmaxCrossEntropy(), opt, X, y, epochs=1, scheduler=StepLR(other, 2))
    with pytest.raises(ValueError, match=r"fit: expected clip_grad_norm > 0, got 0"):
        fit(model, SoftmaxCrossEntropy(), opt, X, y, epochs=1, clip_grad_norm=0)
    with pytest.raises(TypeError, match=r"fit: expected clip_grad_norm as a real number"):
        fit(model, SoftmaxCrossEntropy(), opt, X, y, epochs=1, clip_grad_norm="1")


def test_cli_trains_with_adam_a_warmup_a_cosine_schedule_and_clipping(capsys):
    from handprop.train.__main__ import main
    assert main(["--optimizer", "adam", "--lr", "0.01", "--schedule", "cosine", "--warmup", "1",
                 "--clip-grad-norm", "1", "--epochs", "3", "--hidden", "8", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("lr=")[1].split()[0] for line in lines if line.startswith("epoch=")] == \
        ["0.0050", "0.0100", "0.0050"]


@pytest.mark.parametrize("flags,kind,settings", [
    ([], SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}),
    (["--optimizer", "adamw"], "AdamW", {"lr": 1e-3, "weight_decay": 1e-2}),
    (["--optimizer", "rmsprop", "--momentum", "0.5"], "RMSprop", {"lr": 1e-2, "momentum": 0.5}),
    (["--optimizer", "adam", "--weight-decay", "0.1", "--lr", "0.5"], "Adam", {"lr": 0.5, "weight_decay": 0.1}),
])
def test_cli_optimizer_flags(flags, kind, settings):
    from handprop.layers import mlp
    from handprop.train.__main__ import build_optimizer, parser
    opt = build_optimizer(mlp(2, [4], 3), parser().parse_args(flags))
    assert type(opt).__name__ == getattr(kind, "__name__", kind)
    assert {key: getattr(opt, key) for key in settings} == settings


def test_cli_schedules():
    from handprop.layers import mlp
    from handprop.train.__main__ import build_schedule
    opt = SGD(mlp(2, [4], 3), lr=0.1)
    assert build_schedule(opt, "none", 0, 10) is None
    step = build_schedule(opt, "step", 0, 10)
    assert (type(step), step.step_size, step.gamma) == (StepLR, 3, 0.1)
    opt = SGD(mlp(2, [4], 3), lr=0.1)
    warm = build_schedule(opt, "cosine", 2, 10)
    assert isinstance(warm, SequentialLR) and warm.milestones == [2]
    assert warm.schedulers[1].T_max == 8 and opt.lr == pytest.approx(0.1 / 3)


@pytest.mark.parametrize("flags,message", [
    (["--optimizer", "adam", "--momentum", "0.9"], "--momentum goes with --optimizer sgd or rmsprop, not adam"),
    (["--optimizer", "rmsprop", "--nesterov"], "--nesterov goes with --optimizer sgd, not rmsprop"),
    (["--schedule", "cosine", "--warmup", "5", "--epochs", "5"], "--warmup 5 leaves no epochs of the cosine"),
    (["--clip-grad-norm", "0"], "argument --clip-grad-norm: expected a finite number > 0, got 0"),
    (["--optimizer", "lbfgs"], "argument --optimizer: invalid choice: 'lbfgs'"),
])
def test_cli_usage_errors(flags, message, capsys):
    from handprop.train.__main__ import main
    with pytest.raises(SystemExit) as exit_:
        main(flags)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_fit_refuses_an_optimizer_whose_buffer_the_model_left():
    """Replacing a params entry (against the Layer contract) would leave the optimizer
    updating a buffer nobody reads: fit says so instead."""
    model = Sequential(Linear(2, 8, rng=0), ReLU(), Linear(8, 3, rng=1))
    opt = SGD(model, lr=0.1)
    model[0].params["W"] = model[0].params["W"].copy()
    X, y = spiral(10, 3)
    with pytest.raises(ValueError, match=r"no longer the views of SGD\(.*\)'s flat buffer"):
        fit(model, SoftmaxCrossEntropy(), opt, X, y, epochs=1, progress=False)

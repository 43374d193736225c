"""nanoGPT's learning-rate shape by iterations: warmup_cosine_lr and WarmupCosineLR, bit for bit
against nanoGPT's own get_lr."""
import pytest

from handprop.layers import Linear
from handprop.train import AdamW
from handprop.train.warmup_cosine import WarmupCosineLR, warmup_cosine_lr

# (settings, [(iteration, lr)]) from nanoGPT's get_lr, by tests/nanogpt_reference_lr.py
TABLE = [
    ({'learning_rate': 0.001, 'min_lr': 0.0001, 'warmup_iters': 100, 'lr_decay_iters': 2000},
     [(0, 9.900990099009901e-06), (1, 1.9801980198019803e-05), (2, 2.9702970297029702e-05), (7, 7.920792079207921e-05), (50, 0.000504950495049505), (99, 0.0009900990099009901), (100, 0.001), (101, 0.0009999993848585915), (102, 0.0009999975394360482), (500, 0.0009051132292283772), (1000, 0.0005871607054625496), (1337, 0.0003443794674509606), (1999, 0.00010000061514140841), (2000, 0.0001), (2001, 0.0001), (2500, 0.0001), (300000, 0.0001), (600000, 0.0001), (600001, 0.0001)]),
    ({'learning_rate': 0.0006, 'min_lr': 6e-05, 'warmup_iters': 2000, 'lr_decay_iters': 600000},
     [(0, 2.998500749625187e-07), (1, 5.997001499250374e-07), (2, 8.995502248875562e-07), (7, 2.3988005997001498e-06), (50, 1.5292353823088455e-05), (99, 2.998500749625187e-05), (100, 3.028485757121439e-05), (101, 3.058470764617691e-05), (102, 3.0884557721139424e-05), (500, 0.00015022488755622187), (1000, 0.00030014992503748123), (1337, 0.00040119940029985005), (1999, 0.0005997001499250374), (2000, 0.0006), (2001, 0.0005999999999962741), (2500, 0.0005999990685256401), (300000, 0.0003314184383189326), (600000, 6e-05), (600001, 6e-05)]),
    ({'learning_rate': 0.01, 'min_lr': 0.0, 'warmup_iters': 0, 'lr_decay_iters': 7},
     [(0, 0.01), (1, 0.009504844339512096), (2, 0.008117449009293669), (7, 0.0), (50, 0.0), (99, 0.0), (100, 0.0), (101, 0.0), (102, 0.0), (500, 0.0), (1000, 0.0), (1337, 0.0), (1999, 0.0), (2000, 0.0), (2001, 0.0), (2500, 0.0), (300000, 0.0), (600000, 0.0), (600001, 0.0)]),
]


@pytest.mark.parametrize("config,table", TABLE, ids=["cpu-recipe", "gpt2", "no-warmup"])
def test_the_lr_is_nanogpts_bit_for_bit(config, table):
    for it, expected in table:
        got = warmup_cosine_lr(it, lr=config["learning_rate"], min_lr=config["min_lr"],
                               warmup_iters=config["warmup_iters"],
                               lr_decay_iters=config["lr_decay_iters"])
        assert got == expected, (it, got, expected)


@pytest.mark.parametrize("config,table", TABLE[::2], ids=["cpu-recipe", "no-warmup"])
def test_the_schedule_steps_through_the_same_values(config, table):
    opt = AdamW(Linear(2, 1, rng=0), lr=config["learning_rate"])
    sched = WarmupCosineLR(opt, warmup_iters=config["warmup_iters"],
                           lr_decay_iters=config["lr_decay_iters"], min_lr=config["min_lr"])
    wanted = dict(table)
    for it in range(2502):
        if it in wanted:
            assert opt.lr == wanted[it], it
        sched.step()


def test_a_reloaded_schedule_carries_on_where_it_was():
    opt = AdamW(Linear(2, 1, rng=0), lr=1e-3)
    sched = WarmupCosineLR(opt, warmup_iters=10, lr_decay_iters=50, min_lr=1e-4)
    for _ in range(30):
        sched.step()
    other_opt = AdamW(Linear(2, 1, rng=0), lr=1e-3)
    other = WarmupCosineLR(other_opt, warmup_iters=1, lr_decay_iters=2, min_lr=0.0)
    other.load_state_dict(sched.state_dict())
    sched.step()
    other.step()
    assert other_opt.lr == opt.lr == warmup_cosine_lr(31, lr=1e-3, min_lr=1e-4, warmup_iters=10,
                                                      lr_decay_iters=50)


def test_a_decay_that_ends_before_the_warmup_is_refused():
    with pytest.raises(ValueError, match="expected lr_decay_iters >= warmup_iters"):
        WarmupCosineLR(AdamW(Linear(2, 1)), warmup_iters=100, lr_decay_iters=50, min_lr=0.0)
    with pytest.raises(ValueError, match="warmup_iters"):
        WarmupCosineLR(AdamW(Linear(2, 1)), warmup_iters=-1, lr_decay_iters=50, min_lr=0.0)

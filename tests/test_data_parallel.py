"""DataParallel (layers/data_parallel.py): the batch split over copies of a model on threads
gives the whole batch's output and gradients, under an optimizer's flat buffer, in eval mode,
through the checker; what it refuses (fit_iterations with workers=2: tests/test_gpt_train.py)."""
import numpy as np
import pytest

from handprop.layers import (
    GELU,
    BatchNorm1d,
    DataParallel,
    Dropout,
    LayerNorm,
    Linear,
    Sequential,
    gpt,
)
from handprop.layers.gradcheck import gradcheck
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import AdamW

F64 = np.float64


def dense():
    return Sequential(Linear(3, 5, rng=0, dtype=F64), GELU(), LayerNorm(5, dtype=F64),
                      Linear(5, 2, rng=1, dtype=F64))


def tiny_gpt():
    return gpt(9, block_size=6, n_layer=2, n_head=2, n_embd=8, dtype=F64)


@pytest.mark.parametrize("workers,rows", [(2, 5), (3, 7), (2, 1), (4, 3)])
def test_the_shards_give_the_whole_batchs_output_dx_and_gradients(workers, rows):
    rng = np.random.default_rng(workers * 10 + rows)
    whole, split = dense(), DataParallel(dense(), workers)
    x, dout = rng.standard_normal((rows, 3)), rng.standard_normal((rows, 2))
    np.testing.assert_allclose(split.forward(x), whole.forward(x), rtol=0, atol=1e-15)
    np.testing.assert_allclose(split.backward(dout), whole.backward(dout), rtol=0, atol=1e-15)
    for name, grad in whole.grads.items():
        np.testing.assert_allclose(split.module.grads[name], grad, rtol=0, atol=1e-14, err_msg=name)


def test_a_gpt_split_three_ways_follows_the_whole_through_adamw_steps():
    whole, model = tiny_gpt(), tiny_gpt()
    split = DataParallel(model, 3)
    # built after the copies: AdamW moves the parameters into one buffer, and the copies follow
    optimizers = [AdamW(m, 1e-2) for m in (whole, model)]
    rng = np.random.default_rng(0)
    for _ in range(4):
        x, y = rng.integers(0, 9, (5, 6)), rng.integers(0, 9, (5, 6))
        for run, opt in zip((whole, split), optimizers):
            loss = SoftmaxCrossEntropy()
            loss.forward(run.forward(x), y)
            run.param_backward(loss.backward())
            opt.step()
    for name, p in whole.params.items():
        np.testing.assert_allclose(model.params[name], p, rtol=0, atol=1e-12, err_msg=name)
    assert split.backward is not None and split.takes_ids


def test_eval_mode_and_the_state_dict_are_the_modules():
    split = DataParallel(tiny_gpt(), 2)
    split.eval()
    assert not any(layer.training for twin in split.copies for layer in twin.modules())
    assert split.train() is split and all(twin.training for twin in split.copies)
    assert list(split.state_dict()) == [f"module.{name}" for name in split.module.state_dict()]
    assert repr(split) == "DataParallel(workers=2)"


def test_the_checker_checks_it_whole():
    assert gradcheck(DataParallel(dense(), 2), np.random.default_rng(3).standard_normal((5, 3))).ok
    smallest = gpt(5, block_size=3, n_layer=1, n_head=1, n_embd=4, dtype=F64)
    assert gradcheck(DataParallel(smallest, 2), np.random.default_rng(4).integers(0, 5, (3, 3))).ok


@pytest.mark.parametrize("module,message", [
    (Sequential(Linear(2, 3, rng=0), BatchNorm1d(3)), r"without batch statistics, got BatchNorm1d "
     r"at '1' with buffers \['running_mean', 'running_var'\]"),
    (Sequential(Linear(2, 3, rng=0), Dropout(0.1)), r"without dropout, got Dropout at '1'"),
    (gpt(9, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.1), r"without dropout, got "),
])
def test_a_module_that_a_split_would_change_is_refused_by_name(module, message):
    with pytest.raises(ValueError, match=r"DataParallel: expected a module " + message):
        DataParallel(module, 2)


@pytest.mark.parametrize("workers,error,message", [
    (0, ValueError, r"DataParallel: expected workers in \[1, 256\], got 0"),
    (257, ValueError, r"DataParallel: expected workers in \[1, 256\], got 257"),
    (2.0, TypeError, r"DataParallel: expected workers to be an int, got 2.0"),
])
def test_a_bad_worker_count_is_refused(workers, error, message):
    with pytest.raises(error, match=message):
        DataParallel(dense(), workers)
    with pytest.raises(TypeError, match="DataParallel: expected a Layer, got list"):
        DataParallel([dense()])


def test_backward_before_forward_says_so():
    with pytest.raises(RuntimeError, match="backward called before forward"):
        DataParallel(dense(), 2).backward(np.ones((2, 2)))

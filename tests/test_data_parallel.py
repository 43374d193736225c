"""DataParallel (layers/data_parallel.py): the batch split over copies of a model on threads
gives the whole batch's output and gradients, under an optimizer's flat buffer, in eval mode,
through the checker; what it refuses (fit_iterations with workers=2: tests/test_gpt_train.py)."""
import copy
import pickle
import threading
import time

import numpy as np
import pytest

from handprop.layers import (
    GELU,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    DataParallel,
    Dropout,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    gpt,
    mlp,
)
from handprop.layers.data_parallel import ShardSums
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


def test_dropout_draws_on_each_shard_from_a_generator_seeded_by_the_modules_own():
    model = Sequential(Linear(3, 200, rng=0, dtype=F64), Dropout(0.5, rng=1))
    split = DataParallel(model, 2)
    x = np.ones((400, 3))
    before = model[1].rng.bit_generator.state
    out = split.forward(x)
    kept = out != 0
    assert abs(kept.mean() - 0.5) < 0.01
    assert (kept[:200] != kept[200:]).mean() > 0.4        # the two shards' masks differ
    model[1].rng.bit_generator.state = before             # what a resumed run puts back
    np.testing.assert_array_equal(split.forward(x), out)
    assert model[1].rng is split.module[1].rng            # the module keeps its own generator
    assert not np.array_equal(split.forward(x), out)      # and it moved on
    dout = np.random.default_rng(2).standard_normal(out.shape)
    split.backward(dout)                                  # the masks of this forward pass
    assert gradcheck(DataParallel(gpt(5, block_size=3, n_layer=1, n_head=1, n_embd=4, dropout=0.3,
                                      dtype=F64), 2), np.random.default_rng(4).integers(0, 5, (3, 3))).ok


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


class Failing(Linear):
    """A Linear whose forward fails on a batch with a negative first entry, after a pause."""

    finished: list = []

    def forward(self, x):
        if x[0, 0] < 0:
            raise ValueError("this shard failed")
        time.sleep(0.2)
        Failing.finished.append(len(x))
        return super().forward(x)


def test_an_error_in_one_shard_waits_for_the_others_then_is_raised():
    Failing.finished = []
    split = DataParallel(Failing(2, 2, rng=0, dtype=F64), 2)
    x = np.array([[-1.0, 0], [1, 0], [1, 0], [1, 0]])
    with pytest.raises(ValueError, match="this shard failed"):
        split.forward(x)
    assert Failing.finished == [2]          # the other shard had finished when the error came


def test_the_shards_run_under_the_callers_errstate():
    layer = Linear(3, 2, rng=0, dtype=F64)
    layer.params["W"][...] = 2.0
    x = np.array([[0.0, 0, 0], [0, 0, 0], [1e308, 1e308, 1e308], [1e308, 1e308, 1e308]])
    split = DataParallel(layer, 2)          # only the second shard overflows
    with np.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow"):
        split.forward(x)


def test_a_layer_used_twice_adds_its_gradient_once():
    shared = Linear(3, 3, rng=0, dtype=F64)
    whole = Sequential(shared, shared)
    split = DataParallel(copy.deepcopy(whole), 2)
    rng = np.random.default_rng(5)
    x, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    whole.forward(x), split.forward(x)
    whole.backward(dout), split.backward(dout)
    for name, grad in whole.grads.items():
        np.testing.assert_allclose(split.module.grads[name], grad, rtol=0, atol=1e-14, err_msg=name)


def test_eval_on_the_module_itself_reaches_the_copies():
    split = DataParallel(tiny_gpt(), 2)
    split.module.eval()
    split.forward(np.zeros((2, 6), int))
    assert not any(layer.training for layer in split.copies[1].modules())


def test_a_dout_for_another_batch_is_refused_with_the_whole_shapes():
    split = DataParallel(dense(), 2)
    split.forward(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"expected dout for the 4 rows of the last forward pass, "
                                         r"got \(5, 2\)"):
        split.backward(np.ones((5, 2)))


def test_it_pickles_without_its_threads():
    split = DataParallel(dense(), 2)
    x = np.random.default_rng(6).standard_normal((4, 3))
    before = split.forward(x)
    again = pickle.loads(pickle.dumps(split))
    np.testing.assert_array_equal(again.forward(x), before)


def test_a_state_dict_across_the_wrapper_says_the_prefix_differs():
    split, bare = DataParallel(dense(), 2), dense()
    with pytest.raises(ValueError, match=r"every name differs by the prefix 'module.' \(from a "
                                         r"DataParallel: use its .module\)$"):
        bare.load_state_dict(split.state_dict())
    with pytest.raises(ValueError, match=r"prefix 'module.' \(for a DataParallel: use its .module\)$"):
        split.load_state_dict(bare.state_dict())
    bare.load_state_dict(split.module.state_dict())


def normalized(kind):
    """An MLP with BatchNorm1d, or a small CNN with BatchNorm2d, in float64."""
    if kind == "mlp":
        return mlp(6, [5, 4], 3, dtype=F64), (7, 6)
    return Sequential(Conv2d(1, 4, 3, padding=1, rng=0, dtype=F64), BatchNorm2d(4, dtype=F64), ReLU(),
                      MaxPool2d(2), Flatten(), Linear(4 * 4 * 4, 3, rng=1, dtype=F64)), (5, 1, 8, 8)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_batchnorm_takes_the_whole_batchs_statistics_across_the_shards(kind):
    (whole, shape), (model, _) = normalized(kind), normalized(kind)
    split = DataParallel(model, 2)
    rng = np.random.default_rng(7)
    for _ in range(2):                       # the running statistics follow the whole batch's
        x = rng.standard_normal(shape)
        out = whole.forward(x)
        np.testing.assert_allclose(split.forward(x), out, rtol=0, atol=1e-14)
        dout = rng.standard_normal(out.shape)
        np.testing.assert_allclose(split.backward(dout), whole.backward(dout), rtol=0, atol=1e-14)
        for name, grad in whole.grads.items():
            np.testing.assert_allclose(model.grads[name], grad, rtol=0, atol=1e-13, err_msg=name)
    for name, buffer in whole.buffers.items():
        np.testing.assert_allclose(model.buffers[name], buffer, rtol=0, atol=1e-15, err_msg=name)
    whole.eval(), split.eval()
    np.testing.assert_allclose(split.forward(x), whole.forward(x), rtol=0, atol=1e-14)
    split.train()
    assert gradcheck(split, x).ok
    model.forward(x)                        # the bare module, after a split: waits for no copy


def test_a_shard_of_one_row_is_normalized_with_the_batch():
    (whole, _), (model, _) = normalized("mlp"), normalized("mlp")
    x = np.random.default_rng(8).standard_normal((3, 6))          # shards of 2 and 1 rows
    np.testing.assert_allclose(DataParallel(model, 2).forward(x), whole.forward(x), rtol=0, atol=1e-14)
    pixels = np.random.default_rng(9).standard_normal((3, 2, 1, 1))   # one value a shard's channel
    whole, split = BatchNorm2d(2, dtype=F64), DataParallel(BatchNorm2d(2, dtype=F64), 3)
    np.testing.assert_allclose(split.forward(pixels), whole.forward(pixels), rtol=0, atol=1e-14)


def test_a_copy_that_runs_ahead_to_the_next_sum_leaves_this_sums_parts_alone():
    """BatchNorm's copies meet once a sum: the one past the barrier first may hand in its part
    of the next sum while the other has not yet read this one's."""
    sums = ShardSums(2)
    wait = sums.barrier.wait

    def slow_reader_wait():                  # shard 1 reads each sum 50 ms after the barrier
        wait()
        if threading.current_thread().name == "shard 1":
            time.sleep(0.05)

    sums.barrier.wait = slow_reader_wait     # type: ignore[method-assign]
    got: dict = {}

    def shard(index):
        got[index] = [sums.total(index, 1, (np.array([10.0 * k + index]),))[1][0][0]
                      for k in range(3)]

    threads = [threading.Thread(target=shard, args=(i,), name=f"shard {i}") for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {0: [1.0, 21.0, 41.0], 1: [1.0, 21.0, 41.0]}


def test_a_copy_that_fails_frees_the_others_waiting_at_batchnorm_and_its_error_is_raised():
    model = Sequential(Failing(2, 3, rng=0, dtype=F64), BatchNorm1d(3, dtype=F64))
    split = DataParallel(model, 2)
    x = np.array([[1.0, 0], [1, 0], [-1, 0], [1, 0]])   # the second shard's copy fails
    with pytest.raises(ValueError, match="this shard failed"):
        split.forward(x)                     # while the first waits at BatchNorm for it
    np.testing.assert_allclose(split.forward(np.abs(x)), model.forward(np.abs(x)), atol=1e-14)

"""Training a GPT by iterations (fit_iterations): against PyTorch over 20 AdamW steps with
clipping, end to end on tiny text, and resumed bit for bit after kill -9."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from handprop.layers import DataParallel, gpt
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import AdamW
from handprop.train.iterations import fit_iterations
from handprop.train.optim import decay_groups
from handprop.train.warmup_cosine import WarmupCosineLR

# Each step's loss over 20 steps of a nanoGPT-equivalent model in PyTorch, trained as nanoGPT
# trains (AdamW over two groups, betas (0.9, 0.99), weight decay 0.1 on the matrices, clipping
# to 1.0, warm-up 5 and cosine to 1e-3 at 20 from lr 1e-2), made by
# tests/torch_reference_gpt_train.py with torch 2.13.0+cpu:
LOSSES_FLOAT64 = [2.4984292399144654, 2.5490818145050325, 2.5089516870708097, 2.4899941199395936, 2.5086116660808475, 2.3930333694848844, 2.4453929379791863, 2.4394419839531225, 2.361089086669864, 2.397101465704103, 2.311517801222207, 2.3730365296165203, 2.391625742213662, 2.407833245553121, 2.4132165879573453, 2.384787220813271, 2.4112157487378245, 2.399224213932541, 2.403790378163412, 2.3623440752189238]
# gradient norms before clipping: [1.268, 1.547, 1.387, 1.149, 1.277, 1.009, 0.791, 1.025, 0.904, 1.015, 0.515, 0.831, 0.636, 0.794, 0.956, 0.67, 0.798, 0.706, 0.808, 0.874]
LOSSES_FLOAT32 = [2.4984290599823, 2.549081563949585, 2.5089516639709473, 2.4899940490722656, 2.5086119174957275, 2.393033266067505, 2.4453928470611572, 2.4394421577453613, 2.361088752746582, 2.397101640701294, 2.3115177154541016, 2.3730366230010986, 2.3916256427764893, 2.4078333377838135, 2.4132168292999268, 2.384787082672119, 2.4112155437469482, 2.399224281311035, 2.403790235519409, 2.362344264984131]
# gradient norms before clipping: [1.268, 1.547, 1.387, 1.149, 1.277, 1.009, 0.791, 1.025, 0.904, 1.015, 0.515, 0.831, 0.636, 0.794, 0.956, 0.67, 0.798, 0.706, 0.808, 0.874]
# 2.13.0+cpu

VOCAB, BLOCK, LAYERS, HEADS, EMBD, BATCH = 11, 8, 2, 2, 16, 4


def reference_weights(model):
    """The script's weights in handprop's layout: drawn in state_dict() order (nanoGPT's
    named_parameters() order) with torch's shapes, a Linear's weight transposed to (in, out)."""
    rng = np.random.default_rng(0)
    for name in model.state_dict():
        p = model.params[name]
        linear = p.ndim == 2 and not name.startswith(("wte", "wpe"))
        z = rng.standard_normal(p.shape[::-1] if linear else p.shape)
        z = z.T if linear else z
        p[...] = 0.2 * z if p.ndim == 2 else (1 + 0.1 * z if name.endswith("gamma") else 0.1 * z)
    return model


def nanogpt_run(model, lr=1e-2, min_lr=1e-3, warmup=5, decay=20):
    opt = AdamW(model, lr, betas=(0.9, 0.99), weight_decay=0.1,
                param_groups=decay_groups(model, 0.1))
    return opt, WarmupCosineLR(opt, warmup_iters=warmup, lr_decay_iters=decay, min_lr=min_lr)


@pytest.mark.parametrize("dtype,expected,tol", [(np.float64, LOSSES_FLOAT64, 1e-10),
                                                (np.float32, LOSSES_FLOAT32, 1e-4)])
def test_twenty_adamw_steps_with_clipping_give_pytorchs_losses(dtype, expected, tol):
    model = reference_weights(gpt(VOCAB, block_size=BLOCK, n_layer=LAYERS, n_head=HEADS,
                                  n_embd=EMBD, dtype=dtype))
    opt, sched = nanogpt_run(model)
    ids = np.random.default_rng(2).integers(0, VOCAB, 200)
    history = fit_iterations(model, SoftmaxCrossEntropy(), opt, ids, ids, block_size=BLOCK,
                             batch_size=BATCH, max_iters=20, eval_interval=1, eval_iters=1,
                             scheduler=sched, clip_grad_norm=1.0, seed=1)
    assert history["iteration"] == list(range(1, 21))
    np.testing.assert_allclose(history["train_loss"], expected, rtol=0, atol=tol)
    assert model.params["wte.W"].dtype == dtype


def test_the_batch_split_over_two_workers_gives_pytorchs_losses_too(monkeypatch):
    shards = []
    split = DataParallel._run
    monkeypatch.setattr(DataParallel, "_run", lambda self, method, parts: shards.append(len(parts))
                        or split(self, method, parts))
    model = reference_weights(gpt(VOCAB, block_size=BLOCK, n_layer=LAYERS, n_head=HEADS,
                                  n_embd=EMBD, dtype=np.float64))
    opt, sched = nanogpt_run(model)
    ids = np.random.default_rng(2).integers(0, VOCAB, 200)
    history = fit_iterations(model, SoftmaxCrossEntropy(), opt, ids, ids, block_size=BLOCK,
                             batch_size=BATCH, max_iters=20, eval_interval=1, eval_iters=1,
                             scheduler=sched, clip_grad_norm=1.0, seed=1, workers=2)
    np.testing.assert_allclose(history["train_loss"], LOSSES_FLOAT64, rtol=0, atol=1e-10)
    assert set(shards) == {2}            # every forward and backward ran on two copies


TEXT = "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. " * 8


def tiny_text():
    chars = sorted(set(TEXT))
    ids = np.array([chars.index(c) for c in TEXT])
    cut = int(0.9 * len(ids))
    return len(chars), ids[:cut], ids[cut:]


def test_a_tiny_gpt_learns_tiny_text_end_to_end():
    vocab, train, val = tiny_text()
    model = gpt(vocab, block_size=16, n_layer=1, n_head=2, n_embd=32, seed=0)
    opt, sched = nanogpt_run(model, lr=3e-3, min_lr=3e-4, warmup=5, decay=60)
    seen = []
    history = fit_iterations(model, SoftmaxCrossEntropy(), opt, train, val, block_size=16,
                             batch_size=8, max_iters=60, eval_interval=25, eval_iters=4,
                             scheduler=sched, clip_grad_norm=1.0, on_eval=seen.append)
    assert history["iteration"] == [25, 50, 60] and len(seen) == 3
    assert history["val_loss"][0] < np.log(vocab) and history["val_loss"][-1] < 2.0
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["lr"][-1] == pytest.approx(3e-4 + 0.5 * (1 + np.cos(np.pi * 54 / 55)) * 2.7e-3)
    assert model.training


RUN = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from handprop.layers import DataParallel, gpt
    from handprop.losses import SoftmaxCrossEntropy
    from handprop.train import AdamW
    from handprop.train.iterations import fit_iterations
    from handprop.train.optim import decay_groups
    from handprop.train.warmup_cosine import WarmupCosineLR
    checkpoint, resume, kill_at, out = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
    workers = int(sys.argv[5])
    ids = np.random.default_rng(5).integers(0, 13, 300)
    model = gpt(13, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.2, seed=3)
    opt = AdamW(model, 3e-3, betas=(0.9, 0.99), weight_decay=0.1,
                param_groups=decay_groups(model, 0.1))
    sched = WarmupCosineLR(opt, warmup_iters=4, lr_decay_iters=30, min_lr=3e-4)

    def on_eval(logs):
        print(logs["iteration"], flush=True)
        if logs["iteration"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)   # kill -9 right after the checkpoint

    history = fit_iterations(model, SoftmaxCrossEntropy(), opt, ids[:250], ids[250:],
                             block_size=8, batch_size=4, max_iters=30, eval_interval=10,
                             eval_iters=2, scheduler=sched, clip_grad_norm=1.0, seed=7,
                             checkpoint=checkpoint, resume=resume, on_eval=on_eval,
                             workers=workers)
    np.savez(out, val_loss=history["val_loss"], **model.state_dict())
""")


def run_script(tmp_path, *args):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", RUN, *map(str, args)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("workers", [1, 2])        # 2: dropout on each shard, from seeds
def test_a_run_killed_with_sigkill_resumes_bit_for_bit(tmp_path, workers):
    whole = run_script(tmp_path, tmp_path / "whole.npz", 0, -1, tmp_path / "whole_out.npz", workers)
    assert whole.returncode == 0, whole.stderr
    killed = run_script(tmp_path, tmp_path / "cut.npz", 0, 20, tmp_path / "never.npz", workers)
    assert killed.returncode == -signal.SIGKILL and not (tmp_path / "never.npz").exists()
    resumed = run_script(tmp_path, tmp_path / "cut.npz", 1, -1, tmp_path / "cut_out.npz", workers)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split() == ["30"]  # it trained on from 20, not anew
    expected, got = np.load(tmp_path / "whole_out.npz"), np.load(tmp_path / "cut_out.npz")
    assert set(expected.files) == set(got.files)
    for name in expected.files:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_how_often_one_evaluates_leaves_the_training_windows_alone():
    finals = []
    for interval in (5, 12):
        vocab, train, val = tiny_text()
        model = gpt(vocab, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
        opt, sched = nanogpt_run(model, decay=12)
        fit_iterations(model, SoftmaxCrossEntropy(), opt, train, val, block_size=8, batch_size=4,
                       max_iters=12, eval_interval=interval, eval_iters=1, scheduler=sched,
                       clip_grad_norm=1.0)
        finals.append(model.state_dict())
    for name in finals[0]:
        np.testing.assert_array_equal(finals[0][name], finals[1][name], err_msg=name)


def test_a_checkpoint_not_written_by_fit_iterations_is_refused(tmp_path):
    from handprop.train.checkpoint import save
    vocab, train, val = tiny_text()
    model = gpt(vocab, block_size=8, n_layer=1, n_head=2, n_embd=16)
    opt, _ = nanogpt_run(model)
    save(tmp_path / "c.npz", model, opt)
    with pytest.raises(ValueError, match="holds no iteration-based training state"):
        fit_iterations(model, SoftmaxCrossEntropy(), opt, train, val, block_size=8, batch_size=4,
                       max_iters=2, checkpoint=tmp_path / "c.npz", resume=True)


def test_a_checkpoint_whose_generators_do_not_fit_the_model_is_refused_by_name(tmp_path):
    from handprop.train.checkpoint import load, read_extra, save
    vocab, train, val = tiny_text()
    path = tmp_path / "c.npz"

    def run(resume):
        model = gpt(vocab, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
        opt, _ = nanogpt_run(model)
        fit_iterations(model, SoftmaxCrossEntropy(), opt, train, val, block_size=8, batch_size=4,
                       max_iters=2, eval_iters=1, checkpoint=path, resume=resume)
        return model, opt

    model, opt = run(resume=False)
    extra = read_extra(path)
    extra["iterations"]["generators"].popitem()
    load(path, model, opt)
    save(path, model, opt, **extra)
    with pytest.raises(ValueError, match=rf"fit_iterations: {path}: expected the states of the "
                                         r"model's random generators \["):
        run(resume=True)


@pytest.mark.parametrize("change,error,message", [
    (dict(block_size=0), ValueError, "block_size"),
    (dict(val_ids=np.arange(5)), ValueError, "val_ids holds 5 ids, no window of block_size=8"),
    (dict(train_ids=np.zeros(50)), TypeError, "train_ids as a 1-D array of integer ids"),
    (dict(clip_grad_norm=0.0), ValueError, "clip_grad_norm"),
    (dict(workers=0), ValueError, r"fit_iterations: expected workers in \[1, 256\], got 0"),
])
def test_bad_arguments_are_refused_before_training(change, error, message):
    vocab, train, val = tiny_text()
    model = gpt(vocab, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=change.pop("dropout", 0.0))
    opt, _ = nanogpt_run(model)
    before = model.state_dict()
    kwargs = {**dict(train_ids=train, val_ids=val, block_size=8, batch_size=4, max_iters=2), **change}
    with pytest.raises(error, match=message):
        fit_iterations(model, SoftmaxCrossEntropy(), opt, **kwargs)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.slow
def test_a_longer_run_on_running_text_brings_the_validation_loss_down():
    vocab, train, val = tiny_text()
    text = np.tile(np.concatenate([train, val]), 6)
    cut = int(0.9 * len(text))
    model = gpt(vocab, block_size=32, n_layer=2, n_head=2, n_embd=32)
    opt, sched = nanogpt_run(model, lr=3e-3, min_lr=3e-4, warmup=20, decay=300)
    history = fit_iterations(model, SoftmaxCrossEntropy(), opt, text[:cut], text[cut:],
                             block_size=32, batch_size=8, max_iters=300, eval_interval=100,
                             eval_iters=20, scheduler=sched, clip_grad_norm=1.0)
    assert history["val_loss"][-1] < 0.3 < history["val_loss"][0] + 1

"""Training a GPT by iterations (fit_iterations): against PyTorch over 20 AdamW steps with
clipping, end to end on tiny text, and resumed bit for bit after kill -9."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from handprop.layers.gpt import gpt
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import AdamW
from handprop.train.iterations import fit_iterations
from handprop.train.optim import decay_groups
from handprop.train.schedule import WarmupCosineLR

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

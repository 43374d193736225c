"""How the reference losses in test_gpt_train.py were made: torch 2.13.0+cpu,
``/work/venvs/torch/bin/python tests/torch_reference_gpt_train.py``. Not a test (torch is never
a dependency); its output is pasted into the test.

A model equivalent to nanoGPT's GPT (pre-LayerNorm blocks, packed q|k|v attention with a causal
mask, exact GELU, the head tied to the token embedding) trained the way nanoGPT trains it:
AdamW over two parameter groups (every parameter with two or more axes decayed, the others
not), betas (0.9, 0.99), the gradients' norm clipped to 1.0, nanoGPT's warm-up and cosine
learning rate set before each step. Weights come from numpy (seed 0) in named_parameters()
order with torch's shapes; the batches from numpy's default_rng(1), windows of a fixed id
sequence drawn as handprop's fit_iterations draws them. It prints each step's loss and the
gradient norm before clipping (so that one can see the clipping act).
"""
import math

import numpy as np
import torch
import torch.nn as nn

VOCAB, BLOCK, LAYERS, HEADS, EMBD, BATCH, STEPS = 11, 8, 2, 2, 16, 4, 20
LR, MIN_LR, WARMUP, DECAY = 1e-2, 1e-3, 5, 20


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(EMBD, 3 * EMBD)
        self.c_proj = nn.Linear(EMBD, EMBD)

    def forward(self, x):
        n, t, e = x.shape
        q, k, v = (a.view(n, t, HEADS, e // HEADS).transpose(1, 2)
                   for a in self.c_attn(x).split(e, dim=2))
        scores = q @ k.transpose(-2, -1) / math.sqrt(e // HEADS)
        scores = scores.masked_fill(~torch.tril(torch.ones(t, t, dtype=torch.bool)), float("-inf"))
        return self.c_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(n, t, e))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(EMBD), Attention(), nn.LayerNorm(EMBD)
        self.mlp = nn.Sequential(nn.Linear(EMBD, 4 * EMBD), nn.GELU(), nn.Linear(4 * EMBD, EMBD))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, EMBD), nn.Embedding(BLOCK, EMBD)
        self.h = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(EMBD)
        self.lm_head = nn.Linear(EMBD, VOCAB, bias=False)
        self.wte.weight = self.lm_head.weight

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def weights(shapes):
    """Matrices 0.2 N(0, 1), gains 1 + 0.1 N(0, 1), biases and betas 0.1 N(0, 1), in order."""
    rng = np.random.default_rng(0)
    out = []
    for name, shape in shapes:
        z = rng.standard_normal(shape)
        out.append(0.2 * z if len(shape) >= 2 else (1 + 0.1 * z if name.endswith("ln_1.weight")
                   or name.endswith("ln_2.weight") or name == "ln_f.weight" else 0.1 * z))
    return out


def get_lr(it):
    if it < WARMUP:
        return LR * (it + 1) / (WARMUP + 1)
    if it > DECAY:
        return MIN_LR
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * (it - WARMUP) / (DECAY - WARMUP))) * (LR - MIN_LR)


def run(dtype):
    torch.manual_seed(0)
    model = GPT().to(dtype)
    named = list(model.named_parameters())
    with torch.no_grad():
        for (_name, p), w in zip(named, weights([(n, tuple(p.shape)) for n, p in named])):
            p.copy_(torch.from_numpy(w))
    groups = [{"params": [p for _, p in named if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for _, p in named if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.99), foreach=False)
    ids = np.random.default_rng(2).integers(0, VOCAB, 200)
    rng = np.random.default_rng(1)
    losses, norms = [], []
    for it in range(STEPS):
        starts = rng.integers(0, len(ids) - BLOCK, BATCH)
        offsets = starts[:, None] + np.arange(BLOCK)
        x, y = torch.from_numpy(ids[offsets]), torch.from_numpy(ids[offsets + 1])
        for group in opt.param_groups:
            group["lr"] = get_lr(it)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits.view(-1, VOCAB), y.view(-1))
        opt.zero_grad()
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=False).item())
        opt.step()
        losses.append(loss.item())
    return losses, norms


for dtype in (torch.float64, torch.float32):
    losses, norms = run(dtype)
    print(f"LOSSES_{str(dtype).split('.')[1].upper()} = {losses!r}")
    print(f"# gradient norms before clipping: {[round(n, 3) for n in norms]}")
print("#", torch.__version__)

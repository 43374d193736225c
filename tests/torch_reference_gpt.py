"""How the reference values in test_attention.py and test_gpt.py were made: torch 2.13.0+cpu,
float64, ``/work/venvs/torch/bin/python tests/torch_reference_gpt.py attention`` (or ``block``,
``gpt``, ``gpt_untied``). Not a test (torch is never a dependency); its output is pasted into the
tests.

The modules below are written to be equivalent to nanoGPT's ``CausalSelfAttention``, ``Block``
and ``GPT`` (the same computation, parameter shapes and named_parameters() order; the attention
is also checked here against ``F.scaled_dot_product_attention(is_causal=True)``). Inputs and
weights come from numpy seeds, drawn in named_parameters() order with torch's shapes, so the tests
rebuild them without torch. Gradients are printed in handprop's layout: a Linear's weight
gradient transposed to (in, out).
"""
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


class Attention(nn.Module):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)   # q | k | v on the output axis
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.n_head = n_head

    def forward(self, x):
        n, t, e = x.shape
        q, k, v = self.c_attn(x).split(e, dim=2)
        q, k, v = (a.view(n, t, self.n_head, e // self.n_head).transpose(1, 2) for a in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(e // self.n_head)
        future = ~torch.tril(torch.ones(t, t, dtype=torch.bool))
        att = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
        y = att @ v
        flash = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        assert torch.allclose(y, flash, atol=1e-12), "the manual attention is not SDPA's"
        return self.c_proj(y.transpose(1, 2).reshape(n, t, e))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = Attention(n_embd, n_head, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd, bias=bias), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd, bias=bias))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True, tie=True):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        if tie:
            self.wte.weight = self.lm_head.weight   # one tensor; named_parameters lists it once

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def load_weights(module, rng):
    """Every parameter from rng in named_parameters() order: matrices 0.4 N(0, 1), LayerNorm
    gains 1 + 0.1 N(0, 1), biases 0.1 N(0, 1) (the tests draw the same)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            draw = rng.standard_normal(tuple(p.shape))
            if p.dim() == 2:
                value = 0.4 * draw
            elif name.split(".")[-2].startswith("ln_") and name.endswith("weight"):
                value = 1 + 0.1 * draw
            else:
                value = 0.1 * draw
            p.copy_(torch.from_numpy(value))


def is_linear_weight(module, name):
    owner = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
    return isinstance(owner, nn.Linear) and name.endswith("weight")


def show(name, t):
    """The array flattened in C order, 16 significant digits, as a pasteable dict entry."""
    values = [f"{v:.16g}" for v in np.asarray(t, dtype=np.float64).ravel()]
    lines, line = [], ""
    for v in values:
        if len(line) + len(v) + 2 > 96:
            lines.append(line.rstrip())
            line = ""
        line += v + ", "
    lines.append(line.rstrip(", "))
    print(f"    {name!r}: [" + ("\n" + " " * 8).join(lines) + "],")


def show_grads(module, only=None):
    """Each parameter's gradient (or those named in ``only``) in named_parameters() order,
    Linear weights as (in, out)."""
    for name, p in module.named_parameters():
        if only is not None and name not in only:
            continue
        grad = p.grad.numpy()
        show(name, grad.T if is_linear_weight(module, name) else grad)


def layer_case(module, seed, x_shape):
    """out and its gradients for L = sum(out * dout): x, the weights, dout drawn in that order."""
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.standard_normal(x_shape), requires_grad=True)
    load_weights(module, rng)
    out = module(x)
    dout = torch.tensor(rng.standard_normal(x_shape))
    (out * dout).sum().backward()
    print("{")
    show("out", out.detach())
    show("dx", x.grad)
    show_grads(module)
    print("}")


def gpt_case(seed, tie):
    """Logits, mean cross-entropy and every gradient (untied: the two ends' only, where tying
    makes the difference): ids, targets, then the weights drawn."""
    vocab, block_size, n, t = 7, 6, 2, 5
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, (n, t))
    targets = rng.integers(0, vocab, (n, t))
    model = GPT(vocab, block_size, n_layer=2, n_head=2, n_embd=4, tie=tie)
    load_weights(model, rng)
    logits = model(torch.from_numpy(ids))
    loss = F.cross_entropy(logits.view(-1, vocab), torch.from_numpy(targets).view(-1))
    loss.backward()
    print("{")
    print(f"    'loss': {loss.item()!r},")
    show("logits", logits.detach())
    show_grads(model, None if tie else ("wte.weight", "lm_head.weight"))
    print("}")


if __name__ == "__main__":
    case = sys.argv[1]
    if case == "attention":
        layer_case(Attention(6, 2), 220, (2, 4, 6))
    elif case == "block":
        layer_case(Block(4, 2), 221, (2, 3, 4))
    elif case == "gpt":
        gpt_case(222, tie=True)
    elif case == "gpt_untied":
        gpt_case(223, tie=False)

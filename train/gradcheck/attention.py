"""The registry's attention family: CausalSelfAttention, the position embedding, the transformer
block and a tiny GPT (token ids passed through unperturbed, tied and untied heads).

Each entry is ``(name, make)``; ``make()`` returns the arguments of one gradcheck call: the layer
and its input, or the GPT and its ids as a tuple. Names start with the subject's class and say
"batch 1" exactly when N = 1, "train"/"eval" where dropout makes the modes differ.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...layers import CausalSelfAttention, Layer, gpt
from ...layers.gpt import Block, PositionEmbedding


def attention_checks(seed: int = 0) -> list[tuple[str, Callable[[], tuple[Any, ...]]]]:
    """(name, make) pairs for the attention layer, the block and a tiny GPT, in float64."""
    f64 = np.float64

    def normal(shape, s):
        return np.random.default_rng(seed + s).standard_normal(shape)

    def livelier(layer: Layer, s: int) -> Layer:
        """Weights away from nanoGPT's small init, so that every path carries gradient: matrices
        0.4 N(0, 1), LayerNorm gains 1 + 0.1 N(0, 1), biases 0.1 N(0, 1)."""
        rng = np.random.default_rng(seed + s)
        for name, p in layer.params.items():
            draw = rng.standard_normal(p.shape)
            p[...] = 0.4 * draw if p.ndim == 2 else (1 + 0.1 * draw if name.endswith("gamma") else 0.1 * draw)
        return layer

    def attention(shape, heads, s, mode="train", **options):
        layer = CausalSelfAttention(shape[-1], heads, rng=seed + s, dtype=f64, **options)
        return (layer.train(mode == "train"), normal(shape, s + 1))

    def block(shape, heads, s, mode="train", **options):
        layer = livelier(Block(shape[-1], heads, rng=seed + s, dtype=f64, **options), s)
        return (layer.train(mode == "train"), normal(shape, s + 1))

    def tiny_gpt(n, t, s, mode="train", **options):
        model = gpt(7, block_size=6, n_layer=2, n_head=2, n_embd=4, seed=seed + s, dtype=f64,
                    **options)
        ids = np.random.default_rng(seed + s + 1).integers(0, 7, (n, t))
        ids.flat[:3] = 1   # a repeated id: the lookup's gradients must add (and the head's)
        return (livelier(model, s).train(mode == "train"), (ids,))

    return [
        ("CausalSelfAttention", lambda: attention((2, 5, 8), 2, 300)),
        ("CausalSelfAttention batch 1 bias=False", lambda: attention((1, 4, 6), 3, 302, bias=False)),
        ("CausalSelfAttention one head T=1", lambda: attention((3, 1, 4), 1, 304)),
        ("CausalSelfAttention dropout train", lambda: attention((2, 4, 4), 2, 306, dropout=0.25)),
        ("CausalSelfAttention dropout eval", lambda: attention((2, 4, 4), 2, 306, "eval", dropout=0.25)),
        ("PositionEmbedding", lambda: (PositionEmbedding(6, 4, rng=seed, dtype=f64), normal((2, 5, 4), 310))),
        ("Block", lambda: block((2, 4, 8), 2, 320)),
        ("Block batch 1 bias=False", lambda: block((1, 3, 4), 2, 322, bias=False)),
        ("Block dropout train", lambda: block((2, 3, 4), 2, 324, dropout=0.2)),
        ("Block dropout eval", lambda: block((2, 3, 4), 2, 324, "eval", dropout=0.2)),
        ("GPT tied", lambda: tiny_gpt(2, 5, 330)),
        ("GPT untied", lambda: tiny_gpt(2, 4, 332, tie_weights=False)),
        ("GPT batch 1 bias=False", lambda: tiny_gpt(1, 6, 334, bias=False)),
        ("GPT dropout train", lambda: tiny_gpt(2, 3, 336, dropout=0.2)),
    ]

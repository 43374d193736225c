"""A GPT, read in one sitting: position embedding, the pre-LayerNorm block, the model, ``gpt()``.

nanoGPT's model with hand-written backward passes. Token ids (N, T) become vectors (the token
embedding plus a learned position embedding), pass through ``n_layer`` blocks of causal
self-attention and an MLP, each wrapped in a residual connection, and come out as logits over
the vocabulary (N, T, V) through a head that shares its weights with the token embedding.
Derivations: docs/derivations/attention.md (attention, the block, the tied head's gradient).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .attention import CausalSelfAttention
from .base import Layer, check_grad, check_input, check_not_empty, non_default
from .dropout import Dropout
from .embedding import Embedding
from .gelu import GELU
from .layernorm import LayerNorm
from .linear import Linear
from .sequential import Composite, Sequential
from .validate import flag, float_dtype, generator, integer, parameter_budget, real, spawn


class PositionEmbedding(Layer):
    """A learned vector per position, added to its input: ``out[n, t] = x[n, t] + W[t]``.

    Shapes: x and out (N, T, E) with T <= block_size; W (block_size, E). Local derivatives::

        dx = dout                             the addition passes the gradient through
        dW[t] = sum over n of dout[n, t]      W[:T] was broadcast over the batch: sum over it
        dW[t] = 0 for t >= T                  rows not used by a shorter sequence

    nanoGPT's ``wpe`` (an ``nn.Embedding`` looked up at positions 0..T-1), folded together
    with the addition. Initialisation is PyTorch's Embedding's, N(0, 1).

    Examples
    --------
    >>> wpe = PositionEmbedding(4, 2, rng=0)
    >>> out = wpe.forward(np.zeros((3, 2, 2), np.float32))
    >>> bool((out == wpe.params["W"][:2]).all())
    True
    """

    def __init__(self, block_size: int, embedding_dim: int, *,
                 rng: int | np.random.Generator | None = None, dtype=np.float32) -> None:
        super().__init__()
        self.block_size = integer("PositionEmbedding", "block_size", block_size, low=1)
        self.embedding_dim = integer("PositionEmbedding", "embedding_dim", embedding_dim, low=1)
        self.dtype = float_dtype("PositionEmbedding", dtype)
        parameter_budget("PositionEmbedding", self.block_size * self.embedding_dim, self.dtype)
        W = generator("PositionEmbedding", rng).standard_normal((self.block_size, self.embedding_dim))
        self.params["W"] = W.astype(self.dtype)
        self.grads["W"] = np.zeros_like(self.params["W"])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, T, E) -> x + W[:T], (N, T, E)."""
        check_input(self, x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.embedding_dim or not 1 <= x.shape[1] <= self.block_size:
            raise ValueError(f"{self!r}: expected input of shape (N, T, {self.embedding_dim}) "
                             f"with 1 <= T <= block_size={self.block_size}, got {x.shape}")
        self.cache = x.shape
        return x + self.params["W"][:x.shape[1]]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, T, E) -> dx (N, T, E); fills grads["W"] (block_size, E)."""
        shape = self._saved()
        check_grad(self, dout, shape, self.dtype)
        t = shape[1]
        dW = self.grads["W"]
        np.sum(dout, axis=0, out=dW[:t])                          # (T, E) summed over the batch
        dW[t:] = 0                                                # (block_size - T, E) unused
        return dout.copy()                                        # a new array, never dout itself

    def extra_repr(self) -> str:
        dtype = non_default(dtype=(self.dtype, np.float32))
        return ", ".join(filter(None, [f"{self.block_size}, {self.embedding_dim}", dtype]))


class Block(Composite):
    """The pre-LayerNorm transformer block: attention, then an MLP, each around a residual::

        h   = x + attn(ln_1(x))                  (N, T, E)
        out = h + mlp(ln_2(h))                   (N, T, E)   mlp: Linear(E, 4E), GELU, Linear(4E, E)

    Backward: each residual hands its gradient straight through and adds the branch's, so::

        dh = dout + ln_2.backward(mlp.backward(dout))
        dx = dh + ln_1.backward(attn.backward(dh))

    Children ``ln_1``, ``attn``, ``ln_2``, ``mlp`` (a Sequential, with a Dropout last when
    ``dropout > 0``), nanoGPT's names and order; the GELU is exact, as ``nn.GELU()``.
    """

    def __init__(self, n_embd: int, n_head: int, *, dropout: float = 0.0, bias: bool = True,
                 rng: int | np.random.Generator | None = None, dtype=np.float32) -> None:
        super().__init__()
        who = "Block"
        e, n_head = integer(who, "n_embd", n_embd, low=1), integer(who, "n_head", n_head, low=1)
        if e % n_head:
            raise ValueError(f"{who}: expected n_embd divisible by n_head, got n_embd={e} and "
                             f"n_head={n_head}")
        dropout = real(who, "dropout", dropout, low=0, high=1, high_open=True)
        bias, dtype = flag(who, "bias", bias), float_dtype(who, dtype)
        parameter_budget(who, block_parameters(e), dtype)
        weights, attn_rng, mlp_rng = spawn(generator(who, rng), 3)
        self.ln_1 = LayerNorm(e, bias=bias, dtype=dtype)
        self.attn = CausalSelfAttention(e, n_head, bias=bias, dropout=dropout, rng=attn_rng,
                                        dtype=dtype)
        self.ln_2 = LayerNorm(e, bias=bias, dtype=dtype)
        mlp: list[Layer] = [Linear(e, 4 * e, bias, rng=weights, dtype=dtype), GELU(),
                            Linear(4 * e, e, bias, rng=weights, dtype=dtype)]
        self.mlp = Sequential(*mlp, *([Dropout(dropout, rng=mlp_rng)] if dropout > 0 else []))

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        yield from (("ln_1", self.ln_1), ("attn", self.attn), ("ln_2", self.ln_2), ("mlp", self.mlp))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, T, E) -> out (N, T, E)."""
        h = x + self.attn.forward(self.ln_1.forward(x))
        self.cache = x.shape
        return h + self.mlp.forward(self.ln_2.forward(h))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, T, E) -> dx (N, T, E); fills every child's grads."""
        self._saved()
        dh = dout + self.ln_2.backward(self.mlp.backward(dout))
        return dh + self.ln_1.backward(self.attn.backward(dh))


@dataclass(frozen=True)
class GPTConfig:
    """A GPT's sizes and options, as nanoGPT's ``GPTConfig`` (checked by ``gpt()``)."""

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True


class Saved(NamedTuple):
    """What the GPT's forward pass keeps for its own part of backward (the head)."""

    x2: np.ndarray            # (M, E) the final LayerNorm's output, one row per position
    shape: tuple[int, int]    # (N, T) of the ids


class GPT(Composite):
    """nanoGPT's GPT: token ids (N, T) -> logits (N, T, vocab_size). Build it with ``gpt()``.

    Forward, with E = n_embd and V = vocab_size::

        x      = wte(ids) + wpe[:T]              (N, T, E)   token embedding, position embedding
        x      = drop(x), then each block of h   (N, T, E)
        logits = ln_f(x) @ W_head                (N, T, V)   W_head = wte.W^T when tied

    Tied (the default), the head reuses the token embedding's table W (V, E): one array with
    two uses, so its gradient is the sum of both, written into ``wte.grads["W"]``::

        dW = scatter-add of dx over the ids      (the lookup's, wte.backward)
           + dlogits^T @ ln_f(x)                 (V, E) (the head's, (x @ W^T)'s weight gradient)

    ``params`` hold it once, under ``wte.W``: ``flatten_params`` and optimizers see one
    parameter. Untied, the head is ``lm_head``, a Linear(E, V) without bias. ``state_dict()``
    lists parameters in the order of nanoGPT's ``named_parameters()``; its Linear weights are
    stored (in, out), the transposes of nanoGPT's.
    """

    takes_ids = True

    def __init__(self, config: GPTConfig, *, rng: int | np.random.Generator | None = None,
                 dtype=np.float32) -> None:
        super().__init__()
        self.config = c = config
        self.dtype = np.dtype(dtype)
        seeds = spawn(np.random.default_rng(rng), c.n_layer + 4)
        self.wte = Embedding(c.vocab_size, c.n_embd, rng=seeds[0], dtype=dtype)
        self.wpe = PositionEmbedding(c.block_size, c.n_embd, rng=seeds[1], dtype=dtype)
        self.drop = Dropout(c.dropout, rng=seeds[2]) if c.dropout > 0 else None
        self.h = Sequential(*(Block(c.n_embd, c.n_head, dropout=c.dropout, bias=c.bias,
                                    rng=seeds[3 + i], dtype=dtype) for i in range(c.n_layer)))
        self.ln_f = LayerNorm(c.n_embd, bias=c.bias, dtype=dtype)
        self.lm_head = (None if c.tie_weights else
                        Linear(c.n_embd, c.vocab_size, bias=False, rng=seeds[-1], dtype=dtype))

    @property
    def block_size(self) -> int:
        """The longest context it takes (``sample`` crops to it)."""
        return self.config.block_size

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        named = [("wte", self.wte), ("wpe", self.wpe), ("drop", self.drop), ("h", self.h),
                 ("ln_f", self.ln_f), ("lm_head", self.lm_head)]
        yield from ((name, layer) for name, layer in named if layer is not None)

    def forward(self, ids: np.ndarray) -> np.ndarray:
        """ids (N, T) integers in [0, V), T <= block_size -> logits (N, T, V)."""
        n, t = self._check_ids(ids)
        x = self.wpe.forward(self.wte.forward(ids))               # (N, T, E)
        if self.drop is not None:
            x = self.drop.forward(x)
        x = self.ln_f.forward(self.h.forward(x))                  # (N, T, E)
        x2 = x.reshape(n * t, -1)                                 # (M, E), M = N*T rows
        self.cache = Saved(x2, (n, t))
        logits = x2 @ self.wte.params["W"].T if self.lm_head is None else self.lm_head.forward(x2)
        return logits.reshape(n, t, -1)                           # (M, V) -> (N, T, V)

    def backward(self, dlogits: np.ndarray) -> None:  # type: ignore[override]  # ids: no gradient
        """dlogits (N, T, V) -> None (ids have no gradient); fills every parameter's grads."""
        x2, (n, t) = self._saved()                                # a Saved
        check_grad(self, dlogits, (n, t, self.config.vocab_size), self.dtype)
        dlogits2 = dlogits.reshape(n * t, -1)                     # (M, V)
        if self.lm_head is None:
            dW_head = dlogits2.T @ x2                             # (V, E) the head's use of W
            dx2 = dlogits2 @ self.wte.params["W"]                 # (M, E)
        else:
            dx2 = self.lm_head.backward(dlogits2)                 # (M, E)
        dx = self.h.backward(self.ln_f.backward(dx2.reshape(n, t, -1)))
        if self.drop is not None:
            dx = self.drop.backward(dx)
        self.wte.backward(self.wpe.backward(dx))                  # the lookup's use of W
        if self.lm_head is None:
            self.wte.grads["W"] += dW_head                        # both uses, summed in place
        return None

    def _check_ids(self, ids: object) -> tuple[int, int]:
        block_size = self.config.block_size
        if isinstance(ids, np.ndarray) and ids.ndim == 2 and ids.shape[1] > block_size:
            raise ValueError(f"{self!r}: a sequence of {ids.shape[1]} tokens is longer than "
                             f"block_size={block_size}, the positions the model has embeddings "
                             f"for; feed at most the last {block_size} tokens")
        if not isinstance(ids, np.ndarray):
            raise TypeError(f"{self!r}: expected token ids as a numpy integer array of shape "
                            f"(N, T), got {type(ids).__name__}; wrap them with np.asarray")
        check_not_empty(self, ids.shape)
        if ids.ndim != 2 or 0 in ids.shape:
            raise ValueError(f"{self!r}: expected token ids of shape (N, T), got {ids.shape}")
        n, t = ids.shape
        return n, t

    def extra_repr(self) -> str:
        c = self.config
        sizes = f"block_size={c.block_size}, n_layer={c.n_layer}, n_head={c.n_head}, n_embd={c.n_embd}"
        options = non_default(dropout=(c.dropout, 0.0), bias=(c.bias, True),
                              tie_weights=(c.tie_weights, True), dtype=(self.dtype, np.float32))
        return ", ".join(filter(None, [str(c.vocab_size), sizes, options]))


def gpt(vocab_size: int, *, block_size: int, n_layer: int, n_head: int, n_embd: int,
        dropout: float = 0.0, bias: bool = True, tie_weights: bool = True, seed: int = 0,
        dtype=np.float32) -> GPT:
    """nanoGPT's GPT with nanoGPT's initialisation: token ids (N, T) -> logits (N, T, vocab_size).

    Every matrix (the embeddings, the projections, an untied head) is drawn from N(0, 0.02^2),
    except the residual branches' output projections (``attn.W_out``, the MLP's second Linear),
    drawn with std 0.02 / sqrt(2 * n_layer) so that the sum of 2 * n_layer residual branches
    keeps its scale; biases start at 0, LayerNorm gains at 1. The weights come from
    ``default_rng(seed)`` in ``state_dict()`` order; dropout's masks from generators spawned
    apart from it, one per layer that draws.

    Examples
    --------
    >>> model = gpt(65, block_size=8, n_layer=2, n_head=2, n_embd=16)
    >>> model.forward(np.zeros((3, 8), np.int64)).shape
    (3, 8, 65)
    >>> list(model.state_dict())[:6]
    ['wte.W', 'wpe.W', 'h.0.ln_1.gamma', 'h.0.ln_1.beta', 'h.0.attn.W_qkv', 'h.0.attn.b_qkv']
    """
    who = "gpt"
    sizes = {name: integer(who, name, value, low=1) for name, value in (
        ("vocab_size", vocab_size), ("block_size", block_size), ("n_layer", n_layer),
        ("n_head", n_head), ("n_embd", n_embd))}
    if sizes["n_embd"] % sizes["n_head"]:
        raise ValueError(f"{who}: expected n_embd divisible by n_head (each head takes "
                         f"n_embd / n_head features), got n_embd={n_embd} and n_head={n_head}")
    config = GPTConfig(**sizes, dropout=real(who, "dropout", dropout, low=0, high=1, high_open=True),
                       bias=flag(who, "bias", bias), tie_weights=flag(who, "tie_weights", tie_weights))
    seed = integer(who, "seed", seed, low=0)
    dtype = float_dtype(who, dtype)
    v, e = sizes["vocab_size"], sizes["n_embd"]
    embeddings = (v if tie_weights else 2 * v) * e + sizes["block_size"] * e + 2 * e
    parameter_budget(who, embeddings + sizes["n_layer"] * block_parameters(e), dtype)
    # dropout's generators (and the layers' own initial draws, replaced below) from another stream
    model = GPT(config, rng=np.random.default_rng([seed, 1]), dtype=dtype)
    init_like_nanogpt(model, seed)
    return model


def block_parameters(n_embd: int) -> int:
    """The parameters of one Block with biases: two LayerNorms (2E each), attention
    (4E^2 + 4E), the MLP (8E^2 + 5E)."""
    return 12 * n_embd * n_embd + 13 * n_embd


RESIDUAL_PROJECTIONS = ("attn.W_out", "mlp.2.W")   # the last matrix of each residual branch


def init_like_nanogpt(model: GPT, seed: int) -> None:
    """nanoGPT's initialisation, in place (see ``gpt``)."""
    rng = np.random.default_rng(seed)
    residual_std = 0.02 / math.sqrt(2 * model.config.n_layer)
    for name, p in model.params.items():
        if p.ndim == 2:                                           # every matrix
            std = residual_std if name.endswith(RESIDUAL_PROJECTIONS) else 0.02
            p[...] = rng.normal(0.0, std, p.shape)
        elif not name.endswith("gamma"):                          # biases; gains stay 1
            p[...] = 0

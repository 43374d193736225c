"""The Python API's builders refuse sizes whose parameters would exceed one documented bound,
handprop.layers.validate.MAX_PARAMETER_BYTES, with a clear ValueError before allocating
anything (issue 24: Linear(2**36, 4) ended in numpy's MemoryError, mlp(..., [65536, 65536])
allocated 32 GiB)."""
import numpy as np
import pytest

import handprop.layers.validate as validate
from handprop import layers as L
from handprop.layers.gpt import Block, PositionEmbedding

# label -> (build at the given size, a small size that builds, a huge size)
BUILDERS = {
    "Linear": (lambda n: L.Linear(n, 4), 64, 2 ** 36),
    "Conv2d": (lambda n: L.Conv2d(n, n, 3), 16, 2 ** 16),
    "Embedding": (lambda n: L.Embedding(n, n), 32, 2 ** 20),
    "PositionEmbedding": (lambda n: PositionEmbedding(n, n), 32, 2 ** 20),
    "RNN": (lambda n: L.RNN(n, n), 16, 2 ** 17),
    "LSTM": (lambda n: L.LSTM(n, n), 16, 2 ** 16),
    "GRU": (lambda n: L.GRU(n, n), 16, 2 ** 16),
    "CausalSelfAttention": (lambda n: L.CausalSelfAttention(n, 1), 16, 2 ** 16),
    "Block": (lambda n: Block(n, 1), 8, 2 ** 16),
    "BatchNorm1d": (lambda n: L.BatchNorm1d(n), 64, 2 ** 40),
    "BatchNorm2d": (lambda n: L.BatchNorm2d(n), 64, 2 ** 40),
    "LayerNorm": (lambda n: L.LayerNorm(n), 64, 2 ** 40),
    "mlp": (lambda n: L.mlp(10, [n, n], 10), 32, 65536),
    "cnn": (lambda n: L.cnn((1, n, n), 10), 16, 2 ** 16),
    "cnn-channels": (lambda n: L.cnn((1, 28, 28), 10, (n, n)), 4, 2 ** 14),
    "gpt": (lambda n: L.gpt(n, block_size=n, n_layer=2, n_head=2, n_embd=n), 16, 2 ** 14),
}


@pytest.mark.parametrize("label", BUILDERS)
def test_a_size_past_the_bound_is_refused_before_allocating(label):
    build, _, huge = BUILDERS[label]
    with pytest.raises(ValueError, match=r"^(\w+): [\d,]+ parameters of float32 and their gradients "
                                         r"would take [\d,.]+ GiB, over the 4.0 GiB bound "
                                         r"\(handprop.layers.validate.MAX_PARAMETER_BYTES\)") as caught:
        build(huge)
    assert str(caught.value).split(":")[0] in (label.split("-")[0], "Linear")


@pytest.mark.parametrize("label", BUILDERS)
def test_the_bound_is_the_one_every_builder_uses_and_can_be_raised(label, monkeypatch):
    build, small, _ = BUILDERS[label]
    model = build(small)
    needed = 2 * sum(a.nbytes for a in model.params.values())
    monkeypatch.setattr(validate, "MAX_PARAMETER_BYTES", needed - 1)
    with pytest.raises(ValueError, match=r"over the 0.0 GiB bound"):
        build(small)
    monkeypatch.setattr(validate, "MAX_PARAMETER_BYTES", 4 * needed)  # buffers (BatchNorm) too
    build(small)


def test_the_bound_counts_the_dtype():
    with pytest.raises(ValueError, match=r"float64 and their gradients would take 8.0 GiB"):
        L.Linear(2 ** 14, 2 ** 15 - 1, dtype=np.float64)
    L.Linear(2 ** 12, 2 ** 10, dtype=np.float16)

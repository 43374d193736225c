"""Every constructor option of every layer, model builder and loss is checked for type and
range through handprop.layers.validate: a wrong type, a bool, nan, inf or a value out of range
is a TypeError or ValueError that names the argument (issue 24: BatchNorm1d(eps=inf),
eps='1e-5', label_smoothing='0.1')."""
import math

import numpy as np
import pytest

from handprop import layers as L
from handprop import losses
from handprop.layers.gpt import Block, PositionEmbedding

nan, inf = math.nan, math.inf
T, V = TypeError, ValueError

# the bad values of each kind of option, with the error each must raise
KINDS = {
    "size": [("3", T), (True, T), (nan, T), (inf, T), (3.0, T), (0, V), (-1, V)],
    "size0": [("1", T), (True, T), (nan, T), (inf, T), (-1, V)],
    "positive": [("1e-5", T), (True, T), (None, T), (nan, V), (inf, V), (0, V), (-1e-5, V)],
    "prob": [("0.1", T), (True, T), (nan, V), (inf, V), (-0.1, V), (1.5, V)],
    "prob_open": [("0.1", T), (True, T), (nan, V), (inf, V), (-0.1, V), (1.0, V)],
    "real": [("0.1", T), (True, T), (None, T), (nan, V), (inf, V), (-inf, V)],
    "flag": [("yes", T), (1, T), (0, T), (nan, T), (None, T)],
    "int": [("1", T), (True, T), (nan, T), (inf, T), (1.5, T), (None, T)],
    "index": [("1", T), (True, T), (nan, T), (inf, T), (1.5, T)],        # None: no index
    "seed": [("1", T), (True, T), (nan, T), (inf, T), (1.5, T), (-1, V)],
    "rng": [("1", T), (True, T), (nan, T), (inf, T), (1.5, T), ([1, "a"], T), (-1, V)],
    "dtype": [("floaty", T), (True, T), (nan, T), (int, T), (np.complex64, T), (np.longdouble, T)],
    "choice": [(1, T), (True, T), (nan, T), (None, T), ("bogus", V)],
}

# (label, constructor, positional arguments, keyword arguments, {option: kind})
CONSTRUCTORS = [
    ("Linear", L.Linear, ("in_features", "out_features"), dict(in_features=3, out_features=2),
     {"in_features": "size", "out_features": "size", "bias": "flag", "rng": "rng", "dtype": "dtype"}),
    ("Conv2d", L.Conv2d, ("in_channels", "out_channels", "kernel_size"),
     dict(in_channels=1, out_channels=2, kernel_size=3),
     {"in_channels": "size", "out_channels": "size", "kernel_size": "size", "stride": "size",
      "padding": "size0", "dilation": "size", "bias": "flag", "rng": "rng", "dtype": "dtype"}),
    ("MaxPool2d", L.MaxPool2d, ("kernel_size",), dict(kernel_size=2),
     {"kernel_size": "size", "stride": "size", "padding": "size0"}),
    ("AvgPool2d", L.AvgPool2d, ("kernel_size",), dict(kernel_size=2),
     {"kernel_size": "size", "stride": "size", "padding": "size0"}),
    ("BatchNorm1d", L.BatchNorm1d, ("num_features",), dict(num_features=3),
     {"num_features": "size", "eps": "positive", "momentum": "prob", "dtype": "dtype"}),
    ("BatchNorm2d", L.BatchNorm2d, ("num_features",), dict(num_features=3),
     {"num_features": "size", "eps": "positive", "momentum": "prob", "dtype": "dtype"}),
    ("LayerNorm", L.LayerNorm, ("normalized_shape",), dict(normalized_shape=3),
     {"normalized_shape": "size", "eps": "positive", "elementwise_affine": "flag", "bias": "flag",
      "dtype": "dtype"}),
    ("Dropout", L.Dropout, (), {}, {"p": "prob", "rng": "rng"}),
    ("LeakyReLU", L.LeakyReLU, (), {}, {"negative_slope": "real"}),
    ("GELU", L.GELU, (), {}, {"approximate": "choice"}),
    ("Softmax", L.Softmax, (), {}, {"dim": "int"}),
    ("Embedding", L.Embedding, ("num_embeddings", "embedding_dim"),
     dict(num_embeddings=5, embedding_dim=3),
     {"num_embeddings": "size", "embedding_dim": "size", "padding_idx": "index", "rng": "rng",
      "dtype": "dtype"}),
    *[(name, cls, ("input_size", "hidden_size"), dict(input_size=3, hidden_size=4),
       {"input_size": "size", "hidden_size": "size", "stateful": "flag", "rng": "rng", "dtype": "dtype"})
      for name, cls in (("RNN", L.RNN), ("LSTM", L.LSTM), ("GRU", L.GRU))],
    ("RNN", L.RNN, ("input_size", "hidden_size"), dict(input_size=3, hidden_size=4),
     {"nonlinearity": "choice"}),
    ("CausalSelfAttention", L.CausalSelfAttention, ("embed_dim", "num_heads"),
     dict(embed_dim=4, num_heads=2),
     {"embed_dim": "size", "num_heads": "size", "bias": "flag", "dropout": "prob", "rng": "rng",
      "dtype": "dtype"}),
    ("PositionEmbedding", PositionEmbedding, ("block_size", "embedding_dim"),
     dict(block_size=4, embedding_dim=4),
     {"block_size": "size", "embedding_dim": "size", "rng": "rng", "dtype": "dtype"}),
    ("Block", Block, ("n_embd", "n_head"), dict(n_embd=4, n_head=2),
     {"n_embd": "size", "n_head": "size", "dropout": "prob_open", "bias": "flag", "rng": "rng",
      "dtype": "dtype"}),
    ("gpt", L.gpt, ("vocab_size",), dict(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=4),
     {"vocab_size": "size", "block_size": "size", "n_layer": "size", "n_head": "size",
      "n_embd": "size", "dropout": "prob_open", "bias": "flag", "tie_weights": "flag",
      "seed": "seed", "dtype": "dtype"}),
    ("mlp", L.mlp, ("n_inputs", "hidden", "n_outputs"), dict(n_inputs=3, hidden=[4], n_outputs=2),
     {"n_inputs": "size", "n_outputs": "size", "activation": "choice", "dropout": "prob_open",
      "seed": "seed", "dtype": "dtype"}),
    ("cnn", L.cnn, ("in_shape", "n_classes", "channels"),
     dict(in_shape=(1, 4, 4), n_classes=3, channels=(2,)),
     {"n_classes": "size", "activation": "choice", "batchnorm": "flag", "seed": "seed",
      "dtype": "dtype"}),
    ("SoftmaxCrossEntropy", losses.SoftmaxCrossEntropy, (), {},
     {"reduction": "choice", "label_smoothing": "prob_open", "ignore_index": "int"}),
    *[(name, cls, (), {}, {"reduction": "choice"})
      for name, cls in (("MSELoss", losses.MSELoss), ("L1Loss", losses.L1Loss),
                        ("BCEWithLogitsLoss", losses.BCEWithLogitsLoss))],
    ("HuberLoss", losses.HuberLoss, (), {}, {"reduction": "choice", "delta": "positive"}),
]

# options whose bad values are not a kind's: sequences, and ranges that depend on another option
EXTRA = [
    ("Embedding", dict(padding_idx=5), V), ("Embedding", dict(padding_idx=-6), V),
    ("MaxPool2d", dict(padding=2), V), ("Conv2d", dict(kernel_size=(3, "3")), T),
    ("Conv2d", dict(stride=(1, 2, 3)), V), ("LayerNorm", dict(normalized_shape=(3, 4)), V),
    ("mlp", dict(hidden=4), T), ("mlp", dict(hidden=[True]), T), ("mlp", dict(hidden=[0]), V),
    ("mlp", dict(hidden="44"), T), ("mlp", dict(hidden=[nan]), T), ("mlp", dict(norm=1), T),
    ("mlp", dict(norm="bogus"), V), ("cnn", dict(in_shape=(1, 4)), V), ("cnn", dict(in_shape="abc"), T),
    ("cnn", dict(in_shape=(1, 4, True)), T), ("cnn", dict(channels=2), T), ("cnn", dict(channels=[0]), V),
    ("cnn", dict(channels=[nan]), T), ("BCEWithLogitsLoss", dict(pos_weight="2"), T),
    ("BCEWithLogitsLoss", dict(pos_weight=nan), V), ("BCEWithLogitsLoss", dict(pos_weight=-1.0), V),
    ("BCEWithLogitsLoss", dict(pos_weight=True), T), ("gpt", dict(n_head=3), V),
    ("CausalSelfAttention", dict(num_heads=3), V), ("Block", dict(n_head=3), V),
]

BY_LABEL = {label: (make, positional, base) for label, make, positional, base, _ in CONSTRUCTORS}


def build(label, **changes):
    make, positional, base = BY_LABEL[label]
    kwargs = {**base, **changes}
    args = [kwargs.pop(name) for name in positional]
    return make(*args, **kwargs)


CASES = [pytest.param(label, option, value, error, id=f"{label}-{option}={value!r}")
         for label, _, _, _, options in CONSTRUCTORS
         for option, kind in options.items()
         for value, error in KINDS[kind]]


@pytest.mark.parametrize("label,option,value,error", CASES)
def test_every_constructor_option_refuses_a_bad_value_naming_the_argument(label, option, value, error):
    with pytest.raises(error) as caught:
        build(label, **{option: value})
    message = str(caught.value)
    assert option in message and label.split("-")[0] in message, message
    assert "\n" not in message


@pytest.mark.parametrize("label,changes,error", EXTRA, ids=[f"{lb}-{ch}" for lb, ch, _ in EXTRA])
def test_sequences_and_dependent_ranges_are_refused_naming_the_argument(label, changes, error):
    with pytest.raises(error) as caught:
        build(label, **changes)
    (option,) = changes
    assert option in str(caught.value) or option.rstrip("s") in str(caught.value), str(caught.value)


@pytest.mark.parametrize("label", sorted(BY_LABEL))
def test_every_constructor_builds_with_its_defaults(label):
    build(label)

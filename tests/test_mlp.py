"""mlp(): the one model factory, and the command line's --activation, --norm, --dropout."""
import numpy as np
import pytest

from handprop.layers import (
    GELU,
    BatchNorm1d,
    Dropout,
    LayerNorm,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    mlp,
)
from handprop.layers.gradcheck import gradcheck
from handprop.train.__main__ import main, parser


def test_default_is_the_model_the_cli_always_built(assert_same_state):
    hand = Sequential(Linear(5, 7, bias=False, rng=3), BatchNorm1d(7), ReLU(),
                      Linear(7, 4, bias=False, rng=4), BatchNorm1d(4), ReLU(), Linear(4, 2, rng=5))
    model = mlp(5, [7, 4], 2, seed=3)
    assert repr(model) == repr(hand)
    assert_same_state(hand.state_dict(), model.state_dict())


@pytest.mark.parametrize("activation,layer", [("relu", ReLU), ("tanh", Tanh), ("gelu", GELU),
                                              ("leaky_relu", LeakyReLU), ("sigmoid", Sigmoid)])
@pytest.mark.parametrize("norm,norm_layer", [("batch", BatchNorm1d), ("layer", LayerNorm), (None, None)])
def test_each_option_builds_its_layers(activation, layer, norm, norm_layer):
    model = mlp(3, [6, 5], 2, activation=activation, norm=norm, dropout=0.25, dtype=np.float64)
    kinds = [type(m) for m in model]
    block = [Linear] + ([norm_layer] if norm_layer else []) + [layer, Dropout]
    assert kinds == block * 2 + [Linear]
    assert all(("b" in m.params) == (norm != "batch") for m in model.layers[:-1] if isinstance(m, Linear))
    assert all(m.p == 0.25 for m in model if isinstance(m, Dropout))
    assert {p.dtype for p in model.params.values()} == {np.dtype(np.float64)}


@pytest.mark.parametrize("norm", ["batch", "layer", None])
def test_a_dropout_model_in_eval_mode_passes_gradcheck(norm):
    model = mlp(3, [5], 2, activation="gelu", norm=norm, dropout=0.5, dtype=np.float64).eval()
    report = gradcheck(model, np.random.default_rng(0).standard_normal((4, 3)))
    assert report.ok, report


def test_dropout_layers_have_their_own_seeded_generators():
    a, b = mlp(3, [4, 4], 2, dropout=0.5, seed=1), mlp(3, [4, 4], 2, dropout=0.5, seed=1)
    x = np.ones((6, 3), np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    drops = [m for m in a if isinstance(m, Dropout)]
    same_shape = np.ones((8, 4), np.float32)   # correlated masks across layers would be a bug
    assert not np.array_equal(drops[0].forward(same_shape), drops[1].forward(same_shape))
    # nor may a mask repeat the draws of the weights: Linear 0 is seeded 1 here
    fresh = next(m for m in mlp(3, [4, 4], 2, dropout=0.5, seed=1) if isinstance(m, Dropout))
    assert not np.array_equal(fresh.rng.random(5), np.random.default_rng(1).random(5))


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(activation="softplus"), ValueError, r"mlp: expected activation as one of 'relu', 'tanh', "
                                              r"'gelu', 'leaky_relu', 'sigmoid', got 'softplus'"),
    (dict(norm="group"), ValueError, r"mlp: expected norm as one of 'batch', 'layer', None, got 'group'"),
    (dict(norm="none"), ValueError, r"expected norm as one of 'batch', 'layer', None, got 'none'"),
    (dict(norm=["batch"]), TypeError, r"expected norm as one of 'batch', 'layer', None, got \['batch'\]"),
    (dict(activation=["relu"]), TypeError, r"mlp: expected activation as one of .*, got \['relu'\]"),
    (dict(dropout=1.0), ValueError, r"mlp: expected dropout in \[0, 1\), got 1.0"),
    (dict(dropout=-0.5), ValueError, r"expected dropout in \[0, 1\), got -0.5"),
    (dict(dropout="0.5"), TypeError, r"mlp: expected dropout as a real number, got '0.5'"),
    (dict(dropout=True), TypeError, r"mlp: expected dropout as a real number, got True"),
    (dict(dtype=np.int32), TypeError, r"mlp: expected a floating-point dtype"),
])
def test_bad_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        mlp(2, [4], 3, **kwargs)


def test_bad_sizes():
    with pytest.raises(ValueError, match=r"mlp: expected each hidden width >= 1, got 0"):
        mlp(2, [4, 0], 3)
    with pytest.raises(TypeError, match=r"mlp: expected n_inputs to be an int, got 2.0"):
        mlp(2.0, [4], 3)


def test_cli_flags_parse_and_no_batchnorm_is_norm_none():
    p = parser()
    args = p.parse_args([])
    assert (args.activation, args.norm, args.dropout) == ("relu", "batch", 0.0)
    assert p.parse_args(["--no-batchnorm"]).norm == "none"
    assert p.parse_args(["--norm", "layer", "--dropout", "0.3"]).dropout == 0.3


def test_cli_trains_with_the_new_layers(capsys):
    assert main(["--epochs", "1", "--hidden", "8", "--activation", "gelu", "--norm", "layer",
                 "--dropout", "0.1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "LayerNorm(8)" in out and "GELU()" in out and "Dropout(p=0.1)" in out
    assert "BatchNorm1d" not in out and "val_accuracy=" in out.splitlines()[-1]


@pytest.mark.parametrize("argv,message", [
    (["--dropout", "1"], "expected a probability 0 <= P < 1, got 1"),
    (["--dropout=-0.1"], "expected a probability 0 <= P < 1, got -0.1"),
    (["--dropout", "nan"], "expected a probability 0 <= P < 1, got nan"),
    (["--dropout", "half"], "invalid probability value: 'half'"),
    (["--norm", "group"], "invalid choice: 'group'"),
    (["--activation", "softplus"], "invalid choice: 'softplus'"),
])
def test_cli_bad_flags_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_layer_norm_models_keep_the_linear_bias_and_so_the_input_scale():
    """Without a bias, LayerNorm(x @ W) is the same for x and 2x: the spiral's radius is lost."""
    x = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
    model = mlp(2, [8], 3, norm="layer").eval()
    assert not np.allclose(model.forward(x), model.forward(2 * x), atol=1e-3)

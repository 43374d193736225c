"""fit_lbfgs: full-batch L-BFGS through scipy, and its example."""
import doctest
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

import handprop.train.lbfgs
from handprop.layers import BatchNorm1d, Layer, Linear, ReLU, Residual, Sequential
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import fit_lbfgs, plot_history
from handprop.train.data import spiral

ROOT = Path(__file__).resolve().parents[1]
F64 = np.float64


def small_mlp(width=16, activation=ReLU, dtype=F64, last=Linear):
    return Sequential(Linear(2, width, rng=0, dtype=dtype), BatchNorm1d(width, dtype=dtype),
                      activation(), last(width, width, rng=1, dtype=dtype),
                      BatchNorm1d(width, dtype=dtype), activation(),
                      Linear(width, 3, rng=2, dtype=dtype))


def small_spiral(dtype=F64):
    return spiral(40, 3, noise=0.2, seed=0, dtype=dtype)


def test_the_example_fits_the_spiral_to_098(capsys):
    runpy.run_path(str(ROOT / "examples" / "spiral_lbfgs.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "CONVERGENCE" in out, out
    assert float(re.search(r"train_accuracy=([\d.]+)", out)[1]) >= 0.98, out


class NoMaskReLU(ReLU):
    """A classic slip: ReLU's backward forgets the mask."""

    def backward(self, dout):
        self._saved()
        return dout.copy()


class SignFlippedLinear(Linear):
    """dW with the wrong sign."""

    def param_backward(self, dout):
        super().param_backward(dout)
        self.grads["W"] *= -1


def test_a_correct_gradient_converges():
    X, y = small_spiral()
    result = fit_lbfgs(small_mlp(), SoftmaxCrossEntropy(), X, y, max_iter=300)
    assert result.converged, result.message
    assert result.loss < 0.1
    assert result.history["accuracy"][-1] >= 0.98


@pytest.mark.parametrize("model", [small_mlp(activation=NoMaskReLU),
                                   small_mlp(last=SignFlippedLinear)],
                         ids=["relu-without-mask", "dW-sign-flipped"])
def test_a_wrong_gradient_stalls_the_line_search(model):
    X, y = small_spiral()
    result = fit_lbfgs(model, SoftmaxCrossEntropy(), X, y, max_iter=300)
    assert not result.converged
    assert "ABNORMAL" in result.message
    assert result.loss > 0.3  # a correct gradient gets below 0.1 (the test above)


def test_history_has_one_entry_per_iteration_and_plots(tmp_path):
    X, y = small_spiral()
    seen = []
    result = fit_lbfgs(small_mlp(), SoftmaxCrossEntropy(), X, y, max_iter=15, callback=seen.append)
    h = result.history
    assert result.iterations == len(h["iteration"]) == len(h["loss"]) == len(h["accuracy"]) == 15
    assert h["iteration"] == list(range(1, 16))
    assert seen[-1] == {"iteration": 15, "loss": h["loss"][-1], "accuracy": h["accuracy"][-1]}
    assert h["loss"][-1] < h["loss"][0] and h["loss"][-1] == pytest.approx(result.loss)
    assert not result.converged and result.evaluations >= result.iterations
    pytest.importorskip("matplotlib")
    plot_history(h, tmp_path / "lbfgs.png")
    assert (tmp_path / "lbfgs.png").read_bytes()[:4] == b"\x89PNG"


def test_batchnorm_running_statistics_are_the_full_batch_ones_at_the_end():
    X, y = small_spiral()
    model = small_mlp()
    fit_lbfgs(model, SoftmaxCrossEntropy(), X, y, max_iter=20)
    assert model.training
    h = model[0].forward(X)  # the first BatchNorm's input at the final parameters
    np.testing.assert_allclose(model[1].running_mean, h.mean(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model[1].running_var, h.var(axis=0, ddof=1), rtol=1e-12)
    assert model[1].momentum == 0.1  # restored after the pass with momentum 1


class RecordingNoise(Layer):
    """A stand-in for Dropout: random in training mode, so fit_lbfgs must switch it off."""

    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng(0)
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        self.cache = x.shape
        return x + self.rng.standard_normal(x.shape) if self.training else x.copy()

    def backward(self, dout):
        return dout.copy()


def test_random_layers_are_in_eval_mode_during_the_fit_and_back_in_training_after():
    X, y = small_spiral()
    noise = RecordingNoise()
    model = Sequential(Linear(2, 8, rng=0, dtype=F64), noise, ReLU(), Linear(8, 3, rng=1, dtype=F64))
    result = fit_lbfgs(model, SoftmaxCrossEntropy(), X, y, max_iter=30)
    assert noise.modes and not any(noise.modes)
    assert noise.training and model.training
    assert result.history["loss"][-1] < result.history["loss"][0]


def test_a_float32_model_stays_float32():
    X, y = small_spiral(np.float32)
    model = small_mlp(dtype=np.float32)
    result = fit_lbfgs(model, SoftmaxCrossEntropy(), X, y, max_iter=10)
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert result.history["loss"][-1] < result.history["loss"][0]


@pytest.mark.parametrize("max_iter, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                             (True, TypeError), ("10", TypeError)])
def test_max_iter_must_be_a_whole_number_at_least_1(max_iter, error):
    X, y = small_spiral()
    with pytest.raises(error, match="fit_lbfgs: expected max_iter"):
        fit_lbfgs(small_mlp(), SoftmaxCrossEntropy(), X, y, max_iter=max_iter)


def test_docstring_example():
    assert doctest.testmod(handprop.train.lbfgs).failed == 0


def test_a_random_layer_and_a_batchnorm_inside_a_residual_are_handled_as_direct_children():
    X, y = small_spiral()
    noise = RecordingNoise()
    norm = BatchNorm1d(8, dtype=F64)
    model = Sequential(Linear(2, 8, rng=0, dtype=F64),
                       Residual(Sequential(norm, noise, ReLU())), Linear(8, 3, rng=1, dtype=F64))
    result = fit_lbfgs(model, SoftmaxCrossEntropy(), X, y, max_iter=20)
    assert noise.modes and not any(noise.modes)   # never in training mode during the fit
    assert noise.training and norm.training and model.training
    h = model[0].forward(X)   # the nested BatchNorm's input at the final parameters
    np.testing.assert_allclose(norm.running_mean, h.mean(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(norm.running_var, h.var(axis=0, ddof=1), rtol=1e-12)
    assert result.history["loss"][-1] < result.history["loss"][0]

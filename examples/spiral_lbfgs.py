"""Fit the spiral with full-batch L-BFGS (scipy) instead of minibatch SGD.

L-BFGS needs no learning rate and, on a problem this small, few passes over the data. It is
also an end-to-end check of every backward pass: with a wrong gradient its line search stalls.
"""
import numpy as np

from handprop.layers import BatchNorm1d, Linear, ReLU, Sequential
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import evaluate, fit_lbfgs
from handprop.train.data import spiral

# float64 throughout: scipy's L-BFGS works in float64, and float32 rounding noise would end
# its line search early
X, y = spiral(n_per_class=200, n_classes=3, noise=0.2, seed=0, dtype=np.float64)
X_val, y_val = spiral(n_per_class=100, n_classes=3, noise=0.2, seed=1, dtype=np.float64)

f64 = np.float64
model = Sequential(Linear(2, 32, rng=0, dtype=f64), BatchNorm1d(32, dtype=f64), ReLU(),
                   Linear(32, 32, rng=1, dtype=f64), BatchNorm1d(32, dtype=f64), ReLU(),
                   Linear(32, 3, rng=2, dtype=f64))
loss_fn = SoftmaxCrossEntropy()
result = fit_lbfgs(model, loss_fn, X, y, max_iter=300)
print(f"{result.iterations} iterations, {result.evaluations} evaluations: {result.message}")

# eval mode: BatchNorm's running statistics are the full-batch ones of the final parameters.
# L-BFGS drives the training loss towards 0 with nothing to regularize it, so the few
# validation points it gets wrong it gets wrong with confidence: val_loss sits far above
# train_loss even where val_accuracy is high.
train = evaluate(model, loss_fn, X, y)
val = evaluate(model, loss_fn, X_val, y_val)
print(f"train_accuracy={train['accuracy']:.3f} train_loss={train['loss']:.4f} "
      f"val_accuracy={val['accuracy']:.3f} val_loss={val['loss']:.4f}")

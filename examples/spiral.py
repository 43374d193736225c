"""Train a small MLP on the spiral toy problem and evaluate it."""
import numpy as np

from handprop.layers import BatchNorm1d, Linear, ReLU, Sequential
from handprop.losses import SoftmaxCrossEntropy, softmax
from handprop.train import SGD, evaluate, fit, predict
from handprop.train.data import spiral

X, y = spiral(n_per_class=1000, n_classes=3, noise=0.2, seed=0)
X_val, y_val = spiral(n_per_class=300, n_classes=3, noise=0.2, seed=1)

model = Sequential(Linear(2, 100, rng=0), BatchNorm1d(100), ReLU(),
                   Linear(100, 100, rng=1), BatchNorm1d(100), ReLU(),
                   Linear(100, 3, rng=2))
print(model)

loss_fn = SoftmaxCrossEntropy()
optimizer = SGD(model, lr=0.1, momentum=0.9)
history = fit(model, loss_fn, optimizer, X, y, epochs=30, batch_size=64,
              validation=(X_val, y_val))
print(evaluate(model, loss_fn, X_val, y_val))     # {'loss': ..., 'accuracy': ...}
outer = X_val[299::300]                            # the outer end of each arm
print(np.round(softmax(predict(model, outer)), 3), y_val[299::300])

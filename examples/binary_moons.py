"""Classify two interleaved half-moons with BCEWithLogitsLoss: one logit per sample.

The model outputs one logit z per point (shape (N, 1)); sigmoid(z) is the probability of class
1, and z > 0 is the decision. The targets are y[:, None], of the logits' shape: a (N,) target
against (N, 1) logits is an error, never a silent broadcast. With noise 0.2 the moons overlap a
little; this model reaches about 97% validation accuracy (at least 96%).
"""
import numpy as np
from scipy.special import expit  # the sigmoid, without overflow for very negative logits

from handprop.layers import Linear, ReLU, Sequential
from handprop.losses import BCEWithLogitsLoss
from handprop.train import SGD, evaluate, fit, predict
from handprop.train.data import moons


def main(epochs: int = 30, progress: bool = True) -> dict:
    X, y = moons(n_samples=1000, noise=0.2, seed=0)              # X (1000, 2), y (1000,) of 0/1
    X_val, y_val = moons(n_samples=1000, noise=0.2, seed=1)

    model = Sequential(Linear(2, 32, rng=0), ReLU(), Linear(32, 32, rng=1), ReLU(),
                       Linear(32, 1, rng=2))
    loss_fn = BCEWithLogitsLoss()
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    history = fit(model, loss_fn, optimizer, X, y[:, None], epochs=epochs, batch_size=32,
                  validation=(X_val, y_val[:, None]), progress=progress)
    scores = evaluate(model, loss_fn, X_val, y_val[:, None])     # {'loss': ..., 'accuracy': ...}
    print(f"validation accuracy {scores['accuracy']:.3f}, loss {scores['loss']:.3f}")
    tips = np.array([[-1.0, 0.0], [2.0, 0.5]], np.float32)       # the outer tip of each moon
    print(expit(predict(model, tips)))                            # P(class 1): near 0, near 1
    return {"history": history, "val_accuracy": scores["accuracy"]}


if __name__ == "__main__":
    main()

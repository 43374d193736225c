"""handprop training: optimizers, the training loop, data, checkpoints and gradcheck."""

"""Write your own layer, check its gradients, and watch gradcheck catch a planted bug.

    python examples/custom_layer.py                   # the two reports
    python -m pytest examples/test_custom_layer.py    # the same checks as your own tests
"""
import numpy as np

from handprop.layers import Layer
from handprop.layers.gradcheck import gradcheck


class PReLU(Layer):
    """Leaky ReLU with a learned slope per feature: out = x if x > 0 else a * x.

    Shapes: x (N, D), a (D,), out (N, D).
    Local derivatives: dx = dout * (1 if x > 0 else a);
    da = sum over N of dout * (0 if x > 0 else x)   (a was broadcast over the N rows).
    """

    def __init__(self, num_features, slope=0.25, *, dtype=np.float32):
        super().__init__()
        self.params["a"] = np.full(num_features, slope, dtype)
        self.grads["a"] = np.zeros_like(self.params["a"])

    def forward(self, x):
        self.cache = x
        return np.where(x > 0, x, self.params["a"] * x)

    def backward(self, dout):
        x = self._saved()
        positive = x > 0
        self.grads["a"][...] = (dout * np.where(positive, 0, x)).sum(axis=0)
        return dout * np.where(positive, 1, self.params["a"])


class BuggyPReLU(PReLU):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["a"] /= len(dout)  # a mean where the broadcast needs a sum
        return dx


if __name__ == "__main__":
    x = np.random.default_rng(0).standard_normal((6, 4))   # float64: gradcheck's precision
    x[0, 0] = 0.0                                          # on the kink: skipped, not failed
    print(gradcheck(PReLU(4, dtype=np.float64), x))
    print(gradcheck(BuggyPReLU(4, dtype=np.float64), x))

"""How the reference values in test_conv.py, test_pool.py and test_batchnorm2d.py were made:
torch 2.13.0+cpu, float64, ``/work/venvs/torch/bin/python tests/torch_reference_conv.py conv``
(or ``pool``, ``bn``). Not a test (torch is never a dependency); its output is pasted into the
tests. Inputs come from numpy seeds, so the tests rebuild them without torch.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F


def show(name, t):
    """The array flattened in C order, 13 significant digits, as a pasteable dict entry."""
    values = [f"{v:.13g}" for v in t.detach().numpy().ravel()]
    lines, line = [], ""
    for v in values:
        if len(line) + len(v) + 2 > 88:
            lines.append(line.rstrip())
            line = ""
        line += v + ", "
    lines.append(line.rstrip(", "))
    print(f"        {name!r}: [" + ("\n" + " " * 16).join(lines) + "],")


def conv(seed, x_shape, w_shape, stride, padding, dilation):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.standard_normal(x_shape), requires_grad=True)
    W = torch.tensor(rng.standard_normal(w_shape), requires_grad=True)
    b = torch.tensor(rng.standard_normal(w_shape[0]), requires_grad=True)
    out = F.conv2d(x, W, b, stride=stride, padding=padding, dilation=dilation)
    out.backward(torch.tensor(rng.standard_normal(out.shape)))
    print(f"    {(seed, x_shape, w_shape, stride, padding, dilation)}: {{")
    for name, t in [("out", out), ("dx", x.grad), ("dW", W.grad), ("db", b.grad)]:
        show(name, t)
    print("    },")


def pool(seed, kind, kernel, stride, padding, x_shape=(1, 2, 5, 4)):
    rng = np.random.default_rng(seed)
    # max: small integers, so that windows tie and the test sees where ties go
    xa = rng.integers(0, 4, x_shape).astype(float) if kind == "max" else rng.standard_normal(x_shape)
    x = torch.tensor(xa, requires_grad=True)
    out = {"max": F.max_pool2d, "avg": F.avg_pool2d}[kind](x, kernel, stride=stride, padding=padding)
    out.backward(torch.tensor(rng.standard_normal(out.shape)))
    print(f"    {(seed, kind, kernel, stride, padding)}: {{")
    for name, t in [("out", out), ("dx", x.grad)]:
        show(name, t)
    print("    },")


def batchnorm(seed=7, shape=(2, 2, 3, 2)):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = torch.tensor(2 + 3 * rng.standard_normal(shape), requires_grad=True)
    gamma = torch.tensor(rng.uniform(0.5, 2, c), requires_grad=True)
    beta = torch.tensor(rng.standard_normal(c), requires_grad=True)
    rm, rv = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    out = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-5)
    out.backward(torch.tensor(rng.standard_normal(out.shape)))
    eval_out = F.batch_norm(x.detach(), rm, rv, gamma.detach(), beta.detach(), training=False,
                            eps=1e-5)
    for name, t in [("out", out), ("dx", x.grad), ("dgamma", gamma.grad), ("dbeta", beta.grad),
                    ("running_mean", rm), ("running_var", rv), ("eval_out", eval_out)]:
        show(name, t)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "conv":
        conv(0, (1, 2, 5, 4), (3, 2, 3, 2), 1, 0, 1)
        conv(1, (1, 2, 6, 5), (2, 2, 2, 3), 2, 1, 1)
        conv(2, (1, 2, 7, 6), (2, 2, 3, 2), (2, 1), (1, 0), 2)
    elif what == "pool":
        pool(3, "max", 2, None, 0)
        pool(4, "max", (3, 2), (2, 1), 1)
        pool(5, "avg", 2, None, 0)
        pool(6, "avg", (3, 2), (2, 1), 1)
    elif what == "bn":
        batchnorm()

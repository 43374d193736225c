"""How the reference values in test_gates_torch.py were made: torch 2.13.0+cpu, float64,
``/work/venvs/torch/bin/python tests/torch_reference_gates.py``. Not a test (torch is never a
dependency, and pytest collects only test_*.py); its output is pasted into the test.

Each case builds one expression from the gates of handprop.layers.gates, written here with
torch's names, from inputs drawn by ``np.random.default_rng(seed)`` in the order listed; the test
draws the same inputs and writes the same expression with Vars. Printed: the output (summed) and
the gradient of every input.
"""
import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def inputs(seed, **shapes):
    rng = np.random.default_rng(seed)
    return {k: torch.tensor(rng.standard_normal(s), requires_grad=True) for k, s in shapes.items()}


def broadcast(a, b, c, d):
    """Broadcasting over trailing (b), middle (c) and leading (d) axes, constants on both sides."""
    y = ((a * b + c) ** 2 / (1.5 + (d * a).exp())).tanh()
    z = 3.0 - y * (2.0 / (1 + c * c)) + torch.tensor(np.arange(4.0)) * b
    return (z * a - d).sum(dim=(0, 2))                          # (3,), backward with dout


def matmul(x, W, bias, A, B, u, M):
    """Batched @ with W broadcast over x's leading axis and both operands batched; vectors."""
    h = x @ W + bias                                            # (3, 2, 4) @ (4, 3) -> (3, 2, 3)
    hc = h - h.mean(dim=-1, keepdim=True)
    s = (hc * hc).mean(dim=1)                                   # (3, 3)
    p = A @ B                                                   # (2, 1, 2, 3) @ (2, 3, 2) -> (2, 2, 2, 2)
    q = u @ M + (M @ u[:3]) @ M                                 # (4,) @ (4, 3), (4, 3) @ (3,)
    t = h.permute(2, 0, 1) * W[0].reshape(3, 1, 1)
    return (s.tanh() * s).sum() + (p * p).sum() + q.sum() + t.mean() + (h.permute(2, 1, 0) * 0.5).sum()


def repeated(x, w):
    """x used many times over; maximum against a Var and a constant; where."""
    y = x * x + x.exp() * x - x / (x * x + 1.0)
    m = torch.maximum(x, w) + torch.maximum(x, torch.tensor(0.1))
    r = torch.where(x.detach() > 0, x * w, 0.5 * x)
    return ((y * y + 1).log() + m * x + r).sum()


def indexing(E, V):
    """Integer arrays with repeated entries (a scatter-add back), pairs, slices, an integer."""
    ids = torch.tensor([[0, 2, 2], [5, 0, 1]])
    rows, cols = torch.tensor([0, 1, 1, 4]), torch.tensor([2, 2, 3, 2])
    picked = (E[ids] * E[3]).tanh().sum() + E[rows, cols].exp().sum() + (E[1:4, ::2] ** 3).mean()
    return picked + (V[:, [1, 1, 0]] * E[ids[0]].T[:2]).sum()


def softmax_xent(logits, other):
    """A max-shifted log-softmax with picked targets; concatenate, reshape, max over axes."""
    targets = torch.tensor([1, 0, 4, 4])
    m = logits.max(dim=1, keepdim=True).values
    shifted = logits - m
    lse = shifted.exp().sum(dim=1, keepdim=True).log()
    loss = -(shifted - lse)[torch.arange(4), targets].mean()
    joined = torch.cat([logits[:, :2], other ** 2, logits.T[1:3].T], dim=1).reshape(2, -1)
    return loss + joined.max(dim=0).values.sum() + joined.max() + (joined.max(dim=1).values * 2).sum()


CASES = [
    ("broadcast", broadcast, 0, dict(a=(2, 3, 4), b=(4,), c=(3, 1), d=(2, 1, 1))),
    ("matmul", matmul, 1, dict(x=(3, 2, 4), W=(4, 3), bias=(3,), A=(2, 1, 2, 3), B=(2, 3, 2),
                               u=(4,), M=(4, 3))),
    ("repeated", repeated, 2, dict(x=(3, 4), w=(3, 4))),
    ("indexing", indexing, 3, dict(E=(6, 4), V=(2, 3))),
    ("softmax_xent", softmax_xent, 4, dict(logits=(4, 5), other=(4, 1))),
]

if __name__ == "__main__":
    print("TORCH = {")
    for name, fn, seed, shapes in CASES:
        xs = inputs(seed, **shapes)
        out = fn(**xs)
        dout = torch.tensor(np.random.default_rng(100 + seed).standard_normal(tuple(out.shape)))
        out.backward(dout)
        print(f"    {name!r}: ({float((out * dout).sum().detach())!r}, {{")
        for k, v in xs.items():
            print(f"        {k!r}: {v.grad.tolist()!r},")
        print("    }),")
    print("}")

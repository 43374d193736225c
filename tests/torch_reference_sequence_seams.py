"""How the reference values in test_layers.py (Linear on (N, T, D)) and
test_softmax_cross_entropy.py (logits (N, T, V) with ignored positions) were made: torch
2.13.0+cpu, float64, ``/work/venvs/torch/bin/python tests/torch_reference_sequence_seams.py``.
Not a test (torch is never a dependency); its output is pasted into the tests, which rebuild
the same inputs with numpy from the same formulas.
"""
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def wave(f, n, phase, shape, scale=1.0):
    """scale * f(phase + k * step) for k = 0..n-1, reshaped: inputs numpy rebuilds exactly."""
    return scale * f(torch.arange(n) * phase[0] + phase[1]).reshape(shape)


# Linear(4, 5) on x (2, 3, 4); W stored (in, out) in handprop, so torch's weight is W.T
W = wave(torch.cos, 20, (0.3, 0.0), (4, 5), 0.5)
b = 0.1 * torch.arange(5) - 0.2
x = wave(torch.sin, 24, (0.7, 0.1), (2, 3, 4)).requires_grad_()
dout = wave(torch.cos, 30, (1.3, 0.0), (2, 3, 5))
lin = torch.nn.Linear(4, 5)
with torch.no_grad():
    lin.weight[...] = W.T
    lin.bias[...] = b
out = lin(x)
out.backward(dout)
print("LINEAR_OUT =", out.tolist())
print("LINEAR_DX =", x.grad.tolist())
print("LINEAR_DW =", lin.weight.grad.T.tolist())
print("LINEAR_DB =", lin.bias.grad.tolist())

# cross-entropy over (N, T, V) = (2, 4, 5) logits; torch wants the classes second: (N, V, T)
targets = torch.tensor([[1, -100, 4, 0], [-100, 3, 2, -100]])
for reduction, smoothing in [("mean", 0.0), ("sum", 0.0), ("mean", 0.1)]:
    logits = wave(torch.sin, 40, (0.9, 0.2), (2, 4, 5), 2.0).requires_grad_()
    loss = F.cross_entropy(logits.permute(0, 2, 1), targets, reduction=reduction,
                           label_smoothing=smoothing)   # ignore_index=-100 is the default
    loss.backward()
    print(f"SCE[{reduction!r}, {smoothing}] =", (loss.item(), logits.grad.tolist()))

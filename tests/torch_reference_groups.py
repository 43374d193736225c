"""How the reference values in test_optim_groups.py were made: torch 2.13.0+cpu,
``/work/venvs/torch/bin/python tests/torch_reference_groups.py``. Not a test (torch is never a
dependency); its output is pasted into the test.

The problem of tests/torch_reference.py (W (2, 3), b (3,), gradient 0.1 p^3 + p - c, 40
steps), with two parameter groups of different weight decays.
"""
import torch

O = torch.optim


def run(cls, groups, kw, dtype, steps=40):
    W = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=dtype).requires_grad_()
    b = torch.tensor([0.1, -0.2, 0.3], dtype=dtype).requires_grad_()
    named = {"W": W, "b": b}
    param_groups = [{**g, "params": [named[n] for n in g["params"]]} for g in groups]
    opt = cls(param_groups, foreach=False, **kw)
    cs = {"W": torch.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3),
          "b": torch.tensor([0.3, 0.0, -0.3], dtype=dtype)}
    for _ in range(steps):
        for n, p in named.items():
            p.grad = 0.1 * p.detach() ** 3 + p.detach() - cs[n]
        opt.step()
    return [W.detach().tolist(), b.detach().tolist()]


configs = [
    ("AdamW", O.AdamW, [{"params": ["W"], "weight_decay": 0.1}, {"params": ["b"], "weight_decay": 0.0}],
     dict(lr=0.05)),
    ("AdamW", O.AdamW, [{"params": ["b"], "weight_decay": 0.5}, {"params": ["W"]}],
     dict(lr=0.05, weight_decay=0.01, amsgrad=True, betas=(0.9, 0.99))),
    ("Adam", O.Adam, [{"params": ["W"], "weight_decay": 0.1}, {"params": ["b"], "weight_decay": 0.3}],
     dict(lr=0.05)),
]
for dtype in (torch.float64, torch.float32):
    print(f"{str(dtype).split('.')[1].upper()} = [")
    for name, cls, groups, kw in configs:
        print(f"    ({name!r}, {groups!r}, {kw!r},\n     {run(cls, groups, kw, dtype)!r}),")
    print("]")
print(torch.__version__)

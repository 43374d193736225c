"""How the reference values in test_optim.py and test_schedule.py were made: torch 2.13.0+cpu,
float64, ``/work/venvs/torch/bin/python tests/torch_reference.py``. Not a test (torch is never
a dependency); its output is pasted into the tests.

The problem: two parameters W (2, 3) and b (3,), and a fixed gradient function
g(p) = 0.1 p^3 + p - c, stepped 40 times; schedules record the lr before each of 40 epochs.
"""
import torch

torch.set_default_dtype(torch.float64)


def start():
    W = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    b = torch.tensor([0.1, -0.2, 0.3])
    return [W.clone().requires_grad_(), b.clone().requires_grad_()]


def gradient(p, c):
    return 0.1 * p * p * p + p - c


def run(cls, kw, steps=40):
    ps = start()
    opt = cls(ps, foreach=False, **kw)
    cs = [torch.linspace(-1, 1, 6).reshape(2, 3), torch.tensor([0.3, 0.0, -0.3])]
    for _ in range(steps):
        for p, c in zip(ps, cs):
            p.grad = gradient(p.detach(), c)
        opt.step()
    return [p.detach().tolist() for p in ps]


O = torch.optim
configs = [
    ("SGD", O.SGD, dict(lr=0.05)),
    ("SGD", O.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD", O.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", O.Adam, dict(lr=0.05)),
    ("Adam", O.Adam, dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1)),
    ("Adam", O.Adam, dict(lr=0.05, amsgrad=True)),
    ("Adam", O.Adam, dict(lr=0.05, weight_decay=0.1, amsgrad=True, eps=1e-3)),
    ("AdamW", O.AdamW, dict(lr=0.05)),
    ("AdamW", O.AdamW, dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", O.RMSprop, dict(lr=0.01)),
    ("RMSprop", O.RMSprop, dict(lr=0.01, momentum=0.9)),
    ("RMSprop", O.RMSprop, dict(lr=0.01, centered=True)),
    ("RMSprop", O.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
]
print("OPTIMIZERS = [")
for name, cls, kw in configs:
    print(f"    ({name!r}, {kw!r},\n     {run(cls, kw)!r}),")
print("]")

S = O.lr_scheduler


def lrs(make, steps=40):
    p = torch.zeros(1, requires_grad=True)
    opt = O.SGD([p], lr=0.1)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        p.grad = torch.zeros(1)
        opt.step()
        sched.step()
    return out


schedules = [
    ("StepLR", "dict(step_size=7, gamma=0.5)", lambda o: S.StepLR(o, step_size=7, gamma=0.5)),
    ("CosineAnnealingLR", "dict(T_max=40)", lambda o: S.CosineAnnealingLR(o, T_max=40)),
    ("CosineAnnealingLR", "dict(T_max=10, eta_min=0.001)",
     lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    ("LinearLR", "dict()", lambda o: S.LinearLR(o)),
    ("LinearLR", "dict(start_factor=0.2, end_factor=0.5, total_iters=9)",
     lambda o: S.LinearLR(o, start_factor=0.2, end_factor=0.5, total_iters=9)),
    ("warmup+cosine", "LinearLR(start_factor=0.2, total_iters=4), CosineAnnealingLR(T_max=36), milestones=[4]",
     lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.2, total_iters=4),
                                  S.CosineAnnealingLR(o, T_max=36)], milestones=[4])),
    ("warmup+step+cosine", "LinearLR(start_factor=0.5, total_iters=3), StepLR(step_size=4, gamma=0.5), CosineAnnealingLR(T_max=8, eta_min=0.01), milestones=[3, 20]",
     lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.5, total_iters=3),
                                  S.StepLR(o, step_size=4, gamma=0.5),
                                  S.CosineAnnealingLR(o, T_max=8, eta_min=0.01)], milestones=[3, 20])),
]
print("SCHEDULES = {")
for name, desc, make in schedules:
    print(f"    # {name}: {desc}")
    print(f"    {name!r}: {lrs(make)!r},")
print("}")

g = [torch.tensor([[3.0, -4.0], [1.0, 2.0]]), torch.tensor([0.5, -0.25, 12.0])]
for max_norm in (1.0, 100.0):
    ps = [torch.zeros_like(t, requires_grad=True) for t in g]
    for p, t in zip(ps, g):
        p.grad = t.clone()
    total = torch.nn.utils.clip_grad_norm_(ps, max_norm, foreach=False)
    print("CLIP", max_norm, repr(total.item()), [p.grad.tolist() for p in ps])
print(torch.__version__)

"""Time the GPT's training step at nanoGPT's CPU recipe shapes, handprop against PyTorch.

The step is a training iteration as ``python -m handprop.train --model gpt`` runs it: token
ids (12, 64) through the GPT (4 layers, 4 heads, 128 wide, a 65-character vocabulary, the
head tied to the token embedding), the cross-entropy over every position, the backward pass,
the gradients clipped to norm 1.0, and an AdamW step over two parameter groups (the matrices
decayed, the rest not). PyTorch's contender is a model equivalent to nanoGPT's (the same
modules and computation) trained the way nanoGPT's train.py trains it on a CPU
(``torch.optim.AdamW`` with its defaults there, ``clip_grad_norm_``).

How it measures, so that the figures mean something on a small shared machine:

- Each contender (library x BLAS/OpenMP thread count) runs in its own worker process, started
  with the thread count in its environment (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``)
  and, for PyTorch, ``torch.set_num_threads``. PyTorch runs under ``--torch-python`` (another
  environment: PyTorch is never a dependency).
- The driver asks one worker at a time: ``--settle`` seconds of quiet, a few untimed steps,
  then ``--steps`` steps, each timed whole and phase by phase (forward with the loss, backward,
  optimizer: clipping and the AdamW step); the worker answers with the medians.
- handprop's worker calls ``keep_freed_memory`` first, as ``python -m handprop.train`` does
  (train/memory.py); ``--default-malloc`` adds a contender without it.
- Rounds interleave the contenders (the order rotates every round), so background load falls
  on all of them; each figure is the best of the per-round medians. Each library's headline is
  its best thread count.

    python bench/gpt.py --torch-python /work/venvs/torch/bin/python
    python bench/gpt.py --torch-python ... --rounds 5 --threads 1 2 --json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

VOCAB, BLOCK, LAYERS, HEADS, EMBD, BATCH = 65, 64, 4, 4, 128, 12
LR, WEIGHT_DECAY, BETAS, CLIP = 1e-3, 0.1, (0.9, 0.99), 1.0
PHASES = ("forward", "backward", "optimizer")


def batch():
    import numpy as np
    rng = np.random.default_rng(0)
    return rng.integers(0, VOCAB, (BATCH, BLOCK)), rng.integers(0, VOCAB, (BATCH, BLOCK))


# ---------------------------------------------------------------------------------------------
# handprop's step (imports handprop only inside its worker)

def handprop_step(workers: int = 1):
    from handprop.layers import DataParallel, gpt
    from handprop.losses import SoftmaxCrossEntropy
    from handprop.train import AdamW, clip_grad_norm
    from handprop.train.optim import decay_groups

    model = gpt(VOCAB, block_size=BLOCK, n_layer=LAYERS, n_head=HEADS, n_embd=EMBD)
    opt = AdamW(model, LR, betas=BETAS, weight_decay=WEIGHT_DECAY,
                param_groups=decay_groups(model, WEIGHT_DECAY))
    loss_fn = SoftmaxCrossEntropy()
    x, y = batch()
    run = DataParallel(model, workers) if workers > 1 else model

    def forward():
        loss_fn.forward(run.forward(x), y)

    def backward():
        run.param_backward(loss_fn.backward())

    def optimizer():
        clip_grad_norm(model, CLIP)
        opt.step()
    return forward, backward, optimizer


# ---------------------------------------------------------------------------------------------
# PyTorch's step: modules equivalent to nanoGPT's, trained as nanoGPT's train.py trains them

def torch_gpt():
    """The model, built inside the worker (PyTorch is imported only there)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn, self.c_proj = nn.Linear(EMBD, 3 * EMBD), nn.Linear(EMBD, EMBD)

        def forward(self, x):
            n, t, e = x.shape
            q, k, v = (a.view(n, t, HEADS, e // HEADS).transpose(1, 2)
                       for a in self.c_attn(x).split(e, dim=2))
            # nanoGPT's fast path on PyTorch >= 2.0 (its slow path builds the mask by hand)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(n, t, e))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(EMBD), Attention(), nn.LayerNorm(EMBD)
            self.mlp = nn.Sequential(nn.Linear(EMBD, 4 * EMBD), nn.GELU(), nn.Linear(4 * EMBD, EMBD))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(VOCAB, EMBD), nn.Embedding(BLOCK, EMBD)
            self.h = nn.ModuleList(Block() for _ in range(LAYERS))
            self.ln_f = nn.LayerNorm(EMBD)
            self.lm_head = nn.Linear(EMBD, VOCAB, bias=False)
            self.wte.weight = self.lm_head.weight

        def forward(self, ids):
            x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
            for block in self.h:
                x = block(x)
            return self.lm_head(self.ln_f(x))

    torch.manual_seed(0)
    return GPT()


def torch_step():
    import torch
    import torch.nn.functional as F

    model = torch_gpt()
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS)
    x, y = (torch.from_numpy(a) for a in batch())
    state = {}

    def forward():
        state["loss"] = F.cross_entropy(model(x).view(-1, VOCAB), y.view(-1))

    def backward():
        opt.zero_grad(set_to_none=True)
        state["loss"].backward()

    def optimizer():
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
    return forward, backward, optimizer


# ---------------------------------------------------------------------------------------------
# a worker: builds its step, then answers "measure STEPS WARMUP SETTLE" with JSON

def worker(library: str, threads: int) -> None:
    if library == "torch":
        import torch
        torch.set_num_threads(threads)
        phases = torch_step()
    else:
        if library != "handprop-malloc":    # as python -m handprop.train runs: memory kept
            from handprop.train import keep_freed_memory
            keep_freed_memory()
        # "handprop-split": the batch split over `threads` copies, one BLAS thread each
        phases = handprop_step(threads if library == "handprop-split" else 1)
    for line in sys.stdin:
        steps, warmup, settle = line.split()[1:]
        time.sleep(float(settle))
        times: dict[str, list[float]] = {name: [] for name in ("step", *PHASES)}
        for i in range(int(warmup) + int(steps)):
            started = time.perf_counter()
            marks = [started]
            for phase in phases:
                phase()
                marks.append(time.perf_counter())
            if i >= int(warmup):
                times["step"].append(marks[-1] - started)
                for name, a, b in zip(PHASES, marks, marks[1:]):
                    times[name].append(b - a)
        print(json.dumps({k: statistics.median(v) * 1e3 for k, v in times.items()}), flush=True)


def start(library: str, threads: int, torch_python: str) -> subprocess.Popen:
    blas = 1 if library == "handprop-split" else threads
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(blas), "OMP_NUM_THREADS": str(blas),
           "MKL_NUM_THREADS": str(blas)}
    python = torch_python if library == "torch" else sys.executable
    return subprocess.Popen([python, __file__, "--worker", library, str(threads)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch-python", help="a python with torch (none: handprop alone)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--settle", type=float, default=0.3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--default-malloc", action="store_true",
                   help="also time handprop without keep_freed_memory (glibc's malloc as it comes)")
    p.add_argument("--split", action="store_true",
                   help="also time handprop's batch split over threads (DataParallel, one BLAS thread each)")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]))
    libraries = (["handprop"] + (["handprop-malloc"] if args.default_malloc else [])
                 + (["torch"] if args.torch_python else []))
    contenders = [(lib, n) for lib in libraries for n in args.threads]
    if args.split:
        contenders[len(args.threads):len(args.threads)] = [("handprop-split", n) for n in args.threads if n > 1]
    workers = {c: start(*c, args.torch_python) for c in contenders}
    best: dict = {c: None for c in contenders}
    loads = [load()]
    for r in range(args.rounds):
        order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
        for c in order:
            workers[c].stdin.write(f"measure {args.steps} {args.warmup} {args.settle}\n")
            workers[c].stdin.flush()
            got = json.loads(workers[c].stdout.readline())
            if best[c] is None or got["step"] < best[c]["step"]:
                best[c] = got
        loads.append(load())
    for w in workers.values():
        w.stdin.close()
        w.wait()
    report(best, loads, args)


def report(best: dict, loads: list[str], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps({"best": {f"{lib} {n}": v for (lib, n), v in best.items()},
                          "loads": loads, "machine": platform.processor()}, indent=1))
        return
    print(f"GPT training step, {BATCH}x{BLOCK} ids, {LAYERS} layers, {HEADS} heads, {EMBD} wide; "
          f"best of per-round medians over {args.rounds} rounds of {args.steps} steps (ms)")
    print("| contender | threads | step | forward | backward | optimizer |")
    print("|---|---|---|---|---|---|")
    for (lib, n), v in best.items():
        print(f"| {lib} | {n} | {v['step']:.1f} | {v['forward']:.1f} | {v['backward']:.1f} | "
              f"{v['optimizer']:.1f} |")
    runs = {"handprop": ("handprop", "handprop-split"), "torch": ("torch",)}  # not -malloc
    fastest = {lib: min((v["step"], n, name) for (name, n), v in best.items() if name in names)
               for lib, names in runs.items() if any(name in names for name, _ in best)}
    if "torch" in fastest:
        ours, theirs = fastest["handprop"], fastest["torch"]
        print(f"best: {ours[2]} {ours[0]:.1f} ms ({ours[1]} thread(s)), torch {theirs[0]:.1f} ms "
              f"({theirs[1]} thread(s)): handprop at {theirs[0] / ours[0]:.2f}x PyTorch's step speed")
    print("loads:", " | ".join(loads))


if __name__ == "__main__":
    main()

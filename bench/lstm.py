"""Time the names language model's training step, handprop's LSTM against PyTorch's nn.LSTM.

The step is one training iteration as ``python -m handprop.train --dataset names --model lstm``
runs it: token ids (32, 16) through ``char_lm(27)`` (Embedding(27, 64) -> LSTM(64, 128) ->
Linear(128, 27)), the cross-entropy over every position of the (N, T, V) logits with the padding
after each name's end ignored (targets -100), the backward pass and an Adam step (lr 2e-3).
T is fixed at 16 (the longest name plus one); each row is a name of 3 to 15 characters
followed by padding. PyTorch's contender is the same model from its modules
(``nn.Embedding``, ``nn.LSTM(batch_first=True)``, ``nn.Linear``, ``F.cross_entropy`` with
``ignore_index=-100``, ``torch.optim.Adam``).

The method (worker processes, interleaved rounds, best of per-round medians, peak memory) is
bench/harness.py's; the phases are forward (with the loss), backward and optimizer.

    python bench/lstm.py --torch-python /work/venvs/torch/bin/python
    python bench/lstm.py --torch-python ... --rounds 5 --threads 1 2 --json
    python bench/lstm.py --torch-python ... --baseline-python /work/venvs/main/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # bench/harness.py
import harness  # noqa: E402

VOCAB, EMBD, HIDDEN, BATCH, T, LR = 27, 64, 128, 32, 16, 2e-3
IGNORE = -100


def batch():
    """ids (N, T) and targets (N, T): a name of random letters, '.' (id 0) around it, then
    padding; the targets are the ids shifted by one, -100 past the closing '.'."""
    import numpy as np
    rng = np.random.default_rng(0)
    ids = np.zeros((BATCH, T), np.int64)
    targets = np.full((BATCH, T), IGNORE, np.int64)
    for row, length in enumerate(rng.integers(3, T, BATCH)):
        name = rng.integers(1, VOCAB, length)
        ids[row, 1:length + 1] = name
        targets[row, :length] = name
        targets[row, length] = 0
    return ids, targets


def handprop_step() -> harness.Step:
    from handprop.layers import char_lm
    from handprop.losses import SoftmaxCrossEntropy
    from handprop.train import Adam

    model = char_lm(VOCAB, cell="lstm", embedding_dim=EMBD, hidden_size=HIDDEN)
    opt = Adam(model, LR)
    loss_fn = SoftmaxCrossEntropy(ignore_index=IGNORE)
    x, y = batch()

    def forward():
        loss_fn.forward(model.forward(x), y)

    def backward():
        model.param_backward(loss_fn.backward())

    def optimizer():
        opt.step()
    return forward, backward, optimizer


def torch_step() -> harness.Step:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class CharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, EMBD)
            self.lstm = nn.LSTM(EMBD, HIDDEN, batch_first=True)
            self.head = nn.Linear(HIDDEN, VOCAB)

        def forward(self, ids):
            return self.head(self.lstm(self.embedding(ids))[0])

    torch.manual_seed(0)
    model = CharLM()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x, y = (torch.from_numpy(a) for a in batch())
    state = {}

    def forward():
        logits = model(x)
        state["loss"] = F.cross_entropy(logits.view(-1, VOCAB), y.view(-1), ignore_index=IGNORE)

    def backward():
        opt.zero_grad(set_to_none=True)
        state["loss"].backward()

    def optimizer():
        opt.step()
    return forward, backward, optimizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch-python", help="a python with torch (none: handprop alone)")
    p.add_argument("--baseline-python", help="a python with another handprop installed (main's, "
                   "say): a third contender, 'baseline', for before/after figures")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--settle", type=float, default=0.3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        library, threads = args.worker[0], int(args.worker[1])
        return harness.serve(library, threads, torch_step if library == "torch" else handprop_step)
    pythons = {"handprop": sys.executable, "torch": args.torch_python or "",
               "baseline": args.baseline_python or ""}
    libraries = (["handprop"] + (["baseline"] if args.baseline_python else [])
                 + (["torch"] if args.torch_python else []))
    contenders = [(lib, n) for lib in libraries for n in args.threads]
    best = harness.compete(os.path.abspath(__file__), contenders, pythons, args.rounds,
                           args.steps, args.warmup, args.settle)
    if args.json:
        print(json.dumps({f"{lib} {n}": v for (lib, n), v in best.items()}, indent=1))
        return
    print(f"LSTM language model training step, ids {BATCH}x{T}, Embedding({VOCAB}, {EMBD}) -> "
          f"LSTM({EMBD}, {HIDDEN}) -> Linear({HIDDEN}, {VOCAB}), Adam; best of per-round "
          f"medians over {args.rounds} rounds of {args.steps} steps (ms); load: the 1-minute "
          f"load average before that round")
    print("\n".join(harness.table(best)))
    for (lib, n), v in best.items():
        print(f"{lib} {n}: {v['versions']}")


if __name__ == "__main__":
    main()

"""Time a training step of the reference model against its matrix products (and PyTorch).

Reference model: 784-512-512-10, Linear -> BatchNorm1d -> ReLU twice, then Linear, as
``handprop.layers.mlp`` builds it (hidden Linears without bias: BatchNorm's beta replaces it); softmax
cross-entropy; SGD with momentum 0.9; float32. For each batch size it reports the median
step time over many steps after warm-up, samples/s, the ratio of the step to the same step's
matrix products alone (forward ``x @ W``, ``dW = x.T @ dout``, ``dx = dout @ W.T`` except for
the first layer) timed in the same process, and the peak memory a step allocates (tracemalloc
sees numpy's allocations) beside the activations the step must hold for its backward pass.
If PyTorch is importable, the same model in PyTorch runs in alternation with ours and the
throughput ratio is printed; PyTorch is never required.

Alternation shares slow drifts of the machine between the contenders, but on a 2-core
machine it is unfair to whoever runs second: OpenBLAS's and PyTorch's OpenMP worker threads
keep spinning for a while after their last call and take the cores from the next contender.
So every switch waits ``--settle`` seconds and runs a few untimed steps before timing.

    python bench/train_step.py                    # the reference model, float32, ReLU
    python bench/train_step.py --activation tanh --dtype float64
    python bench/train_step.py --json             # one JSON line
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np

from handprop.layers import Sequential, mlp
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD

WIDTHS = (784, 512, 512, 10)


def reference_model(activation: str, dtype) -> Sequential:
    return mlp(WIDTHS[0], list(WIDTHS[1:-1]), WIDTHS[-1], activation=activation, dtype=dtype)


def training_setup(batch: int, activation: str, dtype):
    """The reference model, its loss and optimizer, and one random batch."""
    model = reference_model(activation, dtype)
    loss_fn, opt = SoftmaxCrossEntropy(), SGD(model, lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, WIDTHS[0])).astype(dtype)
    y = rng.integers(0, WIDTHS[-1], batch)
    return model, loss_fn, opt, x, y


def handprop_step(batch: int, activation: str, dtype):
    model, loss_fn, opt, x, y = training_setup(batch, activation, dtype)

    def step():
        loss_fn.forward(model.forward(x), y)
        model.param_backward(loss_fn.backward())
        opt.step()
    return step


def matmul_step(batch: int, dtype):
    """The step's matrix products alone, as the layers compute them."""
    rng = np.random.default_rng(1)
    Ws = [rng.standard_normal((a, b)).astype(dtype) for a, b in zip(WIDTHS[:-1], WIDTHS[1:])]
    xs = [rng.standard_normal((batch, a)).astype(dtype) for a in WIDTHS[:-1]]
    douts = [rng.standard_normal((batch, b)).astype(dtype) for b in WIDTHS[1:]]
    dWs = [np.empty_like(W) for W in Ws]

    def step():
        for x, W in zip(xs, Ws):
            x @ W
        for i, (x, W, dout, dW) in enumerate(zip(xs, Ws, douts, dWs)):
            np.matmul(x.T, dout, out=dW)
            if i:  # no input gradient for the data
                dout @ W.T
    return step


def torch_step(batch: int, activation: str, dtype):
    import torch
    torch.manual_seed(0)
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]
    tdtype = {np.float32: torch.float32, np.float64: torch.float64}[np.dtype(dtype).type]
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 512, bias=False), torch.nn.BatchNorm1d(512), act(),
        torch.nn.Linear(512, 512, bias=False), torch.nn.BatchNorm1d(512), act(),
        torch.nn.Linear(512, 10)).to(tdtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch, 784)).astype(dtype))
    y = torch.from_numpy(rng.integers(0, 10, batch))

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def median_times(steps: dict, rounds: int, per_round: int, warmup: int,
                 settle: float = 0.0) -> dict[str, float]:
    """Median seconds a step of each, running them in alternation so machine drift is shared;
    after each switch, ``settle`` seconds of quiet and ``warmup`` untimed steps."""
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            time.sleep(settle)
            for _ in range(warmup):
                step()
            for _ in range(per_round):
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def phase_times(batch: int, activation: str, dtype, steps: int = 200) -> dict[str, float]:
    """Median milliseconds of each phase of our step: where the time goes."""
    model, loss_fn, opt, x, y = training_setup(batch, activation, dtype)
    phases = {"forward": [], "loss": [], "backward": [], "update": []}
    for i in range(steps + 10):
        t0 = time.perf_counter()
        logits = model.forward(x)
        t1 = time.perf_counter()
        loss_fn.forward(logits, y)
        dlogits = loss_fn.backward()
        t2 = time.perf_counter()
        model.param_backward(dlogits)
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if i >= 10:
            for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[name].append(seconds)
    return {name: 1e3 * statistics.median(t) for name, t in phases.items()}


def peak_bytes(step) -> int:
    """Peak memory allocated during one step, beyond what existed before it."""
    step()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def activation_bytes(batch: int, dtype) -> int:
    """What the backward pass must keep: each layer's output (7 of them), N x width."""
    widths = [512] * 6 + [10]
    return batch * sum(widths) * np.dtype(dtype).itemsize


def versions() -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import threadpoolctl
        blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        info["blas"] = ", ".join(f"{p['internal_api']} {p['version']} ({p['num_threads']} threads)"
                                 for p in blas)
    except ImportError:
        pass
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", default="32,128,512", help="batch sizes, comma-separated")
    p.add_argument("--activation", choices=["relu", "tanh"], default="relu")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--rounds", type=int, default=20, help="alternation rounds per batch size")
    p.add_argument("--steps", type=int, default=10, help="steps of each per round")
    p.add_argument("--settle", type=float, default=0.25,
                   help="seconds of quiet after each switch, so spinning threads go idle")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if it is installed")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    args = p.parse_args(argv)
    dtype = np.dtype(args.dtype).type
    try:
        if args.no_torch:
            raise ImportError
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None

    results = []
    for batch in (int(b) for b in args.batches.split(",")):
        steps = {"handprop": handprop_step(batch, args.activation, dtype),
                 "matmul": matmul_step(batch, dtype)}
        if torch_version:
            steps["torch"] = torch_step(batch, args.activation, dtype)
        t = median_times(steps, args.rounds, args.steps, warmup=3, settle=args.settle)
        row = {"batch": batch, "step_ms": 1e3 * t["handprop"], "matmul_ms": 1e3 * t["matmul"],
               "step_over_matmul": t["handprop"] / t["matmul"],
               "samples_per_s": batch / t["handprop"],
               "peak_MB": peak_bytes(steps["handprop"]) / 1e6,
               "activations_MB": activation_bytes(batch, dtype) / 1e6,
               "phases_ms": phase_times(batch, args.activation, dtype)}
        if torch_version:
            row["torch_ms"] = 1e3 * t["torch"]
            row["vs_torch"] = t["torch"] / t["handprop"]  # > 1: we are faster
        results.append(row)

    report = {"model": "784-512-512-10 BN " + args.activation, "dtype": args.dtype,
              "torch": torch_version, **versions(), "results": results}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"reference model {report['model']}, {args.dtype}, SGD momentum 0.9; "
          f"numpy {np.__version__}" + (f", torch {torch_version}" if torch_version else "")
          + (f"; BLAS {report['blas']}" if "blas" in report else ""))
    head = ["batch", "step ms", "matmul ms", "step/matmul", "samples/s", "peak MB", "activ. MB"]
    head += ["torch ms", "vs torch"] if torch_version else []
    print("  ".join(f"{h:>11}" for h in head))
    for r in results:
        cells = [r["batch"], f"{r['step_ms']:.3f}", f"{r['matmul_ms']:.3f}",
                 f"{r['step_over_matmul']:.2f}x", f"{r['samples_per_s']:,.0f}",
                 f"{r['peak_MB']:.2f}", f"{r['activations_MB']:.2f}"]
        if torch_version:
            cells += [f"{r['torch_ms']:.3f}", f"{r['vs_torch']:.2f}x"]
        print("  ".join(f"{c:>11}" for c in cells))
    print("\nwhere our step's time goes (median ms per phase, timed apart from the above):")
    for r in results:
        print(f"  batch {r['batch']:>4}: " + ", ".join(f"{name} {ms:.3f}"
                                                     for name, ms in r["phases_ms"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

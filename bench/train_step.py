"""Time a training step of the reference model against PyTorch and its own matrix products.

Reference model: 784-512-512-10, Linear -> BatchNorm1d -> activation twice, then Linear;
softmax cross-entropy; float32 by default. Contenders, per batch size (32, 128, 512):

    handprop sgd    our step with SGD (momentum 0.9)       numpy matmul   the step's matrix
    handprop adam   our step with Adam                                    products alone, in numpy
    torch sgd       the same step in PyTorch, SGD          torch matmul   the same products
    torch adam      the same step in PyTorch, Adam                        in PyTorch

"The step's matrix products" are what our layers compute: forward ``x @ W``, ``dW = x.T @
dout``, ``dx = dout @ W.T`` except for the first layer (whose input is data).

How it measures, so that the figures mean something on a small shared machine:

- Every contender runs in its own worker process (``--worker NAME``), so numpy's OpenBLAS
  threads and PyTorch's OpenMP threads never share the cores within one measurement. PyTorch
  runs under ``--torch-python`` (a separate environment; PyTorch is never a dependency).
- The driver asks one worker at a time for a measurement: ``--settle`` seconds of quiet (so
  the previous worker's spinning threads go idle), a few untimed steps, then ``--steps``
  steps timed one by one; the worker answers with their median.
- Rounds interleave the contenders (the order rotates every round), so background load falls
  on all of them; each figure is the best of the per-round medians.
- tracemalloc measures the peak memory one of our steps allocates, beside the activations the
  backward pass must keep.
- Separately, our step is timed phase by phase (forward per layer, loss, backward per layer,
  optimizer step), and PyTorch's forward per layer, loss, backward and step, so a ratio that
  misses its target can be traced to where the time goes.

    python bench/train_step.py --torch-python /path/to/venv-with-torch/bin/python
    python bench/train_step.py --batches 512 --rounds 3 --json
    OPENBLAS_CORETYPE= python ...   # see RESULTS.md: this variable slows a current numpy
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

WIDTHS = (784, 512, 512, 10)
CONTENDERS = ("handprop sgd", "handprop adam", "numpy matmul",
              "torch sgd", "torch adam", "torch matmul")
LR = {"sgd": 0.01, "adam": 1e-3}


# ---------------------------------------------------------------------------------------------
# numpy side (imports handprop only inside the worker)

def handprop_setup(batch: int, optimizer: str, activation: str, dtype: str):
    import numpy as np

    from handprop.layers import mlp
    from handprop.losses import SoftmaxCrossEntropy
    from handprop.train import SGD

    # hidden Linears without bias, as mlp builds them: BatchNorm's beta takes its place
    model = mlp(WIDTHS[0], list(WIDTHS[1:-1]), WIDTHS[-1], activation=activation, dtype=dtype)
    if optimizer == "sgd":
        opt = SGD(model, lr=LR["sgd"], momentum=0.9)
    else:
        from handprop.train import Adam  # the optimizers issue; absent before it lands
        opt = Adam(model, lr=LR["adam"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, WIDTHS[0])).astype(dtype)
    y = rng.integers(0, WIDTHS[-1], batch)
    return model, SoftmaxCrossEntropy(), opt, x, y


def handprop_step(batch, optimizer, activation, dtype):
    model, loss_fn, opt, x, y = handprop_setup(batch, optimizer, activation, dtype)

    def step():
        loss_fn.forward(model.forward(x), y)
        model.param_backward(loss_fn.backward())
        opt.step()
    return step


def handprop_phases(batch, optimizer, activation, dtype):
    """A step that records the seconds of each phase into ``laps`` (a dict of lists)."""
    model, loss_fn, opt, x, y = handprop_setup(batch, optimizer, activation, dtype)
    layers = list(model)
    names = [f"{i} {type(layer).__name__}" for i, layer in enumerate(layers)]
    now = time.perf_counter

    def step(laps):
        t = now()
        h = x
        for name, layer in zip(names, layers):
            h = layer.forward(h)
            t, t0 = now(), t
            laps.setdefault(f"forward {name}", []).append(t - t0)
        loss_fn.forward(h, y)
        dout = loss_fn.backward()
        t, t0 = now(), t
        laps.setdefault("loss", []).append(t - t0)
        for name, layer in zip(names[:0:-1], layers[:0:-1]):
            dout = layer.backward(dout)
            t, t0 = now(), t
            laps.setdefault(f"backward {name}", []).append(t - t0)
        layers[0].param_backward(dout)  # as Sequential.param_backward: no gradient for the data
        t, t0 = now(), t
        laps.setdefault(f"backward {names[0]}", []).append(t - t0)
        opt.step()
        t, t0 = now(), t
        laps.setdefault("optimizer step", []).append(t - t0)
    return step


def numpy_matmul_step(batch, optimizer, activation, dtype):
    import numpy as np
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


# ---------------------------------------------------------------------------------------------
# PyTorch side (runs under --torch-python; never imports handprop)

def torch_setup(batch, optimizer, activation, dtype):
    import torch
    torch.manual_seed(0)
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]
    tdtype = getattr(torch, dtype)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 512, bias=False), torch.nn.BatchNorm1d(512), act(),
        torch.nn.Linear(512, 512, bias=False), torch.nn.BatchNorm1d(512), act(),
        torch.nn.Linear(512, 10)).to(tdtype)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=LR["sgd"], momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=LR["adam"])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 784, generator=g, dtype=tdtype)
    y = torch.randint(0, 10, (batch,), generator=g)
    return model, opt, x, y


def torch_step(batch, optimizer, activation, dtype):
    import torch
    model, opt, x, y = torch_setup(batch, optimizer, activation, dtype)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def torch_phases(batch, optimizer, activation, dtype):
    import torch
    model, opt, x, y = torch_setup(batch, optimizer, activation, dtype)
    names = [f"{i} {type(m).__name__}" for i, m in enumerate(model)]
    now = time.perf_counter

    def step(laps):
        t = now()
        opt.zero_grad(set_to_none=True)
        h = x
        for name, module in zip(names, model):
            h = module(h)
            t, t0 = now(), t
            laps.setdefault(f"forward {name}", []).append(t - t0)
        loss = torch.nn.functional.cross_entropy(h, y)
        t, t0 = now(), t
        laps.setdefault("loss", []).append(t - t0)
        loss.backward()
        t, t0 = now(), t
        laps.setdefault("backward (all layers)", []).append(t - t0)
        opt.step()
        t, t0 = now(), t
        laps.setdefault("optimizer step", []).append(t - t0)
    return step


def torch_matmul_step(batch, optimizer, activation, dtype):
    import torch
    tdtype = getattr(torch, dtype)
    g = torch.Generator().manual_seed(1)
    Ws = [torch.randn(a, b, generator=g, dtype=tdtype) for a, b in zip(WIDTHS[:-1], WIDTHS[1:])]
    xs = [torch.randn(batch, a, generator=g, dtype=tdtype) for a in WIDTHS[:-1]]
    douts = [torch.randn(batch, b, generator=g, dtype=tdtype) for b in WIDTHS[1:]]
    dWs = [torch.empty_like(W) for W in Ws]

    def step():
        with torch.no_grad():
            for x, W in zip(xs, Ws):
                x @ W
            for i, (x, W, dout, dW) in enumerate(zip(xs, Ws, douts, dWs)):
                torch.matmul(x.T, dout, out=dW)
                if i:
                    dout @ W.T
    return step


STEPS = {"handprop": handprop_step, "numpy": numpy_matmul_step, "torch": torch_step}
PHASES = {"handprop": handprop_phases, "torch": torch_phases}


def worker(name: str) -> int:
    """Answer the driver's requests, one JSON line each, until stdin closes."""
    library, kind = name.split()
    if library != "torch":                  # as python -m handprop.train runs: memory kept
        from handprop.train import keep_freed_memory
        keep_freed_memory()
    builders = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req["what"] == "info":
            print(json.dumps(worker_info(library)), flush=True)
            continue
        key = ("phases" if req["what"] == "phases" else "step", req["batch"])
        try:
            if key not in builders:
                if req["what"] == "phases":
                    builders[key] = PHASES[library](req["batch"], kind, req["activation"],
                                                    req["dtype"])
                elif kind == "matmul":
                    builders[key] = (numpy_matmul_step if library == "numpy" else
                                     torch_matmul_step)(req["batch"], kind, req["activation"],
                                                        req["dtype"])
                else:
                    builders[key] = STEPS[library](req["batch"], kind, req["activation"],
                                                   req["dtype"])
        except ImportError as err:
            print(json.dumps({"error": f"{name}: {err}"}), flush=True)
            continue
        step = builders[key]
        if req["what"] == "peak":
            print(json.dumps({"peak_bytes": peak_bytes(step)}), flush=True)
            continue
        if req["what"] == "phases":
            laps: dict[str, list] = {}
            for _ in range(req["warmup"]):
                step({})
            for _ in range(req["steps"]):
                step(laps)
            print(json.dumps({k: statistics.median(v) for k, v in laps.items()}), flush=True)
            continue
        for _ in range(req["warmup"]):
            step()
        times = []
        for _ in range(req["steps"]):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        print(json.dumps({"median": statistics.median(times), "fastest": min(times)}),
              flush=True)
    return 0


def peak_bytes(step) -> int:
    """Peak memory allocated during one step beyond what existed before it (tracemalloc sees
    numpy's allocations)."""
    import tracemalloc
    step()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def worker_info(library: str) -> dict:
    info = {"python": platform.python_version(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
    if library == "torch":
        import torch
        info.update(torch=torch.__version__, threads=torch.get_num_threads(),
                    capability=torch.backends.cpu.get_cpu_capability())
        return info
    import numpy as np
    info["numpy"] = np.__version__
    try:
        import threadpoolctl
        info["blas"] = [{k: p.get(k) for k in ("internal_api", "version", "num_threads",
                                                "architecture", "threading_layer")}
                        for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    return info


# ---------------------------------------------------------------------------------------------
# the driver

class Worker:
    def __init__(self, name: str, python: str, threads: int | None) -> None:
        self.name = name
        env = dict(os.environ)
        if threads:  # read by OpenBLAS and OpenMP when the library loads
            env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        self.proc = subprocess.Popen([python, os.path.abspath(__file__), "--worker", name],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1, env=env)

    def ask(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker died")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", default="32,128,512", help="batch sizes, comma-separated")
    p.add_argument("--optimizers", default="sgd,adam")
    p.add_argument("--activation", choices=["relu", "tanh"], default="relu")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (best median wins)")
    p.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before each measurement")
    p.add_argument("--settle", type=float, default=0.3,
                   help="seconds of quiet before each measurement, so spinning threads go idle")
    p.add_argument("--torch-python", default=os.environ.get("HANDPROP_BENCH_TORCH_PYTHON"),
                   help="a Python with PyTorch for the torch contenders (default: none, or "
                        "$HANDPROP_BENCH_TORCH_PYTHON)")
    p.add_argument("--threads", type=int, help="threads per worker (OPENBLAS_NUM_THREADS and "
                   "OMP_NUM_THREADS); default: each library's own default, all cores")
    p.add_argument("--no-phases", action="store_true", help="skip the per-phase breakdown")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.worker)

    batches = [int(b) for b in args.batches.split(",")]
    optimizers = args.optimizers.split(",")
    names = [n for n in CONTENDERS if n.split()[1] in (*optimizers, "matmul")
             and (args.torch_python or not n.startswith("torch"))]
    workers = {n: Worker(n, args.torch_python if n.startswith("torch") else sys.executable,
                         args.threads) for n in names}
    common = dict(activation=args.activation, dtype=args.dtype)
    try:
        info = {"cpu": cpu_model(), "cores": os.cpu_count(),
                "numpy side": workers["numpy matmul"].ask(what="info", batch=0, **common)}
        if args.torch_python:
            info["torch side"] = workers["torch matmul"].ask(what="info", batch=0, **common)
        best: dict = {n: {} for n in names}      # best of the per-round medians
        fastest: dict = {n: {} for n in names}   # the fastest single step of all rounds
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            this_round: dict[str, float] = {}  # ms, for the log on stderr
            for batch in batches:
                for n in order:
                    time.sleep(args.settle)
                    answer = workers[n].ask(what="step", batch=batch, steps=args.steps,
                                            warmup=args.warmup, **common)
                    if "error" in answer:
                        best[n][batch] = fastest[n][batch] = None
                        continue
                    seconds = answer["median"]
                    this_round[f"{n} {batch}"] = round(1e3 * seconds, 3)
                    best[n][batch] = min(best[n].get(batch) or seconds, seconds)
                    fastest[n][batch] = min(fastest[n].get(batch) or seconds, answer["fastest"])
            print(f"round {r + 1}/{args.rounds}: " + json.dumps(this_round), file=sys.stderr,
                  flush=True)
        peak = {}  # MB one step of ours allocates, beside the activations it must keep
        for o in optimizers:
            if f"handprop {o}" in workers and best[f"handprop {o}"].get(batches[0]) is not None:
                peak[o] = {b: {"peak_MB": workers[f"handprop {o}"].ask(
                                   what="peak", batch=b, **common)["peak_bytes"] / 1e6,
                               "activations_MB": b * (6 * 512 + 10) * (4 if args.dtype ==
                                                                        "float32" else 8) / 1e6}
                           for b in batches}
        phases: dict = {}
        if not args.no_phases:
            for n in names:
                if n.endswith("matmul") or best[n].get(batches[0]) is None:
                    continue
                for batch in batches:
                    per_round = []
                    for _ in range(max(1, args.rounds // 2)):
                        time.sleep(args.settle)
                        per_round.append(workers[n].ask(what="phases", batch=batch,
                                                        steps=args.steps, warmup=args.warmup,
                                                        **common))
                    phases.setdefault(n, {})[batch] = {k: min(d[k] for d in per_round)
                                                       for k in per_round[0]}
    finally:
        for w in workers.values():
            w.close()
    report = {"model": f"784-512-512-10 BatchNorm1d {args.activation}", "dtype": args.dtype,
              "threads": args.threads, "info": info, "seconds": best, "fastest": fastest,
              "peak": peak, "phases": phases}
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report, batches, optimizers)
    return 0


def print_report(report: dict, batches: list[int], optimizers: list[str]) -> None:
    info = report["info"]
    print(f"{report['model']}, {report['dtype']}; {info['cpu']}, {info['cores']} cores")
    for side in ("numpy side", "torch side"):
        if side in info:
            print(f"  {side}: {json.dumps(info[side])}")
    for table, title in (("seconds", "best of per-round medians"),
                         ("fastest", "fastest single step of all rounds")):
        print(f"\n{title}, ms per step")
        print_table(report[table], batches, optimizers)
    for o, per_batch in report.get("peak", {}).items():
        print(f"\nours {o}: peak MB a step allocates (activations MB it must keep): " +
              ", ".join(f"batch {b}: {v['peak_MB']:.2f} ({v['activations_MB']:.2f})"
                        for b, v in per_batch.items()))
    print_ceiling(report, batches, optimizers)
    print_phases(report["phases"])


def print_ceiling(report: dict, batches: list[int], optimizers: list[str]) -> None:
    """The most any numpy step could reach against PyTorch's on this machine: its matrix
    products alone (best of per-round medians), and those plus our optimizer's update (from
    the phases), with nothing else taking any time."""
    best, phases = report["seconds"], report["phases"]
    products = best.get("numpy matmul", {})
    if not products or not any(k.startswith("torch") for k in best):
        return
    print("\nthe ceiling: torch's step over numpy's products alone (+ our update), ms and x")
    for o in optimizers:
        theirs = best.get(f"torch {o}", {})
        for b in batches:
            if products.get(b) is None or theirs.get(b) is None:
                continue
            update = phases.get(f"handprop {o}", {}).get(b, {}).get("optimizer step")
            line = f"  {o:>4} batch {b:>4}: torch {1e3 * theirs[b]:.3f} / products " \
                   f"{1e3 * products[b]:.3f} = {theirs[b] / products[b]:.2f}x"
            if update is not None:
                line += f"; + update {1e3 * update:.3f}: {theirs[b] / (products[b] + update):.2f}x"
            print(line)


def print_table(best: dict, batches: list[int], optimizers: list[str]) -> None:
    ms = lambda s: "n/a" if s is None else f"{1e3 * s:.3f}"  # noqa: E731
    ratio = lambda a, b: "n/a" if a is None or b is None else f"{a / b:.2f}x"  # noqa: E731
    head = ["batch", "numpy mm", "torch mm"]
    for o in optimizers:
        head += [f"hp {o}", f"torch {o}", f"{o}/mm", f"torch/hp {o}"]
    print("  ".join(f"{h:>12}" for h in head))
    for b in batches:
        row = [str(b), ms(best.get("numpy matmul", {}).get(b)),
               ms(best.get("torch matmul", {}).get(b))]
        for o in optimizers:
            ours, theirs = best.get(f"handprop {o}", {}).get(b), best.get(f"torch {o}", {}).get(b)
            row += [ms(ours), ms(theirs), ratio(ours, best["numpy matmul"][b]),
                    ratio(theirs, ours)]  # > 1: we are faster
        print("  ".join(f"{c:>12}" for c in row))


def print_phases(phases: dict) -> None:
    for name, per_batch in phases.items():
        print(f"\n{name}: median ms per phase (best of rounds)")
        keys = list(next(iter(per_batch.values())))
        print(f"  {'phase':<28}" + "".join(f"{b:>10}" for b in per_batch))
        for k in keys:
            print(f"  {k:<28}" + "".join(f"{1e3 * per_batch[b][k]:>10.3f}" for b in per_batch))
        print(f"  {'sum':<28}" + "".join(f"{1e3 * sum(per_batch[b].values()):>10.3f}"
                                         for b in per_batch))


if __name__ == "__main__":
    sys.exit(main())

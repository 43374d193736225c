"""Time a training step of the reference CNN in handprop and in PyTorch, each in its own process.

Reference model (issue 14): Conv2d(1, 16, 3, padding=1) -> BatchNorm2d -> ReLU -> MaxPool2d(2)
-> Conv2d(16, 32, 3, padding=1) -> BatchNorm2d -> ReLU -> MaxPool2d(2) -> Flatten ->
Linear(32*7*7, 10); softmax cross-entropy; SGD momentum 0.9; float32; batch 64 of 28x28 inputs.

How it measures:

- Each contender runs in its own worker process (this file with ``--worker``), so two thread
  pools (numpy's OpenBLAS, PyTorch's OpenMP) never share a process. Each pool gets
  ``--threads`` threads (2 by default: OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and
  ``torch.set_num_threads``); handprop's elementwise threads (``handprop.layers.parallel``,
  where it exists) follow OpenBLAS's count.
- The parent interleaves them in rounds (handprop, torch; then torch, handprop; ...) so slow
  drifts and other people's load hit both. Before each contender's turn the parent waits
  ``--settle`` seconds, since the other's worker threads keep spinning for a while after its
  last call, and the worker runs ``--warmup`` untimed steps.
- A round's figure is the median of its ``--steps`` step times; the result is the best (lowest)
  of the per-round medians: the figure least disturbed by the machine's other work.
- Per-layer time: a separate pass in each worker times every layer's forward and backward
  alone, plus the loss and the update: medians over ``--layer-steps`` steps, in interleaved
  rounds as above, the best of the per-round medians for each layer. In PyTorch each
  module runs on a detached copy of its input and its backward is called on its own, so the
  per-layer figures add autograd's per-call overhead that a whole step pays once.
- Peak memory per step: for handprop, tracemalloc's peak during one step above what was
  allocated before it (numpy reports its array allocations to tracemalloc); for PyTorch, the
  peak of the running sum of the CPU allocator's allocations and frees during one step, from
  ``torch.profiler`` with ``profile_memory=True`` (memory that oneDNN or MKL take outside
  PyTorch's allocator is not seen).

    python bench/cnn.py                                   # PyTorch if this python has it
    python bench/cnn.py --torch-python /path/to/venv/bin/python
    python bench/cnn.py --json                            # one JSON line
    python bench/cnn.py --threads 1 --clock cpu           # work done, on a busy machine

OpenBLAS reads OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE when it loads; the report shows both and
the kernel OpenBLAS chose (if threadpoolctl is installed). On a machine that sets them for old
OpenBLAS builds, benchmark a current numpy with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # bench/harness.py
import harness  # noqa: E402

BATCH, CHANNELS, SIZE, CLASSES = 64, 1, 28, 10
REFERENCE = ("Conv2d(1, 16, 3, padding=1) -> BatchNorm2d(16) -> ReLU -> MaxPool2d(2) -> "
             "Conv2d(16, 32, 3, padding=1) -> BatchNorm2d(32) -> ReLU -> MaxPool2d(2) -> "
             "Flatten -> Linear(1568, 10)")
# wall-clock seconds, or the process's CPU seconds (all its threads: meaningful with --threads 1,
# where it counts the work done whatever else the machine runs)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = CLOCKS["wall"]
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def batch(batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, CHANNELS, SIZE, SIZE)).astype(np.float32)
    return x, rng.integers(0, CLASSES, batch_size)


# ---------------------------------------------------------------------------- the contenders
# Each builds (layers, step, profile) for its worker: ``step()`` is one training step;
# ``profile()`` times each layer's forward and backward once and returns
# [(name, forward s, backward s)], ending with the loss and the update.

class HandpropContender:
    name = "handprop"

    def __init__(self, batch_size: int, workers: int = 1) -> None:
        from handprop.layers import (
            BatchNorm2d,
            Conv2d,
            DataParallel,
            Flatten,
            Linear,
            MaxPool2d,
            ReLU,
            Sequential,
        )
        from handprop.losses import SoftmaxCrossEntropy
        from handprop.train import SGD
        f32 = np.float32
        self.model = Sequential(
            Conv2d(1, 16, 3, padding=1, rng=0, dtype=f32), BatchNorm2d(16, dtype=f32), ReLU(),
            MaxPool2d(2),
            Conv2d(16, 32, 3, padding=1, rng=1, dtype=f32), BatchNorm2d(32, dtype=f32), ReLU(),
            MaxPool2d(2),
            Flatten(), Linear(32 * 7 * 7, 10, rng=2, dtype=f32))
        self.loss_fn = SoftmaxCrossEntropy()
        self.opt = SGD(self.model, lr=0.01, momentum=0.9)
        self.x, self.y = batch(batch_size)
        self.names = [repr(layer) for layer in self.model]
        # --split: the batch between `workers` copies on threads, BatchNorm's statistics added
        self.run = DataParallel(self.model, workers) if workers > 1 else self.model

    def step(self) -> None:
        self.loss_fn.forward(self.run.forward(self.x), self.y)
        self.run.param_backward(self.loss_fn.backward())
        self.opt.step()

    def profile(self) -> list[tuple[str, float, float]]:
        clock, layers = CLOCK, list(self.model)
        forward, backward = [], [0.0] * len(layers)
        out = self.x
        for layer in layers:
            t0 = clock()
            out = layer.forward(out)
            forward.append(clock() - t0)
        t0 = clock()
        self.loss_fn.forward(out, self.y)
        dout = self.loss_fn.backward()
        loss_seconds = clock() - t0
        for i in reversed(range(len(layers))):
            t0 = clock()
            if i:
                dout = layers[i].backward(dout)
            else:  # the data needs no gradient, as in step()
                layers[i].param_backward(dout)
            backward[i] = clock() - t0
        t0 = clock()
        self.opt.step()
        update_seconds = clock() - t0
        return [*zip(self.names, forward, backward), ("loss", loss_seconds, 0.0),
                ("update", 0.0, update_seconds)]

    def peak_bytes(self) -> int:
        """tracemalloc's peak during one step, above what was allocated before it."""
        return harness.peak_bytes_numpy((self.step,))

    def info(self) -> dict:
        try:
            from handprop.layers import parallel
            threads = parallel.num_threads()
        except ImportError:  # a handprop from before the elementwise threads: one thread
            threads = 1
        info = {"numpy": np.__version__, "elementwise_threads": threads}
        try:
            import threadpoolctl
            info["blas"] = ", ".join(
                f"{p['internal_api']} {p['version']} {p.get('architecture', '?')} kernels "
                f"({p['num_threads']} threads)"
                for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
        except ImportError:
            info["blas"] = "unknown (pip install threadpoolctl to see OpenBLAS's kernel)"
        return info


class TorchContender:
    name = "torch"

    def __init__(self, batch_size: int, threads: int) -> None:
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        nn = torch.nn
        self.torch = torch
        self.model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        x, y = batch(batch_size)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.names = [repr(m) for m in self.model]

    def step(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.torch.nn.functional.cross_entropy(self.model(self.x), self.y).backward()
        self.opt.step()

    def profile(self) -> list[tuple[str, float, float]]:
        torch, clock, modules = self.torch, CLOCK, list(self.model)
        self.opt.zero_grad(set_to_none=True)
        inputs, outputs, forward, backward = [], [], [], [0.0] * len(modules)
        x = self.x
        for i, module in enumerate(modules):
            x = x.detach().requires_grad_(i > 0)  # the data needs no gradient, as in step()
            t0 = clock()
            out = module(x)
            forward.append(clock() - t0)
            inputs.append(x)
            outputs.append(out)
            x = out
        logits = x.detach().requires_grad_(True)
        t0 = clock()
        loss = torch.nn.functional.cross_entropy(logits, self.y)
        loss.backward()
        loss_seconds = clock() - t0
        dout = logits.grad
        for i in reversed(range(len(modules))):
            t0 = clock()
            outputs[i].backward(dout)
            backward[i] = clock() - t0
            dout = inputs[i].grad
        t0 = clock()
        self.opt.step()
        update_seconds = clock() - t0
        return [*zip(self.names, forward, backward), ("loss", loss_seconds, 0.0),
                ("update", 0.0, update_seconds)]

    def peak_bytes(self) -> int:
        """Peak of PyTorch's CPU allocations minus frees during one step (its profiler)."""
        return harness.peak_bytes_torch((self.step,))

    def info(self) -> dict:
        torch = self.torch
        return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                "torch_blas": "MKL" if torch.backends.mkl.is_available() else "no MKL",
                "torch_onednn": torch.backends.mkldnn.is_available(),
                "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


# ---------------------------------------------------------------------------- a worker process

def worker(contender_name: str, batch_size: int, threads: int, clock: str,
           split: bool = False) -> int:
    """Answer the parent's commands, one JSON line each way, until "quit"."""
    global CLOCK
    CLOCK = CLOCKS[clock]
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers goes to the parent
    if contender_name == "handprop":        # as python -m handprop.train runs: memory kept
        from handprop.train import keep_freed_memory
        keep_freed_memory()
    try:
        contender = (HandpropContender(batch_size, threads if split else 1)
                     if contender_name == "handprop"
                     else TorchContender(batch_size, threads))
        contender.step()
        answer = {"ready": True, "layers": contender.names,
                  "env": {k: os.environ.get(k) for k in BLAS_ENV}, **contender.info()}
    except Exception as err:  # reported by the parent, e.g. layers that do not exist yet
        answer = {"ready": False, "error": f"{type(err).__name__}: {err}"}
    print(json.dumps(answer), file=out, flush=True)
    if not answer["ready"]:
        return 1
    for line in sys.stdin:
        command = json.loads(line)
        if command["do"] == "quit":
            return 0
        if command["do"] == "round":
            for _ in range(command["warmup"]):
                contender.step()
            seconds = []
            for _ in range(command["steps"]):
                t0 = CLOCK()
                contender.step()
                seconds.append(CLOCK() - t0)
            answer = {"seconds": seconds}
        elif command["do"] == "layers":
            for _ in range(command["warmup"]):
                contender.profile()
            runs = [contender.profile() for _ in range(command["steps"])]
            answer = {"layers": [{"layer": rows[0][0],
                                  "forward_ms": 1e3 * statistics.median(r[1] for r in rows),
                                  "backward_ms": 1e3 * statistics.median(r[2] for r in rows)}
                                 for rows in zip(*runs)]}
        elif command["do"] == "memory":
            answer = {"peak_bytes": contender.peak_bytes()}
        print(json.dumps(answer), file=out, flush=True)
    return 0


class Worker:
    """A contender in its own process, spoken to in JSON lines."""

    def __init__(self, name: str, python: str, batch_size: int, threads: int, clock: str,
                 split: bool = False) -> None:
        split = split and name == "handprop"        # then one BLAS thread in each copy
        blas = 1 if split else threads
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas), OMP_NUM_THREADS=str(blas))
        self.name = name
        self.stderr = tempfile.TemporaryFile("w+")  # the profiler's chatter; shown on failure
        self.process = subprocess.Popen(
            [python, os.path.abspath(__file__), "--worker", name, "--batch", str(batch_size),
             "--threads", str(threads), "--clock", clock, *(["--split"] if split else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env)
        self.hello = self.read()

    def read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.stderr.seek(0)
            raise RuntimeError(f"the {self.name} worker exited (code {self.process.wait()}):\n"
                               f"{self.stderr.read()}")
        return json.loads(line)

    def ask(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write(json.dumps({"do": "quit"}) + "\n")
            self.process.stdin.close()
            self.process.wait()
        self.stderr.close()


# ---------------------------------------------------------------------------- the parent

def torch_python(option: str | None) -> str | None:
    if option:
        return option
    return sys.executable if importlib.util.find_spec("torch") else None


def machine() -> dict:
    info = {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f
                               if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or "unknown"
    return info


def measure(args) -> dict:
    pythons = {"handprop": sys.executable}
    if not args.no_torch:
        tp = torch_python(args.torch_python)
        if tp:
            pythons["torch"] = tp
    workers, load_before = {}, os.getloadavg()
    try:
        for name, python in pythons.items():
            workers[name] = Worker(name, python, args.batch, args.threads, args.clock, args.split)
            if not workers[name].hello["ready"]:
                raise SystemExit(f"bench/cnn.py: the {name} worker could not start: "
                                 f"{workers[name].hello['error']}")
        order = list(workers)
        medians = {name: [] for name in workers}
        for r in range(args.rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                time.sleep(args.settle)
                seconds = workers[name].ask(do="round", steps=args.steps, warmup=args.warmup)["seconds"]
                medians[name].append(statistics.median(seconds))
        layer_rounds = {name: [] for name in workers}
        for r in range(args.rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                time.sleep(args.settle)
                layer_rounds[name].append(workers[name].ask(
                    do="layers", steps=args.layer_steps, warmup=args.warmup)["layers"])
        layers = {name: best_layers(runs) for name, runs in layer_rounds.items()}
        peaks = {name: w.ask(do="memory")["peak_bytes"] for name, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()
    report = {"model": REFERENCE, "dtype": "float32", "batch": args.batch, "split": args.split,
              "threads": args.threads, "clock": args.clock,
              "rounds": args.rounds, "steps_per_round": args.steps, "settle_s": args.settle,
              **machine(), "loadavg_1min_before_after": [load_before[0], os.getloadavg()[0]],
              "contenders": {}}
    for name, w in workers.items():
        best = min(medians[name])
        report["contenders"][name] = {
            "step_ms": 1e3 * best, "samples_per_s": args.batch / best,
            "round_medians_ms": [1e3 * m for m in medians[name]],
            "peak_MB": peaks[name] / 1e6, "layers": layers[name],
            **{k: v for k, v in w.hello.items() if k not in ("ready", "layers")}}
    if "torch" in workers:  # > 1: handprop is faster
        report["throughput_vs_torch"] = (report["contenders"]["torch"]["step_ms"]
                                         / report["contenders"]["handprop"]["step_ms"])
    return report


def best_layers(rounds: list[list[dict]]) -> list[dict]:
    """Each layer's forward and backward time: the lowest of its per-round medians."""
    return [{"layer": rows[0]["layer"], "forward_ms": min(r["forward_ms"] for r in rows),
             "backward_ms": min(r["backward_ms"] for r in rows)} for rows in zip(*rounds)]


def print_report(report: dict) -> None:
    c = report["contenders"]
    hp = c["handprop"]
    split = ", the batch split between copies on threads" if report.get("split") else ""
    print(f"reference CNN, float32, batch {report['batch']}, SGD momentum 0.9{split}: {report['model']}")
    print(f"machine: {report['cpu']}, {report['cpus']} cpus; python {report['python']}; "
          f"numpy {hp['numpy']}; BLAS {hp['blas']}; "
          f"{hp['elementwise_threads']} elementwise thread(s) (handprop.layers.parallel)")
    env = {k: v for k, v in hp["env"].items() if v is not None}
    print("load average (1 min) before and after: "
          + " and ".join(f"{x:.1f}" for x in report["loadavg_1min_before_after"])
          + f" on {report['cpus']} cpus (other work on the machine slows both contenders)")
    print("BLAS environment: " + (", ".join(f"{k}={v}" for k, v in env.items()) or "none set"))
    if "torch" in c:
        t = c["torch"]
        print(f"torch {t['torch']} ({t['torch_threads']} threads, {t['torch_blas']}, oneDNN "
              f"{t['torch_onednn']}, {t['torch_cpu_capability']})")
    print(f"\n{report['clock']} clock, {report['threads']} thread(s) each; best of {report['rounds']} per-round medians ({report['steps_per_round']} steps each):")
    for name, r in c.items():
        print(f"  {name:>8}: {r['step_ms']:7.2f} ms/step  {r['samples_per_s']:8,.0f} samples/s  "
              f"peak {r['peak_MB']:.2f} MB/step  (round medians "
              + " ".join(f"{m:.1f}" for m in r["round_medians_ms"]) + ")")
    if "throughput_vs_torch" in report:
        print(f"  throughput vs PyTorch: {report['throughput_vs_torch']:.2f}x (issue 23's target: >= 1.1x)")
    print("\nper layer, ms (forward / backward), each timed alone; best of per-round medians:")
    names = list(c)
    rows = zip(*(c[n]["layers"] for n in names))
    width = max(len(r["layer"]) for r in hp["layers"])
    print(f"  {'handprop layer':<{width}}  " + "  ".join(f"{n + ' fwd':>12} {n + ' bwd':>12}" for n in names))
    for row in rows:
        print(f"  {row[0]['layer']:<{width}}  " + "  ".join(
            f"{r['forward_ms']:12.3f} {r['backward_ms']:12.3f}" for r in row))
    totals = [(sum(r["forward_ms"] for r in c[n]["layers"]), sum(r["backward_ms"] for r in c[n]["layers"]))
              for n in names]
    print(f"  {'sum':<{width}}  " + "  ".join(f"{f:12.3f} {b:12.3f}" for f, b in totals))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per round (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before each round")
    p.add_argument("--layer-steps", type=int, default=10,
                   help="steps of each round of the per-layer pass (default 10)")
    p.add_argument("--settle", type=float, default=0.25,
                   help="seconds of quiet before each turn, so the other's threads go idle")
    p.add_argument("--threads", type=int, default=2,
                   help="threads of each contender's pool, OpenBLAS's and PyTorch's (default 2)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall (default), or cpu: the process's CPU time, with --threads 1 a "
                   "measure of work that other load on the machine barely changes")
    p.add_argument("--torch-python", metavar="PATH",
                   help="a python with torch installed (default: this one, if it has torch)")
    p.add_argument("--no-torch", action="store_true", help="measure handprop alone")
    p.add_argument("--split", action="store_true", help="handprop's step with the batch split "
                   "between --threads copies on threads (DataParallel), one BLAS thread each")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--worker", choices=["handprop", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.batch, args.threads, args.clock, args.split)
    report = measure(args)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

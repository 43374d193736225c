"""The pieces a contender-against-contender benchmark shares (used by bench/lstm.py).

The same method as bench/gpt.py, factored out so that a new benchmark states only its steps:

- Each contender (library x BLAS/OpenMP thread count) runs in its own worker process, started
  with the thread count in its environment (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
  ``MKL_NUM_THREADS``) and, for PyTorch, ``torch.set_num_threads``; PyTorch's worker runs
  under another python (PyTorch is never a dependency).
- The driver asks one worker at a time: ``settle`` seconds of quiet, a few untimed steps,
  then ``steps`` steps, each timed whole and phase by phase; the worker answers the medians.
- Rounds interleave the contenders (the order rotates every round), so background load falls
  on all of them; each figure is the best of the per-round medians, with the load average
  read just before it.
- Peak memory per step: for handprop, tracemalloc's peak during one step above what was
  allocated before it (numpy reports its allocations to tracemalloc); for PyTorch, the peak of
  the running sum of its CPU allocator's allocations and frees during one step
  (``torch.profiler`` with ``profile_memory=True``).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

PHASES = ("forward", "backward", "optimizer")
Step = tuple[Callable[[], None], ...]     # forward, backward, optimizer


def run_step(phases: Step) -> None:
    for phase in phases:
        phase()


def measure(phases: Step, steps: int, warmup: int, settle: float) -> dict[str, float]:
    """Median milliseconds of the whole step and of each phase over ``steps`` steps."""
    time.sleep(settle)
    times: dict[str, list[float]] = {name: [] for name in ("step", *PHASES)}
    for i in range(warmup + steps):
        started = time.perf_counter()
        marks = [started]
        for phase in phases:
            phase()
            marks.append(time.perf_counter())
        if i >= warmup:
            times["step"].append(marks[-1] - started)
            for name, a, b in zip(PHASES, marks, marks[1:]):
                times[name].append(b - a)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def peak_bytes_numpy(phases: Step) -> int:
    """tracemalloc's peak during one step, above what was allocated before it."""
    import tracemalloc
    run_step(phases)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run_step(phases)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def peak_bytes_torch(phases: Step) -> int:
    """Peak of PyTorch's CPU allocations minus frees during one step (its profiler)."""
    from torch.profiler import ProfilerActivity, profile
    run_step(phases)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run_step(phases)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def versions(library: str) -> dict[str, str]:
    import numpy as np
    found = {"numpy": np.__version__}
    try:
        for info in np.show_config(mode="dicts")["Build Dependencies"].values():
            if isinstance(info, dict) and info.get("name"):
                found[info["name"]] = str(info.get("version"))
    except Exception:                        # older numpy: no dicts mode
        pass
    if library == "torch":
        import torch
        found["torch"] = torch.__version__
    return found


def serve(library: str, threads: int, build: Callable[[], Step]) -> None:
    """A worker's loop: one JSON request per line on stdin, one JSON answer per line."""
    if library == "torch":
        import torch
        torch.set_num_threads(threads)
    else:                                   # as python -m handprop.train runs: memory kept
        from handprop.train import keep_freed_memory
        keep_freed_memory()
    phases = build()
    for line in sys.stdin:
        request = json.loads(line)
        if request["do"] == "measure":
            answer: dict = measure(phases, request["steps"], request["warmup"], request["settle"])
        elif request["do"] == "peak":
            peak = peak_bytes_torch if library == "torch" else peak_bytes_numpy
            answer = {"peak_bytes": peak(phases)}
        else:
            answer = versions(library)
        print(json.dumps(answer), flush=True)


class Worker:
    """One contender's process: ``script --worker LIBRARY THREADS`` under its python."""

    def __init__(self, script: str, library: str, threads: int, python: str) -> None:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads),
               "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.process = subprocess.Popen([python, script, "--worker", library, str(threads)],
                                        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)

    def ask(self, **request) -> dict:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait()


def load() -> float:
    return os.getloadavg()[0]


def compete(script: str, contenders: list[tuple[str, int]], pythons: dict[str, str],
            rounds: int, steps: int, warmup: int, settle: float) -> dict:
    """Interleaved rounds; per contender the best round (with the 1-minute load before it),
    its peak bytes per step and its library versions."""
    workers = {c: Worker(script, c[0], c[1], pythons[c[0]]) for c in contenders}
    best: dict = {c: None for c in contenders}
    try:
        for r in range(rounds):
            order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
            for c in order:
                before = load()
                got = workers[c].ask(do="measure", steps=steps, warmup=warmup, settle=settle)
                got["load"] = before
                if best[c] is None or got["step"] < best[c]["step"]:
                    best[c] = got
        for c, w in workers.items():
            best[c]["peak_MB"] = w.ask(do="peak")["peak_bytes"] / 1e6
            best[c]["versions"] = w.ask(do="versions")
    finally:
        for w in workers.values():
            w.close()
    return best


def table(best: dict) -> list[str]:
    """Markdown rows, then a line per library's best thread count and the ratio."""
    lines = ["| contender | threads | step | forward | backward | optimizer | peak MB/step | load |",
             "|---|---|---|---|---|---|---|---|"]
    for (lib, n), v in best.items():
        lines.append(f"| {lib} | {n} | {v['step']:.2f} | {v['forward']:.2f} | "
                     f"{v['backward']:.2f} | {v['optimizer']:.2f} | {v['peak_MB']:.2f} | "
                     f"{v['load']:.2f} |")
    fastest = {lib: min((v["step"], n) for (name, n), v in best.items() if name == lib)
               for lib in sorted({lib for lib, _ in best})}
    if "torch" in fastest and "handprop" in fastest:
        ours, theirs = fastest["handprop"], fastest["torch"]
        lines.append(f"\nbest: handprop {ours[0]:.2f} ms ({ours[1]} thread(s)), torch "
                     f"{theirs[0]:.2f} ms ({theirs[1]} thread(s)): handprop's step takes "
                     f"{ours[0] / theirs[0]:.2f}x PyTorch's")
    return lines

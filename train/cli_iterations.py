"""python -m handprop.train --dataset shakespeare --model gpt: nanoGPT's character-level GPT on
tiny Shakespeare, trained by iterations over random windows (``fit_iterations``).

The defaults are nanoGPT's CPU recipe (``RECIPE``): 4 layers, 4 heads, 128 wide, block 64,
batch 12, 2,000 iterations, AdamW (lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on the
matrices only), warm-up over 100 iterations and a cosine to 1e-4 at 2,000, gradients clipped
to norm 1.0, no dropout, the validation loss over 200 batches every 250 iterations.

The BLAS thread count is chosen for speed (``--threads auto``: a few timed steps with each
count; on a machine loaded by other work, one thread can be several times faster than two,
the attention's many small products waiting on thread hand-offs), reported, and recorded with
the run's settings: a resumed run reuses it, since bit-exactness depends on it.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ..layers import DataParallel, Layer, gpt
from ..losses import SoftmaxCrossEntropy
from .checkpoint import read_extra
from .cli_checkpoints import check_checkpoint_path, given_flags, recorded_settings
from .data import default_data_dir, download
from .data.text import Vocabulary
from .data.text import load_text as load_text_data
from .iterations import fit_iterations
from .optim import AdamW, decay_groups
from .warmup_cosine import WarmupCosineLR

PROG = "python -m handprop.train"
ITERATION_MODELS = ("gpt",)
TEXT_SETS = ("shakespeare",)
RECIPE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12,
          "max_iters": 2000, "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 100,
          "lr_decay_iters": 2000, "beta2": 0.99, "weight_decay": 0.1, "clip_grad_norm": 1.0,
          "eval_interval": 250, "eval_iters": 200, "optimizer": "adamw"}
# the flags of the epoch-based models, which a run by iterations has no use for
EPOCH_FLAGS = ("hidden", "activation", "norm", "epochs", "momentum", "nesterov", "schedule",
               "warmup", "plot")


def add_iteration_flags(p: argparse.ArgumentParser, bounded: Callable) -> None:
    """The flags of a run by iterations (``--model gpt``); each defaults to None, filled from
    ``RECIPE`` unless given or taken from a resumed checkpoint."""
    size, count = bounded(int, 0, False, 1 << 16), bounded(int, 0, False, 10**9)
    g = p.add_argument_group(
        "a GPT trained by iterations (--dataset shakespeare --model gpt)",
        "Defaults: nanoGPT's CPU recipe, which also sets --batch-size 12, --lr 1e-3, "
        "--weight-decay 0.1 (on the matrices only) and --clip-grad-norm 1.0; AdamW with betas "
        "(0.9, --beta2), warm-up then cosine by iterations.")
    g.add_argument("--n-layer", metavar="N", type=bounded(int, 0, False, 64), help="transformer blocks (default 4)")
    g.add_argument("--n-head", metavar="N", type=size, help="attention heads per block (default 4)")
    g.add_argument("--n-embd", metavar="N", type=size, help="the width of the residual stream (default 128)")
    g.add_argument("--block-size", metavar="T", type=size, help="context length in characters (default 64)")
    g.add_argument("--max-iters", metavar="N", type=count, help="iterations in all (default 2000); with "
                   "--resume, a new total")
    g.add_argument("--eval-interval", metavar="N", type=count, help="evaluate and checkpoint every N "
                   "iterations (default 250)")
    g.add_argument("--eval-iters", metavar="N", type=count, help="validation batches per evaluation (default 200)")
    g.add_argument("--min-lr", metavar="X", type=bounded(float, 0, True), help="the lr at the end of the "
                   "cosine (default 1e-4)")
    g.add_argument("--warmup-iters", metavar="N", type=bounded(int, 0, True, 10**9), help="iterations of "
                   "linear warm-up (default 100)")
    g.add_argument("--lr-decay-iters", metavar="N", type=bounded(int, 0, True, 10**9), help="the iteration "
                   "where the cosine reaches --min-lr (default 2000)")
    g.add_argument("--beta2", metavar="X", type=bounded(float, 0, True, 0.999999), help="AdamW's second "
                   "beta (default 0.99)")
    g.add_argument("--threads", metavar="N|auto", type=threads, help="BLAS threads: a number, or auto to time a "
                   "few steps with each count, and with --workers, and take the fastest (default auto)")


def threads(text: str) -> int | str:
    """An argparse type: ``auto`` or a thread count >= 1."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"expected auto or a thread count >= 1, got {text}")
    return value


def by_iterations(cli: argparse.ArgumentParser, args: argparse.Namespace,
                  argv: list[str] | None, parser: Callable[[], argparse.ArgumentParser]) -> bool:
    """Whether this run goes by iterations (--model gpt or --dataset shakespeare); for any
    other, a flag of ours given is a usage error."""
    if args.model in ITERATION_MODELS or args.dataset in TEXT_SETS or _resumes_ours(args):
        return True
    ours = [key for key in given_flags(parser, argv) if key in RECIPE and key not in
            ("batch_size", "lr", "weight_decay", "clip_grad_norm", "optimizer")] + \
        (["threads"] if args.threads is not None else [])
    if ours:
        cli.error(f"{', '.join(sorted(_flag(k) for k in set(ours)))}: only for --model gpt")
    return False


def run_iterations(cli: argparse.ArgumentParser, args: argparse.Namespace,
                   argv: list[str] | None, parser: Callable[[], argparse.ArgumentParser]) -> int:
    """Check the flags, load the text, build the GPT, train by iterations, print the summary
    line; the exit code as the command's (0 done, 1 a failure on the way, 2 a usage error)."""
    check_flags(cli, args, argv, parser)
    if args.resume and os.path.exists(args.checkpoint):
        done = _iterations_done(args.checkpoint)
        if done is not None and done >= args.max_iters:
            print(f"{args.checkpoint} has finished: {done} of {args.max_iters} iterations "
                  f"trained, nothing left to do; add --max-iters N (N > {done}) with --resume "
                  f"to train on to a new total", flush=True)
            return 0
        print(f"resuming {args.checkpoint} at iteration {done} of {args.max_iters}", file=sys.stderr)
    try:
        vocab, train_ids, val_ids = load_text(args)
    except FileNotFoundError as err:
        return _failure(f"{err}{'' if args.download else '; add --download to fetch it'}", 2)
    except (ValueError, OSError) as err:
        return _failure(err)
    print(f"{args.dataset}: {len(train_ids):,} training and {len(val_ids):,} validation "
          f"characters, a vocabulary of {len(vocab)}", flush=True)
    too_big = over_budget(args, len(vocab))
    if too_big:
        return _failure(too_big, 2)
    model = build_gpt(args, (args.block_size,), len(vocab))
    print(describe(model, args), flush=True)
    if args.threads == "auto":
        args.threads, args.workers, timings = choose_threads(model, train_ids, args)
        print(f"blas_threads={args.threads} workers={args.workers} (chosen: {timings})", flush=True)
    args.workers = args.workers or 1
    return train(args, model, vocab, train_ids, val_ids)


def train(args: argparse.Namespace, model: Layer, vocab: Vocabulary, train_ids: np.ndarray,
          val_ids: np.ndarray) -> int:
    """Build the optimizer and schedule, train under the chosen BLAS thread count, summarize."""
    optimizer = AdamW(model, args.lr, betas=(0.9, args.beta2), weight_decay=args.weight_decay,
                      param_groups=decay_groups(model, args.weight_decay))
    schedule = WarmupCosineLR(optimizer, warmup_iters=args.warmup_iters,
                              lr_decay_iters=args.lr_decay_iters, min_lr=args.min_lr)
    settings = {**recorded_settings(args), "vocab": vocab.to_dict()}
    started = time.perf_counter()
    try:
        with threadpool_limits(limits=args.threads, user_api="blas"):
            history = fit_iterations(
                model, SoftmaxCrossEntropy(), optimizer, train_ids, val_ids,
                block_size=args.block_size, batch_size=args.batch_size, max_iters=args.max_iters,
                eval_interval=args.eval_interval, eval_iters=args.eval_iters, scheduler=schedule,
                clip_grad_norm=args.clip_grad_norm, seed=args.seed, checkpoint=args.checkpoint,
                resume=args.resume, checkpoint_extra={"cli": settings},
                on_eval=lambda logs: print(eval_line(logs, args.max_iters), flush=True),
                workers=args.workers)
    except (FloatingPointError, ValueError, OSError) as err:
        return _failure(err)
    seconds = time.perf_counter() - started
    print(f"val_loss={history['val_loss'][-1]:.4f} train_loss={history['train_loss'][-1]:.4f} "
          f"iterations={history['iteration'][-1]} seconds={seconds:.1f} "
          f"blas_threads={args.threads} workers={args.workers}", flush=True)
    return 0


def check_flags(cli: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None,
                parser: Callable[[], argparse.ArgumentParser]) -> None:
    """Every usage error before any data is read; the recipe's defaults filled in, then a
    resumed checkpoint's settings taken (a flag that contradicts them is an error)."""
    given = given_flags(parser, argv)
    if _resumes_ours(args) and "model" not in given:
        args.model = ITERATION_MODELS[0]   # and the rest from the checkpoint, below
    if "dataset" not in given and args.model in ITERATION_MODELS:
        args.dataset = TEXT_SETS[0]   # the one text set it trains on
    if "model" not in given and args.dataset in TEXT_SETS:
        args.model = ITERATION_MODELS[0]
    if args.model not in ITERATION_MODELS or args.dataset not in TEXT_SETS:
        cli.error("--model gpt trains on text by iterations: --dataset shakespeare --model gpt")
    refused = [_flag(key) for key in EPOCH_FLAGS if key in given]
    if refused:
        cli.error(f"{', '.join(refused)}: only for the models trained by epochs, not --model "
                  f"gpt (it counts iterations: --max-iters, --warmup-iters, --lr-decay-iters)")
    if args.optimizer != "adamw" and "optimizer" in given:
        cli.error(f"--model gpt trains with --optimizer adamw, not {args.optimizer}")
    if args.resume and not args.checkpoint:
        cli.error("--resume needs --checkpoint PATH")
    for key, value in {**RECIPE, "threads": "auto"}.items():
        if key not in given:
            setattr(args, key, value)
    if args.checkpoint:
        check_checkpoint_path(cli, args, argv, parser)
    if (args.workers or 1) > 1 and args.threads == "auto":
        args.threads = 1            # one BLAS thread for each copy: nothing left to choose
    if (args.workers or 1) > 1 and args.threads not in ("auto", 1):
        cli.error(f"--workers {args.workers} runs one BLAS thread in each copy of the model, not "
                  f"--threads {args.threads}: leave --threads out")
    if args.n_embd % args.n_head:
        cli.error(f"--n-embd {args.n_embd} is not divisible by --n-head {args.n_head} (each "
                  f"head takes n_embd / n_head features)")
    if args.lr_decay_iters < args.warmup_iters:
        cli.error(f"--lr-decay-iters {args.lr_decay_iters} ends the cosine before the warm-up "
                  f"(--warmup-iters {args.warmup_iters}) is over")


def load_text(args: argparse.Namespace) -> tuple[Vocabulary, np.ndarray, np.ndarray]:
    """input.txt from --data-dir (fetched first with --download, its published SHA-256
    checked): its vocabulary, and its ids split into the first 90% (training) and the rest."""
    directory = Path(args.data_dir or default_data_dir(args.dataset))
    if args.download:
        download(args.dataset, directory, base_url=args.base_url, progress=not args.no_progress)
    path = directory / "input.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = load_text_data(directory)
    if len(data.val) < args.block_size + 1:
        raise ValueError(f"{path}: {len(data.train) + len(data.val)} characters are too few: "
                         f"its last 10% holds no window of --block-size {args.block_size}")
    return data.vocab, data.train, data.val


def build_gpt(args: argparse.Namespace, shape: tuple[int, ...], n_classes: int) -> Layer:
    """The registry's builder: ``n_classes`` is the vocabulary's size."""
    return gpt(n_classes, block_size=args.block_size, n_layer=args.n_layer, n_head=args.n_head,
               n_embd=args.n_embd, dropout=args.dropout, seed=args.seed, dtype=np.dtype(args.dtype))


def gpt_size(args: argparse.Namespace, shape: tuple[int, ...], n_classes: int) -> tuple[int, int]:
    """The registry's estimate, (parameters, numbers one sample keeps for backward): the
    embeddings, per block 12 E^2 weights and 13 E biases and gains, the final norm; per
    window of T positions, per block about 23 E numbers a position (norms, q|k|v, the heads'
    output, the MLP's 4E-wide hidden layer and its GELU) and the attention weights (heads x T),
    then the logits and their softmax."""
    e, t, layers = args.n_embd, args.block_size, args.n_layer
    parameters = n_classes * e + t * e + layers * (12 * e * e + 13 * e) + 2 * e
    return parameters, t * (layers * (23 * e + 2 * args.n_head * t) + 2 * n_classes + 3 * e)


def over_budget(args: argparse.Namespace, vocab_size: int) -> str | None:
    """Why the GPT the flags ask for would take more memory than a model may (None if not)."""
    from .cli_registry import MAX_MODEL_BYTES  # here: the registry imports this module
    parameters, per_sample = gpt_size(args, (args.block_size,), vocab_size)
    itemsize = np.dtype(args.dtype).itemsize
    needed = (4 * parameters + args.batch_size * per_sample) * itemsize
    if needed <= MAX_MODEL_BYTES:
        return None
    return (f"--model gpt with these sizes would take {needed / (1 << 30):.1f} GiB ({parameters:,} "
            f"parameters with their gradients and AdamW's state, and one batch's activations): "
            f"more than the {MAX_MODEL_BYTES >> 30} GiB a model may take; use a smaller "
            f"--n-layer, --n-embd, --block-size or --batch-size")


def not_by_epochs(args: argparse.Namespace, dtype: np.dtype, images: bool) -> tuple:
    """The registry's loader of a text set trained by iterations: never called by epochs
    (``by_iterations`` sends every such run here first)."""
    raise ValueError(f"--dataset {args.dataset} is trained by iterations: --model gpt")


def describe(model: Layer, args: argparse.Namespace) -> str:
    count = sum(p.size for p in {id(p): p for p in model.params.values()}.values())
    return (f"gpt: {args.n_layer} layers, {args.n_head} heads, {args.n_embd} wide, block "
            f"{args.block_size}, dropout {args.dropout:g}, {count / 1e6:.2f}M parameters, "
            f"{args.dtype}")


def choose_threads(model: Layer, ids: np.ndarray, args: argparse.Namespace,
                   rounds: int = 2, steps: int = 2, settle: float = 0.1) -> tuple[int, int, str]:
    """The fastest way to run a training step (forward and backward) of a copy of ``model``
    at the run's shapes, over interleaved rounds: a BLAS thread count, or (unless --workers
    was given) the batch split over one copy per core with one BLAS thread each. Before each timing, ``settle`` seconds of quiet: OpenBLAS's threads spin a while
    after a product, and would take a core from the next way's copies. Returns the BLAS
    threads, the workers, and the timings as text."""
    loss_fn, cores = SoftmaxCrossEntropy(), os.cpu_count() or 1
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(ids) - args.block_size, args.batch_size)
    x = ids[starts[:, None] + np.arange(args.block_size)]
    y = ids[starts[:, None] + np.arange(1, args.block_size + 1)]
    ways = [(n, args.workers or 1) for n in sorted({1, 2, cores} & set(range(1, cores + 1)))]
    if args.workers is None and cores > 1:
        ways.append((1, cores))
    probes = {way: DataParallel(copy.deepcopy(model), way[1]) if way[1] > 1 else copy.deepcopy(model)
              for way in ways}
    best = {way: float("inf") for way in ways}
    for lap in range(rounds + 1):            # lap 0 untimed: first allocations, threads started
        for way, probe in probes.items():
            time.sleep(settle if lap else 0)
            with threadpool_limits(limits=way[0], user_api="blas"):
                for _ in range(steps if lap else 1):
                    started = time.perf_counter()
                    loss_fn.forward(probe.forward(x), y)
                    probe.param_backward(loss_fn.backward())
                    if lap:
                        best[way] = min(best[way], time.perf_counter() - started)
    threads, workers = min(ways, key=lambda way: best[way])
    return threads, workers, ", ".join(f"{_way_text(*way)} {best[way] * 1e3:.0f} ms" for way in ways)


def _way_text(threads: int, workers: int) -> str:
    if workers > 1:
        return f"{workers} workers"
    return f"{threads} thread{'s' * (threads > 1)}"


def eval_line(logs: dict, max_iters: int) -> str:
    return (f"iter {logs['iteration']}/{max_iters} train_loss={logs['train_loss']:.4f} "
            f"val_loss={logs['val_loss']:.4f} lr={logs['lr']:.6f} seconds={logs['seconds']:.1f}")


def _resumes_ours(args: argparse.Namespace) -> bool:
    """--resume of a checkpoint this module wrote (its settings name --model gpt)."""
    if not (args.resume and args.checkpoint and os.path.isfile(args.checkpoint)):
        return False
    try:
        saved = read_extra(args.checkpoint).get("cli")
    except (OSError, ValueError):
        return False  # the epoch path says what is wrong with the file
    return isinstance(saved, dict) and saved.get("model") in ITERATION_MODELS


def _iterations_done(path: str) -> int | None:
    try:
        done = read_extra(path).get("iterations", {}).get("iteration")
    except (OSError, ValueError, AttributeError):
        return None  # fit_iterations says what is wrong with the file
    return done if isinstance(done, int) and not isinstance(done, bool) else None


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _failure(err: object, code: int = 1) -> int:
    print(f"{PROG}: error: {err}", file=sys.stderr)
    return code

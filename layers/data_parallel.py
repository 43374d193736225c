"""DataParallel: a batch split between copies of a model that run on threads of one process.

numpy runs an elementwise pass (GELU, LayerNorm, a softmax, a bias add) on one core whatever
the BLAS thread count, so a step of small matrix products and many such passes leaves the
other core mostly idle. Splitting the batch instead puts every pass on every core: each copy
runs its shard start to end with one BLAS thread, and numpy lets go of the GIL inside its
loops. Derivation: the loss reads the gathered output, so each shard's dout is its slice of
the whole dout and each copy's gradient is its shard's part of a sum over the batch; the
copies' gradients add (a sum over rows split in parts is the sum of the parts). BatchNorm,
whose rows depend on the whole batch through its mean and variance, meets its copies on the
other shards at each of its sums over the batch (``ShardSums``), as PyTorch's SyncBatchNorm.
"""
from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from .base import Layer
from .batchnorm import BatchNorm1d
from .sequential import Composite
from .validate import integer

MAX_WORKERS = 256       # each copy keeps gradients as large as the parameters


class DataParallel(Composite):
    """Run ``module`` on ``workers`` shards of the batch at once, as ``torch.nn.DataParallel``
    runs it on several devices.

    Shapes: those of ``module``, with the batch on axis 0: x (N, ...) is cut into up to
    ``workers`` contiguous shards, each copy's output is gathered back in order, and
    ``backward`` cuts dout the same way. The copies share ``module``'s parameter arrays (the
    ones an optimizer updates) and keep their own caches and gradients, which ``backward``
    adds into ``module``'s. ``params``, ``grads`` and ``buffers`` are ``module``'s, named
    ``"module.{name}"`` as PyTorch names them; save ``dp.module.state_dict()`` for a file
    that the bare model loads.

    Give BLAS one thread per worker (``threadpoolctl.threadpool_limits(1, "blas")``): two
    copies that each ask for every core wait on each other. BatchNorm takes the whole batch's
    mean and variance: its copies add their sums over their shards (PyTorch's DataParallel
    would take them per device; this is its SyncBatchNorm), and only the module's own copy
    updates the running statistics, which the copies share. Dropout draws on each shard from
    a generator of its own, ``default_rng([seed, shard])`` with the seed drawn from the layer's
    generator (the module's, which checkpoints keep): reproducible and resumable, though not
    the masks an unsplit pass would draw. It pays where the work per shard is large (a
    transformer's or a CNN's layers); a copy waits for Python's lock between numpy calls, so
    many small calls (an LSTM's time steps, a small MLP's BatchNorm meetings) run slower.

    Parameters
    ----------
    module : Layer
        The model; its input's axis 0 is the batch.
    workers : int
        Shards, and threads, at most (a batch smaller than that runs on as many as it has rows).

    Examples
    --------
    >>> from handprop.layers import Linear, ReLU, Sequential
    >>> model = Sequential(Linear(3, 4, rng=0), ReLU(), Linear(4, 2, rng=1))
    >>> dp = DataParallel(model, workers=2)
    >>> x = np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32)
    >>> bool(np.allclose(dp.forward(x), model.forward(x)))
    True
    """

    def __init__(self, module: Layer, workers: int = 2) -> None:
        if not isinstance(module, Layer):
            raise TypeError(f"DataParallel: expected a Layer, got {type(module).__name__}")
        self.workers = integer("DataParallel", "workers", workers, low=1, high=MAX_WORKERS)
        refuse_batch_dependent(module)
        super().__init__()
        self.module = module
        shared = {id(a): a for layer in module.modules() for a in vars(layer).get("params", {}).values()}
        self.copies = [module] + [copy.deepcopy(module, dict(shared)) for _ in range(self.workers - 1)]
        for twin in self.copies[1:]:
            for layer in twin.modules():
                layer.cache = None
        self.pool: ThreadPoolExecutor | None = None     # started at the first batch
        self.sizes: list[int] = []
        self.meetings: list[tuple[ShardSums, tuple[Any, ...]]] = []   # a BatchNorm's copies

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        yield "module", self.module

    def __deepcopy__(self, memo: dict) -> "DataParallel":
        """A deep copy of the module in a DataParallel of its own (threads are not copied)."""
        return DataParallel(copy.deepcopy(self.module, memo), self.workers).train(self.training)

    def __getstate__(self) -> dict:
        """For pickle: everything but the threads (and their meeting points), made anew."""
        return {**vars(self), "pool": None, "meetings": []}

    @property
    def takes_ids(self) -> bool:  # type: ignore[override]
        """Whether the input is integer token ids: the module's answer."""
        return self.module.takes_ids

    def train(self, mode: bool = True) -> "DataParallel":
        for twin in self.copies:
            twin.train(mode)
        self.training = bool(mode)
        return self

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, ...) -> the module's output for the whole batch, shards gathered on axis 0."""
        if not isinstance(x, np.ndarray) or x.ndim == 0 or len(x) == 0:
            return self.module.forward(x)           # its own checks say what is wrong
        shards = np.array_split(x, min(self.workers, len(x)))
        self.sizes = [len(s) for s in shards]
        self._share_parameters()
        self._meet_at_batch_norms(len(shards))
        if len(shards) == 1:
            return self._run("forward", shards)[0]
        owned = self._generators_per_shard()
        try:
            outs = self._run("forward", shards)
        finally:                                    # the module's own generators back
            for layer, name, generator in owned:
                setattr(layer, name, generator)
        return np.concatenate(outs)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:  # type: ignore[override]  # ids: None
        """dout (N, ...) -> dx (N, ...) (None for token ids); the copies' gradients added
        into the module's."""
        return self._backward("backward", dout)

    def param_backward(self, dout: np.ndarray) -> None:
        self._backward("param_backward", dout)

    def _backward(self, method: str, dout: np.ndarray) -> np.ndarray | None:
        if not self.sizes:
            raise RuntimeError(f"{self!r}: backward called before forward; call forward(x) first")
        if not isinstance(dout, np.ndarray) or dout.ndim == 0 or len(dout) != sum(self.sizes):
            got = dout.shape if isinstance(dout, np.ndarray) else type(dout).__name__
            raise ValueError(f"{self!r}: expected dout for the {sum(self.sizes)} rows of the "
                             f"last forward pass, got {got}")
        douts = np.split(dout, np.cumsum(self.sizes)[:-1])
        dxs = self._run(method, douts)
        grads = self.module.grads
        # one layer used twice has one gradient array under two names: add it once
        names = {id(g): name for name, g in grads.items()}.values()
        for twin in self.copies[1:len(douts)]:          # a sum over the batch, shard by shard
            twin_grads = twin.grads
            for name in names:
                grads[name] += twin_grads[name]
        if method == "param_backward" or dxs[0] is None:
            return None
        return dxs[0] if len(dxs) == 1 else np.concatenate(dxs)

    def _run(self, method: str, shards: list) -> list:
        """``method`` of copy i on shard i, shard 0 on this thread and the rest on the pool,
        each under this thread's numpy errstate; every shard finishes before an error in any
        is raised."""
        if len(shards) > 1 and self.pool is None:
            self.pool = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="DataParallel")
        meetings = [sums for sums, _ in self.meetings]
        for sums, layers in self.meetings:              # only while this call runs: the bare
            for index, layer in enumerate(layers):      # module never waits for a copy
                layer.shards = (sums, index)
        pending = [self.pool.submit(_under_errstate, np.geterr(), getattr(twin, method), shard,
                                    meetings)
                   for twin, shard in zip(self.copies[1:], shards[1:])] if self.pool else []
        try:
            first = _under_errstate(np.geterr(), getattr(self.module, method), shards[0], meetings)
        except threading.BrokenBarrierError:        # another copy failed: raise its error
            first = None
        finally:
            wait(pending)
            for _, layers in self.meetings:
                for layer in layers:
                    layer.shards = None
        failed = [p.exception() for p in pending if p.exception() is not None]
        cause = next((e for e in failed if not isinstance(e, threading.BrokenBarrierError)), None)
        if cause is not None:
            raise cause
        return [first] + [p.result() for p in pending]

    def _share_parameters(self) -> None:
        """Point every copy at the module's current parameter arrays (an optimizer moves them
        into one flat buffer after the copies were made), and at its mode (``module.eval()``
        called on the module itself)."""
        for layers in zip(*(twin.modules() for twin in self.copies)):
            own, buffers = vars(layers[0]).get("params"), vars(layers[0]).get("buffers")
            for twin in layers[1:]:
                twin.training = layers[0].training
                if own:                                 # a Composite gathers its members' instead
                    twin.params.update(own)
                if buffers:                             # BatchNorm's running statistics
                    twin.buffers.update(buffers)

    def _generators_per_shard(self) -> list[tuple[Layer, str, np.random.Generator]]:
        """Dropout on every shard from generators of its own: one seed drawn from each active
        dropout layer's generator (the module's, which checkpoints keep), then the copy on
        shard i draws from ``default_rng([seed, i])``. Returns the module's generators, to be
        put back after the forward pass."""
        owned = []
        for layers in zip(*(twin.modules() for twin in self.copies)):
            if not (layers[0].training and _drops(layers[0])):
                continue
            for name, generator in list(vars(layers[0]).items()):
                if isinstance(generator, np.random.Generator):
                    seed = int(generator.integers(2**63))
                    owned.append((layers[0], name, generator))
                    for index, twin in enumerate(layers):
                        setattr(twin, name, np.random.default_rng([seed, index]))
        return owned

    def _meet_at_batch_norms(self, parties: int) -> None:
        """A ``ShardSums`` for the copies of each BatchNorm that run this batch, to add their
        statistics in: the mean and variance are the whole batch's (PyTorch's SyncBatchNorm)."""
        self.meetings = [(ShardSums(parties), layers[:parties])
                         for layers in zip(*(twin.modules() for twin in self.copies))
                         if isinstance(layers[0], BatchNorm1d) and parties > 1]

    def extra_repr(self) -> str:
        return f"workers={self.workers}"


class ShardSums:
    """Sums over a whole batch for the copies of one BatchNorm that run its shards: each copy
    hands in its row count and its sums over its rows, waits for the others, and every copy
    reads the same totals, added in shard order. A copy that fails aborts the barrier (in
    ``DataParallel._run``), so the others raise instead of waiting for it.

    One barrier a sum: the parts alternate between two lists, so a copy that runs ahead to
    the next sum writes where no copy still reads (it can get there only after every copy has
    reached this sum's barrier, and so has read the sum before).
    """

    def __init__(self, parties: int) -> None:
        self.parts: list[list[Any]] = [[None] * parties, [None] * parties]
        self.calls = [0] * parties                  # the sums each copy has asked for
        self.barrier = threading.Barrier(parties)

    def total(self, index: int, rows: int, sums: tuple[np.ndarray, ...]) -> tuple[int, list[np.ndarray]]:
        parts = self.parts[self.calls[index] % 2]
        self.calls[index] += 1
        parts[index] = (rows, sums)
        self.barrier.wait()
        n = sum(part[0] for part in parts)
        return n, [functools.reduce(np.add, [part[1][k] for part in parts]) for k in range(len(sums))]


def _under_errstate(errors: Any, method: Callable, shard: np.ndarray, meetings: list) -> Any:
    """``method(shard)`` under the caller's errstate (numpy keeps it per thread); if it fails,
    the BatchNorms' barriers are broken, so that no other copy waits for this one."""
    try:
        with np.errstate(**errors):
            return method(shard)
    except BaseException:
        for sums in meetings:
            sums.barrier.abort()
        raise


def refuse_batch_dependent(module: Layer) -> None:
    """A ValueError naming the first layer whose training pass a batch split would change."""
    for path, layer in module.named_modules():
        where = f"{type(layer).__name__} at {path!r}" if path else type(layer).__name__
        if vars(layer).get("buffers") and not isinstance(layer, BatchNorm1d):
            raise ValueError(f"DataParallel: expected a module whose only buffers are "
                             f"BatchNorm's (whose statistics it adds over the shards), got "
                             f"{where} with buffers {sorted(layer.buffers)}")
        if _drops(layer) and not any(isinstance(v, np.random.Generator) for v in vars(layer).values()):
            raise ValueError(f"DataParallel: expected dropout to draw from a generator the "
                             f"layer owns (as rng), got {where} ({layer!r})")


def _drops(layer: Layer) -> bool:
    """Whether the layer applies dropout in training mode: a float ``p`` or ``dropout`` > 0."""
    return any(isinstance(getattr(layer, name, 0), float) and getattr(layer, name) > 0
               for name in ("p", "dropout"))

"""DataParallel: a batch split between copies of a model that run on threads of one process.

numpy runs an elementwise pass (GELU, LayerNorm, a softmax, a bias add) on one core whatever
the BLAS thread count, so a step of small matrix products and many such passes leaves the
other core mostly idle. Splitting the batch instead puts every pass on every core: each copy
runs its shard start to end with one BLAS thread, and numpy lets go of the GIL inside its
loops. Derivation: the loss reads the gathered output, so each shard's dout is its slice of
the whole dout and each copy's gradient is its shard's part of a sum over the batch; the
copies' gradients add (a sum over rows split in parts is the sum of the parts).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from .base import Layer
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
    copies that each ask for every core wait on each other. A module whose training pass
    depends on the batch as a whole, or draws random numbers, is refused: BatchNorm (a
    shard's statistics are not the batch's; PyTorch's DataParallel takes them per device)
    and dropout (each copy would repeat one generator's draws).

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

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        yield "module", self.module

    def __deepcopy__(self, memo: dict) -> "DataParallel":
        """A deep copy of the module in a DataParallel of its own (threads are not copied)."""
        return DataParallel(copy.deepcopy(self.module, memo), self.workers).train(self.training)

    def __getstate__(self) -> dict:
        """For pickle: everything but the threads, which the copy starts anew."""
        return {**vars(self), "pool": None}

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
        outs = self._run("forward", shards)
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

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
        pending = [self.pool.submit(_under_errstate, np.geterr(), getattr(twin, method), shard)
                   for twin, shard in zip(self.copies[1:], shards[1:])] if self.pool else []
        try:
            first = getattr(self.module, method)(shards[0])
        finally:
            wait(pending)
        return [first] + [p.result() for p in pending]

    def _share_parameters(self) -> None:
        """Point every copy at the module's current parameter arrays (an optimizer moves them
        into one flat buffer after the copies were made), and at its mode (``module.eval()``
        called on the module itself)."""
        for layers in zip(*(twin.modules() for twin in self.copies)):
            own = vars(layers[0]).get("params")
            for twin in layers[1:]:
                twin.training = layers[0].training
                if own:                                 # a Composite gathers its members' instead
                    twin.params.update(own)

    def extra_repr(self) -> str:
        return f"workers={self.workers}"


def _under_errstate(errors: Any, method: Callable, shard: np.ndarray) -> Any:
    """``method(shard)`` under the caller's errstate: numpy keeps it per thread."""
    with np.errstate(**errors):
        return method(shard)


def refuse_batch_dependent(module: Layer) -> None:
    """A ValueError naming the first layer whose training pass a batch split would change."""
    for path, layer in module.named_modules():
        where = f"{type(layer).__name__} at {path!r}" if path else type(layer).__name__
        if vars(layer).get("buffers"):
            raise ValueError(f"DataParallel: expected a module without batch statistics, got "
                             f"{where} with buffers {sorted(layer.buffers)}: each shard would "
                             f"see its own statistics; LayerNorm has none, or train unsplit")
        if any(isinstance(getattr(layer, name, 0), float) and getattr(layer, name) > 0
               for name in ("p", "dropout")):
            raise ValueError(f"DataParallel: expected a module without dropout, got {where} "
                             f"({layer!r}): its copies would repeat one generator's draws; "
                             f"build it with dropout 0, or train unsplit")

"""Gate by gate: a small reverse-mode autograd engine over float64 numpy arrays.

Write a forward pass as gates, each intermediate a named ``Var``, and call ``backward`` on the
result: every Var it depends on holds its gradient in ``.grad``. ``compare`` sets a staged
backward beside them and names the first wrong intermediate in backward order. Micrograd over
arrays, written to be read: a gate computes its output from its inputs' ``.data`` and leaves a
closure ``backward(dout)`` handing each input ``dout`` times its local derivative, a line each.

Two rules do the rest, in ``Var._add``: a gradient is summed back to its input's shape where the
forward broadcast (``sum_to_shape``), and gradients add where a Var is used more than once.

Examples
--------
>>> x = Var([[1.0, 2.0], [3.0, 4.0]], name="x")          # (2, 2)
>>> b = Var([10.0, 20.0], name="b")                        # (2,), broadcast over the rows
>>> y = (x * x + b).sum()                                  # x used twice
>>> y.backward()
>>> x.grad                                                 # 2x: the two uses of x add
array([[2., 4.],
       [6., 8.]])
>>> b.grad                                                 # summed over the rows it was copied to
array([2., 2.])

Gates: ``+ - * /`` and unary ``-``, ``**`` with a constant exponent, ``@`` (batched over
leading axes), ``exp log tanh``, ``sum mean max`` (``axis``, ``keepdims``), ``reshape``, ``.T``,
``transpose``, indexing (integers, slices, integer arrays), and the functions ``maximum``,
``where``, ``concatenate``. Plain numbers and arrays mix with Vars on either side as constants.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .gate_compare import GateReport, compare, trace

__all__ = ["Var", "sum_to_shape", "maximum", "where", "concatenate", "topological_order", "trace",
           "compare", "GateReport"]

Backward = Callable[[np.ndarray], None]
_serials = itertools.count()   # creation order: every Var is made after the Vars it is made from


def sum_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a gradient back to the shape of the input it flows to.

    The broadcasting rule: numpy aligns two shapes at their last axes, gives the shorter one
    leading axes of size 1, and stretches every axis of size 1 to the other's size. Each
    stretched copy is the same input element used again, and gradients add where a value is
    used more than once. So backward sums ``grad`` over the leading axes the input lacks, then,
    keeping them, over every axis where the input has size 1 and ``grad`` has more.

    >>> sum_to_shape(np.ones((2, 3, 4)), (3, 1))           # each element was copied 2 * 4 times
    array([[8.],
           [8.],
           [8.]])
    """
    leading = tuple(range(grad.ndim - len(shape)))
    grad = np.sum(grad, axis=leading)
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    return np.sum(grad, axis=stretched, keepdims=True)


class Var:
    """A float64 array (a copy of ``data``) in a graph of gates, with its gradient in ``.grad``.

    ``name`` labels it in ``trace`` and ``compare``; ``op`` is the gate that made it ("" for a
    leaf), ``parents`` the Vars that gate read. ``.grad`` is None until a ``backward`` reaches it,
    then a float64 array of ``shape``.
    """

    __array_ufunc__ = None   # ndarray + Var: numpy steps aside and Var.__radd__ builds the gate

    def __init__(self, data: Any, name: str | None = None) -> None:
        self.data = np.array(data, dtype=np.float64)
        self.name = name
        self.grad: np.ndarray | None = None
        self.op = ""
        self.parents: tuple[Var, ...] = ()
        self._backward: Backward | None = None
        self.serial = next(_serials)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    def __repr__(self) -> str:
        named = f"{self.name!r}, " if self.name else ""
        made = f", op={self.op!r}" if self.op else ""
        return f"Var({named}shape={self.shape}{made})"

    def _add(self, grad: np.ndarray) -> None:
        """Receive one gate's share of the gradient: broadcasts summed, uses added."""
        assert self.grad is not None
        self.grad += sum_to_shape(grad, self.shape)

    # ---- backward ---------------------------------------------------------------------

    def backward(self, dout: Any = None) -> None:
        """Fill ``.grad`` of every Var this one depends on with d(sum(self * dout))/dVar.

        ``dout`` has this Var's shape; None means 1 and needs a Var of one element (a loss).
        Each call starts from zero gradients: like a layer's backward it overwrites, so there is
        no ``zero_grad``. The gates run in reverse topological order: a Var's gradient is
        complete, every use added in, before its own gate passes it on.
        """
        if dout is None:
            if self.size != 1:
                raise ValueError(f"{self!r}.backward(): dout = 1 needs a Var of one element; "
                                 f"pass dout of shape {self.shape}")
            dout = np.ones(self.shape)
        dout = np.array(dout, dtype=np.float64)
        if dout.shape != self.shape:
            raise ValueError(f"{self!r}.backward(): expected dout of shape {self.shape}, "
                             f"got {dout.shape}")
        order = topological_order([self])
        for var in order:
            var.grad = np.zeros(var.shape)
        self.grad = dout
        for var in reversed(order):
            if var._backward is not None and var.grad is not None:   # every grad was set above
                var._backward(var.grad)

    # ---- elementwise arithmetic -------------------------------------------------------

    def __add__(self, other: Any) -> Var:
        a, b = self, _as_var(other)
        def backward(dout: np.ndarray) -> None:
            a._add(dout)                           # d(a + b)/da = 1
            b._add(dout)                           # d(a + b)/db = 1
        return _gate("+", _broadcast("+", a, b, np.add), (a, b), backward)

    def __sub__(self, other: Any) -> Var:
        a, b = self, _as_var(other)
        def backward(dout: np.ndarray) -> None:
            a._add(dout)                           # d(a - b)/da = 1
            b._add(-dout)                          # d(a - b)/db = -1
        return _gate("-", _broadcast("-", a, b, np.subtract), (a, b), backward)

    def __mul__(self, other: Any) -> Var:
        a, b = self, _as_var(other)
        def backward(dout: np.ndarray) -> None:
            a._add(dout * b.data)                  # d(a b)/da = b
            b._add(dout * a.data)                  # d(a b)/db = a
        return _gate("*", _broadcast("*", a, b, np.multiply), (a, b), backward)

    def __truediv__(self, other: Any) -> Var:
        a, b = self, _as_var(other)
        def backward(dout: np.ndarray) -> None:
            a._add(dout / b.data)                  # d(a / b)/da = 1 / b
            b._add(-dout * a.data / b.data**2)     # d(a / b)/db = -a / b^2
        return _gate("/", _broadcast("/", a, b, np.divide), (a, b), backward)

    def __neg__(self) -> Var:
        a = self
        def backward(dout: np.ndarray) -> None:
            a._add(-dout)                          # d(-a)/da = -1
        return _gate("neg", -a.data, (a,), backward)

    def __pow__(self, exponent: float) -> Var:
        if isinstance(exponent, Var) or np.ndim(exponent) != 0:
            raise TypeError(f"{self!r} ** ...: expected a constant number as the exponent, got "
                            f"{exponent!r}; for a Var exponent b write (b * a.log()).exp()")
        a, p = self, float(exponent)
        def backward(dout: np.ndarray) -> None:
            a._add(dout * p * a.data ** (p - 1))   # d(a^p)/da = p a^(p-1)
        return _gate(f"**{p:g}", a.data**p, (a,), backward)

    def __radd__(self, other: Any) -> Var:   # other + self, other a constant
        return _as_var(other) + self

    def __rsub__(self, other: Any) -> Var:   # other - self, other a constant
        return _as_var(other) - self

    def __rmul__(self, other: Any) -> Var:   # other * self, other a constant
        return _as_var(other) * self

    def __rtruediv__(self, other: Any) -> Var:   # other / self, other a constant
        return _as_var(other) / self

    # ---- matrix product ---------------------------------------------------------------

    def __matmul__(self, other: Any) -> Var:
        a, b = self, _as_var(other)
        if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"{a!r} @ {b!r}: expected (..., M, K) @ (..., K, P), got "
                             f"{a.shape} @ {b.shape}")
        am = a.data if a.ndim > 1 else a.data[None, :]       # a vector is a (1, K) matrix
        bm = b.data if b.ndim > 1 else b.data[:, None]       # and a (K, 1) one on the right
        _check_broadcast(f"{a!r} @ {b!r}: the leading axes", am.shape[:-2], bm.shape[:-2])
        def backward(dout: np.ndarray) -> None:
            g = dout.reshape(np.matmul(am, bm).shape)        # (..., M, P)
            a._add(sum_to_shape(g @ bm.swapaxes(-1, -2), am.shape).reshape(a.shape))   # dA = dout B^T
            b._add(sum_to_shape(am.swapaxes(-1, -2) @ g, bm.shape).reshape(b.shape))   # dB = A^T dout
        return _gate("@", np.matmul(a.data, b.data), (a, b), backward)

    def __rmatmul__(self, other: Any) -> Var:   # other @ self, other a constant
        return _as_var(other) @ self

    # ---- elementwise functions --------------------------------------------------------

    def exp(self) -> Var:
        a, e = self, np.exp(self.data)
        def backward(dout: np.ndarray) -> None:
            a._add(dout * e)                       # d exp(a)/da = exp(a)
        return _gate("exp", e, (a,), backward)

    def log(self) -> Var:
        a = self
        def backward(dout: np.ndarray) -> None:
            a._add(dout / a.data)                  # d log(a)/da = 1 / a
        return _gate("log", np.log(a.data), (a,), backward)

    def tanh(self) -> Var:
        a, t = self, np.tanh(self.data)
        def backward(dout: np.ndarray) -> None:
            a._add(dout * (1 - t * t))             # d tanh(a)/da = 1 - tanh(a)^2
        return _gate("tanh", t, (a,), backward)

    # ---- reductions -------------------------------------------------------------------

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Var:
        a, axes = self, _axes(self, axis)
        def backward(dout: np.ndarray) -> None:    # every summed element counts once
            a._add(np.broadcast_to(_kept(dout, axes, keepdims), a.shape))
        return _gate("sum", a.data.sum(axis=axes, keepdims=keepdims), (a,), backward)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Var:
        a, axes = self, _axes(self, axis)
        count = int(np.prod([self.shape[i] for i in axes]))
        def backward(dout: np.ndarray) -> None:    # every element counts 1 / count
            a._add(np.broadcast_to(_kept(dout, axes, keepdims) / count, a.shape))
        return _gate("mean", a.data.mean(axis=axes, keepdims=keepdims), (a,), backward)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Var:
        """The maximum over ``axis``; its gradient goes to the first maximum only, as
        ``torch.max(x, dim)`` (``x.max()`` and ``amax`` in PyTorch split it among ties)."""
        a, axes = self, _axes(self, axis)
        first = _first_max_mask(a.data, axes)      # (a.shape) 1 at each first maximum
        def backward(dout: np.ndarray) -> None:
            a._add(first * _kept(dout, axes, keepdims))   # d max/da = 1 at the maximum, else 0
        return _gate("max", a.data.max(axis=axes, keepdims=keepdims), (a,), backward)

    # ---- shapes and indexing ----------------------------------------------------------

    def reshape(self, *shape: Any) -> Var:
        a = self
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], Sequence) else shape
        if -1 not in shape and int(np.prod(shape)) != a.size:
            raise ValueError(f"{a!r}.reshape{shape}: {a.size} elements do not fit shape {shape}")
        def backward(dout: np.ndarray) -> None:
            a._add(dout.reshape(a.shape))          # the same elements, laid out again
        return _gate("reshape", a.data.reshape(shape), (a,), backward)

    def transpose(self, *axes: int) -> Var:
        a = self
        order = tuple(range(a.ndim))[::-1] if not axes else tuple(np.arange(a.ndim)[list(axes)])
        back = tuple(int(i) for i in np.argsort(order))
        def backward(dout: np.ndarray) -> None:
            a._add(dout.transpose(back))           # the inverse permutation
        return _gate("transpose", a.data.transpose(order), (a,), backward)

    @property
    def T(self) -> Var:
        return self.transpose()

    def __getitem__(self, index: Any) -> Var:
        a = self
        if isinstance(index, Var) or (isinstance(index, tuple) and any(isinstance(i, Var) for i in index)):
            raise TypeError(f"{a!r}[...]: index with integers, slices or integer arrays, not a Var")
        try:
            picked = a.data[index]
        except IndexError as err:
            raise IndexError(f"{a!r}[{index!r}]: {err}") from None
        def backward(dout: np.ndarray) -> None:
            scattered = np.zeros(a.shape)
            np.add.at(scattered, index, dout)      # an element picked twice gets both gradients
            a._add(scattered)
        return _gate("[]", picked, (a,), backward)


# ---- gates over several Vars --------------------------------------------------------------


def maximum(a: Any, b: Any) -> Var:
    """Elementwise maximum; ``b`` (or ``a``) may be a constant. A tie sends half the gradient
    each way, as ``torch.maximum``."""
    a, b = _as_var(a), _as_var(b)
    a_wins = (a.data > b.data) + 0.5 * (a.data == b.data)   # broadcast shape
    def backward(dout: np.ndarray) -> None:
        a._add(dout * a_wins)                      # d max(a, b)/da = [a > b]
        b._add(dout * (1 - a_wins))                # d max(a, b)/db = [b > a]
    return _gate("maximum", _broadcast("maximum", a, b, np.maximum), (a, b), backward)


def where(condition: Any, a: Any, b: Any) -> Var:
    """``a`` where ``condition`` (a boolean array, a constant) holds, else ``b``."""
    cond = np.asarray(condition.data if isinstance(condition, Var) else condition, dtype=bool)
    a, b = _as_var(a), _as_var(b)
    _check_broadcast("where(condition, a, b)", cond.shape, a.shape, b.shape)
    def backward(dout: np.ndarray) -> None:
        a._add(np.where(cond, dout, 0.0))          # the gradient goes to the chosen side
        b._add(np.where(cond, 0.0, dout))
    return _gate("where", np.where(cond, a.data, b.data), (a, b), backward)


def concatenate(vars: Sequence[Any], axis: int = 0) -> Var:
    """Join Vars (or constants) along ``axis``; the gradient is cut back into the same pieces."""
    parts = tuple(_as_var(v) for v in vars)
    try:
        joined = np.concatenate([p.data for p in parts], axis=axis)
    except ValueError as err:  # numpy's AxisError is a ValueError too
        raise ValueError(f"concatenate({[p.shape for p in parts]}, axis={axis}): {err}") from None
    ends = np.cumsum([p.shape[axis] for p in parts])[:-1]
    def backward(dout: np.ndarray) -> None:
        for part, piece in zip(parts, np.split(dout, ends, axis=axis)):
            part._add(piece)
    return _gate("concatenate", joined, parts, backward)


def topological_order(roots: Iterable[Var]) -> list[Var]:
    """Every Var the roots depend on, each after all of its parents (inputs first)."""
    order: list[Var] = []
    seen: set[Var] = set()
    for root in roots:
        stack = [(root, False)]
        while stack:
            var, parents_done = stack.pop()
            if parents_done:
                order.append(var)
            elif var not in seen:
                seen.add(var)
                stack.append((var, True))
                stack.extend((parent, False) for parent in reversed(var.parents))
    return order


# ---- helpers ---------------------------------------------------------------------------------


def _gate(op: str, data: np.ndarray, parents: tuple[Var, ...], backward: Backward) -> Var:
    out = Var(data)
    out.op, out.parents, out._backward = op, parents, backward
    return out


def _as_var(value: Any) -> Var:
    """A Var as it is; a number or an array as a constant (a leaf nobody reads the gradient of)."""
    return value if isinstance(value, Var) else Var(value)


def _broadcast(symbol: str, a: Var, b: Var, fn: Callable[..., Any]) -> np.ndarray:
    """fn(a.data, b.data), after a clear error if the two shapes do not broadcast."""
    _check_broadcast(f"{a!r} {symbol} {b!r}", a.shape, b.shape)
    return fn(a.data, b.data)


def _check_broadcast(what: str, *shapes: tuple[int, ...]) -> None:
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{what}: shapes {' and '.join(map(str, shapes))} do not broadcast "
                         f"(aligned at the last axis, each pair of sizes must be equal or one "
                         f"of them 1)") from None


def _axes(a: Var, axis: int | tuple[int, ...] | None) -> tuple[int, ...]:
    """``axis`` as a tuple of non-negative axes of ``a`` (None: all of them)."""
    if axis is None:
        return tuple(range(a.ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if any(not -a.ndim <= i < a.ndim for i in axes):
        raise ValueError(f"{a!r}: axis {axis} is out of range for {a.ndim} axes")
    return tuple(sorted(int(i) % a.ndim for i in axes))


def _kept(dout: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """A reduction's gradient with its reduced axes back as size 1, ready to broadcast."""
    return dout if keepdims else np.expand_dims(dout, axes)


def _first_max_mask(data: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """1.0 at the first maximum (in C order) over ``axes`` of each slice, 0.0 elsewhere."""
    moved = np.moveaxis(data, axes, tuple(range(-len(axes), 0)))
    flat = moved.reshape(moved.shape[:moved.ndim - len(axes)] + (-1,))
    mask = np.zeros(flat.shape)
    np.put_along_axis(mask, flat.argmax(axis=-1)[..., None], 1.0, axis=-1)
    return np.moveaxis(mask.reshape(moved.shape), tuple(range(-len(axes), 0)), axes)


"""Argument checks and the messages they share: one home for every constructor and option.

Every check names who is asking (``"Adam"``, ``"BatchNorm1d(4)"``) and the argument, and says
what it expected and what it got. A value of the wrong type is a TypeError; a value of the
right type outside its range is a ValueError. A bool is never a number here, although Python
lets ``True`` pass for ``1``: ``eps=True`` is a mistake, not a tiny epsilon.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np


def real(who: str, name: str, value: object, *, low: float | None = None,
         high: float | None = None, low_open: bool = False, high_open: bool = False,
         finite: bool = True) -> float:
    """``value`` as a float, checked to be a real number (not a bool) within the bounds.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``; ``finite=False`` lets
    infinity through (a bound still applies to it).

    >>> real("SGD", "momentum", 0.9, low=0, high=1, high_open=True)
    0.9
    >>> real("SGD", "momentum", True)
    Traceback (most recent call last):
    TypeError: SGD: expected momentum as a real number, got True
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: expected {name} as a real number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int past the largest float: lr=10**400
        raise ValueError(f"{who}: expected a finite {name}, got {_shown(value)}, past the largest "
                         f"float") from None
    if np.isnan(number) or (finite and not np.isfinite(number)):
        raise ValueError(f"{who}: expected a finite {name}, got {value!r}")
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above:
        raise ValueError(f"{who}: expected {name} {_interval(low, high, low_open, high_open)}, "
                         f"got {value!r}")
    return number


def integer(who: str, name: str, value: object, *, low: int | None = None,
            high: int | None = None) -> int:
    """``value`` as an int, checked to be a whole number (not a bool, not a float) in
    ``[low, high]``.

    >>> integer("Linear", "in_features", 3, low=1)
    3
    >>> integer("Linear", "in_features", 0, low=1)
    Traceback (most recent call last):
    ValueError: Linear: expected in_features >= 1, got 0
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who}: expected {name} to be an int, got {_shown(value)}")
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"{who}: expected {name} {_interval(low, high, False, False)}, "
                         f"got {_shown(number)}")
    return number


def flag(who: str, name: str, value: object) -> bool:
    """``value`` checked to be True or False (numpy's bool included), never 0, 1 or "yes"."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: expected {name} to be True or False, got {value!r}")
    return bool(value)


def choice(who: str, name: str, value: object, choices: Iterable[Any]) -> Any:
    """``value`` checked to be one of ``choices`` (a TypeError for a non-string among strings)."""
    options = tuple(choices)
    if all(isinstance(c, str) for c in options) and not isinstance(value, str):
        raise TypeError(f"{who}: expected {name} as one of {_listed(options)}, got {value!r}")
    if value not in options:
        raise ValueError(f"{who}: expected {name} as one of {_listed(options)}, got {value!r}")
    return value


FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
USE = "use float16, float32 or float64"


def float_dtype(who: str, dtype: Any) -> np.dtype:
    """A dtype argument, which must be float16, float32 or float64: the dtypes every layer
    keeps as given. numpy's longdouble is refused (scipy and BLAS have no loops for it).

    >>> float_dtype("Linear", "float16")
    dtype('float16')
    >>> float_dtype("Linear", np.longdouble)
    Traceback (most recent call last):
    TypeError: Linear: expected a floating-point dtype, got float128; use float16, float32 or float64
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{who}: expected a floating-point dtype, got {dtype!r}; {USE}") from None
    if isinstance(dtype, (bool, float)):    # np.dtype(True) is bool, np.dtype(nan) an error
        raise TypeError(f"{who}: expected a floating-point dtype, got {dtype!r}; {USE}")
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{who}: expected a floating-point dtype, got {dt}; {USE}")
    return dt


def generator(who: str, rng: object, name: str = "rng") -> np.random.Generator:
    """A layer's own random generator from ``rng``: None (fresh entropy), a seed (an int >= 0
    or a sequence of them), a ``SeedSequence`` or ``BitGenerator``, or a ``Generator`` itself
    (used as is, not copied), as ``numpy.random.default_rng`` takes them.

    >>> generator("Dropout", -1)
    Traceback (most recent call last):
    ValueError: Dropout: expected rng as a seed >= 0, got -1
    """
    if rng is None or isinstance(rng, (np.random.Generator, np.random.BitGenerator,
                                       np.random.SeedSequence)):
        return np.random.default_rng(rng)
    seeds = list(rng) if isinstance(rng, (list, tuple)) and rng else [rng]
    expected = (f"{who}: expected {name} as a seed (an int >= 0, or a sequence of them) or a "
                f"numpy.random.Generator, got {rng!r}")
    for seed in seeds:
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
            raise TypeError(expected)
        if seed < 0:
            raise ValueError(f"{who}: expected {name} as a seed >= 0, got {rng!r}")
    return np.random.default_rng(rng)  # type: ignore[arg-type]


def spawn(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``n`` independent child generators of ``rng``: numpy's ``Generator.spawn``, which numpy
    1.24 (our minimum) lacks, drawn the same way (from the generator's seed sequence), so that a
    seed builds the same model under every supported numpy."""
    bits = rng.bit_generator
    seed_seq = getattr(bits, "seed_seq", None) or bits._seed_seq  # type: ignore[attr-defined]  # 1.25+: public
    return [np.random.Generator(type(bits)(child)) for child in seed_seq.spawn(n)]


MAX_PARAMETER_BYTES = 2 ** 32
"""The memory bound of the Python API's builders: the parameters of one layer or model
(``Linear``, ``Conv2d``, ``Embedding``, ``mlp``, ``cnn``, ``gpt``, ...) and their gradients,
``2 * count * itemsize`` bytes, may take at most this (4 GiB, about 500 million float32
parameters; a GPT-2 small's 124 million take 1 GiB). A size beyond it is refused before
anything is allocated, rather than a MemoryError (or the machine swapping) halfway through.
Raise it, ``handprop.layers.validate.MAX_PARAMETER_BYTES = 2 ** 36``, to build larger."""


def parameter_budget(who: str, count: int, dtype: np.dtype) -> int:
    """``count`` parameters of ``dtype`` checked against ``MAX_PARAMETER_BYTES`` (with their
    gradients) before they are allocated: a ValueError that says how much they would take.

    >>> parameter_budget("Linear", 2 ** 38, np.dtype(np.float32))    # Linear(2**36, 4)
    Traceback (most recent call last):
    ValueError: Linear: 274,877,906,944 parameters of float32 and their gradients would take 2,048.0 GiB, over the 4.0 GiB bound (handprop.layers.validate.MAX_PARAMETER_BYTES); use smaller sizes
    """
    needed = 2 * int(count) * np.dtype(dtype).itemsize
    if needed > MAX_PARAMETER_BYTES:
        raise ValueError(f"{who}: {count:,} parameters of {np.dtype(dtype)} and their gradients "
                         f"would take {_gib(needed)}, over the {_gib(MAX_PARAMETER_BYTES)} bound "
                         f"(handprop.layers.validate.MAX_PARAMETER_BYTES); use smaller sizes")
    return int(count)


def _gib(n: int) -> str:
    return f"{n / 2 ** 30:,.1f} GiB"


def mismatch(missing: Iterable[object], unexpected: Iterable[object]) -> str:
    """The message for two sets of names that should have matched:
    ``"missing W, b; unexpected gamma"``.

    >>> mismatch(["W"], [])
    'missing W'
    >>> mismatch(["0.W"], ["module.0.W"])
    "every name differs by the prefix 'module.' (from a DataParallel: use its .module)"
    """
    lacking, extra = [str(m) for m in missing], [str(u) for u in unexpected]
    for ours, theirs, advice in ((lacking, extra, "from a DataParallel: use its .module"),
                                 (extra, lacking, "for a DataParallel: use its .module")):
        if ours and sorted(f"{PREFIX}{name}" for name in ours) == sorted(theirs):
            return f"every name differs by the prefix {PREFIX!r} ({advice})"
    parts = [f"missing {', '.join(lacking)}"] if lacking else []
    parts += [f"unexpected {', '.join(extra)}"] if extra else []
    return "; ".join(parts)


PREFIX = "module."       # DataParallel's names, as torch.nn.DataParallel's


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}"


def _shown(value: object) -> str:
    """``repr(value)``, except that an int too long to read (or, past 4,300 digits, for Python
    to print) is shown by its size: ``an int of about 401 digits``."""
    if isinstance(value, numbers.Integral) and abs(int(value)).bit_length() > 200:
        return f"an int of about {int(abs(int(value)).bit_length() * 0.30103) + 1} digits"
    return repr(value)


def _listed(options: tuple) -> str:
    return ", ".join(repr(o) for o in options)

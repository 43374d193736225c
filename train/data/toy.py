"""Toy problems made on the fly: spiral arms and half-moons to classify, a noisy curve to fit.

Each takes a seed (an int >= 0), a floating-point ``dtype`` and at most ``MAX_TOY_SAMPLES``
(10**7) samples in all; anything else is a TypeError or ValueError naming the argument."""
from __future__ import annotations

import numpy as np

from ...layers import validate

# The most samples a toy problem makes: 10**7 points are 160 MB of float64 coordinates on the
# way, a size bound stated before anything is allocated rather than a MemoryError.
MAX_TOY_SAMPLES = 10**7


def _checked(who: str, n_samples: int, seed: object, dtype: object) -> tuple[int, np.dtype]:
    """The options every toy problem shares: at most ``MAX_TOY_SAMPLES`` samples, a seed that
    is an int >= 0, and a floating-point dtype (``int`` would round every point to 0)."""
    if n_samples > MAX_TOY_SAMPLES:
        raise ValueError(f"{who}: expected at most MAX_TOY_SAMPLES = {MAX_TOY_SAMPLES:,} samples in "
                         f"all, got {n_samples:,}")
    return validate.integer(who, "seed", seed, low=0), validate.float_dtype(who, dtype)


def spiral(n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: int = 0,
           dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The classic two-dimensional toy problem: ``n_classes`` interleaved spiral arms.

    Point i of arm k sits at radius r = i / (n - 1) and angle 4 (k + r) plus Gaussian noise of
    standard deviation ``noise``, so no linear model separates the arms.

    Returns
    -------
    X : ndarray (n_per_class * n_classes, 2) of ``dtype``
    y : ndarray (n_per_class * n_classes,) of int64, the arm of each point
    """
    n_per_class = validate.integer("spiral", "n_per_class", n_per_class, low=1)
    n_classes = validate.integer("spiral", "n_classes", n_classes, low=2)
    noise = validate.real("spiral", "noise", noise, low=0)
    seed, dtype = _checked("spiral", n_per_class * n_classes, seed, dtype)
    rng = np.random.default_rng(seed)
    r = np.linspace(0.0, 1.0, n_per_class)
    arms = []
    for k in range(n_classes):
        angle = 4 * (k + r) + noise * rng.standard_normal(n_per_class)
        arms.append(np.column_stack([r * np.sin(angle), r * np.cos(angle)]))
    X = np.concatenate(arms).astype(dtype)
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y


def moons(n_samples: int = 200, noise: float = 0.1, seed: int = 0,
          dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half-moons, a binary toy problem (as scikit-learn's ``make_moons``).

    Class 0 is the upper half-circle (cos t, sin t), class 1 the lower one shifted to
    (1 - cos t, 1/2 - sin t), for t evenly spaced in [0, pi]; Gaussian noise of standard
    deviation ``noise`` is added to both coordinates. No line separates the two.

    Returns
    -------
    X : ndarray (n_samples, 2) of ``dtype``
    y : ndarray (n_samples,) of int64, 0 or 1; ``y[:, None]`` for a one-logit model's targets
    """
    n_samples = validate.integer("moons", "n_samples", n_samples, low=2)
    noise = validate.real("moons", "noise", noise, low=0)
    seed, dtype = _checked("moons", n_samples, seed, dtype)
    rng = np.random.default_rng(seed)
    n_upper = n_samples // 2
    t_upper = np.linspace(0.0, np.pi, n_upper)
    t_lower = np.linspace(0.0, np.pi, n_samples - n_upper)
    upper = np.column_stack([np.cos(t_upper), np.sin(t_upper)])
    lower = np.column_stack([1 - np.cos(t_lower), 0.5 - np.sin(t_lower)])
    X = np.concatenate([upper, lower]) + noise * rng.standard_normal((n_samples, 2))
    y = np.repeat([0, 1], [n_upper, n_samples - n_upper])
    return X.astype(dtype), y


def noisy_curve(n_samples: int = 200, noise: float = 0.1, seed: int = 0,
                dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """A 1-D regression toy problem: y = sin(3 x) + Gaussian noise, for x uniform in [-1, 1].

    ``noise`` is the noise's standard deviation, so ``noise ** 2`` is the smallest mean squared
    error any model can reach on fresh samples: a model that gets close has learned the curve
    and not the noise.

    Returns
    -------
    X : ndarray (n_samples, 1) of ``dtype``, the inputs
    y : ndarray (n_samples, 1) of ``dtype``, the noisy values, shaped as a one-output model's
    """
    n_samples = validate.integer("noisy_curve", "n_samples", n_samples, low=1)
    noise = validate.real("noisy_curve", "noise", noise, low=0)
    seed, dtype = _checked("noisy_curve", n_samples, seed, dtype)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n_samples, 1))
    y = np.sin(3 * x) + noise * rng.standard_normal((n_samples, 1))
    return x.astype(dtype), y.astype(dtype)

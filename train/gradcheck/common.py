"""What every family of checks shares: the type of a family's list, and seeded inputs."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

# A family is a function ``NAME_checks(seed: int = 0) -> Checks``: (name, make) pairs, where
# ``make()`` returns the arguments of one ``gradcheck`` call, (layer, x) or (loss, pred, target);
# a name starts with the class it checks.
Checks = list[tuple[str, Callable[[], tuple]]]


def normal(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """Float64 standard-normal draws (times ``scale``) from a generator seeded with ``seed``."""
    return scale * np.random.default_rng(seed).standard_normal(shape)

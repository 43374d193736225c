"""cnn(...): the small convolutional network that ``python -m handprop.train --model cnn`` trains."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import check_size, float_dtype
from .batchnorm2d import BatchNorm2d
from .conv import Conv2d
from .flatten import Flatten
from .linear import Linear
from .pool import MaxPool2d
from .relu import ReLU
from .sequential import Sequential
from .tanh import Tanh

ACTIVATIONS = {"relu": ReLU, "tanh": Tanh}


def cnn(in_shape: Sequence[int] = (1, 28, 28), n_classes: int = 10,
        channels: Sequence[int] = (16, 32), *, activation: str = "relu", batchnorm: bool = True,
        seed: int = 0, dtype=np.float32) -> Sequential:
    """One block per entry of ``channels``, then a Linear to the classes.

    Each block is Conv2d(3x3, padding=1) -> [BatchNorm2d] -> activation -> MaxPool2d(2): the
    convolution keeps the height and width, the pooling halves them (rounding down). With the
    defaults this is the reference CNN of ``bench/cnn.py`` on (N, 1, 28, 28) images::

        Conv2d(1, 16, 3, padding=1) -> BatchNorm2d(16) -> ReLU -> MaxPool2d(2)   # (N, 16, 14, 14)
        Conv2d(16, 32, 3, padding=1) -> BatchNorm2d(32) -> ReLU -> MaxPool2d(2)  # (N, 32, 7, 7)
        Flatten -> Linear(32 * 7 * 7, 10)                                        # (N, 10)

    except that with ``batchnorm`` the convolutions have no bias: BatchNorm2d subtracts each
    channel's mean, so a bias before it has no effect and its beta takes the bias's place.

    Parameters
    ----------
    in_shape : (C, H, W) of one input image.
    n_classes : outputs of the last Linear.
    channels : output channels of each block's convolution.
    activation : "relu" or "tanh".
    batchnorm : put a BatchNorm2d after each convolution.
    seed : the i-th weighted layer draws its initial weights from seed + i.
    dtype : float dtype of every parameter.
    """
    who = "cnn"
    if isinstance(in_shape, (str, bytes)) or not isinstance(in_shape, Sequence) or len(in_shape) != 3:
        raise ValueError(f"{who}: expected in_shape as (channels, height, width), got {in_shape!r}")
    c, h, w = (check_size(who, f"in_shape[{i}]", v) for i, v in enumerate(in_shape))
    n_classes = check_size(who, "n_classes", n_classes)
    widths = [check_size(who, f"channels[{i}]", v) for i, v in enumerate(channels)]
    if activation not in ACTIVATIONS:
        raise ValueError(f"{who}: expected activation in {sorted(ACTIVATIONS)}, got {activation!r}")
    dtype = float_dtype(who, dtype)
    if h >> len(widths) == 0 or w >> len(widths) == 0:
        raise ValueError(f"{who}: {len(widths)} poolings by 2 leave nothing of a {h}x{w} input; "
                         f"expected height and width >= {2 ** len(widths)}")
    layers = []
    for i, width in enumerate(widths):
        layers.append(Conv2d(c, width, 3, padding=1, bias=not batchnorm, rng=seed + i, dtype=dtype))
        if batchnorm:
            layers.append(BatchNorm2d(width, dtype=dtype))
        layers += [ACTIVATIONS[activation](), MaxPool2d(2)]
        c, h, w = width, h // 2, w // 2
    layers += [Flatten(), Linear(c * h * w, n_classes, rng=seed + len(widths), dtype=dtype)]
    return Sequential(*layers)

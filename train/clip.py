"""Gradient clipping, ``torch.nn.utils.clip_grad_norm_``: apart from the schedules, as in
PyTorch (``torch/nn/utils/clip_grad.py``)."""
from __future__ import annotations

import numpy as np

from ..layers import validate
from ..layers.flat_params import flat_buffers


def clip_grad_norm(model, max_norm: float) -> float:
    """Scale the model's gradients in place so that their global L2 norm is at most
    ``max_norm``; return the norm before clipping. ``torch.nn.utils.clip_grad_norm_``::

        total = sqrt(sum of g * g over every gradient entry)
        g     = g * min(1, max_norm / (total + 1e-6))

    (the 1e-6 keeps the factor finite for a zero gradient, and makes a clipped norm a hair
    below max_norm). For a model an optimizer has flattened, the norm is one call over the
    flat gradient buffer. A NaN or infinite norm is returned as it is, with the gradients
    scaled by NaN (PyTorch's default): ``fit`` stops at the loss it produces.
    """
    max_norm = checked_max_norm("clip_grad_norm", max_norm)
    flat = flat_buffers(model)
    grads = [flat[1]] if flat is not None else list({id(g): g for g in model.grads.values()}.values())
    if len(grads) == 1:
        total = float(np.linalg.norm(grads[0].reshape(-1)))
    else:  # the norm of the per-array norms, as PyTorch computes it
        total = float(np.linalg.norm([np.linalg.norm(g.reshape(-1)) for g in grads]))
    coef = max_norm / (total + 1e-6)
    if not coef >= 1:  # also NaN: PyTorch multiplies by the clamped coefficient regardless
        for g in grads:
            g *= coef
    return total


def checked_max_norm(who: str, max_norm: object, name: str = "max_norm") -> float:
    """A clipping threshold: a finite number > 0."""
    return validate.real(who, name, max_norm, low=0, low_open=True)

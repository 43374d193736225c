"""Adam and AdamW: ``torch.optim.Adam`` and ``torch.optim.AdamW``."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from ...layers import validate
from .base import Optimizer, decay_pair, nonnegative
from .groups import check_cover, checked_param_groups, group_spans, parameter_names
from .inplace import addcmul, lerp


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015), ``torch.optim.Adam``.

    With g the gradient and t the step count (1 at the first step), in place::

        g     = g + weight_decay * p                  (L2 penalty; AdamW decouples it)
        m     = beta1 * m + (1 - beta1) * g           (first moment, exp_avg)
        v     = beta2 * v + (1 - beta2) * g * g       (second moment, exp_avg_sq)
        vmax  = max(vmax, v);  v_used = vmax if amsgrad else v
        p     = p - lr / (1 - beta1**t) * m / (sqrt(v_used) / sqrt(1 - beta2**t) + eps)

    m and v start at 0, so after t steps of a constant gradient g, m = (1 - beta1**t) * g and
    v = (1 - beta2**t) * g * g: dividing by those factors (the bias correction,
    docs/optimizers.md) makes the first steps as large as the later ones, about lr.

    Parameters
    ----------
    model : Layer
        Its ``params`` are updated from its ``grads``; both become views of flat buffers.
    lr : float
        Learning rate, > 0.
    betas : (float, float)
        Decay rates of the two moment estimates, each in [0, 1).
    eps : float
        Added to the denominator, >= 0, and not rounded to 0 in the parameters' dtype. A
        float16 model is refused (a TypeError): eps=1e-8 is 0 there and small gradients
        square to 0, so a zero gradient would make every weight NaN.
    weight_decay : float
        L2 penalty, >= 0, added to the gradient.
    amsgrad : bool
        Divide by the largest second moment so far (Reddi et al., 2018).
    param_groups : list of dict, optional
        A weight decay per group of parameters, as torch.optim's parameter groups:
        ``[{"params": [names], "weight_decay": w}, ...]``, each parameter of ``model.params``
        in exactly one group (a group without ``weight_decay`` takes ``weight_decay``).
        ``decay_groups(model, w)`` gives nanoGPT's split. Saved with the settings.

    The state (``flat_state`` / ``state_dict``): ``exp_avg``, ``exp_avg_sq``,
    ``max_exp_avg_sq`` (with amsgrad) and the step count ``step``.

    Examples
    --------
    >>> import numpy as np
    >>> from handprop.layers import Linear
    >>> layer = Linear(2, 1, rng=0, dtype=np.float64)
    >>> opt = Adam(layer, lr=0.01)
    >>> before = layer.params["W"].copy()
    >>> layer.grads["W"][...] = 5.0
    >>> opt.step()                            # the first step is lr * g / |g|, whatever |g|
    >>> np.round(layer.params["W"] - before, 12)
    array([[-0.01],
           [-0.01]])
    """

    options = {"betas": decay_pair, "eps": nonnegative, "weight_decay": nonnegative,
               "amsgrad": validate.flag, "param_groups": checked_param_groups}
    divides_by_root = True
    state_buffers = {"exp_avg": None, "exp_avg_sq": None, "max_exp_avg_sq": "amsgrad"}
    counters = {"step": "step_count"}
    decoupled: ClassVar[bool] = False
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    amsgrad: bool
    param_groups: list[dict] | None
    step_count: int

    def __init__(self, model, lr: float = 1e-3, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 param_groups: list[dict] | None = None) -> None:
        super().__init__(model, lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, param_groups=param_groups)

    def _check_together(self, options: dict) -> None:
        if options["param_groups"] is not None:
            check_cover(type(self).__name__, options["param_groups"],
                        list(parameter_names(self.model)))

    def _apply(self, options: dict, counters: dict, arrays: dict) -> None:
        super()._apply(options, counters, arrays)
        # (decay, mask) per distinct decay of the groups; None: one decay for every parameter
        self._decays: list[tuple[float, list[slice]]] | None = None
        self._decay_all = self.weight_decay   # the decay of every parameter, when one for all
        if self.param_groups is not None:
            decays = group_spans(self.param_groups, self.weight_decay, self._layout)
            if len(decays) > 1:
                self._decays = decays
            else:  # one decay for all: the plain path, bit for bit
                self._decay_all = decays[0][0]

    def _decay(self, p: np.ndarray, g: np.ndarray, scratch: np.ndarray) -> np.ndarray:
        """Weight decay, per group: AdamW shrinks p (each group by 1 - lr * its decay, computed
        as torch does, in Python floats); Adam returns g + decay * p, built in ``scratch``."""
        if self._decays is None:
            if self.decoupled:
                p *= 1 - self.lr * self._decay_all
                return g
            np.multiply(p, self._decay_all, out=scratch)
            return np.add(g, scratch, out=scratch)
        for decay, spans in self._decays:  # the spans cover the buffer: every entry written
            value = 1 - self.lr * decay if self.decoupled else decay
            for span in spans:
                scratch[span] = value
        if self.decoupled:
            p *= scratch
            return g
        scratch *= p
        return np.add(g, scratch, out=scratch)

    def step(self) -> None:
        """One update of every parameter from its current gradient (formulas above)."""
        self._check_views()
        p, g, scratch, scaled = self.flat_params, self.flat_grads, self._scratch, self._scaled
        m, v = self.flat_state["exp_avg"], self.flat_state["exp_avg_sq"]
        beta1, beta2 = self.betas
        self.step_count += 1
        t = float(self.step_count)
        if self._decay_all or self._decays is not None:
            # AdamW: p shrinks apart; Adam: g + weight_decay * p, built aside (grads stay as
            # backward left them)
            g = self._decay(p, g, scratch)
        lerp(m, g, 1 - beta1, scaled)                                 # m = b1 m + (1 - b1) g
        v *= beta2
        addcmul(v, g, g, 1 - beta2, scaled)                           # v = b2 v + (1 - b2) g g
        if self.amsgrad:
            v = np.maximum(self.flat_state["max_exp_avg_sq"], v,
                           out=self.flat_state["max_exp_avg_sq"])
        step_size = self.lr / (1 - beta1 ** t)
        denom = np.sqrt(v, out=scaled)
        denom /= (1 - beta2 ** t) ** 0.5
        denom += self.eps                                             # sqrt(v / (1 - b2^t)) + eps
        update = np.multiply(m, -step_size, out=scratch)              # g is not needed any more
        update /= denom
        p += update                                                   # p - step_size * m / denom


class AdamW(Adam):
    """AdamW (Loshchilov and Hutter, 2019), ``torch.optim.AdamW``: Adam whose weight decay is
    decoupled from the gradient. Before Adam's update (without the L2 term)::

        p = p * (1 - lr * weight_decay)

    so the decay does not pass through the moment estimates and the per-coordinate scaling:
    every weight shrinks by the same fraction. Parameters are Adam's, with
    ``weight_decay=1e-2`` by default.

    nanoGPT decays only the matrices: ``AdamW(model, lr, weight_decay=0.1,
    param_groups=decay_groups(model, 0.1))`` (docs/optimizers.md, "Parameter groups").
    """

    decoupled: ClassVar[bool] = True

    def __init__(self, model, lr: float = 1e-3, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 param_groups: list[dict] | None = None) -> None:
        super().__init__(model, lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, param_groups=param_groups)

"""fit_lbfgs: full-batch L-BFGS through scipy.optimize.minimize, for small problems."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..layers import BatchNorm1d, Layer
from ..layers.flat_params import flatten_params
from ..layers.validate import integer, real
from .loop import as_data
from .metrics import count_decisions


@dataclass
class LBFGSResult:
    """What ``fit_lbfgs`` returns.

    ``history`` has one entry per L-BFGS iteration: ``iteration``, ``loss`` and, for a
    classifier, ``accuracy`` (on the training data, at the iteration's parameters), so
    ``plot_history(result.history, path)`` draws it.
    """

    loss: float                   # the final full-batch training loss
    iterations: int
    evaluations: int              # loss-and-gradient evaluations, line searches included
    converged: bool               # scipy reported success (a tolerance met, not max_iter)
    message: str                  # scipy's reason for stopping
    history: dict[str, list] = field(default_factory=dict)


def fit_lbfgs(model: Layer, loss_fn, X, y, *, max_iter: int = 200, max_eval: int | None = None,
              tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
              history_size: int = 10,
              callback: Callable[[dict], None] | None = None) -> LBFGSResult:
    """Minimize the full-batch loss of ``model`` on (X, y) with L-BFGS, in place.

    The model's parameters are one flat buffer (``handprop.layers.flatten_params``, as when an
    optimizer is built: arrays fetched from ``model.params`` before are detached), which scipy
    sees as a float64 vector theta. ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)``
    asks for ``(loss(theta), dloss/dtheta)``: one forward pass over ALL of X, the loss, and one backward pass. L-BFGS
    builds a curvature model from the last ``history_size`` gradient differences and line-searches
    along its quasi-Newton direction; on small smooth problems it needs far fewer passes than
    SGD, and no learning rate.

    Deterministic mode. L-BFGS needs the same theta to give the same loss every time, so:

    - BatchNorm layers run in training mode and normalize with the statistics of the full
      batch, which are a fixed function of theta. When the fit ends, their running statistics
      are set to the full-batch statistics at the final parameters (one forward pass with
      momentum 1), so eval mode predicts with what was optimized.
    - Layers that draw random numbers in training mode (those owning an ``rng`` generator, such
      as Dropout) are put in eval mode for the fit: no units are dropped.
    - The model is left in training mode.

    Float64. scipy works in float64; a float32 model gets its float32 loss and gradient cast
    up, and rounding noise may then end the line search early. Give L-BFGS a float64 model
    when you can.

    An end-to-end gradient check. The line search accepts a step only if the loss falls as the
    gradient predicts (Wolfe conditions), so a wrong gradient makes L-BFGS stall within a few
    iterations ("ABNORMAL_TERMINATION_IN_LNSRCH") far from a minimum. A fit that converges
    is evidence that every backward pass in the model is right.

    Parameters
    ----------
    model : Layer
        A Sequential or any layer; its ``params`` are updated in place.
    loss_fn : Loss
        ``SoftmaxCrossEntropy`` or another loss with ``forward(pred, target)`` and ``backward()``.
    X, y : array-like
        All the training data; converted as ``fit`` converts them.
    max_iter : int
        Most L-BFGS iterations (scipy's ``maxiter``), 1 to 2**31 - 1.
    max_eval : int, optional
        Most loss-and-gradient evaluations (scipy's ``maxfun``); default ``max_iter * 5 // 4``,
        as in ``torch.optim.LBFGS``.
    tolerance_grad : float
        Stop when the largest gradient component is at most this (scipy's ``gtol``); finite, >= 0.
    tolerance_change : float
        Stop when the loss changes by at most this, relative to max(|loss|, 1) (``ftol``);
        finite, >= 0.
    history_size : int
        Gradient differences kept for the curvature model (scipy's ``maxcor``), 1 to 1000.
    callback : callable, optional
        Called with each iteration's entry of the history (a dict).

    Returns
    -------
    LBFGSResult

    Examples
    --------
    >>> import numpy as np
    >>> from handprop.layers import Linear
    >>> from handprop.losses import SoftmaxCrossEntropy
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    >>> y = np.array([0, 1, 1, 0])
    >>> result = fit_lbfgs(Linear(2, 2, rng=0, dtype=np.float64), SoftmaxCrossEntropy(), X, y,
    ...                    max_iter=20)
    >>> result.history["accuracy"][-1]
    1.0
    """
    from scipy.optimize import minimize  # imported here: `import handprop.train` stays light

    options = _check_options(max_iter, max_eval, tolerance_grad, tolerance_change, history_size,
                             callback)
    X, y = as_data("fit_lbfgs", model, loss_fn, X, y)
    flat_params, flat_grads = flatten_params(model)
    objective = _Objective(model, loss_fn, X, y, flat_params, flat_grads, callback)
    random_layers = [layer for layer in model.modules()
                     if isinstance(getattr(layer, "rng", None), np.random.Generator)]
    model.train()
    for layer in random_layers:
        layer.eval()
    try:
        found = minimize(objective.loss_and_grad, flat_params.astype(np.float64), jac=True,
                         method="L-BFGS-B", callback=objective.record,
                         options=options)
        flat_params[...] = found.x
        _set_running_statistics(model, X)
    finally:
        model.train()
    message = found.message if isinstance(found.message, str) else found.message.decode()
    return LBFGSResult(loss=float(found.fun), iterations=int(found.nit),
                       evaluations=int(found.nfev), converged=bool(found.success),
                       message=message, history=objective.history)


MAX_COUNT = 2 ** 31 - 1      # scipy's L-BFGS-B counts iterations in a Fortran int
MAX_HISTORY = 1000           # each kept difference costs two float64 copies of the parameters


def _check_options(max_iter: object, max_eval: object, tolerance_grad: object,
                   tolerance_change: object, history_size: object, callback: object) -> dict:
    """fit_lbfgs's options checked for type and range, as scipy's ``options`` dict."""
    who = "fit_lbfgs"
    iterations = integer(who, "max_iter", max_iter, low=1, high=MAX_COUNT)
    evaluations = (min(iterations * 5 // 4, MAX_COUNT) if max_eval is None
                   else integer(who, "max_eval", max_eval, low=1, high=MAX_COUNT))
    if callback is not None and not callable(callback):
        raise TypeError(f"{who}: expected callback as a function of one dict (or None), got "
                        f"{callback!r}")
    return {"maxiter": iterations, "maxfun": evaluations,
            "gtol": real(who, "tolerance_grad", tolerance_grad, low=0),
            "ftol": real(who, "tolerance_change", tolerance_change, low=0),
            "maxcor": integer(who, "history_size", history_size, low=1, high=MAX_HISTORY)}


class _Objective:
    """What scipy calls: the full-batch loss and gradient at theta, and the per-iteration
    record of the history (re-evaluating only if theta is not the last one evaluated)."""

    def __init__(self, model: Layer, loss_fn, X: np.ndarray, y: np.ndarray,
                 flat_params: np.ndarray, flat_grads: np.ndarray,
                 callback: Callable[[dict], None] | None) -> None:
        self.model, self.loss_fn, self.X, self.y = model, loss_fn, X, y
        self.flat_params, self.flat_grads, self.callback = flat_params, flat_grads, callback
        self.classes = getattr(loss_fn, "targets", "classes") == "classes"
        self.last: dict = {}
        self.history: dict[str, list] = {"iteration": [], "loss": []}
        if self.classes:
            self.history["accuracy"] = []

    def loss_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        self.flat_params[...] = theta  # cast to the model's dtype
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out = self.model.forward(self.X)
            loss = self.loss_fn.forward(out, self.y)
            self.model.param_backward(self.loss_fn.backward())
        self.last.update(theta=theta.copy(), loss=float(loss), out=out)
        if not math.isfinite(loss):  # a wild line-search trial: tell scipy "much worse"
            return math.inf, np.zeros_like(theta)
        return float(loss), self.flat_grads.astype(np.float64)  # a copy: scipy keeps it

    def record(self, theta: np.ndarray) -> None:
        if "theta" not in self.last or not np.array_equal(theta, self.last["theta"]):
            self.loss_and_grad(theta)
        entry = {"iteration": len(self.history["iteration"]) + 1, "loss": self.last["loss"]}
        if self.classes:
            correct = self.loss_fn.count_correct(self.last["out"], self.y)
            decisions = count_decisions(self.loss_fn, self.y)
            entry["accuracy"] = correct / decisions if decisions else math.nan
        for key, value in entry.items():
            self.history[key].append(value)
        if self.callback is not None:
            self.callback(entry)


def _set_running_statistics(model: Layer, X: np.ndarray) -> None:
    """One forward pass with every BatchNorm's momentum at 1, so that its running statistics
    become those of the full batch at the current parameters."""
    norms = [layer for layer in model.modules() if isinstance(layer, BatchNorm1d)]
    if not norms:
        return
    saved = [layer.momentum for layer in norms]
    try:
        for layer in norms:
            layer.momentum = 1.0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            model.forward(X)
    finally:
        for layer, momentum in zip(norms, saved):
            layer.momentum = momentum

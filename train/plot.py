"""plot_history: a PNG of the loss (and accuracy) per epoch, with matplotlib as an optional extra.

matplotlib is imported when a plot is drawn, never when ``handprop.train`` is imported, so the
library needs it only for this function: ``pip install "handprop[plot]"`` (or
``pip install ".[plot]"`` from a checkout).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

INSTALL_HINT = ('plot_history needs matplotlib, an optional extra: pip install "handprop[plot]" '
                '(or pip install ".[plot]" from a checkout)')


def plot_history(history: Mapping[str, Sequence[float]], path: str | os.PathLike, *,
                 title: str | None = None) -> None:
    """Write a PNG of the training curves in ``history`` to ``path``.

    Parameters
    ----------
    history : dict of lists
        What ``fit`` returns: ``loss`` per epoch, and where present ``val_loss``,
        ``accuracy`` and ``val_accuracy``; ``epoch`` (or ``iteration``, as in the history of
        ``fit_lbfgs``) numbers the x axis (1, 2, ... without either).
        The accuracy panel is drawn only when the history has an accuracy key.
    path : path
        The PNG to write (replaced if it exists).
    title : str, optional
        A title over the figure.

    Raises
    ------
    ImportError
        Without matplotlib, naming the extra to install.
    ValueError
        If ``history`` has no ``loss``, or a curve's length differs from the epochs'.

    Examples
    --------
    >>> plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}, "loss.png")  # doctest: +SKIP
    """
    loss = history.get("loss") if isinstance(history, Mapping) else None
    if not loss:
        raise ValueError(f"plot_history: expected a history with a non-empty 'loss' list, as "
                         f"fit returns, got {_keys(history)}")
    x_label = next((k for k in ("epoch", "iteration") if history.get(k)), "epoch")
    epochs = list(history.get(x_label) or range(1, len(loss) + 1))
    panels = [("loss", ["loss", "val_loss"])]
    if "accuracy" in history or "val_accuracy" in history:
        panels.append(("accuracy", ["accuracy", "val_accuracy"]))
    for _, keys in panels:
        for key in keys:
            if key in history and len(history[key]) != len(epochs):
                raise ValueError(f"plot_history: '{key}' has {len(history[key])} values for "
                                 f"{len(epochs)} {x_label}s")
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    # a Figure outside pyplot draws with the Agg canvas: no display, no global state touched
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * len(panels), 4), dpi=100, layout="constrained")
    for ax, (label, keys) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for key, style in zip(keys, ("-o", "--s")):
            if key in history:
                ax.plot(epochs, history[key], style, markersize=3,
                        label="validation" if key.startswith("val_") else "training")
        ax.set_xlabel(x_label)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
        if label == "loss" and min(min(history[k]) for k in keys if k in history) > 0:
            ax.set_yscale("log")  # losses fall over decades; a log axis shows the late epochs
    if title:
        fig.suptitle(title)
    fig.savefig(os.fspath(path), format="png")


def _keys(history) -> str:
    if isinstance(history, Mapping):
        return f"keys {sorted(history)}"
    return type(history).__name__

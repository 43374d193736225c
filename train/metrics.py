"""What a pass over the data measures (the loss per sample and, where it means something,
the accuracy), and the lines that report it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .protocols import CountsCorrect, IgnoresIndex, reduction, targets

LINE_WIDTH = 80  # an epoch line fits a default terminal, validation figures included


def format_metrics(logs: dict, skip: tuple[str, ...] = ()) -> str:
    """``key=value`` pairs, floats to 4 digits, for progress bars and log lines."""
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in logs.items() if k not in skip)


def epoch_line(logs: dict, epochs: int, width: int = LINE_WIDTH) -> str:
    """One epoch's figures on one line of at most ``width`` characters:
    ``epoch 3/10 loss=0.4120 acc=0.8710 val_loss=0.4480 val_acc=0.8620 lr=0.05 1.2s``.

    The history's names, with ``accuracy`` shortened to ``acc``; the losses and accuracies
    always show, the lr and the epoch's seconds only where they still fit (the seconds go
    first)."""
    figures = [f"epoch {logs['epoch']}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs:
            figures.append(f"{key.replace('accuracy', 'acc')}={logs[key]:.4f}")
    optional = [f"lr={logs['lr']:.3g}"] if "lr" in logs else []
    optional += [f"{logs['seconds']:.1f}s"] if "seconds" in logs else []
    while optional and len(" ".join(figures + optional)) > width:
        optional.pop()
    return " ".join(figures + optional)


@dataclass
class Totals:
    """Sums over a pass's batches: the loss over samples, and the right decisions over all
    decisions where the loss has an accuracy (``count_correct`` is not None). A sample may
    hold several decisions (labels (N, T): one per position)."""

    loss: float = 0.0
    samples: int = 0
    correct: int = 0
    decisions: int = 0
    accuracy: bool = True

    def add(self, loss_fn, loss: float, pred: np.ndarray, y: np.ndarray) -> None:
        """One batch: ``loss`` as ``loss_fn`` reduced it, a mean or a sum over the batch."""
        self.loss += loss * len(y) if reduction(loss_fn) == "mean" else loss
        self.samples += len(y)
        correct = count_correct(loss_fn, pred, y)
        if correct is None:
            self.accuracy = False
        else:
            self.correct += correct
            self.decisions += count_decisions(loss_fn, y)

    def metrics(self) -> dict[str, float]:
        """``loss`` (mean per sample) and, where it means something, ``accuracy``."""
        metrics = {"loss": self.loss / self.samples}
        if self.accuracy:
            metrics["accuracy"] = self.correct / max(self.decisions, 1)
        return metrics


def count_correct(loss_fn, pred: np.ndarray, y: np.ndarray) -> int | None:
    """The loss's own count of right decisions (``Loss.count_correct``); a loss that is not a
    ``Loss`` and has none counts arg-max hits for class targets (per position, for labels
    (N, T) against logits (N, T, C)), and nothing for values."""
    if isinstance(loss_fn, CountsCorrect):
        return loss_fn.count_correct(pred, y)
    if targets(loss_fn) == "classes":
        return int(np.count_nonzero(pred.argmax(axis=-1) == y))
    return None


def count_decisions(loss_fn, y: np.ndarray) -> int:
    """How many decisions a batch of targets holds: every label, except those equal to the
    loss's ``ignore_index`` (padding, left out of the loss and the accuracy alike)."""
    if isinstance(loss_fn, IgnoresIndex) and y.dtype.kind in "iu":
        return int(np.count_nonzero(y != loss_fn.ignore_index))
    return y.size

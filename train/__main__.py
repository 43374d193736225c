"""python -m handprop.train (and the ``handprop-train`` command): the command line is
``handprop.train.cli``."""
import sys

from .cli import build_optimizer, build_schedule, main, parser

__all__ = ["build_optimizer", "build_schedule", "main", "parser"]

if __name__ == "__main__":
    sys.exit(main())

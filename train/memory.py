"""Keep freed memory in the process, so that a training step does not fault its pages back in.

glibc's malloc serves a block of 128 KiB or more with a fresh mapping from the OS and hands it
back when it is freed; later it serves such blocks from its heap but still returns the heap's
free top once that passes a threshold. A training step makes and drops many arrays of a
megabyte (a GPT step at nanoGPT's CPU recipe: activations of (768, 512) float32, 1.5 MiB), so
every step asks the OS again for the same memory and pays a page fault for each 4 KiB of it
as it is first written: about 2,100 faults a step, 48.6 ms at two threads becoming 43.6 ms without
them (bench/RESULTS.md). PyTorch's step is the same either way.

``keep_freed_memory`` sets the two thresholds once: blocks up to 32 MiB come from the heap,
and up to 256 MiB of freed heap stays with the process. ``python -m handprop.train`` calls it;
a script of one's own can. It is a setting of the process, not of handprop: its cost is that
memory freed by anything in the process is kept for reuse instead of returned to the OS.
"""
from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3         # mallopt's parameters, from glibc's malloc.h
MMAP_THRESHOLD = 32 << 20                           # glibc's largest allowed on 64-bit machines
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse: a step's arrays then take the last
    step's memory instead of faulting fresh pages in (about 2,100 faults a GPT step).

    It sets the whole process, once and for good (there is no undo): blocks up to 32 MiB come
    from malloc's heap, and up to 256 MiB of freed heap stays with the process instead of
    going back to the OS. ``python -m handprop.train`` calls it; call it at the top of a
    training script of your own.

    Returns
    -------
    bool
        Whether it took effect: True with glibc on Linux, False elsewhere (another C library,
        macOS, Windows), where nothing is changed.

    Examples
    --------
    >>> from handprop.train import keep_freed_memory
    >>> keep_freed_memory() in (True, False)
    True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # musl has a mallopt that does nothing and answers 0
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1

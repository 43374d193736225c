"""keep_freed_memory (train/memory.py): a step's arrays reuse freed memory instead of faulting
fresh pages in. Each case runs in its own process, since the setting is the process's."""
import subprocess
import sys

import pytest

STEPS = """
import resource, sys
import numpy as np
from handprop.train import keep_freed_memory
if sys.argv[1] == "keep" and not keep_freed_memory():
    sys.exit(print(-1))                      # not glibc: nothing to measure
x = np.ones((768, 512), np.float32)          # 1.5 MiB, as a GPT step's activations


def step():                                  # arrays made, kept a while, then all dropped
    kept = [x * 2 for _ in range(4)]
    return sum(float(k[0, 0]) for k in kept)


step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(setting: str) -> int:
    done = subprocess.run([sys.executable, "-c", STEPS, setting], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def test_kept_memory_takes_the_page_faults_out_of_a_step():
    kept = page_faults("keep")
    if kept < 0:
        pytest.skip("not glibc's malloc: keep_freed_memory changes nothing here")
    # 20 steps of four 1.5 MiB arrays: 30,720 pages a run when each is faulted in anew
    assert page_faults("default") > 10_000
    assert kept < 100

import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _assert_same_state(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key in before:
        assert before[key].dtype == after[key].dtype, key
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)


@pytest.fixture
def assert_same_state():
    """Assert two name -> array dicts (``state_dict()``s) are equal: names, dtypes, values."""
    return _assert_same_state


KILLED_MID_EPOCH_3 = """
import os, runpy, signal
from handprop.losses import SoftmaxCrossEntropy
run_fit = runpy.run_path({tests!r})["run_fit"]  # the test file's helper, by path: no sys.path change

class KillMidEpoch3(SoftmaxCrossEntropy):
    calls = 0
    def forward(self, logits, targets):
        self.calls += 1
        if self.calls == 8 + 8 + 3:  # 8 steps an epoch: the third step of epoch 3
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(logits, targets)

run_fit({path!r}, loss_fn=KillMidEpoch3())
"""


@pytest.fixture
def killed_mid_epoch_3():
    """Run a test file's ``run_fit(path, loss_fn=...)`` (8 steps an epoch) in a child process
    that SIGKILLs itself at the third step of epoch 3; return the finished process."""
    def run(test_file, path):
        script = KILLED_MID_EPOCH_3.format(tests=str(test_file), path=str(path))
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=120)
    return run

"""Numbers read from a checkpoint are bounded before use: a step count or an epoch of 10**400
is a ValueError naming the file, with nothing loaded, not an OverflowError mid-training."""
import json
import re

import numpy as np
import pytest

from handprop.layers import mlp
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import Adam, fit
from handprop.train.checkpoint import write_npz
from handprop.train.data import spiral
from handprop.train.schedule import CosineAnnealingLR

X, Y = spiral(10, 3)


def run(path, *, epochs, resume=False):
    model = mlp(2, [4], 3, seed=0)
    opt = Adam(model, lr=0.01)
    fit(model, SoftmaxCrossEntropy(), opt, X, Y, epochs=epochs, batch_size=8, progress=False,
        checkpoint=path, resume=resume, scheduler=CosineAnnealingLR(opt, T_max=4))
    return model


def rewrite_meta(path, change):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        write_npz(f, arrays)


@pytest.mark.parametrize("change,message", [
    (lambda m: m["optimizer"]["state"].update(step=10**400), r"Adam: expected the counter step <= 1e\+15, got an int of 401 digits"),
    (lambda m: m["extra"]["fit"]["scheduler"]["state"].update(last_epoch=10**400),
     r"CosineAnnealingLR: expected last_epoch <= 1e\+12, got an int of 401 digits"),
    (lambda m: m["extra"]["fit"].update(epoch=10**400), r"expected its epoch to be <= 1e\+12, "
                                                        r"got an int of about 401 digits"),
])
def test_a_huge_count_in_a_checkpoint_is_refused_naming_the_file(tmp_path, change, message):
    path = tmp_path / "run.npz"
    run(path, epochs=1)
    rewrite_meta(path, change)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        run(path, epochs=3, resume=True)

"""Checkpoints: all-or-nothing loads of malformed files, saves that keep what they replace,
stale temporary files cleaned up, resumes that work or say why not."""
import json
import os
import stat

import numpy as np
import pytest

from handprop.layers import mlp
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD, files, fit
from handprop.train.checkpoint import load, read_extra, save
from handprop.train.data import spiral


def model_and_optimizer(seed=0):
    model = mlp(2, [8], 3, seed=seed)
    return model, SGD(model, lr=0.05, momentum=0.9)


def trained(path=None, epochs=1, seed=0):
    model, opt = model_and_optimizer(seed)
    fit(model, SoftmaxCrossEntropy(), opt, *spiral(20, 3), epochs=epochs, batch_size=16,
        progress=False, checkpoint=path)
    return model, opt


def snapshot(model, opt):
    return ({k: v.copy() for k, v in model.state_dict().items()},
            {k: v.copy() for k, v in opt.momentum_buffers.items()}, repr(opt))


def assert_unchanged(before, model, opt, assert_same_state):
    state, buffers, settings = before
    assert_same_state(state, model.state_dict())
    assert_same_state(buffers, opt.momentum_buffers)
    assert repr(opt) == settings


def rewrite_meta(path, change):
    """The checkpoint at ``path`` with its metadata changed by ``change(meta) -> meta or text``."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = change(json.loads(str(arrays["meta"])))
    arrays["meta"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    np.savez(path, **arrays)


def deep(meta):
    return '{"format": "handprop-checkpoint", "version": 2, "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.mark.parametrize("change,message", [
    (deep, r"not a readable checkpoint \(RecursionError"),
    (lambda m: {k: v for k, v in m.items() if k != "extra"} | {"extra": [1]}, r"extra is list, not a dict"),
    (lambda m: m | {"optimizer": "SGD"}, r"optimizer is not \{\"class\": NAME, \"state\""),
    (lambda m: m | {"optimizer": {"state": m["optimizer"]["state"]}}, r"optimizer is not \{\"class\""),
    (lambda m: m | {"optimizer": {"class": "SGD"}}, r"optimizer is not"),
    (lambda m: m | {"optimizer": {"class": "SGD", "state": m["optimizer"]["state"] | {"lr": "fast"}}},
     r"does not load into SGD.*expected lr as a real number, got 'fast'"),
    (lambda m: m | {"optimizer": {"class": "SGD", "state": m["optimizer"]["state"] | {"momentum": None}}},
     r"the optimizer state does not load into SGD"),
    (lambda m: m | {"optimizer": {"class": "SGD", "state": m["optimizer"]["state"] | {"momentum_buffers": 3}}},
     r"the optimizer state is malformed: .* both a value and arrays under 'momentum_buffers'"),
    (lambda m: m | {"optimizer": {"class": "SGD", "state": {k: v for k, v in m["optimizer"]["state"].items()
                                                             if k != "weight_decay"}}},
     r"the state does not match a SGD's: missing weight_decay"),
    (lambda m: m | {"version": True}, r"checkpoint version True"),
    (lambda m: m | {"extra": {"fit": {"epoch": 1, "history": {}, "rng": {"bit_generator": "PCG64"}}}},
     r"its shuffling generator state does not load"),
    (lambda m: m | {"extra": {"fit": {"epoch": "1", "history": {}, "rng": None}}}, r"epoch to be an int >= 1, got '1'"),
    (lambda m: m | {"extra": {"fit": {"epoch": 2, "history": {"loss": [0.1]}, "rng": None}}},
     r"history to hold 2 numbers per metric"),
    (lambda m: m | {"extra": {"fit": []}}, r"holds no training state to resume from"),
])
def test_malformed_metadata_is_a_value_error_and_changes_nothing(tmp_path, change, message, assert_same_state):
    path = tmp_path / "c.npz"
    trained(path)
    rewrite_meta(path, change)
    model, opt = model_and_optimizer(seed=3)
    before = snapshot(model, opt)
    with pytest.raises(ValueError, match=message):
        fit(model, SoftmaxCrossEntropy(), opt, *spiral(20, 3), epochs=2, batch_size=16,
            progress=False, checkpoint=path, resume=True)
    assert_unchanged(before, model, opt, assert_same_state)


def test_a_bad_optimizer_buffer_changes_neither_model_nor_optimizer(tmp_path, assert_same_state,
                                                                    monkeypatch):
    path = tmp_path / "c.npz"
    model, opt = trained()
    state = opt.state_dict()
    state["momentum_buffers"]["3.W"] = np.zeros((3, 8), np.float32)  # a wrong shape, saved as is
    monkeypatch.setattr(opt, "state_dict", lambda: state)
    save(path, model, opt)
    fresh, fresh_opt = model_and_optimizer(seed=3)
    before = snapshot(fresh, fresh_opt)
    with pytest.raises(ValueError, match=r"momentum_buffers/3.W has shape \(3, 8\)"):
        load(path, fresh, fresh_opt)
    assert_unchanged(before, fresh, fresh_opt, assert_same_state)


def test_an_integer_array_is_refused(tmp_path):
    model, _ = trained()
    state = model.state_dict()
    arrays = {f"model/{k}": v for k, v in state.items()} | {"model/0.W": state["0.W"].astype(np.int64)}
    arrays["meta"] = np.array('{"format": "handprop-checkpoint", "version": 2, "extra": {}}')
    np.savez(tmp_path / "c.npz", **arrays)
    with pytest.raises(ValueError, match=r"expected 0.W in .*c.npz as a floating-point array, got int64"):
        load(tmp_path / "c.npz", model)


def test_a_hand_saved_checkpoint_gives_a_clear_error_on_resume(tmp_path, assert_same_state):
    model, opt = trained()
    save(tmp_path / "c.npz", model, opt, epoch=3)  # as the README shows
    fresh, fresh_opt = model_and_optimizer(seed=3)
    before = snapshot(fresh, fresh_opt)
    with pytest.raises(ValueError, match=r"holds no training state to resume from \(it was written by "
                                         r"checkpoint.save, not by fit\): load it with checkpoint.load"):
        fit(fresh, SoftmaxCrossEntropy(), fresh_opt, *spiral(20, 3), epochs=2, progress=False,
            checkpoint=tmp_path / "c.npz", resume=True)
    assert_unchanged(before, fresh, fresh_opt, assert_same_state)


class StepOnly:
    """An optimizer with only ``step()``: plain SGD without momentum, no state to save."""

    def __init__(self, model, lr):
        self.model, self.lr = model, lr

    def step(self):
        for name, p in self.model.params.items():
            p -= self.lr * self.model.grads[name]


def test_an_optimizer_with_only_step_resumes_bit_exact(tmp_path, assert_same_state):
    def run(path=None, resume=False, epochs=3):
        model = mlp(2, [8], 3)
        history = fit(model, SoftmaxCrossEntropy(), StepOnly(model, 0.1), *spiral(20, 3), epochs=epochs,
                      batch_size=16, progress=False, checkpoint=path, resume=resume)
        return model, history
    run(tmp_path / "c.npz", epochs=2)
    assert "optimizer" not in json.loads(str(np.load(tmp_path / "c.npz")["meta"]))
    resumed, history = run(tmp_path / "c.npz", resume=True)
    whole, expected = run()
    assert_same_state(whole.state_dict(), resumed.state_dict())
    assert history["loss"] == expected["loss"]


def test_saves_write_through_a_symlink_and_keep_mode_and_owner(tmp_path):
    model, opt = trained()
    real = tmp_path / "store" / "real.npz"
    real.parent.mkdir()
    save(real, model, opt, epoch=1)
    os.chmod(real, 0o600)
    owner = (os.stat(real).st_uid, os.stat(real).st_gid)
    if os.geteuid() == 0:  # root may give the file away, and the save must keep that
        os.chown(real, 4242, 4343)
        owner = (4242, 4343)
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    save(link, model, opt, epoch=2)
    assert link.is_symlink() and read_extra(real) == {"epoch": 2}
    info = os.stat(real)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert (info.st_uid, info.st_gid) == owner
    assert sorted(p.name for p in real.parent.iterdir()) == ["real.npz"]


def test_saves_never_touch_the_umask(tmp_path, monkeypatch):
    def umask(mask):
        raise AssertionError("os.umask called: other threads would create files with mode 0o666")
    monkeypatch.setattr(os, "umask", umask)
    save(tmp_path / "c.npz", *trained())


@pytest.mark.parametrize("make,kind", [(os.mkfifo, "a FIFO"), (os.mkdir, "a directory")])
def test_saves_refuse_a_fifo_or_a_directory(tmp_path, make, kind):
    make(tmp_path / "c.npz")
    with pytest.raises(ValueError, match=rf"c.npz: refusing to replace it: it is {kind}, not a file"):
        save(tmp_path / "c.npz", *trained())
    with pytest.raises(ValueError, match=r"not a readable checkpoint"):
        load(tmp_path / "c.npz", trained()[0])  # a FIFO would block a reader forever
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_stale_temporary_files_of_dead_writers_are_removed_on_the_next_save(tmp_path):
    model, opt = trained()
    dead = tmp_path / f".c.npz.{2**22 + 1}-0123abcd.tmp"       # above any pid_max: never running
    mine = tmp_path / f".c.npz.{os.getpid()}-89abcdef.tmp"     # this process, no write open
    alive = tmp_path / ".c.npz.1-00000000.tmp"                  # pid 1 runs: maybe writing now
    others = [tmp_path / ".c.npz.123.tmp", tmp_path / ".d.npz.99999999-0123abcd.tmp", tmp_path / "notes.tmp"]
    for p in [dead, mine, alive, *others]:
        p.write_bytes(b"x" * 1000)
    save(tmp_path / "c.npz", model, opt)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.npz", alive.name, *(p.name for p in others)])


def test_a_checkpoint_in_a_missing_folder_fails_before_the_first_epoch(tmp_path):
    model, opt = model_and_optimizer()
    epochs = []
    with pytest.raises(FileNotFoundError, match=r"the folder .*missing does not exist"):
        fit(model, SoftmaxCrossEntropy(), opt, *spiral(20, 3), epochs=1, progress=False,
            checkpoint=tmp_path / "missing" / "c.npz", on_epoch_end=epochs.append)
    assert epochs == []


def test_concurrent_saves_do_not_remove_each_others_temporary_files(tmp_path):
    """A writer in this process whose temporary file is open keeps it while another saves."""
    model, opt = trained()
    with files.atomic_write(tmp_path / "c.npz") as f:
        save(tmp_path / "c.npz", model, opt)  # runs the stale-file sweep while f is open
        f.write(b"the outer write")
    assert (tmp_path / "c.npz").read_bytes() == b"the outer write"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_compressed_and_fortran_ordered_entries_still_load(tmp_path, assert_same_state):
    """The bounded reader reads what np.savez_compressed writes, in either memory order."""
    model, opt = trained()
    save(tmp_path / "c.npz", model, opt, epoch=1)
    with np.load(tmp_path / "c.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["model/0.W"] = np.asfortranarray(arrays["model/0.W"])
    np.savez_compressed(tmp_path / "z.npz", **arrays)
    fresh, fresh_opt = model_and_optimizer(seed=3)
    assert load(tmp_path / "z.npz", fresh, fresh_opt) == {"epoch": 1}
    assert_same_state(model.state_dict(), fresh.state_dict())
    assert_same_state(opt.momentum_buffers, fresh_opt.momentum_buffers)

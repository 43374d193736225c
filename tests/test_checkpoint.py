"""Checkpoints: round trip, no pickle, atomic saves, clear refusals, exact resume after a kill."""
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from handprop.layers import Linear, ReLU, Sequential, mlp
from handprop.losses import SoftmaxCrossEntropy
from handprop.train import SGD, fit
from handprop.train import checkpoint as ckpt
from handprop.train.checkpoint import load, read_extra, save
from handprop.train.data import spiral

ROOT = Path(__file__).resolve().parents[1]


def model_and_optimizer(seed=0, width=8, momentum=0.9):
    model = mlp(2, [width], 3, seed=seed)
    return model, SGD(model, lr=0.05, momentum=momentum, nesterov=momentum > 0, weight_decay=1e-4)


def trained(seed=0, epochs=2):
    model, opt = model_and_optimizer(seed)
    X, y = spiral(30, 3)
    fit(model, SoftmaxCrossEntropy(), opt, X, y, epochs=epochs, batch_size=16, progress=False)
    return model, opt


def test_round_trip_of_model_and_optimizer(tmp_path, assert_same_state):
    model, opt = trained()
    opt.lr = 0.01
    save(tmp_path / "c.npz", model, opt, epoch=3, note="hello", loss=np.float32(0.25))
    fresh, fresh_opt = model_and_optimizer(seed=5, momentum=0.0)
    params = fresh.params
    extra = load(tmp_path / "c.npz", fresh, fresh_opt)
    assert extra == {"epoch": 3, "note": "hello", "loss": 0.25}
    assert_same_state(model.params, fresh.params)
    assert_same_state(model.buffers, fresh.buffers)
    assert all(fresh.params[k] is params[k] for k in params)  # loaded in place
    assert_same_state(opt.momentum_buffers, fresh_opt.momentum_buffers)
    assert (fresh_opt.lr, fresh_opt.momentum, fresh_opt.nesterov, fresh_opt.weight_decay) == (0.01, 0.9, True, 1e-4)
    assert read_extra(tmp_path / "c.npz")["epoch"] == 3


def test_model_only_round_trip(tmp_path, assert_same_state):
    model, opt = trained()
    save(tmp_path / "m.npz", model)
    fresh, _ = model_and_optimizer(seed=9)
    assert load(tmp_path / "m.npz", fresh) == {}
    assert_same_state(model.params, fresh.params)
    with pytest.raises(ValueError, match=r"holds no optimizer state to load into SGD"):
        load(tmp_path / "m.npz", fresh, SGD(fresh, lr=0.1))


def test_saved_file_is_a_plain_npz_with_a_normal_mode(tmp_path):
    model, opt = trained()
    save(tmp_path / "c.npz", model, opt)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert "model/0.W" in npz.files and "model/1.running_var" in npz.files
        assert "optimizer/momentum_buffers/3.b" in npz.files and npz["meta"].dtype.kind == "U"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o666 & ~umask


class Bomb:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (Path(self.sentinel),))


def test_an_object_array_is_refused_without_unpickling(tmp_path):
    sentinel = tmp_path / "unpickled"
    model, _ = trained()
    arrays = {f"params/{k}": v for k, v in model.params.items()}
    arrays.update({f"buffers/{k}": v for k, v in model.buffers.items()})
    arrays["meta"] = np.array('{"format": "handprop-checkpoint", "version": 1, "extra": {}}')
    arrays["params/0.W"] = np.array([Bomb(sentinel)], dtype=object)
    np.savez(tmp_path / "hostile.npz", **arrays)
    with pytest.raises(ValueError, match=r"hostile.npz: refused: it holds pickled Python objects, .*never unpickles"):
        load(tmp_path / "hostile.npz", model)
    assert not sentinel.exists()


def test_a_pickle_file_is_refused_without_unpickling(tmp_path):
    sentinel = tmp_path / "unpickled"
    (tmp_path / "evil.npz").write_bytes(pickle.dumps(Bomb(sentinel)))
    with pytest.raises(ValueError, match=r"evil.npz: refused: it holds pickled Python objects"):
        load(tmp_path / "evil.npz", trained()[0])
    assert not sentinel.exists()


@pytest.mark.parametrize("make,message", [
    (lambda p, good: p.write_bytes(good[: len(good) // 2]), r"not a readable checkpoint"),
    (lambda p, good: p.write_bytes(b"PK\x03\x04" + os.urandom(300)), r"not a readable checkpoint"),
    (lambda p, good: p.write_bytes(b""), r"not a readable checkpoint \(not an .npz file: an empty file"),
    (lambda p, good: p.write_bytes(os.urandom(500)), r"refused|not a readable"),
    (lambda p, good: np.save(open(p, "wb"), np.zeros(3)), r"not a handprop checkpoint \(a single array"),
    (lambda p, good: np.savez(open(p, "wb"), w=np.zeros(3)), r"not a handprop checkpoint \(no 'meta'"),
    (lambda p, good: np.savez(open(p, "wb"), meta=np.array('{"format": "other"}')), r"its meta entry is not one"),
    (lambda p, good: np.savez(open(p, "wb"), meta=np.array("{not json")), r"not a readable checkpoint \(JSONDecodeError"),
    (lambda p, good: np.savez(open(p, "wb"), meta=np.array('{"format": "handprop-checkpoint", "version": 99}')),
     r"checkpoint version 99; this handprop reads versions 1 and 2"),
])
def test_truncated_and_hostile_files(tmp_path, make, message, assert_same_state):
    model, opt = trained()
    save(tmp_path / "good.npz", model, opt)
    before = {k: v.copy() for k, v in model.params.items()}
    make(tmp_path / "bad.npz", (tmp_path / "good.npz").read_bytes())
    with pytest.raises(ValueError, match=message):
        load(tmp_path / "bad.npz", model, opt)
    assert_same_state(before, model.params)


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nothing.npz", trained()[0])


def test_shape_mismatch_names_the_parameter_and_changes_nothing(tmp_path, assert_same_state):
    model, opt = trained()
    save(tmp_path / "c.npz", model, opt)
    wider, wider_opt = model_and_optimizer(width=9)
    before = {k: v.copy() for k, v in wider.params.items()}
    with pytest.raises(ValueError, match=r"0.W has shape \(2, 8\) in .*c.npz but \(2, 9\) in the model"):
        load(tmp_path / "c.npz", wider, wider_opt)
    assert_same_state(before, wider.params)


def test_missing_and_unexpected_entries_are_named(tmp_path):
    model, _ = trained()
    save(tmp_path / "c.npz", model)
    deeper = Sequential(*model.layers, ReLU(), Linear(3, 3, rng=0))
    with pytest.raises(ValueError, match=r"c.npz does not match the model's params and buffers: missing 5.W, 5.b"):
        load(tmp_path / "c.npz", deeper)
    with pytest.raises(ValueError, match=r"unexpected 1.beta, 1.gamma, 1.running_mean, 1.running_var"):
        load(tmp_path / "c.npz", Sequential(Linear(2, 8, rng=0), ReLU(), ReLU(), Linear(8, 3, rng=1)))


@pytest.mark.parametrize("interrupt", [OSError("disk full"), KeyboardInterrupt()])
def test_a_save_that_fails_half_way_leaves_the_old_file_whole(tmp_path, monkeypatch, interrupt):
    model, opt = trained()
    save(tmp_path / "c.npz", model, opt, epoch=1)
    good = (tmp_path / "c.npz").read_bytes()

    def half_then_fail(f, array, **options):  # fails inside the archive's first entry
        f.write(b"\x93NUMPY half an array")
        raise interrupt
    monkeypatch.setattr(ckpt.np.lib.format, "write_array", half_then_fail)
    with pytest.raises(type(interrupt)):
        save(tmp_path / "c.npz", model, opt, epoch=2)
    assert (tmp_path / "c.npz").read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # the temporary file is gone
    monkeypatch.undo()
    assert load(tmp_path / "c.npz", model, opt)["epoch"] == 1


def test_extra_must_be_plain_data(tmp_path):
    with pytest.raises(TypeError, match=r"extra values must be plain JSON data"):
        save(tmp_path / "c.npz", trained()[0], weights=np.zeros(3))
    assert not (tmp_path / "c.npz").exists()


def run_fit(checkpoint=None, resume=False, epochs=4, loss_fn=None):
    model, opt = model_and_optimizer()
    X, y = spiral(40, 3)
    history = fit(model, loss_fn or SoftmaxCrossEntropy(), opt, X, y, epochs=epochs, batch_size=16,
                  validation=spiral(10, 3, seed=1), seed=7, progress=False,
                  checkpoint=checkpoint, resume=resume)
    return model, opt, history


@pytest.fixture
def assert_same_run(assert_same_state):
    def check(a, b):
        (ma, oa, ha), (mb, ob, hb) = a, b
        assert_same_state(ma.state_dict(), mb.state_dict())
        assert_same_state(oa.momentum_buffers, ob.momentum_buffers)
        assert ({k: v for k, v in ha.items() if k != "seconds"}
                == {k: v for k, v in hb.items() if k != "seconds"})
    return check


def test_resume_in_process_is_bit_exact(tmp_path, assert_same_run):
    path = tmp_path / "run.npz"
    run_fit(path, epochs=2)
    assert read_extra(path)["fit"]["epoch"] == 2
    assert_same_run(run_fit(path, resume=True), run_fit())


def test_resume_after_sigkill_is_bit_exact(tmp_path, assert_same_run, killed_mid_epoch_3):
    path = str(tmp_path / "run.npz")
    done = killed_mid_epoch_3(__file__, path)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert read_extra(path)["fit"]["epoch"] == 2
    assert sorted(os.listdir(tmp_path)) == ["run.npz"]
    assert_same_run(run_fit(path, resume=True), run_fit())


def test_resume_without_a_file_starts_over(tmp_path, assert_same_run):
    with pytest.warns(UserWarning, match=r"no checkpoint at .* starting at epoch 1"):
        resumed = run_fit(tmp_path / "none.npz", resume=True, epochs=2)
    assert_same_run(resumed, run_fit(epochs=2))
    with pytest.raises(ValueError, match=r"resume=True needs checkpoint=PATH"):
        run_fit(resume=True)


@pytest.mark.parametrize("epochs", [2, 1])
def test_resuming_a_finished_run_says_so_and_trains_nothing(tmp_path, assert_same_run, epochs):
    path = tmp_path / "run.npz"
    finished = run_fit(path, epochs=2)
    saved = path.read_bytes()
    with pytest.warns(UserWarning, match=rf"fit: the run in {path} is finished: it holds 2 epochs and "
                                         rf"epochs={epochs}, so there is nothing to train"):
        resumed = run_fit(path, resume=True, epochs=epochs)
    assert_same_run(resumed, finished)  # the saved weights and the whole history, no epoch more
    assert path.read_bytes() == saved


def test_ctrl_c_keeps_the_last_epoch_and_exits_cleanly(tmp_path):
    path = tmp_path / "cli.npz"
    env = os.environ
    proc = subprocess.Popen([sys.executable, "-m", "handprop.train", "--epochs", "100000", "--hidden", "8",
                             "--no-progress", "--checkpoint", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    epoch = read_extra(path)["fit"]["epoch"]
    assert f"interrupted; {path} keeps epoch {epoch}: add --resume to continue from it" in err
    model, opt = model_and_optimizer()
    resumed = subprocess.run([sys.executable, "-m", "handprop.train", "--epochs", str(epoch + 1), "--hidden", "8",
                              "--no-progress", "--checkpoint", str(path), "--resume"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[-2].startswith(f"epoch={epoch + 1} ")


def test_cli_resume_from_a_checkpoint_of_another_model(tmp_path, capsys):
    from handprop.layers import mlp
    from handprop.train.__main__ import main
    path = str(tmp_path / "c.npz")  # written by fit from a script: no command-line settings in it
    model = mlp(2, [8], 3)
    fit(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), *spiral(10, 3), epochs=1, progress=False,
        checkpoint=path, validation=spiral(5, 3, seed=1))  # validated, as the command's runs are
    assert main(["--epochs", "2", "--hidden", "9", "--no-progress", "--checkpoint", path, "--resume"]) == 1
    err = capsys.readouterr().err
    assert f"0.W has shape (2, 8) in {path} but (2, 9) in the model" in err
    assert "Traceback" not in err

"""Bad input, divergence, interrupts, checkpoints and resume."""
import json
import re

import numpy as np
import pytest

from framework import Callback, DivergenceError
from framework.engine.checkpoint import (
    Checkpointer,
    CheckpointError,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from framework.engine.trainer import Interrupted
from framework.errors import ConfigError
from framework.train import build
from tests.helpers import make_cfg

SMALL = ["trainer.epochs=3", "trainer.batch_size=64", "model.hidden=[32]"]


class StopAt(Callback):
    """Requests a stop (as the signal handler does) after global batch `step`."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, step):
        if step == self.step:
            trainer.request_stop("SIGTERM")


class Records(Callback):
    def __init__(self):
        self.steps, self.status = [], None

    def on_batches(self, trainer, record):
        self.steps += record.steps.tolist()

    def on_train_end(self, trainer, status, logs):
        self.status = status


@pytest.fixture(scope="module")
def uninterrupted():
    """The reference run of the interrupt tests (they only read it): its config and trainer after fit."""
    cfg = make_cfg(*SMALL, "optimizer=adam", "scheduler=cosine")
    ref = build(cfg)
    return cfg, ref, ref.fit()


@pytest.mark.parametrize("stop_step", [5, 21, 22])  # mid-epoch, last batch of an epoch, first of the next
def test_interrupt_then_resume_is_bit_identical(tmp_path, stop_step, uninterrupted):
    cfg, ref, ref_final = uninterrupted
    rec = Records()
    t = build(cfg, [StopAt(stop_step), Checkpointer(tmp_path / "ck"), rec])
    with pytest.raises(Interrupted):
        t.fit()
    assert rec.status == "KILLED" and rec.steps == list(range(stop_step + 1))  # nothing pending was lost

    resumed = build(cfg)
    restore_checkpoint(resumed, tmp_path / "ck")
    assert resumed.step == stop_step + 1
    final = resumed.fit()
    for k, v in ref.model.state_dict().items():
        assert resumed.model.state_dict()[k].tobytes() == v.tobytes(), k
    assert resumed.history["train/loss"] == ref.history["train/loss"]
    assert final["test/accuracy"] == ref_final["test/accuracy"]


def test_periodic_checkpoints(tmp_path):
    t = build(make_cfg(*SMALL), [Checkpointer(tmp_path / "ck", every_epochs=2)])
    saved = []
    state = tmp_path / "ck" / "state.json"
    t.callbacks.append(type("Spy", (Callback,), {"on_epoch_end": lambda s, tr, e, l: saved.append(
        json.loads(state.read_text())["trainer"]["epoch"] if state.parent.exists() else None)})())
    t.fit()
    assert saved == [None, 2, 2]


def _checkpoint(tmp_path):
    t = build(make_cfg(*SMALL, "trainer.epochs=1"))
    t.fit()
    return save_checkpoint(t, tmp_path / "ck")


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    ck = _checkpoint(tmp_path)
    data = (ck / "weights.npz").read_bytes()
    (ck / "weights.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="weights.npz' is corrupted or truncated"):
        load_checkpoint(ck)


def test_incomplete_or_garbled_checkpoint(tmp_path):
    ck = _checkpoint(tmp_path)
    (ck / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="state.json' is unreadable"):
        load_checkpoint(ck)
    (ck / "optimizer.npz").unlink()
    with pytest.raises(CheckpointError, match="missing optimizer.npz"):
        load_checkpoint(ck)


def test_checkpoint_never_unpickles(tmp_path):
    ck = _checkpoint(tmp_path)
    np.savez(ck / "weights.npz", **{"layers.0.W": np.array([object()], dtype=object)})
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(ck)


def test_checkpoint_of_another_model_is_rejected(tmp_path):
    ck = _checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        restore_checkpoint(build(make_cfg(*SMALL, "model.hidden=[16]")), ck)


def test_divergence_stops_at_once_and_names_batch_and_param():
    rec = Records()
    t = build(make_cfg(*SMALL, "optimizer=sgd", "optimizer.lr=1e9"), [rec])
    with np.errstate(all="ignore"), pytest.raises(DivergenceError) as e:
        t.fit()
    err = e.value
    assert rec.status == "FAILED" and t.failure["step"] == err.step
    assert rec.steps[-1] == err.step  # stopped on the first bad batch; every batch before was recorded
    assert err.step < t.steps_per_epoch and "lower optimizer.lr" in str(err).lower()
    assert t.failure["reason"].startswith("diverged")
    assert all(np.isfinite(v).all() for v in t.model.state_dict().values())  # the bad update was not applied


@pytest.mark.parametrize("overrides,reason", [
    ([], "exceeds trainer.divergence.factor=10000 x the first batch's loss"),
    (["trainer.divergence.factor=null", "trainer.divergence.max_loss=100"], "exceeds trainer.divergence.max_loss=100"),
])
def test_a_finite_exploding_loss_fails_the_run(overrides, reason):
    rec = Records()
    t = build(make_cfg(*SMALL, "optimizer=adam", "optimizer.lr=1e6", *overrides), [rec])
    with np.errstate(all="ignore"), pytest.raises(DivergenceError, match="trainer.divergence sets the limit"):
        t.fit()
    assert rec.status == t.status == "FAILED" and t.failure["reason"].startswith("diverged: loss ")
    assert reason in t.failure["reason"] and t.failure["step"] < t.steps_per_epoch


def test_divergence_rules_off_with_null():
    t = build(make_cfg(*SMALL, "trainer.epochs=1", "optimizer=adam", "optimizer.lr=1e6",
                       "trainer.divergence.factor=null"))
    with np.errstate(all="ignore"):
        t.fit()
    assert t.status == "FINISHED" and t.history["train/loss"][0] > 1e4 * t.first_loss
    with pytest.raises(ConfigError, match=r"trainer.divergence.max_loss=0: must be a number > 0 or null \(null: off\)"):
        build(make_cfg(*SMALL, "trainer.divergence.max_loss=0"))


@pytest.mark.parametrize("override,match", [
    ("optimizer.lr=0", "optimizer.lr=0: must be a number > 0"),
    ("optimizer.lr=-1", "optimizer.lr=-1: must be a number > 0"),
    ("trainer.batch_size=0", "trainer.batch_size=0: must be an integer >= 1 or null"),
    ("trainer.epochs=-1", "trainer.epochs=-1: must be an integer >= 0"),
    ("model.hidden=[0]", "model.hidden=[0]: must be a list of integers >= 1"),
    ("output_activation=sigmoid", "output_activation must be identity"),
])
def test_bad_config_values_explain_the_fix(override, match):
    with pytest.raises(ConfigError, match=re.escape(match)):
        build(make_cfg(*SMALL, override))


@pytest.mark.parametrize("args,match", [
    (["activation=sigmod"], "unknown activation 'sigmod'. Did you mean 'sigmoid'? Known activation names: elu,"),
    (["-m", "data=digits,digitz"], "unknown dataset 'digitz'. Did you mean 'digits'?"),
    (["+experiment=digits_mpl"], "unknown experiment 'digits_mpl'. Did you mean 'digits_mlp'?"),
])
def test_unknown_option_on_the_command_line_lists_names_and_closest(args, match, monkeypatch, capsys):
    from framework.train import main

    monkeypatch.setattr("sys.argv", ["framework.train", *args])
    with pytest.raises(SystemExit) as e:  # the names are checked before Hydra starts: in-process is the CLI
        main()
    assert e.value.code == 1
    assert f"error: {match}" in capsys.readouterr().err


def test_missing_data_file_names_path_and_fix(tmp_path):
    with pytest.raises(ConfigError, match="absolute path"):
        build(make_cfg("data=file", f"data.path={tmp_path / 'nope.csv'}"))


def test_nan_in_user_csv_names_row_and_column(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,b,y\n1,2,3\n4,nan,6\n7,8,9\n")
    with pytest.raises(ConfigError, match=r"line 3.*'b'|'b'.*line 3"):
        build(make_cfg("data=file", f"data.path={f}", "loss=mse"))


def test_a_single_runs_framework_error_is_one_line_and_exit_1(capsys):
    from framework.train import failed_job

    with pytest.raises(SystemExit) as e:  # outside a Hydra multirun, as a single run's job
        failed_job(make_cfg(), ConfigError("trainer.epochs=abc: must be an integer >= 0"))
    assert e.value.code == 1
    assert capsys.readouterr().err == "error: trainer.epochs=abc: must be an integer >= 0\n"


@pytest.mark.slow  # a fresh `python -m framework.train` process through Hydra: ~3 s
def test_single_run_config_error_exits_1_with_one_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "framework.train", "tracking=none", "trainer.epochs=abc",
                          f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == ["error: trainer.epochs=abc: must be an integer >= 0"]  # no traceback


def test_resume_with_early_stopping_restores_the_same_best_weights(tmp_path):
    args = [*SMALL, "trainer.epochs=30", "+callbacks.early_stopping.patience=3",
            "optimizer.lr=0.02"]
    ref = build(make_cfg(*args))
    ref.fit()
    stopped = len(ref.history["val/loss"])
    assert 3 < stopped < 30 and ref.history["val/loss"][-1] > min(ref.history["val/loss"])  # stopped, restores
    t = build(make_cfg(*args), [StopAt((stopped - 2) * 20 + 5), Checkpointer(tmp_path / "ck")])
    with pytest.raises(Interrupted):
        t.fit()
    assert (tmp_path / "ck" / "best.npz").is_file()
    resumed = build(make_cfg(*args))
    restore_checkpoint(resumed, tmp_path / "ck")
    resumed.fit()
    assert resumed.history["val/loss"] == ref.history["val/loss"]
    for k, v in ref.model.state_dict().items():
        assert resumed.model.state_dict()[k].tobytes() == v.tobytes(), k

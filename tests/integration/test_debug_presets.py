"""The debug presets and a user callback, as `python -m framework.train` runs them (real processes)."""
import json
import pstats
import subprocess
import sys
from pathlib import Path

import pytest

import framework
from framework.train import build
from tests.helpers import ENV, make_cfg

HOOK_LOG = '''from pathlib import Path

from framework import Callback
from framework.registry import callbacks


@callbacks.register("hook_log")
class HookLog(Callback):
    """Writes one line per hook call to `path` (None: <run folder>/hooks.txt)."""

    def __init__(self, path: str | None = None):
        self.path = path

    def set_folder(self, folder):
        if self.path is None and folder is not None:
            self.path = str(folder / "hooks.txt")

    def files(self):
        return [Path(self.path)] if self.path else []

    def _write(self, line):
        with open(self.path, "a") as f:
            f.write(line + "\\n")

    def on_train_start(self, trainer):
        self._write(f"start {trainer.epochs}")

    def on_batch_end(self, trainer, step):
        self._write(f"batch {step}")

    def on_batches(self, trainer, record):
        self._write(f"rows {len(record.steps)}")

    def on_epoch_end(self, trainer, epoch, logs):
        self._write(f"epoch {epoch} {sorted(logs)[0]}")

    def on_train_end(self, trainer, status, logs):
        self._write(f"end {status} {'test/loss' in logs}")
'''


def train(cwd, *args, timeout=120):
    """`python -m framework.train ARGS` in `cwd`; its stdout and stderr (asserting exit 0)."""
    run = subprocess.run([sys.executable, "-m", "framework.train", "trainer.progress=plain", *args], cwd=cwd, env=ENV,
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


@pytest.mark.slow
def test_debug_fast_runs_the_whole_pipeline_on_one_batch_per_split(tmp_path):
    out = train(tmp_path, "debug=fast")
    assert "epoch 1/1  train/loss" in out and "test/accuracy" in out and "epoch 2/" not in out
    assert not (tmp_path / "mlflow.db").exists() and "run log" not in out  # tracking off
    (folder,) = tmp_path.glob("outputs/*/*")
    assert (folder / "checkpoint" / "weights.npz").is_file()  # the pipeline's end, checkpoint included


@pytest.mark.slow
def test_debug_profile_writes_the_profile_into_the_run_folder_and_logs_it(tmp_path):
    out = train(tmp_path, "debug=profile", "trainer.epochs=2", "tracking.mode=offline",
                f"tracking.uri=sqlite:///{tmp_path / 'never.db'}")
    (folder,) = tmp_path.glob("outputs/*/*")
    table = (folder / "profile.txt").read_text()
    assert "top 20 by cumulative time" in out and table.splitlines()[0] in out
    assert "trainer.py" in table and "(_run_epoch)" in table  # the training loop is in it
    assert str(Path(framework.__file__).parent) not in table  # file names, not the machine's absolute paths
    stats = pstats.Stats(str(folder / "profile.prof"))
    assert any(func[2] == "_run_epoch" and calls[0] == 2 for func, calls in stats.stats.items())  # 2 epochs
    ends = [json.loads(line) for line in (folder / "runlog" / "journal.jsonl").read_text().splitlines()
            if '"artifacts"' in line]
    assert {"profile.prof", "profile.txt"} <= set(ends[-1]["artifacts"]), ends  # synced as the run's artifacts


def test_debug_overfit_drives_the_loss_near_zero():
    cfg = make_cfg("debug=overfit")
    assert cfg.trainer.overfit_batches == 2 and not cfg.tracking.enabled
    t = build(cfg)
    final = t.fit()
    assert len(t.splits.train) == 64 and t.steps_per_epoch == 2
    assert final["val/loss"] < 0.01 and final["train/loss"] < 0.01, final  # digits: ~0.002
    assert t.history["val/loss"][0] > 1.0  # it started far from there


@pytest.mark.slow
def test_a_user_callback_from_a_plugin_folder_chosen_on_the_command_line_gets_every_hook(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "hook_log.py").write_text(HOOK_LOG)
    log = tmp_path / "hooks.txt"
    train(tmp_path, f"plugins.paths=[{tmp_path / 'mine'}]", f"+callbacks.hook_log.path={log}", "tracking=none",
          "data=xor", "model.hidden=[8]", "trainer.epochs=2", "trainer.batch_size=64", "trainer.flush_every=2")
    lines = log.read_text().splitlines()
    steps = -(-140 // 64)  # xor: 200 rows, 140 for training
    assert lines[0] == "start 2" and lines[-1] == "end FINISHED True"
    assert [x for x in lines if x.startswith("batch ")] == [f"batch {i}" for i in range(2 * steps)]
    assert [x for x in lines if x.startswith("epoch")] == ["epoch 0 epoch/samples_per_second",
                                                          "epoch 1 epoch/samples_per_second"]
    assert sum(int(x.split()[1]) for x in lines if x.startswith("rows")) == 2 * steps

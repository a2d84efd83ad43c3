"""A job says where it went, and its log keeps what it printed: real `python -m framework.train` runs into a
real, new SQLite store (so MLflow creates its tables while the job trains)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
EPOCH = re.compile(r"^epoch \d+/\d+ ")
MLFLOW_LINE = re.compile(r"INFO mlflow|alembic|Creating initial MLflow database tables|Updating database tables")


def train(tmp_path: Path, *overrides: str) -> str:
    """stdout and stderr of `python -m framework.train overrides` in one stream, in the order they came."""
    done = subprocess.run([sys.executable, "-m", "framework.train", *overrides], cwd=tmp_path, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout


@pytest.mark.slow
def test_a_job_ends_with_its_run_id_store_and_ui_address_and_train_log_keeps_its_output(tmp_path):
    import framework

    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    out = train(tmp_path, "data=iris", "trainer.epochs=30", "trainer.progress=plain", f"tracking.uri={uri}",
                f"hydra.run.dir={tmp_path / 'run'}")
    lines = out.splitlines()
    epochs = [i for i, line in enumerate(lines) if EPOCH.match(line)]
    assert len(epochs) == 30 and epochs == list(range(epochs[0], epochs[0] + 30))  # nothing between them
    assert not [line for line in lines if MLFLOW_LINE.search(line)], out  # not before, between or after them
    table = next(i for i, line in enumerate(lines) if "final metrics" in line)
    tail = lines[-3:]
    assert table < len(lines) - 3 and [line.split()[0] for line in tail] == ["run", "store", "ui"]
    prefix, full = re.fullmatch(r"run\s+([0-9a-f]{8})\s+\(([0-9a-f]{32})\)", tail[0]).groups()
    assert full.startswith(prefix) and tail[1].split()[1] == uri
    client = mlflow.MlflowClient(uri)
    run = client.get_run(full)
    assert tail[2].split()[1] == (f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{full}"
                                  f"?workflowType=machine_learning")
    assert run.info.run_name == "iris epochs=30"  # what differs from the default config
    assert "**Differs:** `data=iris trainer.epochs=30`" in run.data.tags["mlflow.note.content"]
    model = framework.load(prefix, uri)  # the printed id is one `framework.load` accepts
    assert model is not None
    log = (tmp_path / "run" / "train.log").read_text()
    assert sum(1 for line in log.splitlines() if " - epoch " in line) == 30
    assert "final metrics" in log and f"run    {prefix}  ({full})" in log


@pytest.mark.slow
def test_an_offline_job_ends_with_the_sync_command(tmp_path):
    uri = f"sqlite:///{tmp_path / 'later.db'}"
    out = train(tmp_path, "data=xor", "trainer.epochs=2", "tracking.mode=offline", f"tracking.uri={uri}",
                f"hydra.run.dir={tmp_path / 'run'}")
    last = out.splitlines()[-1]
    assert last == f"sync     python -m framework.sync {tmp_path / 'run'} --uri {uri}"
    command = last.split(None, 1)[1].split()  # "python -m framework.sync ...": run with this interpreter
    synced = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert synced.returncode == 0 and "complete" in synced.stdout


@pytest.mark.slow
def test_a_sweep_ends_with_its_parent_the_best_job_and_the_runs_command(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = train(tmp_path, "-m", "data=xor", "model.hidden=[8]", "trainer.epochs=2", "trainer.progress=none",
                "optimizer.lr=0.05,0.005", "seed=0,1", f"tracking.uri={uri}", f"hydra.sweep.dir={tmp_path / 'sw'}")
    tail = {line.split()[0]: line for line in out.splitlines()[-5:]}
    assert list(tail) == ["sweep", "best", "report", "ui", "runs"]
    assert tail["report"].split()[1] == str(tmp_path / "sw" / "report.html")
    client = mlflow.MlflowClient(uri)
    (parent,) = client.search_runs(["0"], "tags.`sweep.role` = 'parent'")
    pid = parent.info.run_id
    assert tail["sweep"].split()[1:3] == [pid[:8], f"({pid};"]
    best = client.get_run(parent.data.tags["sweep.best_run_id"])
    assert tail["best"].split()[1] == best.info.run_id[:8] and best.info.run_name in tail["best"]
    assert re.fullmatch(r"lr=0\.0?05 seed=[01]", best.info.run_name)
    note = parent.data.tags["mlflow.note.content"]
    assert "| lr=0.05 | 2 |" in note and "| lr=0.005 | 2 |" in note  # grouped over the seeds
    command = tail["runs"].split(None, 1)[1].split()
    listed = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].startswith(f"sweep {pid[:8]} 'sweep: lr seed': 4 runs by val/loss")
    default = subprocess.run([sys.executable, "-m", "framework.runs", "--uri", uri], cwd=tmp_path, env=ENV,
                             capture_output=True, text=True)
    assert default.stdout.splitlines()[0].startswith(f"latest sweep {pid[:8]}")

"""Hydra multiruns in MLflow: one parent run per sweep, every job a complete child run."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from framework.tracking.table import direction

mlflow = pytest.importorskip("mlflow")

JOB = ["data=xor", "model.hidden=[8]", "trainer.progress=none", "tracking.experiment=sweep"]


def sweep(tmp_path: Path, *overrides: str, uri: str | None = None, code: int = 0,
          folder: str = "multirun") -> tuple[str, Path]:
    """Run `python -m framework.train -m JOB overrides` in tmp_path (exit status `code`), recording into
    `uri` (None: a SQLite file in tmp_path), the sweep in tmp_path/`folder`; returns (store uri, sweep dir)."""
    uri, sweep_dir = uri or f"sqlite:///{tmp_path}/mlflow.db", tmp_path / folder
    done = subprocess.run(
        [sys.executable, "-m", "framework.train", "-m", *JOB, *overrides, f"tracking.uri={uri}",
         f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}, capture_output=True, text=True,
        timeout=600)
    assert done.returncode == code, done.stderr[-3000:]
    return uri, sweep_dir


def check(uri: str, sweep_id: Path | str, jobs: int, swept: list[str]):
    """One finished parent tagged with the sweep id (a sweep dir, or an Optuna study's "storage#name"),
    `jobs` complete children under it with the same points per epoch and batch, the best one named."""
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = [r for r in runs if r is not parent]
    assert parent.data.tags["sweep.id"] == (str(sweep_id.resolve()) if isinstance(sweep_id, Path) else sweep_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.runs"] == str(jobs)
    assert parent.data.tags["sweep.keys"].split() == swept
    assert len(children) == jobs
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["sweep.id"] == parent.data.tags["sweep.id"]
        assert child.info.status == "FINISHED"
        epochs, batch = int(child.data.params["trainer.epochs"]), int(child.data.params["trainer.batch_size"])
        batches = epochs * math.ceil(140 / batch)  # xor: 140 training rows
        for key in ("batch/loss", "grad_norm/global", "grad_norm/layers.1.W"):
            assert len(client.get_metric_history(child.info.run_id, key)) == batches, (child.info.run_name, key)
        assert len(client.get_metric_history(child.info.run_id, "val/loss")) == epochs
        assert all(f"{k.rsplit('.', 1)[-1]}=" in child.info.run_name for k in swept)  # "lr=0.05 epochs=1"
    best = min(children, key=lambda r: r.data.metrics["val/loss"])
    assert parent.data.tags["sweep.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best/val/loss"] == best.data.metrics["val/loss"]
    return parent, children


@pytest.mark.slow
def test_basic_sweep_is_a_parent_with_four_children(tmp_path):
    uri, sweep_dir = sweep(tmp_path, "optimizer.lr=0.05,0.005", "trainer.epochs=1,2", "trainer.batch_size=16")
    parent, _ = check(uri, sweep_dir, 4, ["optimizer.lr", "trainer.epochs"])
    assert parent.data.params["optimizer.lr"] == "0.05,0.005"


@pytest.mark.slow
def test_joblib_sweep_with_two_workers_into_an_mlflow_server_loses_nothing(tmp_path, mlflow_server):
    uri, sweep_dir = sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "backend.threads=auto",
                           "optimizer.lr=0.05,0.005", "trainer.batch_size=8,16", "trainer.epochs=2",
                           uri=mlflow_server.uri)
    check(uri, sweep_dir, 4, ["optimizer.lr", "trainer.batch_size"])


@pytest.mark.slow
def test_optuna_study_in_a_database_continues_under_the_same_parent(tmp_path):
    optuna = pytest.importorskip("optuna")
    study = ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1",
             "hydra.sweeper.storage=sqlite:///optuna.db", "hydra.sweeper.study_name=lr",
             "optimizer.lr=tag(log,interval(0.001,0.05))", "trainer.epochs=1", "trainer.batch_size=16"]
    sweep(tmp_path, *study, folder="first")
    uri, _ = sweep(tmp_path, *study, folder="second")  # the same command again (Hydra's default sweep
                                                       # folder is a new timestamped one): 2 more trials
    trials = optuna.load_study(study_name="lr", storage=f"sqlite:///{tmp_path}/optuna.db").trials
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.state.name == "COMPLETE" for t in trials)
    parent, children = check(uri, f"sqlite:///{tmp_path.resolve()}/optuna.db#lr", 4, ["optimizer.lr"])
    assert parent.data.params["optimizer.lr"] == "tag(log,interval(0.001,0.05))"
    assert parent.data.params["sweeper.n_trials"] == "2"
    by_job = {int(c.data.tags["sweep.job"]): c for c in children}
    assert sorted(by_job) == [0, 1, 2, 3]  # job numbers go on from the study's trial numbers
    for t in trials:
        assert float(by_job[t.number].data.params["optimizer.lr"]) == pytest.approx(t.params["optimizer.lr"])
        assert by_job[t.number].data.metrics["val/loss"] == pytest.approx(t.value)


@pytest.mark.slow
def test_a_job_with_a_bad_config_is_a_failed_child_listed_by_the_parent(tmp_path):
    uri, sweep_dir = sweep(tmp_path, "optimizer.lr=0.05,-1", "trainer.epochs=1", "trainer.batch_size=16", code=1)
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    failed = {r.data.tags["sweep.job"]: r for r in runs if r.info.status == "FAILED"}
    assert list(failed) == ["1"] and failed["1"].info.run_name == "lr=-1"
    assert "optimizer.lr=-1: must be a number > 0" in failed["1"].data.tags["failure.reason"]
    assert parent.data.tags["sweep.failed"].startswith("job 1: ConfigError: optimizer.lr=-1: must be a number > 0")
    assert parent.data.tags["sweep.runs"] == "2" and parent.info.status == "FINISHED"


@pytest.mark.parametrize("metric,mode", [("val/loss", "min"), ("val/accuracy", "max"), ("test/mse", "min"),
                                         ("val/r2", "max"), ("epoch/seconds", "min")])
def test_best_child_direction_follows_the_metric(metric, mode):
    assert direction(metric) == mode

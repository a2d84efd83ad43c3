"""`hydra/launcher=slurm` for real, on a one-node SLURM cluster (tests/conftest.py `slurm_cluster`): a sweep's
jobs as a job array into MLflow, an offline sweep synced from the submitting machine, a job cancelled with
scancel, and a request no node can satisfy."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest

from framework import ConfigError
from framework.run.launchers import slurm_minutes, slurm_request_problem
from framework.tracking.process import SWEEP_ENV
from tests.integration.test_scale import needs_submitit
from tests.integration.test_sweep import JOB, check, sweep

mlflow = pytest.importorskip("mlflow")

# The jobs run on the submitting machine, which would leave their run logs to the launcher's sync process
# (`process.sweep_followed`); as on a compute node, each job starts its own.
ELSEWHERE = f"hydra.launcher.setup=[unset {SWEEP_ENV}]"


@pytest.fixture
def cluster(slurm_cluster, monkeypatch):
    """The session's SLURM cluster, found by this test's commands (SLURM_CONF); its queue empty after."""
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    yield slurm_cluster
    left = slurm_cluster.jobs()
    if left:
        subprocess.run(["scancel", f"--user={os.getuid()}"])
    assert not left, f"jobs left in the queue (cancelled now): {left}"


@pytest.mark.parametrize("limit,minutes", [("infinite", math.inf), ("30", 30), ("45:30", 45.5), ("1:00:00", 60),
                                           ("2-12:00:00", 3600)])
def test_slurm_time_limits_in_minutes(limit, minutes):
    assert slurm_minutes(limit) == minutes


def test_a_machine_without_slurm_commands_is_told_where_to_submit(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sinfo, no sbatch
    with pytest.raises(ConfigError, match="SLURM's commands .* run the sweep on a login node of the cluster"):
        slurm_request_problem({"cpus_per_task": 1})


@needs_submitit
@pytest.mark.slow
def test_slurm_sweep_is_a_job_array_with_every_point_in_mlflow(tmp_path, cluster, new_store):
    uri, sweep_dir = sweep(tmp_path, "hydra/launcher=slurm", "optimizer.lr=0.05,0.005", "trainer.epochs=1,2",
                           "trainer.batch_size=16", ELSEWHERE, uri=new_store())
    check(uri, sweep_dir, 4, ["optimizer.lr", "trainer.epochs"])  # metric histories: epochs x batches
    (script,) = sweep_dir.glob(".submitit/*/*_submission.sh")  # one array of 4 tasks, in this venv's python
    text = script.read_text()
    assert "#SBATCH --array=0-3%4" in text and f"{sys.executable} -u -m submitit.core._submit" in text


@needs_submitit
@pytest.mark.slow
def test_offline_slurm_sweep_is_synced_from_the_submitting_machine(tmp_path, cluster, new_store):
    uri, sweep_dir = sweep(tmp_path, "hydra/launcher=slurm", "tracking.mode=offline", "optimizer.lr=0.05,0.005",
                           "trainer.epochs=2", "trainer.batch_size=16", uri=new_store())
    assert mlflow.MlflowClient(uri).get_experiment_by_name("sweep") is None  # the jobs only wrote run logs
    done = subprocess.run([sys.executable, "-m", "framework.sync", str(sweep_dir), "--uri", uri], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    check(uri, sweep_dir, 2, ["optimizer.lr"])


@needs_submitit
@pytest.mark.slow
def test_a_job_cancelled_with_scancel_is_a_killed_run(tmp_path, cluster, new_store):
    """scancel: SIGTERM to the job's processes (SIGKILL after KillWait); train() stops at the next batch.
    Without accounting (sacct) submitit never learns that the job ended: the sweep waits until Ctrl-C."""
    uri, sweep_dir = new_store(), tmp_path / "multirun"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "framework.train", "-m", *JOB, "hydra/launcher=slurm", ELSEWHERE,
         "trainer.epochs=100000", "trainer.batch_size=16", f"tracking.uri={uri}", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    journal = sweep_dir / "0" / "runlog" / "journal.jsonl"
    try:  # submitit ignores SIGTERM until train() takes it over: cancel once batches are recorded
        deadline = time.monotonic() + 120
        while not (journal.exists() and '"batch/loss"' in journal.read_text()):
            assert time.monotonic() < deadline and launcher.poll() is None, "the job did not start"
            time.sleep(0.5)
        (job,) = cluster.jobs()
        subprocess.run(["scancel", job["id"]], check=True)
        client, run = mlflow.MlflowClient(uri), None
        while (run is None or run.info.status == "RUNNING") and time.monotonic() < deadline:
            time.sleep(0.5)
            experiment = client.get_experiment_by_name("sweep")  # None until the run's sync starts
            runs = experiment and client.search_runs([experiment.experiment_id], "tags.`sweep.job` = '0'")
            run = runs[0] if runs else None
        assert run.info.status == "KILLED" and run.data.tags["failure.reason"] == "Interrupted: SIGTERM"
        assert 0 < len(client.get_metric_history(run.info.run_id, "val/loss")) < 100000, sorted(run.data.metrics)
    finally:
        launcher.send_signal(signal.SIGINT)
        out = launcher.communicate(timeout=120)[0]
    assert launcher.returncode == 130, out[-3000:]
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`sweep.role` = 'parent'")
    assert parent.info.status == "FAILED"


@needs_submitit
@pytest.mark.slow
def test_a_request_no_node_can_satisfy_stops_with_one_line(tmp_path, cluster):
    cpus = cluster.node["cpus"]
    done = subprocess.run([sys.executable, "-m", "framework.train", "-m", *JOB, "hydra/launcher=slurm",
                           f"hydra.launcher.cpus_per_task={cpus + 1}", "optimizer.lr=0.05,0.005",
                           f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"hydra.sweep.dir={tmp_path}/multirun"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: hydra.launcher.cpus_per_task={cpus + 1} asks for {cpus + 1} CPUs per node but partition debug's "
        f"nodes have at most {cpus} (sinfo), so its jobs would stay PENDING for ever; set "
        f"hydra.launcher.cpus_per_task<={cpus}")
    assert cluster.jobs() == [] and not (tmp_path / "multirun" / ".submitit").exists()  # nothing submitted


def test_requests_are_checked_against_the_partition(cluster):
    cpus, mem = cluster.node["cpus"], cluster.node["mem_mb"]
    never = "so its jobs would stay PENDING for ever"
    fits = {"timeout_min": 60, "cpus_per_task": 1, "mem_gb": 2}
    assert slurm_request_problem(fits) is None
    assert slurm_request_problem({**fits, "partition": "gpu,debug"}) is None  # one that fits is enough
    gb = mem // 1024 + 1
    assert slurm_request_problem({**fits, "mem_gb": gb}) == (
        f"hydra.launcher.mem_gb={gb} asks for {gb * 1024} MB per node but partition debug's nodes have at most "
        f"{mem} MB (sinfo), {never}; set hydra.launcher.mem_gb<={mem // 1024}")
    assert slurm_request_problem({**fits, "tasks_per_node": cpus + 1}).startswith(
        f"hydra.launcher.cpus_per_task=1 x tasks_per_node={cpus + 1} asks for {cpus + 1} CPUs per node")
    assert slurm_request_problem({**fits, "timeout_min": 61}) == (
        f"hydra.launcher.timeout_min=61 is longer than partition debug's time limit of 60 min (sinfo), {never}; "
        "set hydra.launcher.timeout_min<=60")
    assert slurm_request_problem({**fits, "partition": "gpu"}) == (
        "hydra.launcher.partition=gpu: no such partition; partitions (sinfo): debug")

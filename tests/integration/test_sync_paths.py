"""A sync reads only inside the run folder: paths a run log names outside it are refused, one line each;
run and sweep folders moved elsewhere sync whole (checkpoints included)."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from framework.tracking.messages import End, RunStart
from framework.tracking.runlog import LOG, RunLogWriter, read_ack

mlflow = pytest.importorskip("mlflow")
from framework.tracking.replay import sync_paths  # noqa: E402

ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
MARKER = "marker-outside-the-run-folder"
JOB = ["data=xor", "model.hidden=[8]", "trainer.batch_size=16", "trainer.epochs=2", "trainer.progress=none",
       "tracking.mode=offline"]


def run_log(folder: Path, artifacts: list[str], parent: str | None = None) -> Path:
    """A closed run log (two points) whose End names `artifacts`, with config.yaml and checkpoint/ beside it."""
    log = RunLogWriter(folder, RunStart(secrets.token_hex(16), "paths", 1_700_000_000_000, parent=parent))
    log.add_points(["loss"], np.array([0, 1]), np.array([[1.0], [0.5]]), 1_700_000_000_000)
    (folder / "config.yaml").write_text("a: 1\n")
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "state.npz").write_bytes(b"state")
    log.close(End("FINISHED", 1_700_000_001_000, artifacts))
    return folder


def stored_files(client, run_id: str) -> dict[str, bytes]:
    """Every file of the run's artifact folder (a SQLite store's: local), by its path there."""
    root = Path(urlparse(client.get_run(run_id).info.artifact_uri).path)
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_paths_outside_the_run_folder_are_refused_one_line_each(tmp_path, new_store, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(MARKER)
    (tmp_path / "x").write_text(MARKER)
    run = tmp_path / "run"
    run.mkdir()
    (run / "linked").symlink_to(outside)  # a link out named by the End record
    (run / "loop").symlink_to(run / "loop")
    names = ["/etc", str(outside), "../x", "linked", "loop", "config.yaml", "checkpoint"]
    run_log(run, names)
    (run / "checkpoint" / "escape.txt").symlink_to(outside / "secret.txt")  # a link out inside a named folder
    (run / "plots").mkdir()
    (run / "plots" / "inner.txt").symlink_to(run / "config.yaml")  # a link that stays inside: copied
    uri = new_store()
    assert sync_paths([run], uri) == 1
    lines = capsys.readouterr().out.splitlines()
    refused = [line for line in lines if "refused" in line]
    assert len(refused) == 6, lines
    for name, line in zip(["/etc", str(outside), "../x", "linked", "loop", "checkpoint/escape.txt"], refused,
                          strict=True):
        assert line.startswith(f"{run.resolve()}: runlog/journal.jsonl line 3 (End artifacts): refused '{name}'")
    client = mlflow.MlflowClient(uri)
    run_id = read_ack(run, uri)["run_id"]
    files = stored_files(client, run_id)
    assert set(files) == {"config.yaml", "checkpoint/state.npz", "plots/inner.txt"}
    assert MARKER.encode() not in b"".join(files.values())
    assert client.get_run(run_id).info.status == "FINISHED"  # the rest of the run is synced
    assert sync_paths([run], uri) == 0 and capsys.readouterr().out.strip() == "already complete: 1 run, 0 points sent"


def test_absolute_paths_of_earlier_run_logs_are_taken_when_inside(tmp_path, new_store, capsys):
    run = tmp_path / "run"
    run.mkdir()
    run_log(run, [str(run / "config.yaml"), str(run / "checkpoint")])  # as earlier versions wrote them
    uri = new_store()
    assert sync_paths([run], uri) == 0, capsys.readouterr().out
    files = stored_files(mlflow.MlflowClient(uri), read_ack(run, uri)["run_id"])
    assert set(files) == {"config.yaml", "checkpoint/state.npz"}


def test_a_run_log_whose_files_are_links_out_is_not_read(tmp_path, new_store, capsys):
    elsewhere = run_log(tmp_path / "elsewhere", ["config.yaml"])
    run = tmp_path / "run"
    run.mkdir()
    (run / LOG).symlink_to(elsewhere / LOG)
    assert sync_paths([run], new_store()) == 1
    out = capsys.readouterr().out
    assert f"{run.resolve()}: damaged: runlog: a symbolic link to {elsewhere / LOG}, outside the run folder" in out
    assert not (elsewhere / LOG / "acks").exists()  # nothing read or written there


def test_a_job_parent_that_is_not_a_folder_above_it_is_refused(tmp_path, new_store, capsys):
    from framework.tracking.messages import encode

    elsewhere = run_log(tmp_path / "elsewhere", [])
    run = run_log(tmp_path / "run", [])
    journal = run / LOG / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    start = RunStart(secrets.token_hex(16), "paths", 1_700_000_000_000, parent=str(elsewhere))
    journal.write_text(encode(start) + "".join(lines[1:]))
    uri = new_store()
    assert sync_paths([run], uri) == 1
    out = capsys.readouterr().out
    assert (f"runlog/journal.jsonl line 1 (RunStart parent): refused '{elsewhere}': not a folder above the job's; "
            f"the run is stored without its sweep's parent run") in out
    client = mlflow.MlflowClient(uri)
    assert [r.info.run_name for r in client.search_runs([client.get_experiment_by_name("paths").experiment_id])] \
        == [client.get_run(read_ack(run, uri)["run_id"]).info.run_name]  # the other run log was not synced


def test_a_moved_sweep_folder_keeps_its_jobs_and_refuses_a_best_job_outside(tmp_path, new_store, capsys):
    from framework.tracking.messages import SweepEnd

    def sweep(folder: Path, best: str) -> Path:
        parent = RunLogWriter(folder, RunStart(secrets.token_hex(16), "paths", 1_700_000_000_000, role="sweep",
                                               tags={"sweep.role": "parent", "sweep.id": str(folder)}))
        parent.flush()
        for job in ("0", "1"):
            run_log(folder / job, ["config.yaml"], parent="..")
        parent.close(SweepEnd("FINISHED", 1_700_000_002_000, "loss", best, 0.5, runs=2))
        return folder

    good = shutil.move(sweep(tmp_path / "a" / "good", "1"), tmp_path / "good")
    bad = sweep(tmp_path / "bad", "/etc")
    uri = new_store()
    assert sync_paths([good, bad], uri) == 1
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if "refused" in line] == [
        f"{bad}: runlog/journal.jsonl line 2 (SweepEnd best job): refused '/etc': an absolute path outside the run "
        f"folder; the sweep's best run is not tagged"]
    client = mlflow.MlflowClient(uri)
    for folder in (good, bad):
        parent = client.get_run(read_ack(folder, uri)["run_id"])
        children = client.search_runs([parent.info.experiment_id],
                                      f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        assert parent.info.status == "FINISHED" and len(children) == 2
        assert parent.data.tags.get("sweep.best_run_id") == (read_ack(good / "1", uri)["run_id"] if folder is good
                                                             else None)


def _train(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "framework.train", *args], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_moved_run_folder_and_sweep_folder_sync_whole(tmp_path, new_store):
    """An offline run and an offline sweep of 2 jobs, both moved before the sync: every run FINISHED with its
    checkpoint, the sweep's parent with both children and its best job."""
    first = tmp_path / "first"
    procs = [_train(tmp_path, *JOB, f"hydra.run.dir={first / 'run'}"),
             _train(tmp_path, "-m", *JOB, "seed=1,2", f"hydra.sweep.dir={first / 'sweep'}")]
    for p in procs:
        out = p.communicate(timeout=600)[0]
        assert p.returncode == 0, out[-3000:]
    moved = shutil.move(first, tmp_path / "moved")
    uri = new_store()
    done = subprocess.run([sys.executable, "-m", "framework.sync", str(moved), "--uri", uri], env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("synced now: 4 runs, ")
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
    (parent,) = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and parent.data.tags["sweep.best_run_id"] in {c.info.run_id for c in children}
    for r in runs:
        if r is not parent:
            assert [a.path for a in client.list_artifacts(r.info.run_id, "checkpoint")], r.info.run_name

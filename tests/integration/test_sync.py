"""Run logs replayed into real stores: bulk insert == log_batch, idempotent re-syncs, killed processes,
offline runs, a store that goes away mid-run, many processes on a fresh store."""
from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from framework.tracking.messages import End, RunStart
from framework.tracking.runlog import LOG, RunLogWriter, read_ack, write_ack

mlflow = pytest.importorskip("mlflow")
from framework.tracking import store  # noqa: E402  (imports mlflow)
from framework.tracking.replay import sync_paths  # noqa: E402

KEYS = ["batch/loss", "batch/lr", "grad_norm/global"]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
JOB = ["data=xor", "model.hidden=[8]", "trainer.batch_size=16", "trainer.progress=plain", "seed=5"]


def synthetic(folder: Path, rows: int, chunk: int = 64, end: bool = True) -> RunLogWriter:
    """A run log of `rows` x KEYS points (NaN, +-inf and a re-logged step included); closed FINISHED
    unless not `end` (then this process holds it, as a training process would)."""
    log = RunLogWriter(folder, RunStart(secrets.token_hex(16), "sync", 1_700_000_000_000, params={"p": "1"},
                                        tags={"t": "x"}))
    values = np.random.default_rng(0).random((rows, len(KEYS)))
    values[3, 0], values[4, 1], values[5, 2] = np.nan, np.inf, -np.inf
    for lo in range(0, rows, chunk):
        steps = np.arange(lo, min(lo + chunk, rows))
        log.add_points(KEYS, steps, values[steps], 1_700_000_000_000 + lo)
    log.add_points(KEYS[:1], np.array([rows - 1]), np.array([[-1.0]]), 1_700_000_000_000)  # older timestamp
    log.flush()
    if end:
        log.close(End("FINISHED", 1_700_000_001_000))
    return log


def points(client, run_id: str) -> dict[str, list[tuple]]:
    """Every key's history as sorted (step, timestamp, value) with NaN made comparable."""
    return {k: sorted((m.step, m.timestamp, "nan" if math.isnan(m.value) else m.value)
                      for m in client.get_metric_history(run_id, k)) for k in KEYS}


def latest(client, run_id: str) -> dict:
    return {k: "nan" if math.isnan(v) else v for k, v in client.get_run(run_id).data.metrics.items()}


def test_run_logs_with_npy_chunks_of_earlier_versions_read_the_same(tmp_path):
    from dataclasses import replace

    from framework.tracking.messages import Metrics, encode
    from framework.tracking.runlog import JOURNAL, read_chunk, read_records

    run = synthetic(tmp_path / "run", 150, chunk=64).folder
    records = read_records(run)
    rows = [read_chunk(run, r) for r in records if isinstance(r, Metrics)]
    assert [len(r) for r in rows] == [64, 64, 22, 1] and rows[3].tolist() == [[149, 1_700_000_000_000, -1.0]]
    old = []
    for i, r in enumerate(records):  # rewritten as the earlier format: one .npy file per record
        if isinstance(r, Metrics):
            np.save(run / LOG / f"{i:06d}.npy", read_chunk(run, r))
            r = replace(r, offset=None, chunk=f"{i:06d}.npy")
        old.append(encode(r))
    (run / LOG / JOURNAL).write_text("".join(old))
    (run / LOG / "points.f64").unlink()
    again = [read_chunk(run, r) for r in read_records(run) if isinstance(r, Metrics)]
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(rows, again, strict=True))


def test_bulk_insert_and_log_batch_store_the_same(tmp_path, new_store):
    run = synthetic(tmp_path / "run", 300).folder
    a, b = new_store("a.db"), new_store("b.db")
    assert sync_paths([run], a) == 0 and sync_paths([run], b, bulk=False) == 0
    ca, cb = mlflow.MlflowClient(a), mlflow.MlflowClient(b)
    ra, rb = read_ack(run, a)["run_id"], read_ack(run, b)["run_id"]
    assert points(ca, ra) == points(cb, rb)
    assert len(points(ca, ra)["batch/loss"]) == 301 and latest(ca, ra) == latest(cb, rb)
    assert latest(ca, ra)["batch/loss"] == points(ca, ra)["batch/loss"][-1][2]  # newest (step, timestamp)
    assert ca.get_run(ra).data.params == {"p": "1"} and ca.get_run(ra).info.status == "FINISHED"
    assert ca.get_run(ra).data.tags["t"] == "x" and ca.get_run(ra).data.tags["runlog.id"]


@pytest.mark.parametrize("bulk", [True, False])
def test_resync_after_lost_acknowledgements_stores_each_point_once(tmp_path, new_store, bulk):
    run = synthetic(tmp_path / "run", 200).folder
    uri = new_store()
    sync_paths([run], uri, bulk=bulk)
    client = mlflow.MlflowClient(uri)
    first = points(client, read_ack(run, uri)["run_id"])
    for ack in ({**read_ack(run, uri), "run_id": None, "done": 0, "creating": True},  # killed between creating the
                {**read_ack(run, uri), "done": 2}):  # run and acknowledging it; after the first chunk
        write_ack(run, ack)
        assert sync_paths([run], uri, bulk=bulk) == 0
    (only,) = client.search_runs([client.get_experiment_by_name("sync").experiment_id])
    assert points(client, only.info.run_id) == first


def test_the_same_store_under_another_uri_gets_no_second_run(tmp_path, new_store):
    run, uri = synthetic(tmp_path / "run", 70).folder, new_store()
    other = uri.replace("/s.db", "/./s.db")  # the same file
    assert sync_paths([run], uri) == 0 and sync_paths([run], other) == 0
    client = mlflow.MlflowClient(uri)
    (only,) = client.search_runs([client.get_experiment_by_name("sync").experiment_id])
    assert read_ack(run, other)["run_id"] == only.info.run_id


def test_a_copy_of_a_run_log_made_before_any_sync_gets_no_second_run(tmp_path, new_store):
    """An offline run copied (rsync to a laptop) and synced from both places into one store."""
    run, uri = synthetic(tmp_path / "run", 70).folder, new_store()
    copy = shutil.copytree(run, tmp_path / "copy")
    assert sync_paths([run], uri) == 0 and sync_paths([copy], uri) == 0
    client = mlflow.MlflowClient(uri)
    (only,) = client.search_runs([client.get_experiment_by_name("sync").experiment_id])
    assert read_ack(copy, uri)["run_id"] == only.info.run_id and points(client, only.info.run_id)["batch/loss"]


def test_a_run_whose_process_died_is_killed_with_every_flushed_point(tmp_path, new_store):
    writer = synthetic(tmp_path / "run", 100, end=False)
    run = writer.folder
    with open(run / LOG / "journal.jsonl", "a") as f:
        f.write('{"type": "Metrics", "chunk": "chunks/99')  # a record cut off by the kill
    uri = new_store()
    assert sync_paths([run], uri) == 1  # the trainer (this process) still holds the run: synced so far
    client = mlflow.MlflowClient(uri)
    run_id = read_ack(run, uri)["run_id"]
    assert client.get_run(run_id).info.status == "RUNNING"
    writer.lock.release()  # what the kernel does when the training process dies
    assert sync_paths([run], uri) == 0
    assert client.get_run(run_id).info.status == "KILLED"
    assert [p[0] for p in points(client, run_id)["batch/lr"]] == list(range(100))


def test_untested_schema_revisions_fall_back_to_log_batch(new_store, monkeypatch, caplog):
    monkeypatch.setattr(store, "BULK_REVISIONS", set())
    with caplog.at_level("INFO"):
        sink = store.MetricSink(store.open_store(new_store()))
    assert not sink.bulk and "storing metrics with log_batch" in caplog.text


# ---- real processes -------------------------------------------------------------------------------------
def _train(tmp_path: Path, name: str, *overrides: str, **kw):
    return subprocess.Popen([sys.executable, "-m", "framework.train", *JOB, f"hydra.run.dir={tmp_path / name}",
                             *overrides], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kw)


def _sync(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framework.sync", *args], env=ENV, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_kill_9_of_the_training_process_then_sync(tmp_path, new_store):
    proc = _train(tmp_path, "run", "trainer.epochs=200", "tracking.mode=offline", "trainer.flush_every=4")
    for line in proc.stdout:
        if line.startswith("epoch 3/"):
            proc.kill()
            break
    proc.wait(30)
    uri = new_store()
    done = _sync(str(tmp_path / "run"), "--uri", uri)
    assert done.returncode == 0, done.stdout + done.stderr
    client = mlflow.MlflowClient(uri)
    run = client.get_run(read_ack(tmp_path / "run", uri)["run_id"])
    assert run.info.status == "KILLED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "batch/loss")]
    assert sorted(steps) == list(range(len(steps))) and len(steps) >= 3 * 9  # 0..k, each once, 3 epochs at least


@pytest.mark.slow
def test_kill_9_of_the_sync_process_then_sync_again(tmp_path, new_store):
    run = synthetic(tmp_path / "run", 20_000).folder
    uri = new_store()
    sync = subprocess.Popen([sys.executable, "-m", "framework.sync", str(run), "--uri", uri, "--log-batch"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while read_ack(run, uri)["done"] < 50:  # killed in the middle of its log_batch calls
        assert sync.poll() is None, "the sync finished before it could be killed"
        time.sleep(0.05)
    time.sleep(0.3)
    sync.kill()
    sync.wait(30)
    acked = read_ack(run, uri)["done"]
    assert 0 < acked < len((run / LOG / "journal.jsonl").read_text().splitlines())
    done = _sync(str(run), "--uri", uri)
    assert done.returncode == 0, done.stdout + done.stderr
    client = mlflow.MlflowClient(uri)
    history = points(client, read_ack(run, uri)["run_id"])
    assert [len(history[k]) for k in KEYS] == [20_001, 20_000, 20_000]
    assert all(len(set(h)) == len(h) for h in history.values())


@pytest.mark.slow
def test_offline_run_synced_to_a_server_equals_an_online_run(tmp_path, mlflow_server):
    uri = mlflow_server.uri
    online = _train(tmp_path, "online", "trainer.epochs=2", f"tracking.uri={uri}")
    offline = _train(tmp_path, "offline", "trainer.epochs=2", f"tracking.uri={uri}", "tracking.mode=offline")
    for p in (online, offline):
        out = p.communicate(timeout=600)[0]
        assert p.returncode == 0, out
    assert "python -m framework.sync" in out
    done = _sync(str(tmp_path / "offline"))  # to the store the run was configured for
    assert done.returncode == 0, done.stdout + done.stderr
    client = mlflow.MlflowClient(uri)
    a, b = (client.get_run(read_ack(tmp_path / n, uri)["run_id"]) for n in ("online", "offline"))
    assert a.info.status == b.info.status == "FINISHED"
    timing = {"epoch/seconds", "epoch/samples_per_second"}
    assert set(a.data.metrics) == set(b.data.metrics) and len(a.data.metrics) > 10
    for key in {k for k in set(a.data.metrics) - timing if not k.startswith("system/")}:  # timing, machine load
        ha, hb = ([(m.step, m.value) for m in client.get_metric_history(r.info.run_id, key)] for r in (a, b))
        assert sorted(ha) == sorted(hb), key
    assert {x.path for x in client.list_artifacts(b.info.run_id)} >= {"weights.npz", "config.yaml", "plots"}
    assert a.outputs.model_outputs and b.outputs.model_outputs  # the MLflow model, logged through the server


@pytest.mark.slow
def test_store_stopped_mid_run_then_sync_completes_it(tmp_path, mlflow_server):
    uri = mlflow_server.uri
    proc = _train(tmp_path, "run", "trainer.epochs=60", f"tracking.uri={uri}", "tracking.timeout_s=3")
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("epoch 2/"):
                break
        mlflow_server.stop()  # mid-run
        out = "".join(lines) + proc.communicate(timeout=600)[0]
    finally:
        mlflow_server.start()  # the same store on the same port again (also for the tests after this one)
    assert proc.returncode == 0, out
    command = f"python -m framework.sync {tmp_path / 'run'} --uri {uri}"
    assert command in out.strip().splitlines()[-1] or command in out, out[-2000:]
    done = _sync(str(tmp_path / "run"), "--uri", uri)
    assert done.returncode == 0, done.stdout + done.stderr
    client = mlflow.MlflowClient(uri)
    run = client.get_run(read_ack(tmp_path / "run", uri)["run_id"])
    assert run.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/loss")) == list(range(60))
    assert len(client.get_metric_history(run.info.run_id, "batch/loss")) == 60 * 9


@pytest.mark.slow
def test_four_jobs_at_once_on_a_fresh_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/fresh.db"
    procs = [_train(tmp_path, f"job{i}", "trainer.epochs=1", f"tracking.uri={uri}", f"seed={i}") for i in range(4)]
    for p in procs:
        out = p.communicate(timeout=600)[0]
        assert p.returncode == 0, out
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert all(len(client.get_metric_history(r.info.run_id, "batch/loss")) == 9 for r in runs)
    assert json.loads((tmp_path / "job0" / LOG / "acks" / os.listdir(tmp_path / "job0" / LOG / "acks")[0])
                      .read_text())["uri"] == uri


def test_a_question_is_answered_while_the_sync_process_scans_a_sweep_folder(new_store, tmp_path, monkeypatch):
    """FindFinished arriving when a sweep-folder scan is due is answered (it once fell into the scan's
    `elif` and was dropped: the asking job waited for its timeout)."""
    import threading
    from multiprocessing import Pipe

    from framework.tracking import service
    from framework.tracking.messages import Answer, FindFinished, Follow

    monkeypatch.setattr(service, "SCAN_S", 0.0)  # a scan is due at every pass
    monkeypatch.setattr(service, "RETRY_S", 0.0)  # the empty folder's follow fails: ended at once when closed
    uri, sweep = new_store(), tmp_path / "sweep"
    sweep.mkdir()
    to_service, inbox = Pipe()
    outbox, from_service = Pipe()
    server = threading.Thread(target=service.serve, args=(inbox, outbox), daemon=True)
    server.start()
    to_service.send(Follow(str(sweep), uri, reply=False, jobs=True))
    time.sleep(0.3)  # the Follow is taken and the sweep is being scanned
    to_service.send(FindFinished(7, uri, "no-such-experiment", "0" * 16))
    assert from_service.poll(30), "the question was not answered"
    assert from_service.recv() == Answer(7, None)
    to_service.close()
    server.join(10)


def test_a_new_sqlite_store_keeps_the_default_experiments_artifacts_beside_it(empty_store, new_store):
    """`empty_store` (conftest) is the store `open_store` created in the working directory cwd/ beside it."""
    client = mlflow.MlflowClient(new_store())
    assert client.get_experiment("0").artifact_location == (empty_store.parent / "mlartifacts" / "0").as_uri()
    assert not (empty_store.parent / "cwd" / "mlruns").exists()  # MLflow's own default root, ./mlruns


def test_settings_records_and_metrics_are_grouped_into_one_transaction_each():
    from framework.tracking.messages import Metrics, Params, Tags
    from framework.tracking.replay import group

    records = [RunStart("id", "e", 0, params={"a": "1"}), Params({"b": "2"}), Tags({"t": "x"}), Params({"a": "1"}),
               Metrics(["k"], 5, 0), Metrics(["k"], 5, 56), Metrics(["k"], 5, 112), End("FINISHED", 1), Tags({})]
    assert group(records, 0, 10) == records[:3]  # a param logged again starts a new group
    assert group(records, 3, 10) == [records[3]]
    assert group(records, 4, 10) == records[4:6]  # up to 10 points
    assert group(records, 7, 10) == [records[7]]


@pytest.mark.sync_process
def test_the_sync_process_syncs_without_the_imports_it_skips(tmp_path, new_store):
    """This process's sync process (`python -m framework.tracking.service`: `SKIPPED_IMPORTS` fail at once,
    the collector off during its start-up) opens a store it has not seen and stores a run log in it, as a
    sync in this process stores it (histories, latest values, params, status); the process is the one
    tests/conftest.py starts after collection, so no second `import mlflow` is paid here."""
    from framework.tracking.process import sync_process

    run, uri, here = synthetic(tmp_path / "run", 300).folder, new_store(), new_store("here.db")
    process = sync_process()
    process.follow(run, uri)
    synced = process.wait_synced([run], timeout=300).get(str(run))
    assert synced is not None and synced.missing == "", synced
    assert synced.run_id == read_ack(run, uri)["run_id"]
    assert sync_paths([run], here) == 0  # the same run log synced in this process: the same run
    ca, cb, ra = mlflow.MlflowClient(here), mlflow.MlflowClient(uri), read_ack(run, here)["run_id"]
    assert points(ca, ra) == points(cb, synced.run_id) and latest(ca, ra) == latest(cb, synced.run_id)
    assert ca.get_run(ra).data.params == cb.get_run(synced.run_id).data.params
    assert cb.get_run(synced.run_id).info.status == "FINISHED"



def test_a_group_of_metrics_records_is_read_at_once_as_record_by_record(tmp_path):
    from framework.tracking.messages import Metrics
    from framework.tracking.runlog import POINTS, Damaged, read_chunk, read_chunks, read_records

    run = synthetic(tmp_path / "run", 150, chunk=64).folder
    records = [r for r in read_records(run) if isinstance(r, Metrics)]
    together = read_chunks(run, records[1:])
    assert [len(r) for r in together] == [64, 22, 1]
    assert all(np.array_equal(a, read_chunk(run, r), equal_nan=True)
               for a, r in zip(together, records[1:], strict=True))
    with open(run / LOG / POINTS, "r+b") as f:
        f.truncate(8 * 5 * 100)
    with pytest.raises(Damaged, match="points.f64 bytes 2560..5120: the file ends at byte 4000 .cut short") as e:
        read_chunks(run, records)
    assert e.value.index == 1  # the record before it is whole


def test_the_creating_mark_goes_once_the_run_is_acknowledged(tmp_path, new_store):
    run, uri = synthetic(tmp_path / "run", 70).folder, new_store()
    write_ack(run, {"uri": uri, "run_id": None, "done": 0, "creating": True})  # a sync killed while creating
    assert sync_paths([run], uri) == 0
    ack = read_ack(run, uri)
    assert ack["run_id"] and "creating" not in ack


def test_a_full_run_id_is_looked_up_without_a_search(tmp_path, new_store, monkeypatch):
    from framework.errors import ConfigError
    from framework.tracking.table import resolve_run_id

    run, uri = synthetic(tmp_path / "run", 70).folder, new_store()
    sync_paths([run], uri)
    run_id, client = read_ack(run, uri)["run_id"], store.open_store(uri)
    assert resolve_run_id(client, run_id[:6]) == run_id  # a prefix: searched
    monkeypatch.setattr(mlflow.MlflowClient, "search_runs", lambda *a, **k: pytest.fail("searched"))
    assert resolve_run_id(client, run_id.upper()) == run_id
    with pytest.raises(ConfigError, match="no run id starts with"):
        resolve_run_id(client, "0" * 32)
    with pytest.raises(ConfigError, match="no run id starts with"):  # not in the experiments asked about
        resolve_run_id(client, run_id, ["123456"])
    client.delete_run(run_id)
    with pytest.raises(ConfigError, match="no run id starts with"):
        resolve_run_id(client, run_id)


def test_a_used_sweep_folder_is_refused_with_the_sweeps_fix(tmp_path):
    from framework.errors import ConfigError
    from framework.tracking.runlog import check_new

    synthetic(tmp_path, 10)
    with pytest.raises(ConfigError, match=f"sweep folder {tmp_path} already holds .*: give this sweep its own"):
        check_new(tmp_path, "sweep folder", "give this sweep its own hydra.sweep.dir")


def test_the_collector_is_back_on_once_the_first_request_is_handled(tmp_path, new_store):
    import gc
    import threading
    from multiprocessing import Pipe

    from framework.tracking import service
    from framework.tracking.messages import Follow, Synced

    run, uri = synthetic(tmp_path / "run", 10).folder, new_store()
    to_service, inbox = Pipe()
    outbox, from_service = Pipe()
    gc.disable()  # as the service's own process starts
    try:
        server = threading.Thread(target=service.serve, args=(inbox, outbox), daemon=True)
        server.start()
        to_service.send(Follow(str(run), uri))
        assert from_service.poll(60) and isinstance(from_service.recv(), Synced)
        give_up = time.monotonic() + 10
        while not gc.isenabled() and time.monotonic() < give_up:  # turned on at the end of the same pass
            time.sleep(0.01)
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        to_service.close()
        gc.unfreeze()
        gc.enable()
    server.join(10)

"""PostgreSQL behind MLflow (the session's server: tests/conftest.py `postgres`): bulk insert == log_batch, the
schema-revision check, an empty database opened by 4 jobs at once, README's shared-server recipe run as written
(`mlflow server` on PostgreSQL, a joblib sweep, an offline run synced), and a missing driver stopping a job."""
from __future__ import annotations

import math
import re
import secrets
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.servers import ENV, MlflowServer
from framework.run.config import ROOT
from framework.tracking.messages import Metrics, SweepEnd
from framework.tracking.runlog import LOG, find_runlogs, read_ack, read_chunks, read_records
from tests.integration.test_sync import _train, latest, points, synthetic

mlflow = pytest.importorskip("mlflow")
from framework.tracking import store  # noqa: E402  (imports mlflow)
from framework.tracking.replay import Store, sync_paths  # noqa: E402

SMALL = ["data=xor", "model.hidden=[8]", "trainer.epochs=2", "trainer.batch_size=16", "trainer.progress=none"]


@pytest.fixture(scope="module")
def pg_store(postgres):
    """pg_store() -> the URI of a new database holding MLflow's tables (a copy of one `open_store` created:
    no migrations)."""
    template = f"mlflow_{secrets.token_hex(4)}"
    client = store.open_store(postgres.database(template))
    client._client._tracking_client.store.engine.dispose()  # MLflow keeps the store: no session may stay open
    return lambda: postgres.database(f"s_{secrets.token_hex(4)}", template=template)


def test_bulk_insert_and_log_batch_store_the_same_in_postgresql(tmp_path, pg_store, new_store):
    """NaN, +-inf, a step logged again with an older timestamp, params, tags, 1,500 steps: the bulk INSERT's
    histories and latest values are log_batch's, and SQLite's bulk insert's."""
    run = synthetic(tmp_path / "run", 1500).folder
    bulk, log_batch, sqlite = pg_store(), pg_store(), new_store()
    assert Store(bulk).sink.bulk  # the bulk path is the one taken
    assert [sync_paths([run], bulk), sync_paths([run], log_batch, bulk=False), sync_paths([run], sqlite)] == [0, 0, 0]
    (a, ra), (b, rb), (c, rc) = ((mlflow.MlflowClient(u), read_ack(run, u)["run_id"])
                                 for u in (bulk, log_batch, sqlite))
    assert points(a, ra) == points(b, rb) == points(c, rc)
    assert len(points(a, ra)["batch/loss"]) == 1501 and {"nan", sys.float_info.max, -sys.float_info.max} <= {
        p[2] for history in points(a, ra).values() for p in history}  # +-inf: MLflow stores +-max float
    assert latest(a, ra) == latest(b, rb) == latest(c, rc)
    runs = [a.get_run(ra), b.get_run(rb), c.get_run(rc)]
    assert [(r.data.params, r.data.tags["t"], r.info.status) for r in runs] == [({"p": "1"}, "x", "FINISHED")] * 3


def test_the_schema_revision_is_read_from_postgresql(pg_store, new_store, caplog):
    """The revision a new PostgreSQL store gets is SQLite's, one the bulk insert is tested on; a store at another
    revision gets log_batch, with a note (MLflow itself refuses to open one it does not know: the revision is
    changed under an open store)."""
    import psycopg

    uri = pg_store()
    client = store.open_store(uri)
    revision = store._revision(client._client._tracking_client.store)
    assert revision in store.BULK_REVISIONS and revision == store._revision(
        store.open_store(new_store())._client._tracking_client.store)
    assert store.MetricSink(client).bulk
    with psycopg.connect(uri, autocommit=True) as con:
        con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    with caplog.at_level("INFO"):
        sink = store.MetricSink(client)
    assert not sink.bulk and "schema revision ffffffffffff of postgresql://" in caplog.text


@pytest.mark.slow
def test_four_jobs_at_once_on_an_empty_postgresql_database(postgres, tmp_path):
    """Four `python -m framework.train` (four sync processes) open a database without MLflow's tables at once:
    one creates them (`store.open_store` holds an advisory lock), none reports a store error, all runs are there."""
    uri = postgres.database("fresh")
    procs = [_train(tmp_path, f"job{i}", "trainer.epochs=1", f"tracking.uri={uri}", f"seed={i}") for i in range(4)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert not [line for out in outs for line in out.splitlines() if line.startswith("framework sync:")], outs
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
    assert {read_ack(tmp_path / f"job{i}", uri)["run_id"] for i in range(4)} == {r.info.run_id for r in runs}
    assert all(len(client.get_metric_history(r.info.run_id, "batch/loss")) == 9 for r in runs)


def readme_recipe() -> list[list[str]]:
    """README's shared-server recipe (Scaling out): its commands as argv, continued lines joined, comments cut."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"\*\*A shared tracking server\*\*.*?```bash\n(.*?)```", text, re.S).group(1)
    commands = (shlex.split(line, comments=True) for line in re.sub(r"\\\n\s*", " ", block).splitlines())
    return [c for c in commands if c]


def logged(folder) -> dict[str, list[tuple]]:
    """Every metric point of a run log as (step, timestamp, value), by MLflow key, sorted (a sweep's `best/<metric>`:
    its SweepEnd's value at step 0)."""
    out: dict[str, list[tuple]] = {}
    records = read_records(folder)
    for end in (r for r in records if isinstance(r, SweepEnd) and r.best):
        out[store.mlflow_key(f"best/{end.metric}")] = [(0, end.end_ms, end.value)]
    records = [r for r in records if isinstance(r, Metrics)]
    for record, rows in zip(records, read_chunks(folder, records)):
        for j, key in enumerate(record.keys):
            out.setdefault(store.mlflow_key(key), []).extend(
                (int(s), int(t), "nan" if math.isnan(v) else v) for s, t, v in rows[:, [0, 1, 2 + j]].tolist())
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.slow
def test_readmes_shared_server_recipe_on_postgresql_loses_nothing(postgres, tmp_path):
    """README's commands in order, with local values (PostgreSQL and the server on 127.0.0.1, a temp artifact
    folder, one server worker) and `SMALL` jobs: the server creates its tables in an empty database, a 2-worker
    joblib sweep records through it, an offline run is synced into it; every point of every run log (the sweep's
    parent, its jobs, the offline run) is in the store once."""
    pip, server_command, sweep, offline, sync = readme_recipe()
    assert pip == ["pip", "install", "-e", ".[postgres]"]
    assert re.search(r"^postgres = \[\"psycopg\[binary\]", (ROOT / "pyproject.toml").read_text(), re.M)
    assert server_command[:2] == ["mlflow", "server"]
    flags = dict(zip(server_command[2::2], server_command[3::2]))
    assert flags["--backend-store-uri"].startswith("postgresql://")
    server = MlflowServer(tmp_path, backend=postgres.database("shared"))
    local = {"--host": "127.0.0.1", "--port": str(server.port), "--backend-store-uri": server.backend,
             "--artifacts-destination": str(tmp_path / "art")}
    assert {**flags, **local} == {k: v for k, v in server.flags().items() if k != "--workers"}  # README's options
    project = tmp_path / "project"
    project.mkdir()
    with server:
        for command in (sweep, offline, sync):
            argv = [sys.executable if a == "python" else a.replace("http://tracking-host:5000", server.uri)
                    for a in command]
            done = subprocess.run(argv + (SMALL if "framework.train" in argv else []), cwd=project, env=ENV,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-3000:])
        client = mlflow.MlflowClient(server.uri)
        folders = find_runlogs([project])
        assert len(folders) == 4  # the sweep's parent and 2 jobs, the offline run
        for folder in folders:
            run = client.get_run(read_ack(folder, server.uri)["run_id"])
            expected = logged(folder)
            assert run.info.status == "FINISHED" and set(run.data.metrics) == set(expected) and expected
            for key, history in expected.items():
                stored = sorted((m.step, m.timestamp, "nan" if math.isnan(m.value) else m.value)
                                for m in client.get_metric_history(run.info.run_id, key))
                assert stored == history, (folder, key)


def test_the_server_dies_with_the_process_that_started_it(postgres):
    """`kill -9` of the process that started a PostgresServer: the kernel stops the server; the next start
    removes the folder it left."""
    from benchmarks.servers import PostgresServer

    code = ("import time; from benchmarks.servers import PostgresServer; pg = PostgresServer(); pg.start(); "
            "print(pg.process.pid, pg.folder, flush=True); time.sleep(600)")
    starter = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    pid, folder = starter.stdout.readline().split()
    starter.kill()
    starter.wait(30)

    def alive() -> bool:  # (a zombie is dead: nothing may reap the orphan in a container)
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] not in "ZX"
        except FileNotFoundError:
            return False

    give_up = time.monotonic() + 30
    while alive() and time.monotonic() < give_up:
        time.sleep(0.1)
    assert not alive() and Path(folder).exists()
    PostgresServer.remove_orphans()
    assert not Path(folder).exists()


def test_a_missing_driver_stops_the_job_before_training(tmp_path):
    """`postgresql://` is psycopg 3 to SQLAlchemy: without it (a module on PYTHONPATH that fails to import, as a
    missing one does) the job stops before training with one line giving the install command."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "psycopg.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    done = subprocess.run([sys.executable, "-m", "framework.train", *SMALL, "tracking.uri=postgresql://u:pw@db/x",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env={**ENV, "PYTHONPATH": str(shadow)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: store URI postgresql://u:***@db/x needs the Python driver psycopg (No module named 'psycopg'): "
        "pip install -e '.[postgres]'; or train with tracking.mode=offline and sync from a machine that has it"]
    assert not (tmp_path / "run" / LOG).exists()
    synced = subprocess.run([sys.executable, "-m", "framework.sync", str(tmp_path), "--uri", "postgresql://u:pw@db/x"],
                            cwd=tmp_path, env={**ENV, "PYTHONPATH": str(shadow)}, capture_output=True, text=True)
    assert synced.returncode == 1 and synced.stderr.splitlines()[0].startswith(
        "error: store URI postgresql://u:***@db/x needs the Python driver psycopg (No module named 'psycopg'): "
        "pip install -e '.[postgres]'")


@pytest.mark.parametrize("uri,message", [
    ("postgresql+psycopg2://u:pw@db/x", r"driver psycopg2 \(.*psycopg2.*\): pip install psycopg2-binary, or write "
                                        r"the URI postgresql://\.\.\. .* pip install -e '\.\[postgres\]'"),
    ("mysql://db/x", r"driver mysqldb \(.*MySQLdb.*\): pip install mysqlclient"),
    ("postgresql+nosuch://db/x", r"postgresql\+nosuch.*: Can't load plugin.*name a driver SQLAlchemy knows")])
def test_database_drivers_are_checked_with_the_store(monkeypatch, uri, message):
    from framework.errors import ConfigError
    from framework.tracking.places import check_store

    monkeypatch.setitem(sys.modules, "psycopg2", None)  # not importable, whatever is installed
    monkeypatch.setitem(sys.modules, "MySQLdb", None)
    with pytest.raises(ConfigError, match=message):
        check_store(uri, "Default", online=True)
    check_store(uri, "Default", online=False)  # offline: no store, no driver needed

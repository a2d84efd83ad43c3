"""Store access (imports mlflow; only sync processes use it): retries, safe opening, bulk metric inserts.

- `open_store(uri)`: an `MlflowClient` whose calls are retried while SQLite reports "database is
  locked"; a SQLite store is created/migrated under a file lock (`<db>.lock`), a PostgreSQL store under
  an advisory lock of the database (`OPEN_LOCK`), so any number of processes may open a fresh store at once.
- `Metric points`: SQL stores whose schema revision (`alembic_version`) is in `BULK_REVISIONS` take
  them as one INSERT per chunk through MLflow's own table models (`SqlMetric` -> `metrics`,
  `SqlLatestMetric` -> `latest_metrics`), re-inserting a point already there being a no-op; other
  stores (HTTP, untested revisions) get `log_batch` calls of <= 1000 points, which skip exact
  duplicates too; to a server `IN_FLIGHT` of them at once. Both give the same `get_metric_history` and
  latest values (tests/integration/test_sync.py).
- Experiments are created tagged `mlflow.experimentKind=custom_model_development` (the UI then opens
  on the runs table) with their artifact location pinned beside a SQLite file.
"""
from __future__ import annotations

import fcntl
import itertools
import logging
import random
import re
import time

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

from framework.tracking.places import artifact_root, sqlite_path

log = logging.getLogger(__name__)
LOCKED_WAIT_S = 300.0  # give up retrying a locked SQLite file after this long
IN_FLIGHT = 4  # concurrent log_batch calls to a tracking server (`mlflow server` runs 4 workers)
BULK_REVISIONS = {"dc11669786a5"}  # mlflow 3.17 schema (SQLite, PostgreSQL): the bulk path is tested against log_batch
OPEN_LOCK = 0x666D6C666C6F77  # PostgreSQL advisory lock key ("fmlflow") held while a process opens (creates) a store
_MAX_FLOAT = 1.7976931348623157e308  # MLflow stores +-inf as +-this
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
_BAD_KEY_CHARS = re.compile(r"[^\w\-./: ]")


def mlflow_key(key: str) -> str:
    """`key` made valid for MLflow: bad characters -> '_', no empty, '.' or '..' path segments."""
    parts = [p if p not in (".", "..") else "_" for p in _BAD_KEY_CHARS.sub("_", key).split("/") if p]
    return "/".join(parts)[:MAX_ENTITY_KEY_LENGTH] or "_"


def retry_locked(call, *args, **kwargs):
    """`call(*args, **kwargs)`, retried with backoff while SQLite says "database is locked"."""
    delay, give_up = 0.02, time.monotonic() + LOCKED_WAIT_S
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as e:  # MlflowException or sqlalchemy OperationalError
            if "database is locked" not in str(e) or time.monotonic() > give_up:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(2 * delay, 1.0)


class Client:
    """`MlflowClient` with every call retried while the SQLite store is locked by another writer."""

    def __init__(self, uri: str):
        self.uri = uri
        self._client = MlflowClient(uri)

    def __getattr__(self, name):
        method = getattr(self._client, name)
        return lambda *a, **k: retry_locked(method, *a, **k)


def open_store(uri: str) -> Client:
    """A client of `uri` with its store opened: a SQLite store is created or migrated (which
    `MlflowClient(uri)` does at once) under a file lock `<db>.lock`. A new SQLite store is created
    with its artifact root `places.artifact_root` (`mlartifacts/` beside the file), so MLflow's `Default`
    experiment keeps its artifacts there too (MLflow's own default, `./mlruns`, is relative to the working
    directory); the client then opens it again (once per new file: MlflowClient takes no store). A PostgreSQL
    store is opened holding the database's advisory lock `OPEN_LOCK` (MLflow creates the tables of an empty
    database when it opens it: done by several processes at once, all but one fail on duplicate keys)."""
    db = sqlite_path(uri)
    if db is None and uri.split(":", 1)[0].split("+")[0] == "postgresql":
        import sqlalchemy as sa

        engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as con:  # the lock is the connection's: released when it closes, or its process dies
                con.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": OPEN_LOCK})
                return Client(uri)
        finally:
            engine.dispose()
    if db is None:
        return Client(uri)
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not db.exists() or db.stat().st_size == 0:
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            SqlAlchemyStore(uri, artifact_root(uri).as_uri())
        return Client(uri)


def experiment_id(client: Client, name: str, artifact_location: str | None) -> str:
    """Id of experiment `name` (tagged with `EXPERIMENT_KIND`), created if it does not exist."""
    for _ in range(3):
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage != "active":
                raise MlflowException(f"experiment '{name}' is deleted: restore it "
                                      f"(`mlflow experiments restore`) or set tracking.experiment")
            if any(exp.tags.get(k) != v for k, v in EXPERIMENT_KIND.items()):
                for k, v in EXPERIMENT_KIND.items():
                    client.set_experiment_tag(exp.experiment_id, k, v)
            return exp.experiment_id
        try:
            return client.create_experiment(name, artifact_location=artifact_location, tags=EXPERIMENT_KIND)
        except MlflowException as e:  # another process created it first: look it up again
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    raise MlflowException(f"could not create or find experiment '{name}'")


def log_params_tags(client: Client, run_id: str, params: dict | None = None, tags: dict | None = None) -> None:
    """Params and tags of a run in as few `log_batch` calls (transactions) as MLflow's limits allow
    (<= `MAX_PARAMS_TAGS_PER_BATCH` of each per call)."""
    items = [Param(mlflow_key(k), v) for k, v in (params or {}).items()]
    labels = [RunTag(mlflow_key(k), str(v)) for k, v in (tags or {}).items()]
    step = MAX_PARAMS_TAGS_PER_BATCH
    for i in range(0, max(len(items), len(labels)), step):
        client.log_batch(run_id, params=items[i:i + step], tags=labels[i:i + step])


def search(client: Client, experiment_ids: list[str], filter_string: str = "") -> list:
    """All runs of `experiment_ids` matching `filter_string` (every page)."""
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=token)
        runs += page
        token = page.token
        if not token:
            return runs


def tag_equals(key: str, value: str) -> str:
    """Search filter clause `tags.<key> = <value>`, quoted."""
    return f"tags.`{key}` = " + (f'"{value}"' if "'" in value else f"'{value}'")


class MetricSink:
    """Stores metric points of one store: bulk INSERT where the schema allows it, else `log_batch`."""

    def __init__(self, client: Client, bulk: bool | None = None):
        self.client = client
        store = client._client._tracking_client.store
        revision = _revision(store)
        allowed = revision in BULK_REVISIONS
        self.bulk = allowed if bulk is None else bulk and allowed
        self._store = store if self.bulk else None
        if bulk is None and revision is not None and not allowed:
            log.info("mlflow: schema revision %s of %s is not one the bulk insert is tested on; storing "
                     "metrics with log_batch", revision, client.uri)
        self._pool = None  # a server takes IN_FLIGHT log_batch calls at once (a SQLite file: one writer)
        if client.uri.startswith(("http://", "https://")):
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="log_batch")

    def add(self, run_id: str, chunks: list[tuple[list[str], np.ndarray]]) -> None:
        """Store run-log chunks (keys, rows): row i = (step, timestamp ms, value of each key)
        (`framework.tracking.messages.Metrics`). Bulk: one transaction for all of them."""
        if self._store is not None:
            retry_locked(self._insert, run_id, chunks)
            return
        points = [Metric(k, v, int(row[1]), int(row[0])) for keys, rows in chunks
                  for names in [[mlflow_key(k) for k in keys]] for row in rows.tolist()
                  for k, v in zip(names, row[2:])]
        batches = [points[i:i + MAX_METRICS_PER_BATCH] for i in range(0, len(points), MAX_METRICS_PER_BATCH)]
        if self._pool is None or len(batches) < 2:
            for batch in batches:
                self.client.log_batch(run_id, metrics=batch)
            return
        for future in [self._pool.submit(self.client.log_batch, run_id, metrics=b) for b in batches]:
            future.result()  # all sent (or the first error raised): only then is the group acknowledged

    def _insert(self, run_id: str, chunks: list[tuple[list[str], np.ndarray]]) -> None:
        """One transaction: every point into `metrics` (existing ones skipped), the newest
        (step, timestamp, value) per key into `latest_metrics`, values sanitized as MLflow does
        (NaN -> 0 with is_nan, +-inf -> +-max float). The INSERT is compiled from `SqlMetric`'s
        table and run as one DBAPI executemany of rows made column by column from numpy (no ORM object,
        no list of row tuples)."""
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric

        columns = ["key", "value", "timestamp", "step", "is_nan", "run_uuid"]
        # is_nan as the DBAPI stores it: 0/1 where the database has no boolean type (SQLite, MySQL), which is what
        # SQLAlchemy itself sends there; sqlite3 binds a Python bool only after a failed adapter lookup (~2.4 us each:
        # ~0.24 of ~1.1 CPU-s per 100k points)
        flag = bool if self._store.engine.dialect.supports_native_boolean else int
        parts: dict[str, list[np.ndarray]] = {}
        for keys, chunk in chunks:
            for j, key in enumerate(keys):
                parts.setdefault(mlflow_key(key), []).append(chunk[:, [0, 1, 2 + j]])
        columns_of, newest = [], {}
        for key in sorted(parts):  # key by key in (step, timestamp) order: the indexes grow at their ends
            block = np.concatenate(parts[key])
            is_nan = np.isnan(block[:, 2])
            stored = np.where(is_nan, 0.0, np.clip(block[:, 2], -_MAX_FLOAT, _MAX_FLOAT))
            steps, stamps = block[:, 0].astype(np.int64), block[:, 1].astype(np.int64)
            order = np.lexsort((stored, stamps, steps))  # the last is the newest by (step, timestamp, value)
            steps, stamps, stored, is_nan = steps[order], stamps[order], stored[order], is_nan[order]
            newest[key] = (int(steps[-1]), int(stamps[-1]), float(stored[-1]), bool(is_nan[-1]))
            columns_of.append({"key": itertools.repeat(key), "value": stored.tolist(), "timestamp": stamps.tolist(),
                               "step": steps.tolist(), "is_nan": is_nan.astype(flag).tolist(),
                               "run_uuid": itertools.repeat(run_id)})
        with self._store.ManagedSessionMaker(read_only=False) as session:
            dialect = session.bind.dialect
            compiled = _insert_ignoring_duplicates(dialect.name, SqlMetric.__table__).compile(
                dialect=dialect, column_keys=columns)
            names = compiled.positiontup if compiled.positional else columns
            rows = itertools.chain.from_iterable(zip(*(c[name] for name in names)) for c in columns_of)
            if not compiled.positional:
                rows = (dict(zip(columns, r)) for r in rows)
            cursor = session.connection().connection.cursor()  # the DBAPI's, in the session's transaction
            try:
                cursor.executemany(str(compiled), rows)
            finally:
                cursor.close()
            old = {m.key: m for m in session.query(SqlLatestMetric).filter(
                SqlLatestMetric.run_uuid == run_id, SqlLatestMetric.key.in_(list(newest)))}
            for key, (step, stamp, value, nan) in newest.items():
                cur = old.get(key)
                if cur is None:
                    session.add(SqlLatestMetric(run_uuid=run_id, key=key, step=step, timestamp=stamp,
                                                value=value, is_nan=nan))
                elif (step, stamp, value) > (cur.step, cur.timestamp, cur.value):
                    cur.step, cur.timestamp, cur.value, cur.is_nan = step, stamp, value, nan


def _insert_ignoring_duplicates(dialect: str, table):
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
        return insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
        return insert(table).on_conflict_do_nothing()
    from sqlalchemy import insert
    return insert(table).prefix_with("IGNORE")  # mysql / mariadb


def _revision(store) -> str | None:
    """The SQL store's `alembic_version`, or None for a non-SQL store."""
    engine = getattr(store, "engine", None)
    if engine is None:
        return None
    import sqlalchemy as sa

    with engine.connect() as con:
        return con.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

"""`python -m framework.sync [PATH ...] [--uri URI] [--watch]`: replay run logs into an MLflow store.

    python -m framework.sync outputs/2026-11-29/12-00-00              # one run folder
    python -m framework.sync multirun/2026-11-29/12-00-00 --uri http://mlflow.lab:5000   # a sweep
    python -m framework.sync ~/project --watch                         # every run log below, as they grow

Every run log at or under PATH (default: the current folder) goes into `--uri` (default: the store
the run was configured for). Record by record, each acknowledged in the run log once the store has it
(`runlog/acks/`), so syncing again, or after a sync was killed half-way, neither duplicates nor
drops a point: a re-sent record is a no-op in the store (same run found by its `runlog.id` tag,
same params, tags overwritten, metric points already there skipped). A run whose training process
died (kill -9) is set KILLED; one still training is synced as far as it got (`--watch`: followed
until it ends, and new run logs are picked up until Ctrl-C).
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import time
import traceback
from pathlib import Path

from framework.tracking.messages import DataSets, End, Metrics, Params, RunStart, SweepEnd, Tags
from framework.tracking.places import artifact_location
from framework.tracking.runlog import (
    LOG,
    JournalReader,
    Lock,
    acked_elsewhere,
    is_complete,
    read_ack,
    read_chunks,
    trainer_alive,
    write_ack,
)
from framework.tracking.store import (
    MetricSink,
    experiment_id,
    log_params_tags,
    mlflow_key,
    open_store,
    search,
    tag_equals,
)

log = logging.getLogger(__name__)
GROUP_POINTS = {True: 200_000, False: 20_000}  # points per acknowledged group: bulk (one transaction), log_batch


class Store:
    """One opened store: its client, its metric sink and the experiments it has resolved."""

    def __init__(self, uri: str, bulk: bool | None = None):
        self.uri = uri
        self.client = open_store(uri)
        self.sink = MetricSink(self.client, bulk)
        self._experiments: dict[str, str] = {}

    def experiment(self, name: str) -> str:
        if name not in self._experiments:
            self._experiments[name] = experiment_id(self.client, name, artifact_location(self.uri, name))
        return self._experiments[name]


def group(records: list, i: int, max_points: int) -> list:
    """The records applied together from `records[i]` on (one store transaction, one acknowledgement):
    consecutive Metrics up to `max_points` points; a RunStart, Params or Tags and the Params / Tags right
    after it (params keys distinct); otherwise the record alone."""
    first, batch = records[i], [records[i]]
    points, params = getattr(first, "points", 0), set(getattr(first, "params", ()))
    for r in itertools.islice(records, i + 1, None):
        if isinstance(first, Metrics):
            if not isinstance(r, Metrics) or points >= max_points:
                break
        elif not isinstance(first, (RunStart, Params, Tags)) or not isinstance(r, (Params, Tags)) \
                or params & set(getattr(r, "params", ())):
            break
        batch.append(r)
        points += getattr(r, "points", 0)
        params |= set(getattr(r, "params", ()))
    return batch


class RunSync:
    """Replays one run log into one store; `step()` applies what is new and acknowledges it."""

    def __init__(self, folder, store: Store, journal: JournalReader | None = None):
        self.folder, self.store = Path(folder), store
        self.journal = journal or JournalReader(self.folder)
        self.lock = Lock(self.folder / LOG / "sync.lock")
        self.ack = read_ack(self.folder, store.uri)
        self.points = 0

    @property
    def run_id(self) -> str | None:
        return self.ack["run_id"]

    def claim(self, block: bool = False) -> bool:
        """Take the run log's sync lock (False if another process holds it and not `block`) and read
        what the store acknowledged so far; while it is held no other process changes that."""
        if not self.lock.acquire(block):
            return False
        self.ack = read_ack(self.folder, self.store.uri)
        return True

    def done(self, records: list | None = None) -> bool:
        """Whether the store has every record of the run log (`records`: the journal as just read)."""
        records = self.journal.read() if records is None else records
        return self.ack["done"] == len(records) and (is_complete(records) or self.ack.get("status") == "KILLED")

    def step(self, limit: int | None = None) -> bool:
        """Apply the records not yet acknowledged (at most up to record `limit`); mark the run KILLED
        when its journal stops without an End and its training process is gone. Returns done()."""
        if self.lock.fd is None:  # not claimed: another process may have synced meanwhile
            self.ack = read_ack(self.folder, self.store.uri)
        alive = trainer_alive(self.folder)  # read before the journal: a run that ends in between is not KILLED
        journal = self.journal.read()
        records = journal[:limit]
        i = self.ack["done"]
        while i < len(records):
            batch = group(records, i, GROUP_POINTS[self.store.sink.bulk])
            if isinstance(batch[0], Metrics):
                self.store.sink.add(self.run_id, list(zip((r.keys for r in batch), read_chunks(self.folder, batch))))
                self.points += sum(r.points for r in batch)
            elif isinstance(batch[0], (RunStart, Params, Tags)):
                self._settings(batch)
            else:
                self._apply(batch[0])
            i += len(batch)
            self._acknowledge(done=i)
        if limit is None and not alive and not self.done(journal):
            self.store.client.set_terminated(self.run_id, "KILLED")
            self._acknowledge(status="KILLED")
        return self.done(journal)

    def _acknowledge(self, **changes) -> None:
        self.ack.update(changes)
        write_ack(self.folder, self.ack)

    def _settings(self, batch: list) -> None:
        """A RunStart (the run created) and/or the Params and Tags records after it (keys distinct): their
        params and tags in one `log_batch` (one transaction) where MLflow's limits allow."""
        params, tags = {}, {}
        if isinstance(batch[0], RunStart):
            run_id, params = self._start(batch[0])
            self.ack.pop("creating", None)  # the run is acknowledged: a later sync need not look for it
            self._acknowledge(run_id=run_id)
        for record in batch[1:] if isinstance(batch[0], RunStart) else batch:
            params.update(getattr(record, "params", {}))
            tags.update(getattr(record, "tags", {}))
        if params or tags:
            log_params_tags(self.store.client, self.run_id, params, tags)

    def _apply(self, record) -> None:
        client = self.store.client
        if isinstance(record, End):
            if record.plots is not None:
                from framework.tracking.plots import draw

                draw(self.folder, record.plots)
            self._upload(record.artifacts)
            if record.status == "FINISHED":
                self._model(record)
            client.set_terminated(self.run_id, record.status, record.end_ms)
        elif isinstance(record, DataSets):
            from framework.tracking.mlmodel import log_datasets

            log_datasets(client, self.run_id, record)
        elif isinstance(record, SweepEnd):
            parent = client.get_run(self.run_id)
            children = search(client, [parent.info.experiment_id], tag_equals("mlflow.parentRunId", self.run_id))
            tags = {"sweep.runs": max(record.runs, len(children))}
            if record.failed:
                tags["sweep.failed"] = "; ".join(f"job {j}: {why}" for j, why in sorted(record.failed.items()))
            key, earlier = mlflow_key(f"best/{record.metric}"), parent.data.metrics.get(mlflow_key(f"best/{record.metric}"))
            better = earlier is None or (record.value is not None and (
                record.value < earlier if record.mode == "min" else record.value > earlier))
            if record.best and better:  # a reopened parent keeps an earlier invocation's better job
                best = run_id_of(record.best, self.store)
                tags.update({"sweep.best_run_id": best, "sweep.best_run_name": client.get_run(best).info.run_name})
                client.log_metric(self.run_id, key, record.value, timestamp=record.end_ms, step=0)
                if record.register:  # the best job whole first (synced later, the parent comes before its jobs)
                    from framework.tracking.mlmodel import register

                    job = RunSync(record.best, self.store)
                    job.claim(block=True)
                    try:
                        job.step()
                    finally:
                        job.lock.release()
                    register(client, record.register, best)
            log_params_tags(client, self.run_id, tags=tags)
            client.set_terminated(self.run_id, record.status, record.end_ms)

    def _model(self, end: End) -> None:
        """The run's MLflow model (`framework.tracking.mlmodel`), registered as `end.register` if set."""
        from framework.tracking.mlmodel import log_model, register

        if log_model(self.store.client, self.folder, self.run_id, self.journal.records) and end.register:
            register(self.store.client, end.register, self.run_id)

    def _start(self, r: RunStart) -> tuple[str, dict[str, str]]:
        """The store run of `r` (created, reopened or found) and the params still to log to it."""
        client = self.store.client
        if r.resume_run_id:  # a resumed checkpoint continues its run
            client.update_run(r.resume_run_id, "RUNNING")
            log_params_tags(client, r.resume_run_id, tags={**r.tags, "resumed": "true"})
            return r.resume_run_id, {}
        exp = self.store.experiment(r.experiment)
        if r.role == "sweep":  # a continued Optuna study (same sweep.id) reopens its parent: new jobs join it
            found = search(client, [exp], f"{tag_equals('sweep.role', 'parent')} and "
                                          f"{tag_equals('sweep.id', r.tags['sweep.id'])}")
            if found:
                client.update_run(found[0].info.run_id, "RUNNING")
                return found[0].info.run_id, {}
        maybe_stored = (self.ack.get("creating") or not trainer_alive(self.folder)
                        or acked_elsewhere(self.folder, self.store.uri))
        if maybe_stored:
            # a sync stopped between creating the run and acknowledging it; a run log synced after its training
            # ended (it may be a copy of one synced before: rsync to a laptop); this store under another URI.
            # (A run followed while it trains, the online case, skips the search: ~60 ms CPU per run.)
            found = search(client, [exp], tag_equals("runlog.id", r.runlog_id))
            if found:
                return found[0].info.run_id, r.params
        tags = {**r.tags, "runlog.id": r.runlog_id}
        if r.parent:
            tags["mlflow.parentRunId"] = run_id_of(r.parent, self.store)
        self._acknowledge(creating=True)  # before the run exists: a later sync then looks for it first
        return client.create_run(exp, start_time=r.start_ms, tags=tags, run_name=r.run_name).info.run_id, r.params

    def _upload(self, artifacts: list[str]) -> None:
        client = self.store.client
        for name in artifacts:
            path = self.folder / name
            if path.is_dir():
                client.log_artifacts(self.run_id, str(path), path.name)
            elif path.is_file():
                parent = str(Path(name).parent)
                client.log_artifact(self.run_id, str(path), None if parent == "." else parent)
        plots = self.folder / "plots"
        if plots.is_dir():
            client.log_artifacts(self.run_id, str(plots), "plots")


def run_id_of(folder, store: Store, wait_s: float = 10.0) -> str:
    """The store's run id of run log `folder` (a sweep parent, a best job), syncing its first record if no
    process is on it; TimeoutError after `wait_s` (a caller in a sync process retries later)."""
    give_up = time.monotonic() + wait_s
    while True:
        ack = read_ack(folder, store.uri)
        if ack["run_id"]:
            return ack["run_id"]
        other = RunSync(folder, store)
        if other.claim():
            try:
                other.step(limit=1)
                return other.run_id
            finally:
                other.lock.release()
        if time.monotonic() > give_up:
            raise TimeoutError(f"{folder}: no store run after {wait_s:.0f} s (another process holds its sync lock)")
        time.sleep(0.1)


def sync_paths(paths, uri: str | None, watch: bool = False, bulk: bool | None = None) -> int:
    """Sync every run log at or under `paths`; returns the number of runs not (yet) complete."""
    from framework.tracking.places import store_uri
    from framework.tracking.runlog import find_runlogs, read_start

    stores: dict[str, Store] = {}
    seen: dict[Path, RunSync] = {}
    while True:
        pending = 0
        for folder in find_runlogs(paths):
            run = seen.get(folder)
            if run is None:
                start = read_start(folder)
                if start is None:
                    continue
                target = uri or start.uri or store_uri(None)
                if target not in stores:
                    stores[target] = Store(target, bulk)
                run = seen[folder] = RunSync(folder, stores[target])
            if run.done():
                continue
            if not run.claim():
                print(f"{folder}: another process is syncing it; waiting", flush=True)
                run.claim(block=True)
            try:
                done = run.step()
            except Exception as e:  # noqa: BLE001 - one bad run does not stop the others
                print(f"{folder}: not synced: {type(e).__name__}: {str(e).strip().splitlines()[0]}", flush=True)
                log.debug(traceback.format_exc())
                pending += 1
                continue
            finally:
                run.lock.release()
            state = "complete" if done else "still training, synced so far"
            print(f"{folder}: run {run.run_id} in {target}: {state} ({run.points:,} points sent now)", flush=True)
            pending += not done
        if not watch:
            return pending
        time.sleep(1.0)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m framework.sync", description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="*", default=["."], metavar="PATH", help="run folders, sweep folders or any folder")
    p.add_argument("--uri", default=None, help="store (default: the one each run was configured for)")
    p.add_argument("--watch", action="store_true", help="keep following growing and new run logs (Ctrl-C stops)")
    p.add_argument("--log-batch", action="store_true", help="store metrics with log_batch, not the bulk insert")
    args = p.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from framework.tracking.places import store_uri

    uri = store_uri(args.uri) if args.uri or os.environ.get("MLFLOW_TRACKING_URI") else None
    try:
        pending = sync_paths(args.paths, uri, args.watch, bulk=False if args.log_batch else None)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise SystemExit(1 if pending else 0)


if __name__ == "__main__":
    main()

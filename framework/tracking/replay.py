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

Damage stops one run, never the others: a run log that is damaged (`runlog.Damaged`: a journal line that is
not a record, a points file cut short or changed) is synced up to the damage, marked FAILED with the reason
(tag `failure.reason`) and reported in one line naming the file and its line or bytes; a path it names outside
its run folder is refused in one line and not copied; an acknowledgement that cannot be read is ignored (the
run is synced again, the store skipping what it has). Any of these, a path with no run log or a run still
training: exit status 1. The last line sums it up ("already complete: 3 runs, 0 points sent").
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import time
import traceback
from pathlib import Path

from framework.tracking.masking import MASK, mask_secrets
from framework.tracking.messages import DataSets, End, Metrics, Params, RunStart, SweepEnd, Tags
from framework.tracking.places import artifact_location
from framework.tracking.runlog import (
    JOURNAL,
    LOG,
    Damaged,
    JournalReader,
    Lock,
    acked_elsewhere,
    check_files,
    inside,
    is_complete,
    read_ack,
    read_chunks,
    sweep_parent,
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
    """Replays one run log into one store; `step()` applies what is new and acknowledges it. A damaged run log
    (`Damaged`) is synced up to the damage, then marked FAILED (`failure.reason`); a path it names outside
    its folder is refused: `problems` holds one line for each, the rest of the run syncs."""

    def __init__(self, folder, store: Store, journal: JournalReader | None = None):
        self.folder, self.store = Path(folder), store
        self.journal = journal or JournalReader(self.folder)
        self.lock = Lock(self.folder / LOG / "sync.lock")
        self.problems: list[str] = []
        self.ack = self._read_ack()
        self.points = 0
        self.killed: str | None = None  # why step() marked the run KILLED

    @property
    def run_id(self) -> str | None:
        return self.ack["run_id"]

    def claim(self, block: bool = False) -> bool:
        """Take the run log's sync lock (False if another process holds it and not `block`) and read
        what the store acknowledged so far; while it is held no other process changes that."""
        check_files(self.folder)
        if not self.lock.acquire(block):
            return False
        self.ack = self._read_ack()
        return True

    def _read_ack(self) -> dict:
        ack = read_ack(self.folder, self.store.uri)
        if "damaged" in ack:
            line = (f"{self.folder}: {ack.pop('damaged')}: synced again from its start (points already in the store "
                    f"are skipped)")
            self.problems += [line] if line not in self.problems else []
        return ack

    def done(self, records: list | None = None) -> bool:
        """Whether the store has every record of the run log (`records`: the journal as just read)."""
        records = self.journal.read() if records is None else records
        return self.journal.damage is None and self.ack["done"] == len(records) and (
            is_complete(records) or self.ack.get("status") == "KILLED")

    def step(self, limit: int | None = None) -> bool:
        """Apply the records not yet acknowledged (at most up to record `limit`); mark the run KILLED
        when its journal stops without an End and its training process is gone. Returns done(); raises
        Damaged (the run marked FAILED once its trainer is gone) where the run log is damaged."""
        check_files(self.folder)
        if self.lock.fd is None:  # not claimed: another process may have synced meanwhile
            self.ack = self._read_ack()
        alive = trainer_alive(self.folder)  # read before the journal: a run that ends in between is not KILLED
        journal = self.journal.read()
        damage = self.journal.damage
        if limit is not None and damage is not None and damage.index >= limit:
            damage = None  # after what is asked for
        records = journal[:limit]
        i = self.ack["done"]
        if i > len(journal):  # the store has more than this copy of the run log: leave it as it is
            raise Damaged(f"{LOG}/{JOURNAL}", f"{len(journal)} readable records, the store acknowledged {i} "
                          f"({damage or 'the journal was cut short after it was synced'})",
                          outcome="nothing sent, the store keeps the run as it was")
        if not records:
            if alive:
                return False  # its first record is being written
            raise damage or Damaged(f"{LOG}/{JOURNAL}", "no record (the file is empty or missing)")
        while i < len(records):
            batch = group(records, i, GROUP_POINTS[self.store.sink.bulk])
            if isinstance(batch[0], Metrics):
                try:
                    chunks = read_chunks(self.folder, batch)
                except Damaged as e:  # the records before the damaged one are sent
                    damage = Damaged(f"{e.where} (journal line {self.journal.line(i + e.index)})", e.what, i + e.index)
                    batch = batch[:e.index]
                    chunks = read_chunks(self.folder, batch) if batch else []
                if batch:
                    self.store.sink.add(self.run_id, list(zip((r.keys for r in batch), chunks)))
                    self.points += sum(r.points for r in batch)
            elif isinstance(batch[0], (RunStart, Params, Tags)):
                self._settings(batch)
            else:
                self._apply(batch[0], self.journal.line(i))
            i += len(batch)
            self._acknowledge(done=i)
            if damage is not None and i >= damage.index:
                break
        if damage is not None:
            if limit is None and not alive and self.ack.get("status") != "FAILED":
                reason = f"the run log is damaged at {damage}: the records before it are synced"
                log_params_tags(self.store.client, self.run_id, tags={"failure.reason": reason})
                self.store.client.set_terminated(self.run_id, "FAILED")
                self._acknowledge(status="FAILED")
            damage.outcome = ("the records before it are synced" + ("; its training process is still running"
                              if alive else ", the run is marked FAILED"))
            raise damage
        if limit is None and not alive and not self.done(journal):
            reason = (f"the run log ends at {LOG}/{JOURNAL} line {self.journal.line(len(journal) - 1)} without an "
                      f"End record: its training process was killed, or the run log was copied or cut short before "
                      f"the run ended")
            self.killed = reason
            log_params_tags(self.store.client, self.run_id, tags={"failure.reason": reason})
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

    def _refuse(self, line: int, what: str, path: str, why, outcome: str = "not copied") -> None:
        self.problems.append(f"{self.folder}: {LOG}/{JOURNAL} line {line} ({what}): refused {path!r}: {why}; "
                             f"{outcome}")

    def _apply(self, record, line: int) -> None:
        client = self.store.client
        if isinstance(record, End):
            self._upload(record, line)
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
            key = mlflow_key(f"best/{record.metric}")
            earlier = parent.data.metrics.get(key)
            better = earlier is None or (record.value is not None and (
                record.value < earlier if record.mode == "min" else record.value > earlier))
            if record.best and better:  # a reopened parent keeps an earlier invocation's better job
                try:
                    job = self.folder / inside(self.folder, record.best)
                    if not (job / LOG / JOURNAL).is_file():
                        raise ValueError("holds no run log")
                    best = run_id_of(job, self.store)
                except (ValueError, Damaged) as e:
                    self._refuse(line, "SweepEnd best job", record.best, e, "the sweep's best run is not tagged")
                else:
                    tags.update({"sweep.best_run_id": best, "sweep.best_run_name": client.get_run(best).info.run_name})
                    client.log_metric(self.run_id, key, record.value, timestamp=record.end_ms, step=0)
                    if record.register:  # the best job whole first (synced later, the parent comes before its jobs)
                        from framework.tracking.mlmodel import register

                        other = RunSync(job, self.store)
                        other.claim(block=True)
                        try:
                            other.step()
                            register(client, record.register, best)
                        except Damaged as e:
                            self._refuse(line, "SweepEnd best job", record.best, e, "its model is not registered")
                        finally:
                            other.lock.release()
            log_params_tags(client, self.run_id, tags=tags)
            self._log_files(record.artifacts, line, "SweepEnd artifacts")
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
                                          f"{tag_equals('sweep.id', str(r.tags.get('sweep.id')))}")
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
            try:
                tags["mlflow.parentRunId"] = run_id_of(sweep_parent(self.folder, r.parent), self.store)
            except (ValueError, Damaged) as e:
                self._refuse(self.journal.line(0), "RunStart parent", r.parent, e,
                             "the run is stored without its sweep's parent run")
        self._acknowledge(creating=True)  # before the run exists: a later sync then looks for it first
        return client.create_run(exp, start_time=r.start_ms, tags=tags, run_name=r.run_name).info.run_id, r.params

    def _upload(self, record: End, line: int) -> None:
        """The plots drawn, then every artifact of `record` and plots/ (`_log_files`)."""
        names = [*record.artifacts, "plots"]
        if record.plots is not None:
            try:
                plots = self.folder / inside(self.folder, "plots")
                inside(self.folder, f"{LOG}/predictions.npz")
                if plots.exists() and not (plots.is_dir() and not any(p.is_symlink() for p in plots.iterdir())):
                    raise ValueError("not a folder of plain files (the plots are written into it)")
                from framework.tracking.plots import draw

                draw(self.folder, record.plots)
            except ValueError as e:
                self._refuse(line, "End plots", "plots", e, "no plots drawn")
                names.pop()
            except Exception as e:  # noqa: BLE001 - the plots' data is damaged: the run without them
                self.problems.append(f"{self.folder}: {LOG}/{JOURNAL} line {line} (End plots): no plots drawn: "
                                     f"{type(e).__name__}: {str(e).strip()[:200]}")
        self._log_files(names, line, "End artifacts")

    def _log_files(self, names: list[str], line: int, what: str) -> None:
        """Log each file at or under `names` (relative to the run folder) that lies inside the run folder as an
        artifact; a path or symbolic link elsewhere is refused, one line each."""
        for name in names:
            try:
                path = inside(self.folder, name)
            except ValueError as e:
                self._refuse(line, what, name, e)
                continue
            for file in self._files(path, line):
                self.store.client.log_artifact(self.run_id, str(self.folder / file),
                                               None if file.parent == Path() else str(file.parent))

    def _files(self, path: Path, line: int):
        """Every regular file at or under `path` (relative to the run folder), following only symbolic links
        that stay inside the run folder."""
        seen, todo = set(), [path]
        while todo:
            rel = todo.pop()
            try:
                inside(self.folder, str(rel))
            except ValueError as e:
                self._refuse(line, "End artifacts", str(rel), e)
                continue
            target = (self.folder / rel).resolve()
            if target.is_file():
                yield rel
            elif target.is_dir() and target not in seen:
                seen.add(target)
                todo += sorted((rel / child.name for child in target.iterdir()), reverse=True)


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
                if other.run_id is None:
                    raise Damaged(f"{LOG}/{JOURNAL}", "no RunStart record yet")
                return other.run_id
            finally:
                other.lock.release()
        if time.monotonic() > give_up:
            raise TimeoutError(f"{folder}: no store run after {wait_s:.0f} s (another process holds its sync lock)")
        time.sleep(0.1)


class Tally:
    """What one pass of `sync_paths` did: runs by outcome, points sent, lines already printed (--watch prints
    each once)."""

    def __init__(self):
        self.runs: dict[str, int] = {}
        self.points = self.empty = 0  # points sent, paths without a run log

    def add(self, outcome: str, points: int = 0) -> None:
        self.runs[outcome] = self.runs.get(outcome, 0) + 1
        self.points += points

    def summary(self) -> str:
        parts = [f"{what}: {n} run{'s' * (n != 1)}" for what, n in self.runs.items()]
        return ", ".join(parts) + f", {self.points:,} points sent"

    @property
    def failed(self) -> int:
        return self.empty + sum(n for what, n in self.runs.items() if what not in ("already complete", "synced now"))


def sync_paths(paths, uri: str | None, watch: bool = False, bulk: bool | None = None) -> int:
    """Sync every run log at or under `paths`; returns how many runs (or paths) are not complete in the store:
    still training, damaged, with a refused path, not synced, or a path with no run log."""
    from framework.tracking.places import store_uri
    from framework.tracking.runlog import find_runlogs

    stores: dict[str, Store] = {}
    seen: dict[Path, RunSync] = {}
    said: set[str] = set()

    def say(line: str) -> None:
        if line not in said:
            print(line, flush=True)
            if watch:
                said.add(line)

    missing = [top for top in paths if not Path(top).exists()]
    if watch and missing:
        print(f"no run log under {missing[0]} (no such file or folder)", flush=True)
        return len(missing)
    while True:
        tally, done_here = Tally(), set()
        for top in paths:
            folders = find_runlogs([top])
            if not folders:
                if watch:
                    say(f"no run log under {top} yet: watching it")
                else:
                    say(f"no run log under {top}")
                    tally.empty += 1
            for folder in [f for f in folders if f not in done_here]:
                done_here.add(folder)
                outcome, points, lines = _sync_one(folder, uri or None, stores, seen, bulk, store_uri)
                for line in lines:
                    say(line)
                tally.add(outcome, points)
        if not watch:
            if tally.runs:
                print(tally.summary(), flush=True)
            return tally.failed
        time.sleep(1.0)


def _sync_one(folder: Path, uri, stores: dict, seen: dict, bulk, store_uri) -> tuple[str, int, list[str]]:
    """Sync one run log: (outcome, points sent, lines to print)."""
    run = seen.get(folder)
    lines: list[str] = []
    before = run.points if run else 0
    try:
        if run is None:
            check_files(folder)
            journal = JournalReader(folder)
            records = journal.read()
            if not records:
                if trainer_alive(folder):
                    return "still training", 0, []
                raise journal.damage or Damaged(f"{LOG}/{JOURNAL}", "no record (the file is empty or missing)")
            target = uri or records[0].uri or store_uri(None)
            if MASK in target:
                return "not synced", 0, [f"{folder}: not synced: its run log names the store {target} (passwords are "
                                         "never recorded); give the store with --uri URI or $MLFLOW_TRACKING_URI"]
            if target not in stores:
                stores[target] = Store(target, bulk)
            run = seen[folder] = RunSync(folder, stores[target], journal)
        if run.done():
            return "already complete", 0, run.problems
        if not run.claim():
            print(f"{folder}: another process is syncing it; waiting", flush=True)
            run.claim(block=True)
        try:
            done = run.step()
        finally:
            run.lock.release()
            lines, run.problems = run.problems, []
        sent = run.points - before
        state = ("still training, synced so far" if not done else f"marked KILLED ({run.killed})" if run.killed
                 else "complete")
        run.killed = None
        lines.append(f"{folder}: run {run.run_id} in {mask_secrets(run.store.uri)}: {state} ({sent:,} points sent now)")
        outcome = "still training" if not done else "synced with problems" if lines[:-1] else "synced now"
        return outcome, sent, lines
    except Damaged as e:
        line = (f"{folder}: damaged: {e}; {e.outcome or 'nothing synced'}; restore the run folder from a good copy "
                f"and sync again")
        return "damaged", run.points - before if run else 0, [*lines, line]
    except Exception as e:  # noqa: BLE001 - one bad run does not stop the others
        log.debug(traceback.format_exc())
        return "not synced", 0, [*lines, f"{folder}: not synced: {type(e).__name__}: "
                                         f"{(str(e).strip() or repr(e)).splitlines()[0][:300]}"]


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

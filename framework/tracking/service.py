"""The sync process: streams run logs into stores while jobs train; one per launcher process.

`python -m framework.tracking.service REQUESTS_FD REPLIES_FD` is started by
`framework.tracking.process`. It imports mlflow and opens each store once, then serves every job of
the process that started it (`framework.tracking.messages`: Follow -> Synced; FindFinished,
FindCheckpoint -> Answer), and, for a sweep's launcher (`Follow(jobs=True)`), every job's run log
that appears in the sweep folder (every `SCAN_S`), so the workers of a parallel launcher on this
machine need no sync process of their own. A followed run log is re-read every `POLL_S` and synced (`RunSync`);
several runs may be in flight (a finished job's artifacts overlap the next job's training). A store
that fails is retried every `RETRY_S` while the run trains; once the run has ended, the job is told
what is missing and the run log keeps it for `python -m framework.sync`. When the starting process
exits (the pipe closes) the runs in flight are finished (a run whose trainer died becomes KILLED),
then this process exits. It runs at a lower CPU priority (`NICE`) than the training process, skips optional
imports it has no use for (`SKIPPED_IMPORTS`), and starts with the cyclic garbage collector off: importing mlflow
and its store builds a large heap of long-lived objects, which full collections would walk again and again; it is
turned back on, with what start-up built frozen out of its traversals (`gc.freeze`), once the first request has
been handled (`resume_gc`).
"""
from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

from framework.tracking.masking import mask_secrets
from framework.tracking.messages import Answer, FindCheckpoint, FindFinished, Follow, Synced
from framework.tracking.runlog import JournalReader, find_runlogs, is_complete

# Optional imports of mlflow's dependencies this process never uses, made to fail at once (ImportError: the
# importer falls back): mako (alembic's templates) highlights tracebacks with pygments if it imports, ~0.5 s
# CPU of each start (tests/integration/test_sync.py syncs without them).
SKIPPED_IMPORTS = ("pygments",)
if __name__ == "__main__":
    gc.disable()
    for _name in SKIPPED_IMPORTS:
        sys.modules.setdefault(_name, None)
from framework.tracking.replay import RunSync, Store  # noqa: E402

POLL_S = 0.1
SCAN_S = 0.5  # how often a sweep folder is searched for new jobs' run logs
RETRY_S = 2.0
NICE = 10


class Follower:
    """One run log followed into one store."""

    def __init__(self, request: Follow):
        self.folder, self.uri, self.reply = request.folder, request.uri, request.reply
        self.run: RunSync | None = None
        self.journal = JournalReader(self.folder)  # to know whether the run ended, store or no store
        self.locked = False
        self.error: str | None = None
        self.retry_at = 0.0

    def advance(self, stores: dict[str, Store], gone: bool) -> Synced | None:
        """Sync what is new; the job's answer once the run is complete, or has ended (or its trainer
        is `gone`) while the store fails."""
        if time.monotonic() < self.retry_at:
            return None
        try:
            if self.uri not in stores:
                stores[self.uri] = Store(self.uri)
            self.run = self.run or RunSync(self.folder, stores[self.uri], self.journal)
            if not self.locked:  # another process may be syncing this run: wait for it
                self.locked = self.run.claim()
                if not self.locked:
                    return None
            done = self.run.step()
            self._report()
            if done:
                return self._finish("")
            self.error = None
        except Exception as e:  # noqa: BLE001 - the store is down or locked, the run log damaged: the run log keeps it
            self._report()
            self.error = f"{type(e).__name__}: {(str(e).strip() or repr(e)).splitlines()[0][:300]}"
            self.retry_at = time.monotonic() + RETRY_S
            print(f"framework sync: {self.folder} -> {mask_secrets(self.uri)}: {self.error}", file=sys.stderr,
                  flush=True)
            records = self.journal.read()
            if gone or is_complete(records):
                done = self.run.ack["done"] if self.run else 0
                return self._finish(f"{len(records) - done} of {len(records)} run-log records are not in "
                                    f"{mask_secrets(self.uri)} yet ({self.error})")
        return None

    def _report(self) -> None:
        """The paths of the run log that were refused (`RunSync.problems`), one line each."""
        if self.run is not None:
            for line in self.run.problems:
                print(f"framework sync: {line}", file=sys.stderr, flush=True)
            self.run.problems = []

    def _finish(self, missing: str) -> Synced:
        if self.locked:
            self.run.lock.release()
        run_id, experiment = self.run.run_id if self.run else None, None
        if run_id and not missing:
            try:
                experiment = self.run.store.client.get_run(run_id).info.experiment_id
            except Exception:  # noqa: BLE001 - the job then prints no UI address
                pass
        return Synced(self.folder, run_id, missing, experiment)


def answer(request, stores: dict[str, Store]):
    """The value a FindFinished / FindCheckpoint request asks for."""
    from framework.tracking.store import search, tag_equals

    store = stores.get(request.uri) or stores.setdefault(request.uri, Store(request.uri))
    client = store.client
    if isinstance(request, FindFinished):
        exp = client.get_experiment_by_name(request.experiment)
        if exp is None:
            return None
        runs = search(client, [exp.experiment_id],
                      f"{tag_equals('config.hash', request.config_hash)} and attributes.status = 'FINISHED'")
        return {**runs[0].data.metrics, "run_id": runs[0].info.run_id} if runs else None
    from mlflow.artifacts import download_artifacts

    from framework.tracking.table import resolve_run_id

    run_id = resolve_run_id(client, request.run_id)
    return {"folder": download_artifacts(run_id=run_id, artifact_path="checkpoint", tracking_uri=request.uri),
            "run_id": run_id}


def resume_gc() -> None:
    """The collector back on after start-up, what start-up built frozen (not traversed again; start-up's
    cyclic garbage stays)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def serve(inbox: Connection, outbox: Connection) -> None:
    stores: dict[str, Store] = {}
    follows: dict[tuple[str, str], Follower] = {}
    sweeps: dict[tuple[str, str], set[str]] = {}  # Follow(jobs=True): sweep folder, store -> run logs seen
    gone, scan_at = False, 0.0
    while not gone or follows:
        message = None
        if gone:
            time.sleep(POLL_S)
        else:
            try:
                message = inbox.recv() if inbox.poll(POLL_S if follows or sweeps else 1.0) else None
            except EOFError:
                gone = True
        if isinstance(message, Follow):
            key = (str(Path(message.folder)), message.uri)
            if key in follows:
                follows[key].reply |= message.reply
            else:
                follows[key] = Follower(message)
            if message.jobs:
                sweeps.setdefault(key, {key[0]})
        elif isinstance(message, (FindFinished, FindCheckpoint)):
            try:
                send(outbox, Answer(message.id, answer(message, stores)))
            except Exception as e:  # noqa: BLE001 - reported to the asking job
                send(outbox, Answer(message.id, error=f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
        if sweeps and not gone and time.monotonic() >= scan_at:  # jobs of other processes (joblib workers)
            scan_at = time.monotonic() + SCAN_S
            for (folder, uri), seen in sweeps.items():
                for job in map(str, find_runlogs([folder], seen)):
                    seen.add(job)
                    follows.setdefault((job, uri), Follower(Follow(job, uri, reply=False)))
        for key, follower in list(follows.items()):
            synced = follower.advance(stores, gone)
            if synced is not None:
                del follows[key]
                sweeps.pop(key, None)  # a sweep's parent ends after every job was followed: stop scanning its folder
                if follower.reply:
                    send(outbox, synced)
        if message is not None or gone:  # the first request handled, its store opened (or failed): start-up is over
            resume_gc()


def send(outbox: Connection, message) -> None:
    """Reply unless the process that asked is gone (its runs are still finished)."""
    try:
        outbox.send(message)
    except OSError:
        pass


if __name__ == "__main__":
    os.nice(NICE)  # on a busy machine the training process gets the CPU first
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))

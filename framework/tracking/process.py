"""The sync process as the training (or launcher) process sees it: started once, reused by every job.

`sync_process()` starts `python -m framework.tracking.service` the first time a job of this process
tracks online (`python -m framework.train`: before Hydra composes, `start_early`) and returns the same
one afterwards (sweep jobs of the basic launcher, tests), so `import mlflow` and opening the store are
paid once per process. A plain subprocess in its own session (Ctrl-C reaches the trainer only; the run log
tells the sync process how the run ended), not multiprocessing: fork would copy the trainer's BLAS
threads and CUDA context, spawn re-imports the user's main module. A sweep's launcher process has
its sync process follow every job of the sweep folder (`follow_sweep`), so jobs on the same machine (in
the launcher's process or in joblib workers) leave their run logs to it (`sweep_followed`); jobs
elsewhere (submitit) start their own.
"""
from __future__ import annotations

import atexit
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection

from framework.run.config import ROOT
from framework.tracking.messages import Answer, Follow, Synced


class SyncProcess:
    """Requests go through one pipe, replies come back through another."""

    def __init__(self):
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        for var, value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
                           ("MLFLOW_HTTP_REQUEST_TIMEOUT", "30"),
                           ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"),  # a resume's checkpoint download
                           ("MLFLOW_LOGGING_LEVEL", "WARNING")):  # no INFO lines ("Creating initial MLflow
            env.setdefault(var, value)                            # database tables") among the epoch lines
        self.process = subprocess.Popen([sys.executable, "-m", "framework.tracking.service", str(requests_r),
                                         str(replies_w)], pass_fds=(requests_r, replies_w), env=env,
                                        start_new_session=True)
        os.close(requests_r)
        os.close(replies_w)
        self._out = Connection(requests_w, readable=False)
        self._in = Connection(replies_r, writable=False)
        self._replies: list = []
        self._ids = itertools.count()
        self.used = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, message) -> None:
        self.used = True
        self._out.send(message)

    def follow(self, folder, uri: str, reply: bool = True) -> None:
        self.send(Follow(str(folder), uri, reply))

    def follow_sweep(self, folder, uri: str) -> None:
        """Follow sweep folder `folder`'s parent run log and every job's run log that appears under
        it; jobs of other processes of this machine see it in the environment (`sweep_followed`)."""
        self.send(Follow(str(folder), uri, reply=False, jobs=True))
        os.environ[SWEEP_ENV] = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "folder": str(folder),
                                            "uri": uri})

    def wait_synced(self, folders, timeout: float) -> dict[str, Synced]:
        """The `Synced` replies for `folders` that arrive within `timeout` s (fewer if it exits)."""
        want = {str(f) for f in folders}
        got = self._wait(lambda r: isinstance(r, Synced) and r.folder in want, len(want), timeout)
        return {r.folder: r for r in got}

    def ask(self, request_type, timeout: float = 600.0, **fields):
        """Send a `messages.FindFinished` / `FindCheckpoint` and return its answer; RuntimeError with the reason."""
        request = request_type(id=next(self._ids), **fields)
        self.send(request)
        got = self._wait(lambda r: isinstance(r, Answer) and r.id == request.id, 1, timeout)
        if not got:
            raise RuntimeError(f"the sync process gave no answer to {request_type.__name__} within {timeout:.0f} s")
        if got[0].error:
            raise RuntimeError(got[0].error)
        return got[0].value

    def _wait(self, match, count: int, timeout: float) -> list:
        give_up, found = time.monotonic() + timeout, []
        while True:
            found += [r for r in self._replies if match(r)]
            self._replies = [r for r in self._replies if not match(r)]
            if len(found) >= count or time.monotonic() > give_up:
                return found
            try:
                if self._in.poll(0.2):
                    self._replies.append(self._in.recv())
            except EOFError:
                return found


_process: SyncProcess | None = None
SWEEP_ENV = "FRAMEWORK_SWEEP_SYNC"  # set by a sweep's launcher process whose sync process follows its jobs


def sweep_followed(folder, uri: str) -> bool:
    """Whether a live process of this machine (the launcher of sweep `folder`: this process for the basic
    launcher, the parent of joblib workers) has its sync process follow every job of that sweep into `uri`
    (its sweep-folder scan finds the job's run log)."""
    marker = json.loads(os.environ.get(SWEEP_ENV) or "{}")
    if marker.get("folder") != str(folder) or marker.get("uri") != uri or marker.get("host") != socket.gethostname():
        return False
    try:
        os.kill(marker["pid"], 0)
    except OSError:
        return False
    return True


def sync_process() -> SyncProcess:
    """This process's sync process (started on first use, restarted if it died)."""
    global _process
    if _process is None or not _process.alive():
        _process = SyncProcess()
    return _process


QUIET = {"tracking=none", "tracking.enabled=false", "tracking.mode=offline"}


def start_early(argv: list[str]) -> None:
    """`python -m framework.train ARGV`: start the sync process before Hydra composes the config, so
    its `import mlflow` overlaps the composition, the data loading and the training. Not when ARGV
    turns tracking off or offline or asks Hydra for something other than a run (`--help`, `--cfg`);
    one whose job turns out not to track online is ended unused (`discard_unused`, and at exit)."""
    if any(a.lower() in QUIET or (a.startswith("-") and a not in ("-m", "--multirun")) for a in argv):
        return
    sync_process()
    atexit.register(discard_unused)


def discard_unused() -> None:
    """End this process's sync process if nothing was ever asked of it."""
    global _process
    if _process is not None and not _process.used:
        _process.process.kill()
        _process.process.wait()
        _process = None


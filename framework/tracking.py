"""Tracking: a trainer callback that records the run in MLflow from a separate writer process.

The training process never imports mlflow (~1.7 s to import, ~115 us of CPU per stored point).
`make_tracker(cfg)` starts the process `framework.mlflow_writer` (or reuses this process's idle
one), which imports mlflow and opens the store while the trainer loads data; the callback only
copies host arrays into a queue: one message per flushed `BatchRecord`, one per epoch, one at the
end with the artifacts. At train end the trainer waits until every point is stored
(`tracking.timeout_s`) and checks the count.

Store: `tracking.uri` (null -> `sqlite:///<project root>/mlflow.db`, artifacts beside it in
`mlartifacts/`), the same for every Hydra job whatever its working directory.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from omegaconf import OmegaConf

from .callbacks import BatchRecord, Callback
from .config import ROOT, absolute_sqlite, config_hash, flatten, hydra_config
from .errors import ConfigError, FrameworkError
from .inference import export

START_TIMEOUT_S = 120.0  # writer start: process, mlflow import, store opened (or created), run made
log = logging.getLogger(__name__)


class TrackingError(FrameworkError, RuntimeError):
    """The MLflow writer failed, timed out or stored fewer points than it was sent."""


def store_uri(uri: str | None) -> str:
    """`uri` with null -> the project's SQLite file and relative SQLite paths made absolute."""
    if uri is None:
        return f"sqlite:///{ROOT / 'mlflow.db'}"
    return absolute_sqlite(uri, _original_cwd())


def artifact_location(uri: str, experiment: str) -> str | None:
    """Pinned artifact root of a new experiment: `mlartifacts/<experiment>` beside a SQLite file;
    None (the server decides) for other stores."""
    if not uri.startswith("sqlite:////"):
        return None
    db = Path(uri[len("sqlite:///"):])
    return (db.parent / "mlartifacts" / experiment.replace("/", "_")).as_uri()


def _original_cwd() -> Path:
    hc = hydra_config()
    return Path(hc.runtime.cwd) if hc else Path.cwd()


def sweep_id(hc) -> str | None:
    """A multirun's id, the same in the launcher and in every job: `<storage>#<study_name>` when the
    sweeper keeps its study in a database (`hydra/sweeper=optuna` with both keys set: running the
    command again continues the same sweep), else the absolute sweep directory."""
    from hydra.types import RunMode

    if hc is None or hc.mode != RunMode.MULTIRUN:
        return None
    storage, study = hc.sweeper.get("storage"), hc.sweeper.get("study_name")
    if storage and study:
        return f"{absolute_sqlite(storage, hc.runtime.cwd)}#{study}"
    return str(Path(hc.runtime.cwd, hc.sweep.dir).resolve())


def overrides() -> list[str]:
    """The Hydra command-line overrides of this job ([] outside Hydra)."""
    hc = hydra_config()
    return list(hc.overrides.task) if hc else []


class Writer:
    """A `python -m framework.mlflow_writer` process, fed through a pipe; replies come back through another.

    `start(job, spec)` runs one job; a finished writer goes back to `_idle` and serves the next
    run of this process (sweep jobs, tests) without importing mlflow again. Messages are pickled
    and written by a feeder thread, so the trainer never blocks on a slow store. A plain subprocess,
    measured against multiprocessing: fork starts fastest but copies the trainer's BLAS threads and
    CUDA context; spawn re-imports the user's main module (and fails in a script without
    `if __name__ == "__main__"`). Its ~3 s start (imports, store) overlaps data loading and training.
    """

    def __init__(self):
        jobs_r, jobs_w = os.pipe()
        replies_r, replies_w = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "MPLBACKEND": "Agg"}
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "framework.mlflow_writer", str(jobs_r), str(replies_w)],
            pass_fds=(jobs_r, replies_w), env=env,
            start_new_session=True)  # Ctrl-C stops the trainer only; the trainer sends the run's status
        os.close(jobs_r)
        os.close(replies_w)
        self._out = Connection(jobs_w, readable=False)
        self._in = Connection(replies_r, writable=False)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._feed, name="mlflow-feeder", daemon=True).start()
        self.replies: dict = {}

    def _feed(self) -> None:
        while True:
            try:
                self._out.send(self._queue.get())
            except OSError:  # the writer is gone; `wait` reports why
                return

    def start(self, job: str, spec: dict) -> Writer:
        self.replies = {}
        self.send(job, spec)
        return self

    def send(self, *message) -> None:
        self._queue.put(message)

    def poll(self) -> None:
        """Take the replies that have arrived; raise TrackingError if the writer reported an error
        (now or before: a later wait repeats the cause instead of "exited")."""
        while "error" not in self.replies and self._in.poll():
            try:
                kind, value = self._in.recv()
            except EOFError:  # the writer has exited
                break
            self.replies[kind] = value
        if "error" in self.replies:
            raise TrackingError(f"MLflow writer failed:\n{self.replies['error']}")

    def wait(self, what: str, timeout: float, note: str = ""):
        """The writer's `what` reply; TrackingError if it exits first or `timeout` s pass.
        `note` is logged once the wait exceeds 2 s."""
        start = time.monotonic()
        while what not in self.replies:
            exited = self.process.poll() is not None
            self.poll()
            if what in self.replies:
                break
            if exited:
                raise TrackingError(f"MLflow writer exited with code {self.process.returncode} "
                                    f"before sending '{what}'")
            waited = time.monotonic() - start
            if waited > timeout:
                self.process.kill()
                raise TrackingError(f"MLflow writer sent no '{what}' within {timeout:.0f} s and was "
                                    f"stopped; run {self.replies.get('run')} is incomplete "
                                    f"(raise tracking.timeout_s)")
            if note and waited > 2:
                log.info("%s (timeout %.0f s)", note, timeout)
                note = ""
            self._in.poll(0.05)  # sleeps until a reply arrives
        return self.replies[what]


_idle: Writer | None = None  # this process's writer between jobs


def writer(job: str, spec: dict) -> Writer:
    """A writer running `job`: this process's idle one if it is alive, else a new process."""
    global _idle
    w, _idle = _idle, None
    if w is None or w.process.poll() is not None:
        w = Writer()
    return w.start(job, spec)


def done(w: Writer, timeout: float, note: str = ""):
    """Wait for `w`'s job to finish, keep `w` for the next job and return the job's result."""
    global _idle
    result = w.wait("done", timeout, note)
    _idle = w
    return result


def call_writer(job: str, spec: dict, timeout: float = START_TIMEOUT_S):
    """Run a one-shot writer job ("open_sweep", "close_sweep") and return its result."""
    return done(writer(job, spec), timeout)


class MlflowTracker(Callback):
    """Trainer callback: per-batch rows, epoch metrics, final metrics and artifacts into one MLflow run."""

    def __init__(self, cfg, tracking, resume_run_id: str | None = None):
        self.every = int(tracking.log_every_n_batches)
        if self.every < 1:
            raise ConfigError(f"tracking.log_every_n_batches must be >= 1, got {self.every}")
        self.timeout = float(tracking.timeout_s)
        self.cfg = cfg
        self.points = 0  # points sent; the writer must report storing exactly as many
        hc = hydra_config()
        sid, uri, task = sweep_id(hc), store_uri(tracking.uri), overrides()
        self.writer = writer("record_run", {
            "uri": uri, "experiment": tracking.experiment,
            "artifact_location": artifact_location(uri, tracking.experiment),
            "run_name": tracking.run_name, "sweep_id": sid, "job": hc.job.num if sid else None,
            "resume_run_id": resume_run_id,
            "overrides": task, "params": {k: str(v) for k, v in flatten(cfg).items()},
            "tags": {"hydra.overrides": " ".join(task), "config.hash": config_hash(cfg),
                     **({"sweep.id": sid} if sid else {})},
            "project_root": str(ROOT),
        })

    @property
    def run_id(self) -> str:
        """The MLflow run id, once training has started (waits for the writer to create the run)."""
        return self.writer.wait("run", START_TIMEOUT_S)

    def _metrics(self, keys, steps, values) -> None:
        self.points += values.size
        self.writer.send("metrics", list(keys), steps, values, int(time.time() * 1000))

    def on_train_start(self, trainer) -> None:
        model = trainer.model
        self.writer.send("start", {
            "backend": model.backend.name,
            "dtype": getattr(model.dtype, "__name__", str(model.dtype)),
            "device": str(model.backend.device),
        }, {"model.sizes": str(model.sizes)})

    def on_batches(self, trainer, record: BatchRecord) -> None:
        steps, values = record.steps, record.values
        if self.every > 1:
            keep = steps % self.every == 0
            steps, values = steps[keep], values[keep]
        if len(steps):  # copies: the trainer may reuse its buffers before the feeder pickles them
            self._metrics(record.keys, np.array(steps, np.int64), np.array(values, np.float64))

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        self._metrics(logs, np.array([epoch]), np.array([list(logs.values())], np.float64))
        self.writer.poll()  # a failing writer stops the run early, not after the last epoch

    def on_train_end(self, trainer, status: str, logs: dict[str, float]) -> None:
        final = {k: v for k, v in logs.items() if k not in trainer.history}  # test/..., not the last epoch again
        if final:
            step = max(trainer.epoch - 1, 0)
            self._metrics(final, np.array([step]), np.array([list(final.values())], np.float64))
        self.writer.send("end", status, self._artifacts(trainer, status))
        stored = done(self.writer, self.timeout, note=f"mlflow: storing {self.points:,} points and the artifacts")
        if stored != self.points:
            raise TrackingError(f"run {self.run_id}: sent {self.points} points, the store took {stored}")

    def _artifacts(self, trainer, status: str) -> dict:
        """What the writer turns into files: config, overrides, weights, history, predictions."""
        out = {
            "config.yaml": OmegaConf.to_yaml(self.cfg, resolve=True),
            "overrides.yaml": OmegaConf.to_yaml(OmegaConf.create(overrides())),
            "weights": export(trainer),
            "history": {k: list(v) for k, v in trainer.history.items()},
            "task": trainer.task,
            "failure": trainer.failure,
            "plugin_plots": bool(self.cfg.tracking.plugin_plots),
            "checkpoint": trainer.last_checkpoint and str(trainer.last_checkpoint),
        }
        split = next((s for s in ("test", "val") if getattr(trainer.splits, s) is not None), None)
        if status == "FINISHED" and split:
            out["predictions"] = (split, *trainer.predict(split))
        return out


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """For an http(s) tracking server: fail now, before training, if nothing answers at its address."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"tracking server {uri} is unreachable ({e}); start it (e.g. `mlflow server "
                          f"--host {parsed.hostname} --port {port}`), fix tracking.uri, use the local store "
                          f"with tracking.uri=null, or turn tracking off with tracking=none") from None


def make_tracker(cfg, resume_run_id: str | None = None) -> MlflowTracker | None:
    """The tracking callback configured by `cfg.tracking` (None when tracking is disabled);
    `resume_run_id` continues that run instead of starting a new one."""
    tracking = cfg.get("tracking")
    if tracking is None or not tracking.enabled:
        return None
    check_reachable(store_uri(tracking.uri))
    return MlflowTracker(cfg, tracking, resume_run_id)


def finished_run(cfg) -> dict | None:
    """The final metrics (and "run_id") of a FINISHED run with the same config hash in the
    configured experiment, or None."""
    uri = store_uri(cfg.tracking.uri)
    check_reachable(uri)
    return call_writer("find_finished", {"uri": uri, "experiment": cfg.tracking.experiment, "hash": config_hash(cfg)})


def checkpoint_of_run(run_id: str, cfg) -> Path:
    """The local folder holding run `run_id`'s `checkpoint` artifact."""
    uri = store_uri(cfg.tracking.uri)
    try:
        return Path(call_writer("find_checkpoint", {"uri": uri, "run_id": run_id}))
    except TrackingError as e:
        raise ConfigError(f"trainer.resume={run_id}: not a checkpoint folder, and no checkpoint of such a run "
                          f"in {uri} ({str(e).strip().splitlines()[-1]})") from None

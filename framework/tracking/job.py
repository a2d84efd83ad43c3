"""`Tracking`: the one object `framework.train` talks to (skip-finished lookup, resume lookup, the run).

    tracking = Tracking(cfg)             # checks the store and the run folder before any data loads
    done = tracking.finished_run()       # tracking.skip_finished: a FINISHED run of this config, or None
    folder, run_id = tracking.resume_source(cfg.trainer.resume)
    with tracking.run(resume_run_id=run_id) as callback:   # None when tracking is off
        ... build(cfg, [callback, ...]).fit() ...

`tracking.mode=online` (default): this process's sync process (a joblib sweep job: its launcher's)
streams the run log into the store while the job trains; a single run returns once its run is
complete in the store (a sweep job does not wait: the sweep's end does). If the store fails,
training goes on and the job ends with one line naming what is missing and the `python -m
framework.sync` command that sends it. `offline`: only the run log is written; the job ends with the
sync command.
"""
from __future__ import annotations

import logging
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

from framework.errors import ConfigError
from framework.run.config import config_hash, flatten, hydra_config
from framework.tracking.logger import LONG_PARAMS, RunLogger, split_long_params
from framework.tracking.masking import mask_secrets
from framework.tracking.messages import End, FindCheckpoint, FindFinished, RunStart, Synced, Tags
from framework.tracking.notes import differences, run_name
from framework.tracking.places import check_store, check_writable, run_folder, store_uri, sweep_folder, sweep_id
from framework.tracking.runlog import JOURNAL, LOG, RunLogWriter, check_new, now_ms, read_start

log = logging.getLogger(__name__)


def overrides(cfg) -> list[str]:
    """The Hydra command-line overrides of this job ([] outside Hydra), each value as the checked `cfg`
    holds it (`optimizer.lr=1` -> `optimizer.lr=1.0`, as in the params); strings, group choices (`optimizer=adam`)
    and deletions (`~key`) as typed."""
    hc = hydra_config()
    return [normalized(cfg, o) for o in hc.overrides.task] if hc else []


def normalized(cfg, override: str) -> str:
    """`key=value` with the value `cfg` holds at `key`, written as on the command line (`framework.run.schema.show`)."""
    from omegaconf import DictConfig, OmegaConf

    from framework.run.schema import show

    key, eq, _ = override.partition("=")
    path = key.lstrip("+")
    if not eq or key.startswith("~") or "@" in key:
        return override
    value = OmegaConf.select(cfg, path, default=override)
    if value is override or isinstance(value, (str, DictConfig)):
        return override
    return f"{key}={show(value)}"


def sync_command(folder, uri: str) -> str:
    """The command that sends `folder`'s run log to `uri` (its password masked: the reader supplies it)."""
    return f"python -m framework.sync {folder} --uri {mask_secrets(uri)}"


class Tracking:
    """Tracking of one job as configured by `cfg.tracking` (`enabled` false: every method is a no-op)."""

    def __init__(self, cfg):
        from framework.run import schema
        from framework.tracking.process import discard_unused

        t = cfg.get("tracking")
        if t is not None:
            schema.check(cfg, only="tracking")  # mode, log_every_n_batches, ...: one ConfigError naming the key
        self.cfg, self.enabled = cfg, bool(t is not None and t.enabled)
        self.online = self.enabled and t.get("mode", "online") == "online"
        if not self.online:
            discard_unused()  # started early by `python -m framework.train`, not needed
        if not self.enabled:
            return
        self.settings = t
        self.uri = store_uri(t.uri)
        check_store(self.uri, t.experiment, self.online)
        self.folder = run_folder(t).resolve()
        check_writable(self.folder, "the run folder")
        if not t.skip_finished:  # (with it, a finished run's folder is looked up first, then skipped)
            check_new(self.folder)
        self.callback: RunLogger | None = None
        self.synced: Synced | None = None  # the sync process's reply at the end of a single online run

    @property
    def run_id(self) -> str | None:
        """This run's id in the store, once the store has acknowledged its start (None: not yet, offline, off)."""
        from framework.tracking.runlog import read_ack

        if not self.enabled:
            return None
        return (self.synced and self.synced.run_id) or read_ack(self.folder, self.uri)["run_id"]

    def finished_run(self) -> dict | None:
        """With tracking.skip_finished: the final metrics (and "run_id") of a FINISHED run of this config."""
        if not (self.enabled and self.settings.skip_finished):
            return None
        if not self.online:
            raise ConfigError("tracking.skip_finished looks runs up in the store: use tracking.mode=online")
        from framework.tracking.process import sync_process

        return sync_process().ask(FindFinished, uri=self.uri, experiment=self.settings.experiment,
                                  config_hash=config_hash(self.cfg))

    def resume_source(self, resume) -> tuple[Path | None, str | None]:
        """`trainer.resume` as (checkpoint folder, store run id to continue): a folder as it is, else
        a tracked run's id (or a unique prefix of it), whose checkpoint artifact is fetched."""
        if not resume:
            return None, None
        folder = Path(str(resume)).expanduser()
        if folder.exists():
            return folder, None
        if not (self.enabled and self.online):
            raise ConfigError(f"trainer.resume={resume}: no such checkpoint folder (a run id needs tracking "
                              f"in online mode)")
        from framework.tracking.process import sync_process

        try:
            found = sync_process().ask(FindCheckpoint, uri=self.uri, run_id=str(resume))
            return Path(found["folder"]), found["run_id"]
        except RuntimeError as e:
            raise ConfigError(f"trainer.resume={resume}: not a checkpoint folder, and no checkpoint of such a "
                              f"run in {mask_secrets(self.uri)} ({str(e).strip().splitlines()[-1]})") from None

    @contextmanager
    def run(self, resume_run_id: str | None = None):
        """Open the run log and (online) have it followed; yields the trainer callback (None when
        off). A run that fails before training (a bad config) is closed FAILED with the reason."""
        if not self.enabled:
            yield None
            return
        try:
            self.callback = self._open(resume_run_id)
        except OSError as e:  # the disk filled up, or the folder became read-only, since the checks
            raise ConfigError(f"cannot write the run log in {self.folder} ({e.strerror or e}); free space there or "
                              "give the run another folder (hydra.run.dir=<folder>)") from None
        try:
            yield self.callback
        except BaseException as e:
            if not self.callback.log.closed:
                reason = f"{type(e).__name__}: {e}"
                self.callback.log.append(Tags({"failure.reason": reason}))
                self.callback.log.close(End("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED", now_ms()))
            self._finish()
            raise
        self._finish()

    def _open(self, resume_run_id) -> RunLogger:
        t, hc = self.settings, hydra_config()
        sid = sweep_id(hc)
        params, long = split_long_params({k: mask_secrets(str(v)) for k, v in flatten(self.cfg).items()})
        task = overrides(self.cfg)
        tags = {"hydra.overrides": " ".join(task), "config.hash": config_hash(self.cfg), **source_tags(),
                **node_tags()}
        if sid:
            tags.update({"sweep.id": sid, "sweep.job": str(hc.job.num)})
        folder = sweep_folder(hc)
        parent = str(folder) if folder and (folder / LOG / JOURNAL).exists() else None
        up = None  # the sweep folder as the RunStart names it: relative (".." parts), so the sweep can be moved
        if parent and self.folder.is_relative_to(folder):
            up = os.path.relpath(folder, self.folder)
        elif parent:
            log.warning("the job folder %s is not under the sweep folder %s: its run is not linked to the sweep's "
                        "parent run (keep hydra.sweep.subdir relative)", self.folder, folder)
        swept = read_start(parent).tags.get("sweep.keys", "").split() if parent else None
        differs = differences(task, swept, sweep=sid is not None)
        start = RunStart(secrets.token_hex(16), t.experiment, now_ms(), run_name(t.run_name, self.cfg, differs),
                         params, tags, parent=up, resume_run_id=resume_run_id, uri=self.uri)
        callback = RunLogger(RunLogWriter(self.folder, start), self.cfg, task, int(t.log_every_n_batches),
                             bool(t.plugin_plots), differs, None if sid else t.get("register_model"),  # a sweep's:
                             t.get("system_every"))  # its best job's model, at the sweep's end
        if long:
            import yaml

            (self.folder / LONG_PARAMS).write_text(yaml.safe_dump(long))
            callback.artifacts.append(LONG_PARAMS)
        callback.log.flush()
        if self.online:
            from framework.tracking.process import sweep_followed, sync_process

            if not (folder and sweep_followed(folder, self.uri)):  # else the sweep launcher's sync process does
                sync_process().follow(self.folder, self.uri, reply=sid is None)
        return callback

    def _finish(self) -> None:
        """A single online run waits until its run is in the store; then one line if anything is missing."""
        command = sync_command(self.folder, self.uri)
        if not self.online or sweep_id(hydra_config()):
            return  # offline: `where` gives the sync command; a sweep's end waits for every job's run (sweeps.py)
        from framework.tracking.process import sync_process

        synced = sync_process().wait_synced([self.folder], float(self.settings.timeout_s)).get(str(self.folder))
        self.synced = synced
        if synced is None:
            log.warning("mlflow: run not complete in %s after tracking.timeout_s=%s s (still syncing in the "
                        "background); to finish it later: %s", mask_secrets(self.uri), self.settings.timeout_s, command)
        elif synced.missing:
            log.warning("mlflow: %s; the run log keeps it: %s", synced.missing, command)

    def where(self) -> list[str]:
        """What a job prints after its metrics table (at most 3 lines): the run id (8 characters, then in full),
        the store and the UI address that opens the run in MLflow's model-training view; offline, the run
        folder and the `framework.sync` command (last)."""
        if not self.enabled or sweep_id(hydra_config()):
            return []  # a sweep's end says where its runs went
        if not self.online:
            return [f"run log  {self.folder} (offline: in no store yet)",
                    f"sync     {sync_command(self.folder, self.uri)}"]
        run_id = self.run_id
        if run_id is None:
            return []  # the store has not created the run (the warning above says why)
        lines = [f"run    {run_id[:8]}  ({run_id})"]
        ui = ui_address(self.uri, self.synced and self.synced.experiment_id, run_id)
        server = self.uri.startswith(("http://", "https://"))
        lines.append(f"store  {mask_secrets(self.uri)}" + ("" if server else f"  (UI: mlflow ui --backend-store-uri "
                                                                          f"{mask_secrets(self.uri)})"))
        return lines + ([f"ui     {ui}"] if ui else [])


UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a SQLite (or any non-HTTP) store


def ui_address(uri: str, experiment_id: str | None, run_id: str) -> str | None:
    """The MLflow UI address of a run's page in the model-training view (not the GenAI view a new browser
    opens on): the server of an http(s) store, else `mlflow ui`'s default address."""
    if experiment_id is None:
        return None
    base = mask_secrets(uri).rstrip("/") if uri.startswith(("http://", "https://")) else UI
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def source_tags() -> dict[str, str]:
    """What the MLflow UI shows as Source and Created by: the command and the user."""
    import getpass
    import sys

    from framework.run.config import ROOT

    prog = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] not in ("", "-c") else None
    if prog and prog.suffix == ".py" and prog.is_relative_to(ROOT):  # `python -m framework.train ...`
        prog = "-m " + ".".join(prog.relative_to(ROOT).with_suffix("").parts)
    tags = {"mlflow.source.name": " ".join(["python", *([str(prog)] if prog else []), *sys.argv[1:]]),
            "mlflow.source.type": "LOCAL"}
    try:
        tags["mlflow.user"] = getpass.getuser()
    except (KeyError, OSError):
        pass
    commit = git_commit(ROOT)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def node_tags() -> dict[str, str]:
    """Where a run ran: `node.host` (the hostname), and in a Ray worker `node.ray_id` (its Ray node's id:
    nodes of one machine share the hostname)."""
    import socket
    import sys

    tags = {"node.host": socket.gethostname()}
    ray = sys.modules.get("ray")  # imported in a Ray worker; a plain run does not import it
    if ray is not None and ray.is_initialized():
        tags["node.ray_id"] = ray.get_runtime_context().get_node_id()
    return tags


_commit: dict = {}


def git_commit(root) -> str | None:
    """HEAD of the git repository at `root` (read once per process), or None."""
    if root not in _commit:
        import subprocess

        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
            _commit[root] = out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            _commit[root] = None
    return _commit[root]

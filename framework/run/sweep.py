"""Hydra callbacks of a multirun: `MlflowSweep` makes it one MLflow parent run, each job's run its child;
`FailedJobsReport` lists the jobs that failed and exits non-zero; `SlurmRequestCheck` (enabled by
conf/hydra/launcher/slurm.yaml) stops a SLURM sweep whose jobs could never start.

Enabled in conf/config.yaml:

    hydra:
      callbacks:
        mlflow_sweep:
          _target_: framework.run.sweep.MlflowSweep

`on_multirun_start` writes the parent's run log in the sweep folder before any job starts
(`framework.tracking.sweeps`; tagged `sweep.id`: the sweep folder, or `storage#study_name` of a stored
Optuna study, whose rerun reopens the same parent run); `on_multirun_end` waits until every job's run is in the store
(online), records the best job by the sweep's objective (`objective.metric`, `objective.mode`) and the
failed jobs, and ends the parent; a sweep that dies first leaves it FAILED at exit.
Like the trainer, this process never imports mlflow: the sync process does the work.
"""
from __future__ import annotations

import atexit
import json
import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)

FAILED_FILE = "FAILED.json"  # a failed sweep job's report in its folder (`write_failed`)


class MlflowSweep(Callback):
    """Opens a multirun's parent run at its start and closes it at its end."""

    def __init__(self):
        self._parent = None

    def __getstate__(self) -> dict:  # the joblib launcher sends callbacks to its workers; the parent stays here
        return {"_parent": None}

    def on_multirun_start(self, config, **kwargs) -> None:
        tracking = config.get("tracking")
        if tracking is None or not tracking.enabled:
            return
        from framework.tracking.sweeps import SweepParent

        self._parent = SweepParent(config, tracking)
        atexit.register(self._parent.close, "FAILED")
        log.info("tracking: sweep %s is a parent run (run log in its folder)", self._parent.folder)

    def on_multirun_end(self, config, **kwargs) -> None:
        if self._parent is not None:
            atexit.unregister(self._parent.close)
            for line in self._parent.close("FINISHED"):  # where the sweep went: parent id, best job, report, ...
                print(line, flush=True)
            self._parent = None


def write_failed(folder, job: int, overrides: list[str], error: str) -> None:
    """A failed job's report {"job", "overrides", "error"} as FAILED.json in its folder (secrets masked)."""
    from framework.tracking.masking import mask_secrets

    report = {"job": job, "overrides": overrides, "error": error}
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / FAILED_FILE).write_text(mask_secrets(json.dumps(report, indent=1)))


def failed_jobs(sweep_folder) -> list[dict]:
    """The reports {"job", "overrides", "error"} of the failed jobs of `sweep_folder`, by job number."""
    reports = [json.loads(p.read_text()) for p in Path(sweep_folder).glob(f"*/{FAILED_FILE}")]
    return sorted(reports, key=lambda r: r["job"])


class FailedJobsReport(Callback):
    """Reads each job's FAILED.json under the sweep folder; exits 1 when any job failed."""

    def on_multirun_end(self, config, **kwargs) -> None:
        reports = failed_jobs(config.hydra.sweep.dir)
        if not reports:
            return
        print(f"\n{len(reports)} sweep job(s) failed:", file=sys.stderr)
        for r in reports:
            print(f"  job {r['job']} [{' '.join(r['overrides'])}]: {r['error'].splitlines()[0]}", file=sys.stderr)
        sys.exit(1)


class SlurmRequestCheck(Callback):
    """Before anything is submitted (first callback: the launcher config merges before conf/config.yaml):
    one line and exit 1 when the jobs' request exceeds every node of the partition, or its time limit
    (`launchers.slurm_request_problem`), instead of a sweep waiting for ever on PENDING jobs."""

    def on_multirun_start(self, config, **kwargs) -> None:
        from framework.errors import ConfigError
        from framework.run.launchers import slurm_request_problem

        try:
            problem = slurm_request_problem(config.hydra.launcher)
        except ConfigError as e:
            problem = str(e)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(1)

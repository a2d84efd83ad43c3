"""A multirun's parent run: a run log in the sweep folder, written by the launcher process.

`open_sweep` (at the multirun's start, before any job) writes its RunStart: params = the sweep's
overrides and the sweeper's settings, tags `sweep.role=parent`, `sweep.id`, `sweep.keys` (the swept
keys, which name the jobs: "3: optimizer.lr=0.01"), launcher and sweeper. Every job's run log names
the sweep folder as its parent. `close_sweep` (at its end) waits until every job's run is in the
store (online), then records a SweepEnd: the best job by the objective, the job count and the failed
jobs with their reasons (tag `sweep.failed`). Offline, `python -m framework.sync <sweep folder>`
sends the parent and its jobs later.
"""
from __future__ import annotations

import logging
import math
import secrets
from pathlib import Path

from framework.run.config import flatten
from framework.run.sweep import failed_jobs
from framework.tracking.job import source_tags
from framework.tracking.messages import RunStart, SweepEnd
from framework.tracking.places import check_store, store_uri, sweep_folder, sweep_id
from framework.tracking.runlog import RunLogWriter, check_new, find_runlogs, last_values, now_ms

log = logging.getLogger(__name__)


class SweepParent:
    """The open parent run log of one multirun."""

    def __init__(self, config, tracking):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        hc = config.hydra
        self.folder, self.uri, self.tracking = sweep_folder(hc), store_uri(tracking.uri), tracking
        self.online = tracking.get("mode", "online") == "online"
        self.objective = config.objective
        check_store(self.uri, tracking.experiment, self.online)
        task = list(hc.overrides.task)
        parsed = OverridesParser.create().parse_overrides(task)
        params = {o.key_or_group: o.input_line.split("=", 1)[1] for o in parsed if "=" in o.input_line}
        params.update({f"sweeper.{k}": str(v) for k, v in flatten(hc.sweeper).items()})
        swept = [o.key_or_group for o in parsed if o.is_sweep_override()] + list(hc.sweeper.get("params") or {})
        tags = {"hydra.overrides": " ".join(task), "sweep.keys": " ".join(swept), "sweep.role": "parent",
                "sweep.id": sweep_id(hc), "sweep.sweeper": hc.sweeper._target_,
                "sweep.launcher": hc.launcher._target_, **source_tags()}
        start = RunStart(secrets.token_hex(16), tracking.experiment, now_ms(), tracking.run_name or str(hc.sweep.dir),
                         {k: str(v) for k, v in params.items()}, tags, role="sweep", uri=self.uri)
        check_new(self.folder, "sweep folder", "give this sweep its own hydra.sweep.dir (the default is a new "
                  "timestamped folder); a stored Optuna study continues under the same MLflow parent run from any folder")
        self.log = RunLogWriter(self.folder, start)
        self.log.flush()
        if self.online:
            from framework.tracking.process import sync_process

            sync_process().follow_sweep(self.folder, self.uri)

    def jobs(self) -> list[Path]:
        return [f for f in find_runlogs([self.folder]) if f != self.folder.resolve()]

    def close(self, status: str) -> dict | None:
        """Wait for the jobs' runs (online), record the SweepEnd; returns the best job
        {"folder", "value"} by the objective, or None."""
        jobs = self.jobs()
        if self.online:
            self._wait(jobs)
        metric, mode = self.objective.metric, self.objective.mode
        scored = [(v, f) for f in jobs for v in [last_values(f, [metric]).get(metric)] if v is not None and not math.isnan(v)]
        best = (min if mode == "min" else max)(scored) if scored else None
        failed = {str(r["job"]): r["error"].splitlines()[0] for r in failed_jobs(self.folder)}
        self.log.close(SweepEnd(status, now_ms(), metric, best and str(best[1]), best and best[0], len(jobs), failed,
                                mode, self.tracking.get("register_model")))
        if self.online:
            self._wait([self.folder])
        else:
            log.info("tracking offline: send the sweep to MLflow with: python -m framework.sync %s --uri %s",
                     self.folder, self.uri)
        return best and {"folder": str(best[1]), "value": best[0]}

    def _wait(self, folders) -> None:
        """Until every run of `folders` is complete in the store (or the store failed: one line)."""
        from framework.tracking.process import sync_process

        process = sync_process()
        for f in folders:
            process.follow(f, self.uri)
        synced = process.wait_synced(folders, float(self.tracking.timeout_s) * max(1, len(folders)))
        missing = [str(f) for f in folders if str(f) not in synced or synced[str(f)].missing]
        if missing:
            log.warning("mlflow: %d run(s) not complete in %s yet (%s); the run logs keep them: "
                        "python -m framework.sync %s --uri %s", len(missing), self.uri,
                        next((s.missing for s in synced.values() if s.missing), "timed out"), self.folder, self.uri)


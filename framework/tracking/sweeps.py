"""A multirun's parent run: a run log in the sweep folder, written by the launcher process.

`SweepParent(...)` (at the multirun's start, before any job) writes its RunStart: params = the sweep's
overrides and the sweeper's settings, tags `sweep.role=parent`, `sweep.id`, `sweep.keys` (the swept
keys, which name the jobs: "relu lr=0.01"), launcher and sweeper. Every job's run log names the sweep
folder as its parent. `close` (at its end) waits until every job's run is in the store (online), then
writes the sweep's report.html, records the parent's description (`notes.sweep_note`) and a SweepEnd: the
best job by the objective, the job count, the failed jobs with their reasons (tag `sweep.failed`) and the
report (logged to the parent), and returns the lines that end the sweep's output. Offline,
`python -m framework.sync <sweep folder>` sends the parent and its jobs later.
"""
from __future__ import annotations

import logging
import math
import secrets
from pathlib import Path

from framework.run.config import flatten
from framework.run.sweep import failed_jobs
from framework.tracking.job import node_tags, source_tags
from framework.tracking.masking import mask_secrets
from framework.tracking.messages import RunStart, SweepEnd, Tags
from framework.tracking.notes import NOTE, sweep_name, sweep_note
from framework.tracking.places import check_store, store_uri, sweep_folder, sweep_id
from framework.tracking.runlog import RunLogWriter, check_new, find_runlogs, last_values, now_ms, read_ack, read_start

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
                "sweep.launcher": hc.launcher._target_, **source_tags(), **node_tags()}
        start = RunStart(secrets.token_hex(16), tracking.experiment, now_ms(), sweep_name(tracking.run_name, swept),
                         {k: str(v) for k, v in params.items()}, tags, role="sweep", uri=self.uri)
        check_new(self.folder, "sweep folder", "give this sweep its own hydra.sweep.dir (the default is a new "
                  "timestamped folder); a stored Optuna study continues under the same MLflow parent run from any "
                  "folder")
        self.log = RunLogWriter(self.folder, start)
        self.log.flush()
        if self.online:
            from framework.tracking.process import sync_process

            sync_process().follow_sweep(self.folder, self.uri)

    def jobs(self) -> list[Path]:
        return [f for f in find_runlogs([self.folder]) if f != self.folder.resolve()]

    def close(self, status: str) -> list[str]:
        """Wait for the jobs' runs (online), record the description and the SweepEnd; returns the lines
        that end the sweep's output (`where`)."""
        jobs = self.jobs()
        if self.online:
            self._wait(jobs)
        metric, mode = self.objective.metric, self.objective.mode
        values = {f: last_values(f, [metric]).get(metric) for f in jobs}
        scored = [(v, f) for f, v in values.items() if v is not None and not math.isnan(v)]
        best = (min if mode == "min" else max)(scored) if scored else None
        failed = {str(r["job"]): r["error"].splitlines()[0] for r in failed_jobs(self.folder)}
        starts = {f: read_start(f) for f in jobs}
        report = self.report()
        note = sweep_note([(starts[f].params, values[f]) for f in jobs], metric, mode, failed, self.folder,
                          report is not None)
        self.log.append(Tags({NOTE: note}))
        self.log.close(SweepEnd(status, now_ms(), metric, best and str(best[1].relative_to(self.folder.resolve())),
                                best and best[0], len(jobs), failed, mode, [report.name] if report else [],
                                self.tracking.get("register_model")))
        synced = self._wait([self.folder]).get(str(self.folder)) if self.online else None
        return self.where(synced, best and (best[0], starts[best[1]], best[1]), len(jobs), len(failed))

    def where(self, synced, best, runs: int, failed: int) -> list[str]:
        """The parent run id (prefix, full), the best job (id, swept values, objective), the report's path
        and the runs-table command; offline the sweep folder and the sync command (last)."""
        from framework.tracking.job import sync_command, ui_address

        count = f"{runs} runs" + (f", {failed} failed" if failed else "")
        if not self.online:
            return [f"sweep   {self.folder} ({count}; offline: in no store yet)",
                    f"sync    {sync_command(self.folder, self.uri)}"]
        parent = read_ack(self.folder, self.uri)["run_id"]
        if parent is None:
            return [f"sweep   {self.folder} ({count}; not in {mask_secrets(self.uri)} yet: see above)"]
        lines = [f"sweep   {parent[:8]}  ({parent}; {count})"]
        if best:
            value, start, folder = best
            child = read_ack(folder, self.uri)["run_id"] or "(not stored)"
            lines.append(f"best    {child[:8]}  {start.run_name}  {self.objective.metric} {value:.6g}")
        report = self.folder / "report.html"
        if report.is_file():
            lines.append(f"report  {report}")
        ui = ui_address(self.uri, synced and synced.experiment_id, parent)
        if ui:
            lines.append(f"ui      {ui}")
        lines.append(f"runs    python -m framework.runs --parent {parent[:8]}" + (
            "" if self.uri == store_uri(None) else f" --uri {mask_secrets(self.uri)}"))
        return lines

    def report(self) -> Path | None:
        """`report.html` in the sweep folder, built from the jobs' run logs (local and complete now, and no
        mlflow import); None, with a warning, when it cannot be built: the sweep's record matters more."""
        from framework.tracking.report.data import load_folder
        from framework.tracking.report.page import write

        try:
            sweep = load_folder(self.folder)
            return write(sweep, self.folder) if sweep.runs else None
        except Exception as e:  # noqa: BLE001
            log.warning("no report.html for sweep %s: %s: %s", self.folder, type(e).__name__, e)
            return None

    def _wait(self, folders) -> dict:
        """Until every run of `folders` is complete in the store (or the store failed: one line); the replies."""
        from framework.tracking.process import sync_process

        process = sync_process()
        for f in folders:
            process.follow(f, self.uri)
        synced = process.wait_synced(folders, float(self.tracking.timeout_s) * max(1, len(folders)))
        missing = [str(f) for f in folders if str(f) not in synced or synced[str(f)].missing]
        if missing:
            from framework.tracking.job import sync_command

            log.warning("mlflow: %d run(s) not complete in %s yet (%s); the run logs keep them: %s", len(missing),
                        mask_secrets(self.uri), next((s.missing for s in synced.values() if s.missing), "timed out"),
                        sync_command(self.folder, self.uri))
        return synced


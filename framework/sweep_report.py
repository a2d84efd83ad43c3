"""Hydra callback: at the end of a multirun, list the jobs that failed and exit non-zero."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

FAILED_FILE = "FAILED.json"  # a failed sweep job's report in its folder (written by framework.train)


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

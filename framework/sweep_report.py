"""Hydra callback: at the end of a multirun, list the jobs that failed and exit non-zero."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from .train import FAILED_FILE


class FailedJobsReport(Callback):
    """Reads each job's FAILED.json under the sweep folder; exits 1 when any job failed."""

    def on_multirun_end(self, config, **kwargs) -> None:
        reports = [json.loads(p.read_text()) for p in sorted(Path(config.hydra.sweep.dir).glob(f"*/{FAILED_FILE}"))]
        if not reports:
            return
        print(f"\n{len(reports)} sweep job(s) failed:", file=sys.stderr)
        for r in sorted(reports, key=lambda r: r["job"]):
            print(f"  job {r['job']} [{' '.join(r['overrides'])}]: {r['error'].splitlines()[0]}", file=sys.stderr)
        sys.exit(1)

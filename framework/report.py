"""`python -m framework.report TARGET [--group-by KEY ...] [--out DIR] [--uri URI]`: a sweep's report.

    python -m framework.report multirun/2026-12-05/12-00-00        # a sweep folder (its run logs)
    python -m framework.report 3f2a9c1e                            # a parent run id (or its prefix) in the store
    python -m framework.report Default --group-by activation.name  # an experiment's runs

Writes DIR/report.html (default DIR: the sweep folder for a folder, else the current folder): one
self-contained page (`framework.tracking.report`). Every sweep writes its own at its end.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m framework.report", description=__doc__.split("\n")[0])
    p.add_argument("target", metavar="TARGET",
                   help="a sweep folder, a sweep's parent run id (or prefix), or an experiment")
    p.add_argument("--group-by", nargs="+", metavar="KEY", help="group by these params (default: all but seed)")
    p.add_argument("--out", type=Path, help="folder for report.html")
    p.add_argument("--uri", help="store for a run id or experiment (default: $MLFLOW_TRACKING_URI, else the project's)")
    args = p.parse_args(argv)
    from framework.tracking.report.data import load_folder, load_store
    from framework.tracking.report.page import write

    started = time.perf_counter()
    try:
        if Path(args.target).is_dir():
            sweep = load_folder(args.target)
            out = args.out or Path(args.target)
        else:
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            from framework.tracking.places import store_uri

            sweep = load_store(store_uri(args.uri), args.target)
            out = args.out or Path.cwd()
    except (LookupError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    if not sweep.runs:
        sys.exit(f"error: {args.target}: no runs to report")
    if args.group_by:
        known = {k for r in sweep.runs for k in r.params}
        unknown = [k for k in args.group_by if k not in known]
        if unknown:
            import difflib

            hints = {k: difflib.get_close_matches(k, known, 1) for k in unknown}
            sys.exit("error: --group-by " + ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "")
                                                       for k, h in hints.items()) + " is no param of these runs")
    path = write(sweep, out, args.group_by)
    print(f"{path} ({len(sweep.runs)} runs, {path.stat().st_size / 1e6:.2f} MB, {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()

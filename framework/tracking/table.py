"""`python -m framework.runs`: recorded runs as a table, best first, with only the params that differ.

    python -m framework.runs                                   # experiment "Default", by val/loss
    python -m framework.runs --sweep multirun/2026-01-31/12-00-00 --sort val/accuracy
    python -m framework.runs --parent <run id or its first characters> --uri http://127.0.0.1:5000

`--sweep` takes the sweep directory (its id); the direction of `--sort` follows the metric
(losses ascending, accuracy descending); `--reverse` flips it. Runs without the metric come last.
A run id may be shortened to any unique prefix (the table shows 8 characters).
"""
from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from framework.errors import ConfigError
from framework.registry import metrics as metric_registry
from framework.tracking.masking import mask_secrets
from framework.tracking.places import store_uri


def direction(metric: str) -> str:
    """"max" for higher-is-better registered metrics (`val/accuracy`), else "min" (`val/loss`, `val/mse`)."""
    name = metric.rsplit("/", 1)[-1]
    return "max" if name in metric_registry.names() and metric_registry.get(name).higher_is_better else "min"


RUN_ID = re.compile(r"[0-9a-f]{1,32}")  # an MLflow run id or a prefix of one


def resolve_run_id(client, prefix: str, experiment_ids: list[str] | None = None) -> str:
    """The full id of the one run in `experiment_ids` (None: every active experiment) whose id starts with
    `prefix`; ConfigError if none or several do (deleted runs do not count). A full 32-digit id is looked
    up directly (no search)."""
    prefix = prefix.strip().lower()
    if not RUN_ID.fullmatch(prefix):
        raise ConfigError(f"'{prefix}' is not a run id (32 hex digits, or their first few)")
    if len(prefix) == 32:
        from mlflow.exceptions import MlflowException

        try:
            run = client.get_run(prefix)
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            run = None
        if run is not None and run.info.lifecycle_stage == "active" and (
                experiment_ids is None or run.info.experiment_id in experiment_ids):
            return prefix
        raise ConfigError(f"no run id starts with '{prefix}'")
    from framework.tracking.store import search

    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
    ids = sorted({r.info.run_id for r in search(client, experiment_ids, f"attributes.run_id LIKE '{prefix}%'")})
    if not ids:
        raise ConfigError(f"no run id starts with '{prefix}'")
    if len(ids) > 1:
        shown = ", ".join(i[:12] for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise ConfigError(f"run id '{prefix}' is ambiguous: {len(ids)} runs start with it ({shown}); "
                          "give more characters")
    return ids[0]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m framework.runs", description=__doc__.split("\n")[0])
    p.add_argument("--experiment", default="Default", help="experiment name (default: %(default)s)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--sweep", metavar="ID", help="children of a sweep: its sweep directory")
    which.add_argument("--parent", metavar="RUN_ID", help="children of a parent run")
    p.add_argument("--sort", metavar="METRIC", default="val/loss", help="metric to sort by (default: %(default)s)")
    p.add_argument("--reverse", action="store_true", help="flip the metric's natural order")
    p.add_argument("--uri", default=None,
                   help="tracking URI (default: $MLFLOW_TRACKING_URI, else the project's mlflow.db)")
    p.add_argument("--limit", type=int, default=None, help="show the best N runs only")
    return p.parse_args(argv)


def differing(params: list[dict[str, str]]) -> list[str]:
    """Param keys whose value is not the same in every run (a missing key counts as a value)."""
    keys = sorted(set().union(*params)) if params else []
    return [k for k in keys if len({p.get(k) for p in params}) > 1]


def table(runs: list, metric: str, reverse: bool = False, limit: int | None = None) -> Table:
    """The best `limit` runs by `metric`: differing params, the metric and the test metrics."""
    sign = -1.0 if (direction(metric) == "max") != reverse else 1.0

    def key(run):
        value = run.data.metrics.get(metric, math.nan)
        return (math.isnan(value), sign * value if not math.isnan(value) else 0.0)

    runs = sorted(runs, key=key)[:limit]
    params = differing([r.data.params for r in runs])
    metrics = [metric] + sorted({k for r in runs for k in r.data.metrics if k.startswith("test/")} - {metric})
    t = Table(title=f"{len(runs)} runs by {metric}")
    for col in ["run", "id", "status", *params, *metrics]:
        t.add_column(col, justify="right" if col in metrics else "left", no_wrap=True)
    for r in runs:
        values = [r.data.metrics.get(m) for m in metrics]
        t.add_row(r.info.run_name, r.info.run_id[:8], r.info.status, *(r.data.params.get(k, "") for k in params),
                  *("" if v is None else f"{v:.4g}" for v in values))
    return t


def main(argv=None, console: Console | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from framework.tracking.store import open_store, search, tag_equals

    client = open_store(store_uri(args.uri))
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        names = ", ".join(e.name for e in client.search_experiments())
        raise SystemExit(f"no experiment '{args.experiment}' in {mask_secrets(store_uri(args.uri))}; "
                         f"experiments: {names or '(none)'}")
    filter_string = ""
    if args.sweep:
        filter_string = tag_equals("sweep.id", str(Path(args.sweep).resolve()))
    elif args.parent:
        try:
            parent = resolve_run_id(client, args.parent, [exp.experiment_id])
        except ConfigError as e:
            raise SystemExit(f"error: {e} (experiment '{args.experiment}')") from None
        filter_string = tag_equals("mlflow.parentRunId", parent)
    runs = [r for r in search(client, [exp.experiment_id], filter_string) if r.data.tags.get("sweep.role") != "parent"]
    if not runs:
        which = f"with parent run {parent}" if args.parent else f"of sweep {args.sweep}" if args.sweep else "at all"
        raise SystemExit(f"no runs {which} in experiment '{args.experiment}' of {mask_secrets(store_uri(args.uri))}")
    out, console = table(runs, args.sort, args.reverse, args.limit), console or Console()
    if not console.is_terminal:  # a pipe or file gets the whole table, not an 80-column squeeze
        console.width = max(console.width, Measurement.get(console, console.options.update_width(10**4), out).maximum)
    console.print(out)


if __name__ == "__main__":
    main()

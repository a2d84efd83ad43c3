"""`python -m framework.runs`: recorded runs as a table that fits the terminal, best first.

    python -m framework.runs                               # the latest sweep's jobs, else the last 20 runs
    python -m framework.runs --parent 3f2a9c1b             # one sweep's jobs (its parent run id, or a prefix)
    python -m framework.runs --sweep multirun/2026-01-31/12-00-00 --sort val/accuracy
    python -m framework.runs --all --columns optimizer.lr,val/f1_macro --uri http://127.0.0.1:5000
    python -m framework.runs --wide                        # every differing param and every metric, uncut

Columns: the id's first 8 characters (never cut: `--parent`, `trainer.resume`, `framework.load` and
`predict` take it), status, name, the params that differ among the listed runs, the objective (the runs'
`objective.metric`, default val/loss) and the main test metric (`test/<objective>`, else test/accuracy,
test/r2, ...). As wide as the terminal (`--width`; 100 columns when not printing to one): the name is
shortened first, then param columns are left out (the footer names them). `--sort` takes a metric,
param or column key; the direction follows the metric (losses ascending, accuracy descending),
`--reverse` flips it; runs without the key come last. A key that is none of these is an error naming
the closest ones. SQLite stores are read directly (sqlite3, read-only: MLflow's runs, params,
latest_metrics and tags tables), other stores through `MlflowClient`.
"""
from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from framework.errors import ConfigError
from framework.tracking.masking import mask_secrets
from framework.tracking.places import sqlite_path, store_uri

RUN_ID = re.compile(r"[0-9a-f]{1,32}")  # an MLflow run id or a prefix of one
ID_CHARS = 8
LAST = 20  # runs shown when the latest run is no sweep
PIPE_WIDTH = 100  # columns when stdout is not a terminal
SEP = "  "
MAIN_TEST = ("accuracy", "f1_macro", "f1", "roc_auc", "r2", "mse", "mae", "loss")  # the first present is shown


def direction(metric: str) -> str:
    """"max" for higher-is-better registered metrics (`val/accuracy`), else "min" (`val/loss`, `val/mse`)."""
    from framework.registry import metrics as metric_registry

    name = metric.rsplit("/", 1)[-1]
    return "max" if name in metric_registry.names() and metric_registry.get(name).higher_is_better else "min"


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
    return unique(prefix, ids)


def unique(prefix: str, ids: list[str]) -> str:
    """The one of `ids` (those starting with `prefix`); ConfigError if none or several."""
    if not ids:
        raise ConfigError(f"no run id starts with '{prefix}'")
    if len(ids) > 1:
        shown = ", ".join(i[:12] for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise ConfigError(f"run id '{prefix}' is ambiguous: {len(ids)} runs start with it ({shown}); "
                          f"give more characters")
    return ids[0]


# ---- reading a store -------------------------------------------------------------------------------------
@dataclass
class Run:
    """What the table needs of one run (deleted runs are never read)."""

    run_id: str
    name: str
    status: str
    start_time: int
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def read_sqlite(path: Path, experiment: str) -> tuple[list[Run] | None, list[str]]:
    """(The active runs of `experiment` in the SQLite store at `path`, or None if it has no such
    experiment; the names of its active experiments), read straight from MLflow's tables."""
    import sqlite3

    if not path.is_file():
        raise ConfigError(f"no MLflow store at {path}")
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        names = [n for (n,) in con.execute("SELECT name FROM experiments WHERE lifecycle_stage = 'active'")]
        row = con.execute("SELECT experiment_id FROM experiments WHERE name = ? AND lifecycle_stage = 'active'",
                          (experiment,)).fetchone()
        if row is None:
            return None, names
        runs = {r[0]: Run(*r) for r in con.execute(
            "SELECT run_uuid, name, status, start_time FROM runs WHERE experiment_id = ? AND lifecycle_stage = "
            "'active'", row)}
        scope = "run_uuid IN (SELECT run_uuid FROM runs WHERE experiment_id = ? AND lifecycle_stage = 'active')"
        for table, attr in (("params", "params"), ("tags", "tags")):
            for key, value, run_id in con.execute(f"SELECT key, value, run_uuid FROM {table} WHERE {scope}", row):
                getattr(runs[run_id], attr)[key] = value
        for key, value, is_nan, run_id in con.execute(
                f"SELECT key, value, is_nan, run_uuid FROM latest_metrics WHERE {scope}", row):
            runs[run_id].metrics[key] = math.nan if is_nan else value
        return list(runs.values()), names
    finally:
        con.close()


def read_client(uri: str, experiment: str) -> tuple[list[Run] | None, list[str]]:
    """As `read_sqlite`, through `MlflowClient` (a tracking server, PostgreSQL, MySQL)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from framework.tracking.store import open_store, search

    client = open_store(uri)
    names = [e.name for e in client.search_experiments()]
    exp = client.get_experiment_by_name(experiment)
    if exp is None or exp.lifecycle_stage != "active":
        return None, names
    return [Run(r.info.run_id, r.info.run_name or "", r.info.status, r.info.start_time or 0, dict(r.data.params),
                dict(r.data.metrics), dict(r.data.tags)) for r in search(client, [exp.experiment_id])], names


def read_runs(uri: str, experiment: str) -> list[Run]:
    """The active runs of `experiment` in store `uri`; ConfigError naming the experiments if it has none such."""
    path = sqlite_path(uri)
    runs, names = read_sqlite(path, experiment) if path else read_client(uri, experiment)
    if runs is None:
        raise ConfigError(f"no experiment '{experiment}' in {mask_secrets(uri)}; experiments: "
                          f"{', '.join(names) or '(none)'} (--experiment NAME)")
    return runs


# ---- which runs, which columns ----------------------------------------------------------------------
def select(runs: list[Run], parent: str | None = None, sweep: str | None = None,
           every: bool = False) -> tuple[list[Run], str]:
    """(The runs to show, the header saying which): the children of run `parent` (an id or a unique prefix)
    or of sweep folder `sweep`, every run (`every`); by default the latest sweep's jobs when the latest
    top-level run is a sweep's parent, else the last `LAST` runs. Sweep parents are never rows."""
    rows = [r for r in runs if r.tags.get("sweep.role") != "parent"]
    by_id = {r.run_id: r for r in runs}
    if parent:
        prefix = parent.strip().lower()
        if not RUN_ID.fullmatch(prefix):
            raise ConfigError(f"'{prefix}' is not a run id (32 hex digits, or their first few)")
        found = by_id[unique(prefix, sorted(i for i in by_id if i.startswith(prefix)))]
        return children(rows, found), f"sweep {found.run_id[:ID_CHARS]} '{found.name}'"
    if sweep:
        sid = str(Path(sweep).resolve())
        tops = [r for r in runs if r.tags.get("sweep.role") == "parent" and r.tags.get("sweep.id") == sid]
        picked = [r for r in rows if r.tags.get("sweep.id") == sid]
        return picked, f"sweep {tops[0].run_id[:ID_CHARS] + ' ' if tops else ''}'{sid}'"
    if every:
        return rows, "every run"
    tops = [r for r in runs if "mlflow.parentRunId" not in r.tags]
    latest = max(tops, key=lambda r: r.start_time, default=None)
    if latest is not None and latest.tags.get("sweep.role") == "parent":
        return children(rows, latest), (f"latest sweep {latest.run_id[:ID_CHARS]} '{latest.name}' "
                                        f"(--all: every run)")
    shown = sorted(rows, key=lambda r: r.start_time)[-LAST:]
    return shown, f"last {len(shown)} of {len(rows)} runs (--all: every run)"


def children(rows: list[Run], parent: Run) -> list[Run]:
    return [r for r in rows if r.tags.get("mlflow.parentRunId") == parent.run_id]


def differing(params: list[dict[str, str]]) -> list[str]:
    """Param keys whose value is not the same in every run (a missing key counts as a value)."""
    keys = sorted(set().union(*params)) if params else []
    return [k for k in keys if len({p.get(k) for p in params}) > 1]


def objective_key(runs: list[Run]) -> str:
    """The runs' `objective.metric` (the most common one), default val/loss."""
    counts = Counter(r.params["objective.metric"] for r in runs if "objective.metric" in r.params)
    return counts.most_common(1)[0][0] if counts else "val/loss"


def main_test_metric(runs: list[Run], objective: str) -> str | None:
    """`test/<objective's name>` unless that is the loss, else the first of `MAIN_TEST` the runs have."""
    have = {k for r in runs for k in r.metrics if k.startswith("test/")}
    name = objective.rsplit("/", 1)[-1]
    for candidate in ([name] if name != "loss" else []) + list(MAIN_TEST):
        if f"test/{candidate}" in have:
            return f"test/{candidate}"
    return min(have, default=None)


FIXED = ("id", "status", "name")  # column keys besides params and metrics


def check_key(key: str, known: set[str], what: str) -> None:
    """ConfigError naming the closest known keys unless `key` is one."""
    if key in known:
        return
    close = difflib.get_close_matches(key, sorted(known), n=4, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"known: {', '.join(sorted(known)[:12])}, ..."
    raise ConfigError(f"unknown {what} key '{key}' ({hint})")


def value_of(run: Run, key: str):
    if key == "id":
        return run.run_id
    if key in ("status", "name"):
        return getattr(run, key)
    return run.metrics.get(key, run.params.get(key))


def sort_runs(runs: list[Run], key: str, reverse: bool = False) -> list[Run]:
    """Best first by `key` (a metric: its direction; a param or column: ascending, numbers as numbers); runs
    without it last."""
    numeric = any(key in r.metrics for r in runs)
    sign = -1.0 if numeric and (direction(key) == "max") != reverse else 1.0

    def order(run):
        value = value_of(run, key)
        if numeric:
            missing = value is None or isinstance(value, str) or math.isnan(value)
            return (missing, 0.0 if missing else sign * value, "")
        if value is None:
            return (True, 0.0, "")
        return (False, float(value), "") if _number(value) else (False, math.inf, str(value))  # params: 0.001 < 0.01

    ordered = sorted(sorted(runs, key=lambda r: r.start_time), key=order)  # ties and runs without it: oldest first
    return ordered[::-1] if reverse and not numeric else ordered


# ---- rendering ----------------------------------------------------------------------------------------
def cell(run: Run, key: str, metrics: set[str]) -> str:
    value = value_of(run, key)
    if key == "id":
        return run.run_id[:ID_CHARS]
    if value is None:
        return ""
    return f"{value:.4g}" if key in metrics and isinstance(value, float) else str(value)


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def render(runs: list[Run], header: str, width: int | None, sort: str | None = None, reverse: bool = False,
           columns: list[str] = (), wide: bool = False, limit: int | None = None) -> str:
    """The table as text, at most `width` columns wide (None or `wide`: unlimited)."""
    objective = objective_key(runs)
    metrics = {k for r in runs for k in r.metrics}
    params = {k for r in runs for k in r.params}
    known = metrics | params | set(FIXED)
    for key in columns:
        check_key(key, known, "column")
    if sort:
        check_key(sort, known, "--sort")
    sort = sort or objective  # runs without it (none have metrics yet): in start order
    runs = sort_runs(runs, sort, reverse)[:limit]
    test = main_test_metric(runs, objective)
    shown_params = differing([r.params for r in runs])
    if wide:
        tail = sorted(metrics, key=lambda k: (k.split("/")[0] not in ("val", "test", "train", "best"), k))
        width = None
    else:
        tail = [k for k in dict.fromkeys((objective, test)) if k in metrics]
    tail = list(dict.fromkeys([*(c for c in columns if c not in FIXED),
                               *([sort] if sort in known and sort not in FIXED else []), *tail]))
    shown_params = [p for p in shown_params if p not in tail]
    keys = [*FIXED, *shown_params, *tail]
    cells = {k: [cell(r, k, metrics) for r in runs] for k in keys}
    widths = {k: max([len(k), *map(len, cells[k])]) for k in keys}
    widths["id"] = ID_CHARS
    left_out: list[str] = []
    if width is not None:
        def total():
            return sum(widths[k] for k in keys) + len(SEP) * (len(keys) - 1)

        if total() > width:  # the name gives way first, down to 16 columns
            widths["name"] = min(widths["name"], max(16, widths["name"] - (total() - width)))
        while total() > width and shown_params:  # then the params, from the right
            key = shown_params.pop()
            keys.remove(key)
            left_out.append(key)
        if total() > width:  # a very narrow terminal: the name and the status shrink further (the id never)
            widths["name"] = max(4, widths["name"] - (total() - width))
            widths["status"] = max(4, widths["status"] - (total() - width))
    numeric = metrics | {k for k in keys if k in params and all(_number(c) for c in cells[k] if c)}

    def line(values: dict[str, str]) -> str:
        parts = [cut(values[k], widths[k]).rjust(widths[k]) if k in numeric and k != "id"
                 else cut(values[k], widths[k]).ljust(widths[k]) for k in keys]
        return SEP.join(parts).rstrip()

    fit = (lambda text: text) if width is None else (lambda text: cut(text, width))  # the rows fit already
    out = [fit(f"{header}: {len(runs)} runs by {sort}" + (" (reversed)" if reverse else "")),
           line({k: k for k in keys}), SEP.join("-" * widths[k] for k in keys)]
    out += [line({k: cells[k][i] for k in keys}) for i in range(len(runs))]
    if left_out:
        out.append(fit(f"(--wide shows {len(left_out)} more differing params: {', '.join(reversed(left_out))})"))
    return "\n".join(out)


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def terminal_width(stream=None) -> int:
    """The terminal's width, `PIPE_WIDTH` when `stream` (stdout) is no terminal."""
    stream = stream or sys.stdout
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else PIPE_WIDTH
    except (AttributeError, OSError, ValueError):
        return PIPE_WIDTH


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m framework.runs", description=__doc__.split("\n")[0])
    p.add_argument("--experiment", default="Default", help="experiment name (default: %(default)s)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--sweep", metavar="DIR", help="the jobs of the sweep in this folder")
    which.add_argument("--parent", metavar="RUN_ID", help="the children of this parent run (an id prefix will do)")
    which.add_argument("--all", action="store_true", help="every run of the experiment")
    p.add_argument("--sort", metavar="KEY", default=None, help="metric, param or column to sort by (default: "
                                                               "the runs' objective.metric)")
    p.add_argument("--reverse", action="store_true", help="flip the natural order")
    p.add_argument("--columns", metavar="K1,K2", default="", help="more columns: metric or param keys")
    p.add_argument("--wide", action="store_true", help="every differing param and every metric, nothing cut")
    p.add_argument("--width", type=int, default=None, help="columns (default: the terminal's, 100 in a pipe)")
    p.add_argument("--limit", type=int, default=None, help="show the best N runs only")
    p.add_argument("--uri", default=None,
                   help="tracking URI (default: $MLFLOW_TRACKING_URI, else the project's mlflow.db)")
    return p.parse_args(argv)


def main(argv=None, console=None) -> None:
    """`console`: a rich Console to print on (its width is the table's) instead of stdout."""
    args = parse_args(argv)
    uri = store_uri(args.uri)
    try:
        runs = read_runs(uri, args.experiment)
        try:
            runs, header = select(runs, args.parent, args.sweep, args.all)
        except ConfigError as e:
            raise ConfigError(f"{e} (experiment '{args.experiment}')") from None
        if not runs:
            raise ConfigError(f"no runs in {header} (experiment '{args.experiment}')")
        width = args.width or (console.width if console is not None else terminal_width())
        text = render(runs, header, width, args.sort, args.reverse,
                      [c for c in args.columns.split(",") if c], args.wide, args.limit)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    if console is None:
        print(text)
    else:
        console.print(text, markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()

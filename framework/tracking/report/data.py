"""The runs a report reads, as one plain structure (`Run`) whatever they come from.

- a sweep folder (or any folder of run logs): the run logs themselves (`load_folder`). They are local
  and complete once the jobs ended, hold every point (the store may lag or be elsewhere) and reading
  them needs no `import mlflow` (~1-2 s): this is what a sweep's own report reads at its end.
- a store: a parent run (its id or id prefix; its sweep folder's run logs when they are on this
  machine), or an experiment's runs (`load_store`), through MLflow's client.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from framework.tracking.messages import End, Histograms, Metrics, Params, RunStart, SweepEnd, Tags

BATCH_PREFIXES = ("batch/", "grad_norm/")
"""Keys recorded per batch (step = global batch index); the others per epoch (step = epoch), `test/` once."""


@dataclass
class Run:
    """One run. `final`: each metric's value at its highest step; `epochs`: per-epoch metrics as
    (steps, values); `batches`: per-batch metrics as (steps, values); `reason`: why it failed
    (`failure.reason`), if it did."""

    id: str
    name: str
    status: str
    params: dict[str, str]
    final: dict[str, float] = field(default_factory=dict)
    epochs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    histograms: list[Histograms] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        return self.tags.get("failure.reason")


@dataclass
class Sweep:
    """What a report shows: `runs` (the jobs), a title, the objective and where they came from."""

    title: str
    source: str
    runs: list[Run]
    metric: str
    mode: str


def _series(chunks: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for key, parts in chunks.items():
        steps, values = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        order = np.argsort(steps, kind="stable")
        out[key] = steps[order], values[order]
    return out


def load_run(folder) -> Run | None:
    """The run of run log `folder` (None when its journal has no RunStart yet)."""
    from framework.tracking.runlog import read_chunks, read_records, trainer_alive

    records = read_records(folder)
    if not records or not isinstance(records[0], RunStart):
        return None
    start = records[0]
    params, tags = dict(start.params), dict(start.tags)
    metrics, histograms, status = [], [], None
    for r in records[1:]:
        if isinstance(r, Params):
            params.update(r.params)
        elif isinstance(r, Tags):
            tags.update(r.tags)
        elif isinstance(r, Metrics):
            metrics.append(r)
        elif isinstance(r, Histograms):
            histograms.append(r)
        elif isinstance(r, (End, SweepEnd)):
            status = r.status
    if status is None:
        status = "RUNNING" if trainer_alive(folder) else "KILLED"
    epoch_parts: dict[str, list] = {}
    batch_parts: dict[str, list] = {}
    for record, rows in zip(metrics, read_chunks(folder, metrics) if metrics else []):
        target = batch_parts if record.keys and record.keys[0].startswith(BATCH_PREFIXES) else epoch_parts
        for j, key in enumerate(record.keys):
            target.setdefault(key, []).append((rows[:, 0], rows[:, 2 + j]))
    epochs, batches = _series(epoch_parts), _series(batch_parts)
    final = {k: float(v[-1]) for k, (_, v) in {**batches, **epochs}.items() if len(v)}
    run = Run(str(folder), start.run_name or Path(folder).name, status, params, final,
              {k: v for k, v in epochs.items() if not k.startswith("test/")}, batches, histograms, tags)
    return run


def load_folder(folder) -> Sweep:
    """The runs of every run log under `folder` (a sweep folder: its jobs; its parent's objective), and
    the jobs that failed before their run log (`FAILED.json` only) as runs without points."""
    from framework.run.sweep import failed_jobs
    from framework.tracking.runlog import find_runlogs, read_start

    folder = Path(folder).resolve()
    found = find_runlogs([folder])
    if not found and not list(folder.glob("*/FAILED.json")):
        raise FileNotFoundError(f"{folder}: no run log in it or below it (a sweep folder, e.g. "
                                f"multirun/<date>/<time>, or a run folder)")
    parent = next((f for f in found if read_start(f) and read_start(f).role == "sweep"), None)
    runs = [r for f in found if f != parent for r in [load_run(f)] if r is not None]
    have = {Path(r.id).name for r in runs}
    for report in failed_jobs(folder):
        if str(report["job"]) not in have:  # its config is a sibling's with its own overrides
            overrides = dict(o.lstrip("+~").split("=", 1) for o in report["overrides"] if "=" in o)
            params = {**(runs[0].params if runs else {}), **overrides}
            runs.append(Run(str(folder / str(report["job"])), f"{report['job']}: {' '.join(report['overrides'])}",
                            "FAILED", params, tags={"failure.reason": report["error"].splitlines()[0]}))
    title = str(folder)
    if parent is not None:
        start = read_start(parent)
        title = start.run_name or title
    metric, mode = objective(runs)
    return Sweep(title, str(folder), runs, metric, mode)


def objective(runs: list[Run]) -> tuple[str, str]:
    """(metric, mode) of the runs' config (`objective.metric`, `objective.mode`; the most common pair),
    default ("val/loss", "min")."""
    pairs = [(r.params["objective.metric"], r.params.get("objective.mode", "min")) for r in runs
             if "objective.metric" in r.params]
    return max(set(pairs), key=pairs.count) if pairs else ("val/loss", "min")


# ---- a store ---------------------------------------------------------------------------------------
def from_mlflow(run, client=None) -> Run:
    """A `Run` of an MLflow run: params, tags, final metrics; with `client` also every metric's history
    and the `histograms.json` artifact (one request per metric key)."""
    info, data = run.info, run.data
    out = Run(info.run_id, info.run_name or info.run_id[:8], info.status, dict(data.params), dict(data.metrics),
              tags=dict(data.tags))
    if client is None:
        return out
    for key in data.metrics:
        if key.startswith("test/"):
            continue
        history = client.get_metric_history(info.run_id, key)
        steps = np.array([m.step for m in history], float)
        values = np.array([m.value if m.value is not None else math.nan for m in history], float)
        order = np.argsort(steps, kind="stable")
        (out.batches if key.startswith(BATCH_PREFIXES) else out.epochs)[key] = steps[order], values[order]
    out.histograms = _stored_histograms(client, info.run_id)
    return out


def _stored_histograms(client, run_id: str) -> list[Histograms]:
    import tempfile

    from framework.tracking.logger import HISTOGRAMS

    if not any(f.path == HISTOGRAMS for f in client.list_artifacts(run_id)):
        return []
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, HISTOGRAMS, tmp)
        stored = json.loads(Path(path).read_text())
        return [Histograms.of(e["epoch"], e["step"], list(e["weights"]),
                              [list(e["weights"].values()), [e["grads"][p] for p in e["weights"]]], stored["lo"],
                              stored["hi"]) for e in stored["epochs"]]


def load_store(uri: str, target: str) -> Sweep:
    """The children of parent run `target` (a run id or a prefix of one; its sweep folder's run logs where
    that folder is on this machine), else the runs of experiment `target` (sweep parents left out)."""
    from framework.tracking.runlog import LOG
    from framework.tracking.store import open_store, search, tag_equals

    client = open_store(uri)
    experiments = client.search_experiments()
    ids = [e.experiment_id for e in experiments]
    parents = search(client, ids, tag_equals("sweep.role", "parent")) if ids else []
    match = [p for p in parents if p.info.run_id.startswith(target)]
    if len(match) > 1:
        raise LookupError(f"run id prefix {target!r} matches {len(match)} parent runs in {uri}: give more characters")
    if match:
        parent = match[0]
        folder = Path(parent.data.tags.get("sweep.id", ""))
        if folder.is_absolute() and (folder / LOG).is_dir():
            return load_folder(folder)
        children = search(client, [parent.info.experiment_id], tag_equals("mlflow.parentRunId", parent.info.run_id))
        runs = [from_mlflow(r, client) for r in children]
        metric, mode = objective(runs)
        return Sweep(parent.info.run_name or parent.info.run_id, f"{uri} run {parent.info.run_id}", runs, metric, mode)
    experiment = next((e for e in experiments if e.name == target), None)
    if experiment is None:
        names = ", ".join(sorted(e.name for e in experiments)) or "none"
        raise LookupError(f"{target!r} is no folder, no sweep parent run id and no experiment in {uri} "
                          f"(experiments: {names}); give a sweep folder, a parent run id or an experiment name")
    stored = [r for r in search(client, [experiment.experiment_id]) if r.data.tags.get("sweep.role") != "parent"]
    runs = [from_mlflow(r, client) for r in stored]
    metric, mode = objective(runs)
    return Sweep(f"experiment {target}", uri, runs, metric, mode)

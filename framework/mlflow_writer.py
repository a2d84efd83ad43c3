"""The MLflow writer process: the only module that imports mlflow during training.

`python -m framework.mlflow_writer JOBS_FD REPLIES_FD` is started by `framework.tracking.Writer`.
The first message on the jobs pipe is (job, spec); replies are ("run", run_id) once a run exists,
then ("done", result) or ("error", traceback). Jobs:
- `record_run`: one training run, from the messages ("start", tags, params known once the model
  exists, e.g. model.sizes), ("metrics", keys, steps (n,),
  values (n, k), timestamp_ms) and ("end", status, artifacts); result = points stored.
  With `resume_run_id` it continues that run (a resumed checkpoint) instead of creating one.
- `open_sweep` / `close_sweep`: a multirun's parent run (see `framework.sweep`).
- `find_checkpoint`: the local folder of a run's `checkpoint` artifact.
- `find_finished`: the metrics of a finished run with the same config hash (skipping done sweep jobs).
Every store call goes through `MlflowClient` with an explicit run id (metrics in `log_batch` calls
of <= 1000) and is retried while SQLite reports "database is locked" (parallel sweep jobs).
Plots are drawn here too (matplotlib; the Agg backend, set by `MPLBACKEND`).
"""
from __future__ import annotations

import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import (MAX_ENTITY_KEY_LENGTH, MAX_METRICS_PER_BATCH,
                                     MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH)

LOCKED_WAIT_S = 300.0  # give up retrying a locked SQLite file after this long
LATENCY_S = 0.5  # a point waits at most this long for a fuller log_batch
LONG_PARAMS = "long_params.yaml"  # artifact for param values MLflow would truncate
_BAD_KEY_CHARS = re.compile(r"[^\w\-./: ]")


class Client:
    """`MlflowClient` whose calls are retried while the SQLite store is locked by another writer."""

    def __init__(self, uri: str):
        self._client = MlflowClient(uri)

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def retried(*args, **kwargs):
            delay, give_up = 0.02, time.monotonic() + LOCKED_WAIT_S
            while True:
                try:
                    return method(*args, **kwargs)
                except Exception as e:  # MlflowException or sqlalchemy OperationalError
                    if "database is locked" not in str(e) or time.monotonic() > give_up:
                        raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(2 * delay, 1.0)

        return retried


def mlflow_key(key: str) -> str:
    """`key` made valid for MLflow: bad characters -> '_', no empty, '.' or '..' path segments."""
    parts = [p if p not in (".", "..") else "_" for p in _BAD_KEY_CHARS.sub("_", key).split("/") if p]
    return "/".join(parts)[:MAX_ENTITY_KEY_LENGTH] or "_"


def experiment_id(client: Client, name: str, artifact_location: str | None) -> str:
    """Id of experiment `name`, created (with its artifact location pinned) if it does not exist."""
    for _ in range(3):
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage != "active":
                raise MlflowException(f"experiment '{name}' is deleted: restore it "
                                      f"(`mlflow experiments restore`) or set tracking.experiment")
            return exp.experiment_id
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException as e:  # another job created it first: look it up again
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    raise MlflowException(f"could not create or find experiment '{name}'")


def start_run(client: Client, exp: str, spec: dict, tags: dict) -> str:
    """Create the run with `tags` and log `spec["params"]` (too-long values go to an artifact)."""
    run_id = client.create_run(exp, run_name=spec["run_name"], tags=tags).info.run_id
    params, long = {}, {}
    for key, value in spec["params"].items():
        key = mlflow_key(key)
        if len(value) > MAX_PARAM_VAL_LENGTH:
            long[key], value = value, f"({len(value)} characters, see {LONG_PARAMS})"
        params[key] = value
    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=items[i:i + MAX_PARAMS_TAGS_PER_BATCH])
    if long:
        client.log_dict(run_id, long, LONG_PARAMS)
    return run_id


def set_tags(client: Client, run_id: str, tags: dict) -> None:
    items = [RunTag(mlflow_key(k), str(v)) for k, v in tags.items()]
    for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=items[i:i + MAX_PARAMS_TAGS_PER_BATCH])


def git_commit(root: str) -> str | None:
    """HEAD of the git repository at `root`, or None (not a repository, no git, no commit)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def search(client: Client, experiment_ids: list[str], filter_string: str = "") -> list:
    """All runs of `experiment_ids` matching `filter_string` (every page)."""
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=token)
        runs += page
        token = page.token
        if not token:
            return runs


def tag_equals(key: str, value: str) -> str:
    """Search filter clause `tags.<key> = <value>`, quoted."""
    return f"tags.`{key}` = " + (f'"{value}"' if "'" in value else f"'{value}'")


def find_parent(client: Client, experiment: str, sweep_id: str):
    """The sweep's parent run (tagged with `sweep_id` by the sweep callback), or None."""
    found = search(client, [experiment], f"{tag_equals('sweep.role', 'parent')} and {tag_equals('sweep.id', sweep_id)}")
    return found[0] if found else None


def run_name(spec: dict, parent) -> str | None:
    """`tracking.run_name`; in a sweep "<job num>: <the job's values of the swept keys>"; else None
    (MLflow picks a name)."""
    if spec["run_name"] or spec["job"] is None:
        return spec["run_name"]
    swept = parent.data.tags.get("sweep.keys", "").split() if parent else None
    shown = [o for o in spec["overrides"] if swept is None or o.split("=", 1)[0].lstrip("+~") in swept]
    return f"{spec['job']}: {' '.join(shown)}"


class MetricBuffer:
    """Points waiting for a `log_batch`: full chunks go at once, a partial one after `LATENCY_S`."""

    def __init__(self, client: Client, run_id: str):
        self.client, self.run_id = client, run_id
        self.points: list[Metric] = []
        self.stored = 0
        self.since: float | None = None  # when the oldest waiting point arrived
        self._keys: dict[str, str] = {}

    def add(self, keys, steps: np.ndarray, values: np.ndarray, timestamp: int) -> None:
        steps = steps.tolist()
        for key, column in zip(keys, values.T.tolist()):
            key = self._keys.get(key) or self._keys.setdefault(key, mlflow_key(key))
            self.points.extend(Metric(key, v, timestamp, s) for s, v in zip(steps, column))
        self.since = self.since or time.monotonic()

    def wait_s(self) -> float:
        """How long the next `receive` may block."""
        return 1.0 if self.since is None else max(0.0, self.since + LATENCY_S - time.monotonic())

    def flush(self, everything: bool = False) -> None:
        everything = everything or (self.since is not None and time.monotonic() >= self.since + LATENCY_S)
        n = len(self.points) if everything else len(self.points) // MAX_METRICS_PER_BATCH * MAX_METRICS_PER_BATCH
        for i in range(0, n, MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=self.points[i:i + MAX_METRICS_PER_BATCH])
        del self.points[:n]
        self.stored += n
        if n:
            self.since = time.monotonic() if self.points else None


def receive(inbox: Connection, timeout: float):
    """The next message; None after `timeout` s; ("end", "KILLED", None) once the trainer process is gone."""
    try:
        return inbox.recv() if inbox.poll(timeout) else None
    except EOFError:
        return "end", "KILLED", None


def record_run(spec: dict, inbox, outbox) -> int:
    """Open the store at once; create the run at ("start", tags, params); store every message until "end";
    log the artifacts and set the status. Returns the number of points stored."""
    client = Client(spec["uri"])
    exp = experiment_id(client, spec["experiment"], spec["artifact_location"])
    tags = dict(spec["tags"])
    commit = git_commit(spec["project_root"])
    if commit:
        tags["mlflow.source.git.commit"] = commit
    parent = spec["sweep_id"] and find_parent(client, exp, spec["sweep_id"])
    if parent:
        tags["mlflow.parentRunId"] = parent.info.run_id
    spec = {**spec, "run_name": run_name(spec, parent)}
    message = None
    while message is None:
        message = receive(inbox, 1.0)
    if message[0] == "end":  # the trainer never started (e.g. a config error): no run
        return 0
    if spec["resume_run_id"]:  # continue the interrupted run: same params, metrics go on from its step
        run_id = spec["resume_run_id"]
        client.update_run(run_id, "RUNNING")
        set_tags(client, run_id, {**message[1], "resumed": "true"})
    else:
        run_id = start_run(client, exp, {**spec, "params": {**spec["params"], **message[2]}}, {**tags, **message[1]})
    reply(outbox, "run", run_id)
    buffer, status = MetricBuffer(client, run_id), "FAILED"
    try:
        while True:
            message = receive(inbox, buffer.wait_s())
            if message is None and "matplotlib.pyplot" not in sys.modules:
                import matplotlib.pyplot  # noqa: F401  (for the plots: import it while there is nothing to store)
            kind = message[0] if message else None
            if kind == "metrics":
                buffer.add(*message[1:])
            buffer.flush(everything=kind == "end")
            if kind == "end":
                _, status, artifacts = message
                break
        if artifacts:
            if artifacts["failure"]:
                set_tags(client, run_id, {f"failure.{k}": v for k, v in artifacts["failure"].items()})
            with tempfile.TemporaryDirectory() as tmp:
                write_artifacts(Path(tmp), artifacts)
                client.log_artifacts(run_id, tmp)
            if artifacts["checkpoint"]:
                client.log_artifacts(run_id, artifacts["checkpoint"], "checkpoint")
    finally:
        client.set_terminated(run_id, status)
    return buffer.stored


def write_artifacts(folder: Path, artifacts: dict) -> None:
    """config.yaml, overrides.yaml, weights.npz and plots/*.png from the trainer's end message."""
    import matplotlib.pyplot as plt  # Agg: `framework.tracking.Writer` sets MPLBACKEND

    for name in ("config.yaml", "overrides.yaml"):
        (folder / name).write_text(artifacts[name])
    np.savez(folder / "weights.npz", **artifacts["weights"])
    (folder / "plots").mkdir()
    figures = {"loss.png": plot_loss(plt, artifacts["history"])}
    if "predictions" in artifacts:
        split, y_true, scores = artifacts["predictions"]
        if artifacts["task"] == "regression":
            figures["predictions.png"] = plot_predictions(plt, y_true, scores, split)
        else:
            figures["confusion_matrix.png"] = plot_confusion(plt, y_true, scores, artifacts["task"], split)
    for name, fig in figures.items():
        fig.savefig(folder / "plots" / name, dpi=100, bbox_inches="tight")
        plt.close(fig)
    if artifacts["plugin_plots"]:
        plot_plugins(folder / "plots", artifacts["config.yaml"])


def plot_plugins(folder: Path, config_yaml: str) -> None:
    """f and f' of the run's activations and its loss over the prediction (`framework.plugin_plots`),
    with the run's plugin folders loaded; a plugin that cannot be drawn is reported, not fatal."""
    from omegaconf import OmegaConf

    from .config import kwargs
    from .discovery import load_paths
    from .plugin_plots import plot_plugin

    cfg = OmegaConf.create(config_yaml)
    load_paths(cfg.plugins.paths)
    for kind, node in (("activation", cfg.activation), ("activation", cfg.output_activation), ("loss", cfg.loss)):
        try:
            plot_plugin(kind, node.name, folder / f"{kind}_{node.name}.png", **kwargs(node))
        except Exception as e:  # noqa: BLE001 - the run's record matters more than one picture
            print(f"mlflow writer: no plot of {kind} '{node.name}': {type(e).__name__}: {e}", file=sys.stderr)


def plot_loss(plt, history: dict):
    """Every `*/loss` curve of the history against the epoch."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, values in history.items():
        if key.endswith("loss"):
            ax.plot(np.arange(len(values)), values, label=key)
    ax.set(xlabel="epoch", ylabel="loss", title="loss")
    if ax.lines:
        ax.legend()
    return fig


def plot_confusion(plt, y_true, scores, task: str, split: str):
    """Confusion matrix on `split`; classes as `framework.metrics.evaluate` predicts them."""
    from .metrics import confusion_matrix

    scores = np.asarray(scores).reshape(len(scores), -1)
    if task == "binary":
        y_pred, n = (scores[:, -1] >= 0.5).astype(np.int64), 2
    else:
        y_pred, n = scores.argmax(axis=1), scores.shape[1]
    cm = confusion_matrix(y_true, y_pred, n)
    fig, ax = plt.subplots(figsize=(1 + 0.5 * n, 1 + 0.5 * n))
    ax.imshow(cm, cmap="Blues")
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, count, ha="center", va="center", fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion matrix ({split})", xticks=range(n), yticks=range(n))
    return fig


def plot_predictions(plt, y_true, scores, split: str):
    """Predictions on `split` against targets, one colour per output; the diagonal is perfect."""
    y_true = np.asarray(y_true).reshape(len(y_true), -1)
    scores = np.asarray(scores).reshape(y_true.shape)
    fig, ax = plt.subplots(figsize=(5, 5))
    for k in range(y_true.shape[1]):
        ax.scatter(y_true[:, k], scores[:, k], s=6, alpha=0.6, label=f"output {k}")
    lo, hi = float(min(y_true.min(), scores.min())), float(max(y_true.max(), scores.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set(xlabel="target", ylabel="prediction", title=f"predictions vs targets ({split})")
    return fig


def open_sweep(spec: dict, inbox, outbox) -> str:
    """Create the experiment (once, before any job) and the sweep's parent run; returns its id. A sweep
    id that already has a parent (a continued Optuna study) reopens that parent: new jobs join it."""
    client = Client(spec["uri"])
    exp = experiment_id(client, spec["experiment"], spec["artifact_location"])
    parent = find_parent(client, exp, spec["sweep_id"])
    if parent:
        client.update_run(parent.info.run_id, "RUNNING")
        return parent.info.run_id
    return start_run(client, exp, spec, {**spec["tags"], "sweep.role": "parent", "sweep.id": spec["sweep_id"]})


def close_sweep(spec: dict, inbox, outbox) -> dict | None:
    """Tag the parent with its best child by `spec["metric"]` (`spec["mode"]` min or max), finish it."""
    client = Client(spec["uri"])
    parent = spec["parent"]
    exp = client.get_run(parent).info.experiment_id
    children = search(client, [exp], tag_equals("mlflow.parentRunId", parent))
    scored = [r for r in children if spec["metric"] in r.data.metrics]
    best, tags = None, {"sweep.runs": len(children)}
    if scored:
        pick = min if spec["mode"] == "min" else max
        run = pick(scored, key=lambda r: r.data.metrics[spec["metric"]])
        best = {"run_id": run.info.run_id, "run_name": run.info.run_name, "value": run.data.metrics[spec["metric"]]}
        tags.update({"sweep.best_run_id": best["run_id"], "sweep.best_run_name": best["run_name"]})
        client.log_metric(parent, mlflow_key(f"best/{spec['metric']}"), best["value"])
    set_tags(client, parent, tags)
    client.set_terminated(parent, spec["status"])
    return best


def find_checkpoint(spec: dict, inbox, outbox) -> str:
    """Local folder of run `spec["run_id"]`'s `checkpoint` artifact (for `trainer.resume=<run id>`)."""
    from mlflow.artifacts import download_artifacts

    client = Client(spec["uri"])
    try:
        client.get_run(spec["run_id"])
    except MlflowException:
        raise SystemExit(f"no run '{spec['run_id']}' in {spec['uri']}: trainer.resume takes a checkpoint "
                         f"folder or the id of a tracked run") from None
    return download_artifacts(run_id=spec["run_id"], artifact_path="checkpoint", tracking_uri=spec["uri"])


def find_finished(spec: dict, inbox, outbox) -> dict | None:
    """Metrics (and "run_id") of a FINISHED run of `spec["experiment"]` tagged `config.hash` =
    `spec["hash"]`, or None."""
    client = Client(spec["uri"])
    exp = client.get_experiment_by_name(spec["experiment"])
    if exp is None:
        return None
    runs = search(client, [exp.experiment_id],
                  f"{tag_equals('config.hash', spec['hash'])} and attributes.status = 'FINISHED'")
    return {**runs[0].data.metrics, "run_id": runs[0].info.run_id} if runs else None


def reply(outbox: Connection, kind: str, value) -> None:
    """Send a reply unless the trainer process is gone (the job still finishes its run)."""
    try:
        outbox.send((kind, value))
    except OSError:
        pass


def serve(inbox: Connection, outbox: Connection) -> None:
    """Run the jobs sent as (job, spec) until the trainer process closes the pipe; answer each with
    ("done", result), or ("error", traceback) and exit."""
    while True:
        try:
            job, spec = inbox.recv()
        except EOFError:
            return
        try:
            reply(outbox, "done", JOBS[job](spec, inbox, outbox))
        except BaseException:
            reply(outbox, "error", traceback.format_exc())
            raise SystemExit(1)


JOBS = {"record_run": record_run, "open_sweep": open_sweep, "close_sweep": close_sweep,
        "find_checkpoint": find_checkpoint, "find_finished": find_finished}

if __name__ == "__main__":
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))

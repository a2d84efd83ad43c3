"""How long `python -m framework.runs` takes on a store of 1,000 runs.

    python benchmarks/runs_table.py                 # builds the store in a temp folder, times the command
    python benchmarks/runs_table.py --store /tmp/runs1000.db   # keeps (or reuses) the store there

The store is written the way the sync process writes one: MLflow's SQLite schema created by
`framework.tracking.store.open_store`, each run created by `MlflowClient.create_run`, its params and tags by
`log_params_tags` (log_batch), its metric points by `MetricSink` (the bulk insert). `SWEEPS` sweeps of
`JOBS` jobs each (a parent run and its children, params as a real job's config: ~60 keys), every run with
`EPOCHS` epochs of epoch metrics, `BATCHES` per-batch points and its test metrics. The command runs as a user
runs it (a new interpreter, output to a pipe: 100 columns), `REPEATS` times; the table gives the best and
the median wall time of the default view (the latest sweep's jobs) and of `--all` (every run).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SWEEPS, JOBS, EPOCHS, BATCHES, REPEATS = 10, 100, 10, 50, 5
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(ROOT)}


def config_params() -> dict[str, str]:
    """The default job's flattened config as `framework.train` logs it (~60 keys)."""
    from framework.run.config import compose, flatten, register_configs

    register_configs()
    return {k: str(v) for k, v in flatten(compose(["tracking.enabled=false", "trainer.progress=none"])).items()}


def build(uri: str) -> None:
    from framework.tracking.replay import Store
    from framework.tracking.store import log_params_tags

    store, rng = Store(uri), np.random.default_rng(0)
    exp, start, base = store.experiment("Default"), int(time.time() * 1000) - 10**7, config_params()
    epoch_keys = ["train/loss", "val/loss", "val/accuracy", "val/f1_macro", "epoch/seconds"]
    for s in range(SWEEPS):
        folder = f"/benchmark/multirun/{s}"
        parent = store.client.create_run(exp, start_time=start, run_name=f"sweep: activation lr hidden seed #{s}",
                                         tags={"sweep.role": "parent", "sweep.id": folder}).info.run_id
        start += 1000
        for job in range(JOBS):
            params = swept(base, job)
            name = f"{params['activation.name']} lr={params['optimizer.lr']} seed={params['seed']}"
            run = store.client.create_run(exp, start_time=start, run_name=name,
                                          tags={"mlflow.parentRunId": parent, "sweep.id": folder,
                                                "sweep.job": str(job)}).info.run_id
            start += 1000
            log_params_tags(store.client, run, params, {"config.hash": f"{s}-{job}"})
            epochs = np.column_stack([np.arange(EPOCHS), np.full(EPOCHS, start),
                                      rng.random((EPOCHS, len(epoch_keys)))])
            batches = np.column_stack([np.arange(BATCHES), np.full(BATCHES, start), rng.random((BATCHES, 2))])
            test = np.array([[EPOCHS - 1, start, *rng.random(3)]])
            store.sink.add(run, [(epoch_keys, epochs), (["batch/loss", "grad_norm/global"], batches),
                                 (["test/loss", "test/accuracy", "test/f1_macro"], test)])
            store.client.set_terminated(run, "FINISHED", start)
        store.client.set_terminated(parent, "FINISHED", start)
        print(f"  sweep {s + 1}/{SWEEPS} stored", file=sys.stderr, flush=True)


def swept(base: dict[str, str], job: int) -> dict[str, str]:
    """`base` with job `job`'s values of the 4 swept keys."""
    return {**base, "activation.name": ["relu", "tanh", "gelu", "silu"][job % 4],
            "optimizer.lr": str([0.1, 0.03, 0.01, 0.003, 0.001][job // 4 % 5]),
            "model.hidden": str([[64], [64, 64], [128, 64], [256, 128, 64], [32]][job // 20 % 5]),
            "seed": str(job % 5)}


def timed(uri: str, *args: str) -> list[float]:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "framework.runs", "--uri", uri, *args], env=ENV, cwd=ROOT,
                             capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if out.returncode:
            raise SystemExit(out.stderr)
    return times


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", type=Path, default=None, help="SQLite file to build (or reuse if it exists)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.store or Path(tmp) / "runs.db"
        uri = f"sqlite:///{db.resolve()}"
        if not db.exists():
            t0 = time.perf_counter()
            build(uri)
            print(f"store of {SWEEPS * (JOBS + 1):,} runs built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        rows = [("default (the latest sweep's jobs)", timed(uri)), ("--all (every run)", timed(uri, "--all")),
                ("--all --wide", timed(uri, "--all", "--wide"))]
    from benchmarks.machine import describe

    print(describe())
    print(f"| `python -m framework.runs` on {SWEEPS * JOBS:,} runs (+{SWEEPS} parents), SQLite | best | median "
          f"| bound |")
    print("|---|---:|---:|---:|")
    for name, times in rows:
        print(f"| {name} | {min(times):.2f} s | {statistics.median(times):.2f} s | <= 2 s |")


if __name__ == "__main__":
    main()

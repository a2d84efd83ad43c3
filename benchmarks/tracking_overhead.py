"""What every-batch MLflow tracking costs, tracking off vs on side by side (interleaved repeats):

(a) training loop, first batch to last batch, of the default digits job      target <= 1.05
(b) points/s reaching the store through tracker -> pipe -> writer, vs the
    raw `MlflowClient.log_batch` ceiling (1000-point calls) in the same store   target >= 0.90
(c) the whole default job, `python -m framework.train`, start to exit        target <= 1.10

    python benchmarks/tracking_overhead.py [--repeats 3] [--points 100000]
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

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from framework import BatchRecord, Callback  # noqa: E402

KEYS = ["batch/loss", "batch/lr", "grad_norm/layers.0.W", "grad_norm/layers.0.b",
        "grad_norm/layers.1.W", "grad_norm/layers.1.b", "grad_norm/global"]
LOOP_MARK = "LOOP_SECONDS"


class LoopTimer(Callback):
    """Seconds from the end of the first batch to the end of the last one."""

    def __init__(self):
        self.first = self.last = None

    def on_batch_end(self, trainer, step):
        self.last = time.perf_counter()
        self.first = self.first or self.last


def timed_job() -> None:
    """Child mode: the default job (`framework.train.main`), printing its training-loop seconds."""
    from framework import train, trainer

    timer, fit = LoopTimer(), trainer.Trainer.fit

    def timed_fit(self):
        self.callbacks.insert(0, timer)
        return fit(self)

    trainer.Trainer.fit = timed_fit
    try:
        train.main()
    finally:
        print(LOOP_MARK, timer.last - timer.first)


def run(args: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout


def jobs(tmp: Path, repeats: int) -> dict[str, dict[bool, list[float]]]:
    """(a) loop seconds and (c) process seconds of the default job, off/on interleaved."""
    common = ["trainer.progress=none", f"tracking.uri=sqlite:///{tmp}/mlflow.db", "tracking.experiment=bench"]
    out = {"loop": {False: [], True: []}, "process": {False: [], True: []}}
    for _ in range(repeats):
        for on in (False, True):
            flags = [*common, f"tracking.enabled={str(on).lower()}"]
            _, stdout = run([__file__, "--timed-job", *flags], tmp)
            out["loop"][on].append(float(stdout.split(LOOP_MARK)[1].split()[0]))
            out["process"][on].append(run(["-m", "framework.train", *flags], tmp)[0])
    return out


def pipeline_seconds(uri: str, points: int) -> float:
    """Seconds from the first message to "done" for `points` batch points through a warm writer."""
    from framework.tracking import make_tracker
    from framework.train import build
    from tests.helpers import make_cfg

    cfg = make_cfg("data=xor", "model.hidden=[8]", "tracking.enabled=true", f"tracking.uri={uri}",
                   "tracking.experiment=pipeline")
    trainer, tracker = build(cfg), make_tracker(cfg)
    rows = points // len(KEYS)
    values = np.random.default_rng(0).random((rows, len(KEYS)))
    start = time.perf_counter()
    tracker.on_train_start(trainer)
    for lo in range(0, rows, 64):  # as the trainer sends them: 64 batches per flush
        steps = np.arange(lo, min(lo + 64, rows))
        tracker.on_batches(trainer, BatchRecord(steps, KEYS, values[steps], 0))
    tracker.on_train_end(trainer, "KILLED", {})
    return time.perf_counter() - start


def ceiling_seconds(uri: str, points: int) -> float:
    """Seconds for `MlflowClient.log_batch` of prebuilt points in 1000-point calls, in this process."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(uri)
    run_id = client.create_run(client.get_experiment_by_name("pipeline").experiment_id).info.run_id
    rows = points // len(KEYS)
    metrics = [Metric(k, 0.5 + 1e-9 * s, 1_700_000_000_000, s) for s in range(rows) for k in KEYS]
    start = time.perf_counter()
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    seconds = time.perf_counter() - start
    client.set_terminated(run_id)
    return seconds


def throughput(tmp: Path, repeats: int, points: int) -> dict[str, list[float]]:
    """(b) points/s: pipeline (minus its fixed start/end cost, measured with 0 points) and ceiling."""
    uri = f"sqlite:///{tmp}/mlflow.db"
    pipeline_seconds(uri, 0)  # starts the writer, creates the experiment
    out = {"pipeline": [], "ceiling": []}
    for _ in range(repeats):
        fixed = pipeline_seconds(uri, 0)
        out["pipeline"].append(points / (pipeline_seconds(uri, points) - fixed))
        out["ceiling"].append(points / ceiling_seconds(uri, points))
    return out


def ratio(on: list[float], off: list[float]) -> float:
    return statistics.median(on) / statistics.median(off)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--points", type=int, default=100_000, help="points for (b)")
    p.add_argument("--blas-threads", type=int, default=None, help="BLAS threads of the processes it starts")
    p.add_argument("--skip-jobs", action="store_true", help="measure (b) only")
    args = p.parse_args()
    if args.blas_threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        from mlflow import MlflowClient  # the store's tables exist before any timed run

        MlflowClient(f"sqlite:///{tmp}/mlflow.db").search_experiments()
        results = {"b": throughput(tmp, args.repeats, args.points)}
        if not args.skip_jobs:
            results.update(jobs(tmp, args.repeats))
    fmt = lambda xs: ", ".join(f"{x:.3g}" for x in xs)  # noqa: E731
    print(f"repeats {args.repeats}, {os.cpu_count()} CPUs, BLAS threads {args.blas_threads or 'default'}")
    for label, key, low, high, unit, target in [
            ("(a) training loop", "loop", False, True, "s", "<= 1.05"),
            ("(b) store points/s", "b", "ceiling", "pipeline", "points/s", ">= 0.90"),
            ("(c) whole job", "process", False, True, "s", "<= 1.10")]:
        if key in results:
            r = results[key]
            print(f"{label:20s} {low!s:>8} [{fmt(r[low])}] {high!s:>8} [{fmt(r[high])}] {unit:8s} "
                  f"ratio {ratio(r[high], r[low]):.3f} (target {target})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--timed-job"]:
        del sys.argv[1]
        timed_job()
    else:
        main()

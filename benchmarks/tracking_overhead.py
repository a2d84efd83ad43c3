"""What tracking costs, measured side by side (contenders interleaved, medians), printed as one table:

(a) a 12-job sweep of the default job (`-m seed=0..11`), basic launcher: tracking on / tracking=none
                                                                              target <= 1.15
(b) the same sweep with the joblib launcher, 2 workers                        target <= 1.15
(c) the default job alone, `python -m framework.train`, start to exit         target <= 1.5
(d) its training loop, first batch to last batch                              target <= 1.05
(e) ingestion of one 100k-point run log into SQLite: bulk insert points/s, and / log_batch's
                                                                              target >= 100k/s, >= 8x
(f) `framework.sync` of a 100k-point offline run into `mlflow server` on 127.0.0.1, points/s,
    and / raw `MlflowClient.log_batch` (1000-point calls) through the same server
(g) (e) into PostgreSQL on 127.0.0.1 (`benchmarks.servers.PostgresServer`, fsync off; psycopg 3):
    bulk insert points/s, and / log_batch's

    python benchmarks/tracking_overhead.py [--repeats 3] [--points 100000] [--only a,c,e,g]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import shutil
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

from framework import Callback  # noqa: E402

KEYS = ["batch/loss", "batch/lr", "grad_norm/layers.0.W", "grad_norm/layers.0.b",
        "grad_norm/layers.1.W", "grad_norm/layers.1.b", "grad_norm/global"]
LOOP_MARK = "LOOP_SECONDS"
SWEEP = ["-m", "seed=" + ",".join(map(str, range(12)))]


class LoopTimer(Callback):
    """Seconds from the end of the first batch to the end of the last one."""

    def __init__(self):
        self.first = self.last = None

    def on_batch_end(self, trainer, step):
        self.last = time.perf_counter()
        self.first = self.first or self.last


def timed_job() -> None:
    """Child mode: the default job (`framework.train.main`), printing its training-loop seconds."""
    from framework import train
    from framework.engine import trainer

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
    """Seconds and stdout of `python ARGS` in `cwd`, importing this checkout's framework."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=1800, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout


def jobs(tmp: Path, repeats: int, only: set[str]) -> dict[str, dict[str, list[float]]]:
    """(a)-(d): seconds with tracking off and on, interleaved."""
    common = ["trainer.progress=none", f"tracking.uri=sqlite:///{tmp}/mlflow.db", "tracking.experiment=bench"]
    modes = {"off": ["tracking.enabled=false"], "on": []}  # = tracking=none (which has no uri to override)
    out = {k: {"off": [], "on": []} for k in "abcd" if k in only}
    for r in range(repeats):
        for mode, flags in modes.items():
            base = [*common, *flags, f"hydra.sweep.dir={tmp}/sweeps/{r}-{mode}", f"hydra.run.dir={tmp}/runs/{r}-{mode}"]
            if "a" in only:
                out["a"][mode].append(run(["-m", "framework.train", *SWEEP, *base], tmp)[0])
            if "b" in only:
                out["b"][mode].append(run(["-m", "framework.train", *SWEEP, *base, "hydra/launcher=joblib",
                                           "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp}/joblib/{r}-{mode}"],
                                          tmp)[0])
            if "c" in only or "d" in only:
                seconds, stdout = run([__file__, "--timed-job", *base, f"hydra.run.dir={tmp}/job/{r}-{mode}"], tmp)
                out.setdefault("c", {"off": [], "on": []})[mode].append(seconds)
                out.setdefault("d", {"off": [], "on": []})[mode].append(float(stdout.split(LOOP_MARK)[1].split()[0]))
    return out


def synthetic_runlog(folder: Path, points: int) -> int:
    """A finished run log of `points` batch points in 64-row chunks (as the trainer flushes them)."""
    from framework.tracking.messages import End, RunStart
    from framework.tracking.runlog import RunLogWriter

    rows = points // len(KEYS)
    log = RunLogWriter(folder, RunStart(secrets.token_hex(16), "bench", int(time.time() * 1000)))
    values = np.random.default_rng(0).random((rows, len(KEYS)))
    for lo in range(0, rows, 64):
        steps = np.arange(lo, min(lo + 64, rows))
        log.add_points(KEYS, steps, values[steps], int(time.time() * 1000))
    log.close(End("FINISHED", int(time.time() * 1000)))
    return rows * len(KEYS)


def sync_rate(folder: Path, uri: str, bulk: bool | None) -> float:
    """Points/s of one RunSync of `folder` into `uri` (store opened before the clock starts)."""
    from framework.tracking.replay import RunSync, Store

    store = Store(uri, bulk)
    sync = RunSync(folder, store)
    start = time.perf_counter()
    sync.step()
    return sync.points / (time.perf_counter() - start)


def log_batch_rate(uri: str, points: int) -> float:
    """Points/s of `MlflowClient.log_batch` of prebuilt points in 1000-point calls."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("bench") or client.get_experiment(client.create_experiment("bench"))
    run_id = client.create_run(exp.experiment_id).info.run_id
    metrics = [Metric(k, 0.5 + 1e-9 * s, 1_700_000_000_000, s) for s in range(points // len(KEYS)) for k in KEYS]
    start = time.perf_counter()
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    return len(metrics) / (time.perf_counter() - start)


def ingestion(tmp: Path, repeats: int, points: int, template: Path) -> dict[str, list[float]]:
    """(e): the same run log into fresh copies of an empty SQLite store, bulk and log_batch interleaved."""
    synthetic_runlog(tmp / "e-run", points)
    out = {"bulk": [], "log_batch": []}
    for r in range(repeats):
        for way, bulk in (("bulk", True), ("log_batch", False)):
            db = tmp / f"e-{r}-{way}.db"
            shutil.copy(template, db)
            shutil.rmtree(tmp / "e-run" / "runlog" / "acks", ignore_errors=True)
            out[way].append(sync_rate(tmp / "e-run", f"sqlite:///{db}", bulk))
    return out


def postgres(tmp: Path, repeats: int, points: int) -> dict[str, list[float]] | None:
    """(g): (e)'s run log into new PostgreSQL databases (MLflow creates the tables when the store is opened,
    before the clock starts), bulk and log_batch interleaved; None (with the reason) where it cannot run."""
    from benchmarks.servers import PostgresServer

    why = PostgresServer.unavailable() or (None if importlib.util.find_spec("psycopg") else
                                           "no psycopg: pip install -e '.[postgres]'")
    if why:
        print(f"(g) skipped: {why}", flush=True)
        return None
    synthetic_runlog(tmp / "g-run", points)
    out = {"bulk": [], "log_batch": []}
    with PostgresServer() as pg:
        for r in range(repeats):
            for way, bulk in (("bulk", True), ("log_batch", False)):
                shutil.rmtree(tmp / "g-run" / "runlog" / "acks", ignore_errors=True)
                out[way].append(sync_rate(tmp / "g-run", pg.database(f"g_{r}_{way}"), bulk))
    return out


def server(tmp: Path, repeats: int, points: int, template: Path) -> dict[str, list[float]]:
    """(f): framework.sync of an offline run log vs raw log_batch, through one `mlflow server` (4 workers:
    the sync sends `IN_FLIGHT` calls at once)."""
    from benchmarks.servers import MlflowServer

    shutil.copy(template, tmp / "server.db")
    with MlflowServer(tmp, workers=4) as server:
        uri = server.uri
        out = {"sync": [], "log_batch": []}
        for r in range(repeats):  # a new run log (a new run) each time: a re-sync would send duplicates
            synthetic_runlog(tmp / f"f-run-{r}", points)
            out["sync"].append(sync_rate(tmp / f"f-run-{r}", uri, None))
            out["log_batch"].append(log_batch_rate(uri, points))
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--points", type=int, default=100_000, help="points for (e), (f) and (g)")
    p.add_argument("--only", default="abcdefg", help="which rows, e.g. 'a,c,e'")
    args = p.parse_args()
    only = set(args.only.replace(",", ""))
    from benchmarks.machine import describe

    print(f"repeats {args.repeats}, {describe()}", flush=True)
    print(f"{'':4}{'what':26}{'baseline':>12} {'[runs]':36}{'contender':>12} {'[runs]':36}{'ratio':>7}  target",
          flush=True)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        from mlflow import MlflowClient

        template = tmp / "empty.db"
        MlflowClient(f"sqlite:///{template}").search_experiments()
        shutil.copy(template, tmp / "mlflow.db")
        if only & set("abcd"):
            show(jobs(tmp, args.repeats, only))
        if "e" in only:
            show({"e": ingestion(tmp, args.repeats, args.points, template)})
        if "f" in only:
            show({"f": server(tmp, args.repeats, args.points, template)})
        if "g" in only and (pg := postgres(tmp, args.repeats, args.points)):
            show({"g": pg})


ROWS = [("a", "12-job sweep, basic", "off", "on", "s", "ratio <= 1.15"),
        ("b", "12-job sweep, joblib x2", "off", "on", "s", "ratio <= 1.15"),
        ("c", "default job", "off", "on", "s", "ratio <= 1.5"),
        ("d", "training loop", "off", "on", "s", "ratio <= 1.05"),
        ("e", "SQLite ingestion", "log_batch", "bulk", "points/s", ">= 100k/s, ratio >= 8"),
        ("f", "mlflow server", "log_batch", "sync", "points/s", "(beside log_batch)"),
        ("g", "PostgreSQL ingestion", "log_batch", "bulk", "points/s", "(beside (e))")]


def show(results: dict) -> None:
    """Print the table rows of `results` (medians, every run in brackets, contender / baseline)."""
    def fmt(xs):
        return ", ".join(f"{x:.3g}" for x in xs)

    for key, what, base, new, unit, target in ROWS:
        if key in results:
            r = results[key]
            mb, mn = statistics.median(r[base]), statistics.median(r[new])
            print(f"({key}) {what:26}{mb:>12.4g} [{fmt(r[base])}]".ljust(80) +
                  f"{mn:>12.4g} [{fmt(r[new])}]".ljust(50) + f"{mn / mb:>7.3f}  {unit}: {base} vs {new}; {target}",
                  flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--timed-job"]:
        del sys.argv[1]
        timed_job()
    else:
        main()

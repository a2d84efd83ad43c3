"""The same 8-job sweep run four ways, side by side: one job after another (Hydra's basic launcher),
joblib with 2 workers, Ray on a local head with 2 CPUs, Ray on two local nodes (a head and a second node,
1 CPU each: the jobs spread over both), and SLURM on a one-node cluster of this machine
(`hydra/launcher=slurm`: a job array, 1 CPU per job). Prints the median wall time of each and its ratio
to the sequential sweep (interleaved repeats: they share whatever else loads the machine).

    python benchmarks/sweep_scale.py [--repeats 2] [--epochs 30] [--no-tracking]

Each job is the default digits MLP (`trainer.epochs` epochs, BLAS threads 1) with MLflow tracking into
a fresh SQLite store per sweep (`--no-tracking`: tracking=none); jobs differ by `optimizer.lr` x `seed`.
The wall time is the whole `python -m framework.train -m ...` command; the Ray clusters and the SLURM
cluster (`benchmarks.servers.SlurmCluster`) are started once before (their start is printed, not
counted). The Ray row needs `pip install -e '.[ray]'`, the SLURM row Debian's SLURM packages and root
(.ci/run installs them); a row that cannot run says why.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe  # noqa: E402
from benchmarks.servers import ENV, RayCluster, SlurmCluster, slurm_missing  # noqa: E402

SWEEP = ["optimizer.lr=0.01,0.003,0.001,0.0003", "seed=0,1", "trainer.progress=none"]


def timed_sweep(tmp: Path, launcher: list[str], epochs: int, tracking: bool, env: dict = ENV) -> float:
    """Wall seconds of one 8-job sweep with `launcher` overrides, recorded into a new store in `tmp`."""
    out = Path(tempfile.mkdtemp(dir=tmp))
    store = [f"tracking.uri=sqlite:///{out}/mlflow.db", "tracking.experiment=scale"] if tracking else ["tracking=none"]
    cmd = [sys.executable, "-m", "framework.train", "-m", *SWEEP, *launcher, f"trainer.epochs={epochs}",
           *store, f"hydra.sweep.dir={out}/multirun"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(launcher) or 'sequential'} sweep failed:\n{done.stderr[-3000:]}")
    return seconds


def on(cluster: RayCluster) -> list[str]:
    return ["hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={cluster.address}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--no-tracking", dest="tracking", action="store_false", help="tracking=none in every job")
    args = p.parse_args()
    print(describe())  # the kernel; the jobs set their own threads (backend.threads=1)
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}")
    print(f"8 jobs (digits MLP, {args.epochs} epochs, tracking {'on' if args.tracking else 'off'}), "
          f"repeats {args.repeats}, interleaved")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as clusters:
        contenders = {"sequential": [], "joblib, 2 workers": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}
        envs = {}
        if find_spec("hydra_plugins.hydra_ray_launcher") is None:
            print("Ray row left out: hydra-ray-launcher is not installed (pip install -e '.[ray]')")
        else:
            start = time.perf_counter()
            head = clusters.enter_context(RayCluster(nodes=1, cpus=2))
            two = clusters.enter_context(RayCluster(nodes=2, cpus=1))
            print(f"Ray: a head with 2 CPUs and two nodes with 1 CPU each up in {time.perf_counter() - start:.1f} s "
                  "(not counted)")
            contenders["Ray, local head, 2 CPUs"], contenders["Ray, 2 nodes x 1 CPU"] = on(head), on(two)
        why = slurm_missing() or (find_spec("hydra_plugins.hydra_submitit_launcher") is None
                                  and "hydra-submitit-launcher is not installed (pip install -e '.[slurm]')")
        if why:
            print(f"SLURM row left out: {why}")
        else:
            start = time.perf_counter()
            cluster = clusters.enter_context(SlurmCluster())
            name = f"SLURM, 1 node, {cluster.node['cpus']} CPUs"
            print(f"one-node SLURM cluster ({cluster.node['cpus']} CPUs, 1 per job) up in "
                  f"{time.perf_counter() - start:.1f} s (not counted)")
            contenders[name], envs[name] = ["hydra/launcher=slurm"], cluster.env
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for r in range(args.repeats):
            for name, launcher in contenders.items():
                times[name].append(timed_sweep(Path(tmp), launcher, args.epochs, args.tracking,
                                               envs.get(name, ENV)))
                print(f"  repeat {r + 1}: {name:<24} {times[name][-1]:7.1f} s", flush=True)
    base = statistics.median(times["sequential"])
    print(f"\n{'launcher':<26}{'median wall s':>14}{'vs sequential':>15}")
    for name, t in times.items():
        print(f"{name:<26}{statistics.median(t):>14.1f}{statistics.median(t) / base:>14.2f}x")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f} (other processes on the machine make these noisy)")


if __name__ == "__main__":
    main()

"""How the jobs of a Hydra launcher share this machine's cores: the `backend.threads=auto` rule."""
from __future__ import annotations

import os

from framework.run.config import hydra_config


def cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, e.g. a SLURM allocation)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_threads(hc=None) -> int:
    """BLAS threads per job such that the jobs running at once use the cores without oversubscribing them.

    `hc` is the Hydra config (default: the running job's). joblib `n_jobs=N` -> max(1, cores // N)
    (N = -1: all cores busy, 1 each; N < -1: cores + 1 + N jobs, joblib's rule); submitit ->
    `cpus_per_task` if set, else the cores of the allocation; Ray -> the task's
    `ray.remote.num_cpus` (Ray's default: 1); one job at a time (basic launcher, no Hydra) -> all cores.
    """
    hc = hydra_config() if hc is None else hc
    launcher = hc.launcher if hc is not None and hc.get("launcher") else {}
    target, n = str(launcher.get("_target_", "")), cores()
    if "joblib" in target:
        jobs = int(launcher.get("n_jobs") or 1)
        jobs = jobs if jobs > 0 else max(1, n + 1 + jobs)
        return max(1, n // jobs)
    if "submitit" in target:
        return int(launcher.get("cpus_per_task") or n)
    if "ray" in target:
        return int((launcher.get("ray", {}).get("remote") or {}).get("num_cpus") or 1)
    return n

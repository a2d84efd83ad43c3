"""How the jobs of a Hydra launcher share this machine's cores (the `backend.threads=auto` rule), and
whether a SLURM request can ever start on its partition."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

from framework.errors import ConfigError
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


def slurm_minutes(limit: str) -> float:
    """A SLURM time limit as sinfo prints it ("infinite", "30:00", "1:00:00", "2-12:00:00") in minutes."""
    if limit in ("infinite", "UNLIMITED", "n/a"):
        return float("inf")
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    h, m, s = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + h * 60 + m + s / 60


def partitions() -> dict[str, dict]:
    """The cluster's partitions as `sinfo` lists them: {name: {"default", "cpus", "mem_mb", "minutes"}},
    cpus and mem_mb the largest of the partition's nodes (a job's request must fit one node)."""
    if shutil.which("sinfo") is None:
        raise ConfigError("hydra/launcher=slurm submits with SLURM's commands (sinfo, sbatch), which this machine "
                          "does not have: run the sweep on a login node of the cluster (hydra/launcher=submitit_local "
                          "runs the jobs on this machine)")
    done = subprocess.run(["sinfo", "-h", "-N", "-o", "%P|%c|%m|%l"], capture_output=True, text=True)
    if done.returncode:
        why = (done.stderr.strip() or f"exit status {done.returncode}").splitlines()[0]
        raise ConfigError(f"hydra/launcher=slurm: sinfo failed ({why}); check that SLURM answers before submitting")
    found: dict[str, dict] = {}
    for line in done.stdout.splitlines():
        name, cpus, mem, limit = line.split("|")
        part = found.setdefault(name.rstrip("*"), {"default": name.endswith("*"), "cpus": 0, "mem_mb": 0,
                                                   "minutes": slurm_minutes(limit)})
        part["cpus"] = max(part["cpus"], int(re.match(r"\d+", cpus).group()))
        part["mem_mb"] = max(part["mem_mb"], int(re.match(r"\d+", mem).group()))
    return found


def slurm_request_problem(launcher) -> str | None:
    """Why a `hydra/launcher=slurm` job (`launcher`: hydra.launcher) can never start on its partition(s), in
    one line naming the key, the request, what the nodes have and the fix; None when it fits. SLURM accepts
    such a job and leaves it PENDING for good (reason PartitionConfig/PartitionTimeLimit), and submitit
    waits for it without a word. Checks CPUs (cpus_per_task x tasks_per_node) and memory (mem_gb) against
    the partition's largest node, and timeout_min against its time limit."""
    known = partitions()
    listed = ", ".join(known)
    names = str(launcher.get("partition") or "").split(",") if launcher.get("partition") else \
        [n for n, p in known.items() if p["default"]]
    if not names:
        return f"hydra/launcher=slurm: the cluster has no default partition; set hydra.launcher.partition ({listed})"
    problems, never = [], "so its jobs would stay PENDING for ever"
    for name in names:
        if name not in known:
            problems.append(f"hydra.launcher.partition={name}: no such partition; partitions (sinfo): {listed}")
            continue
        part, tasks = known[name], int(launcher.get("tasks_per_node") or 1)
        cpus, mem_gb = int(launcher.get("cpus_per_task") or 1) * tasks, launcher.get("mem_gb")
        if cpus > part["cpus"]:
            problems.append(f"hydra.launcher.cpus_per_task={launcher.get('cpus_per_task')}"
                            f"{f' x tasks_per_node={tasks}' if tasks > 1 else ''} asks for {cpus} CPUs per node but "
                            f"partition {name}'s nodes have at most {part['cpus']} (sinfo), {never}; set "
                            f"hydra.launcher.cpus_per_task<={part['cpus'] // tasks}")
        elif mem_gb and float(mem_gb) * 1024 > part["mem_mb"]:
            problems.append(f"hydra.launcher.mem_gb={mem_gb} asks for {float(mem_gb) * 1024:.0f} MB per node but "
                            f"partition {name}'s nodes have at most {part['mem_mb']} MB (sinfo), {never}; set "
                            f"hydra.launcher.mem_gb<={part['mem_mb'] // 1024}")
        elif float(launcher.get("timeout_min") or 0) > part["minutes"]:
            problems.append(f"hydra.launcher.timeout_min={launcher.get('timeout_min')} is longer than partition "
                            f"{name}'s time limit of {part['minutes']:.0f} min (sinfo), {never}; set "
                            f"hydra.launcher.timeout_min<={part['minutes']:.0f}")
        else:
            return None
    return "; ".join(problems)  # no partition of the list fits

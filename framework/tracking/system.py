"""System metrics sampled by the training process into its run log (MLflow's `system/` keys, so the run's
System metrics tab shows them); MLflow's own sampler is a thread writing straight to the store, past the run log.

Each sample (step = sample index from 0): `system/process_cpu_percentage` (this process's CPU time over the
wall time since the previous sample, x100: above 100 with several threads), `system/process_rss_megabytes`
and, where /proc is (Linux), `system/cpu_utilization_percentage` (all CPUs, since the previous sample) and
`system/system_memory_usage_megabytes` (total - available). No psutil needed. On the CuPy backend also
`system/gpu_<id>_memory_usage_megabytes` / `_percentage` (CUDA's used memory on the run's device, all processes)
and, with pynvml installed, `system/gpu_<id>_utilization_percentage`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

PROC = Path("/proc")


def _proc_cpu() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None."""
    try:
        fields = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _rss_mb() -> float:
    try:
        pages = int((PROC / "self" / "statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the peak: kB on Linux, bytes on macOS
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


def _memory_used_mb() -> float | None:
    try:
        info = dict(line.split(":", 1) for line in (PROC / "meminfo").read_text().splitlines())
        return (int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])) / 1024
    except (OSError, KeyError, ValueError):
        return None


def _gpu(device: int) -> dict[str, float]:
    import cupy

    with cupy.cuda.Device(device):
        free, total = cupy.cuda.runtime.memGetInfo()
    out = {f"system/gpu_{device}_memory_usage_megabytes": (total - free) / 2**20,
           f"system/gpu_{device}_memory_usage_percentage": 100 * (total - free) / total}
    try:
        import pynvml
    except ImportError:
        return out
    pynvml.nvmlInit()  # counted: one shutdown per init
    try:
        bus = cupy.cuda.runtime.getDeviceProperties(device)["pciBusId"]  # NVML numbers devices its own way
        handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus if isinstance(bus, bytes) else bus.encode())
        out[f"system/gpu_{device}_utilization_percentage"] = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    finally:
        pynvml.nvmlShutdown()
    return out


class SystemSampler:
    """`due()` says whether `every` seconds have passed since the last sample; `sample()` -> {key: value}.
    `gpu`: the CUDA device id of a CuPy run (set once the model is built), else None."""

    def __init__(self, every: float):
        self.every, self.count, self.gpu = every, 0, None
        self._last = (time.monotonic(), sum(os.times()[:2]), _proc_cpu())

    def due(self) -> bool:
        return time.monotonic() - self._last[0] >= self.every

    def sample(self) -> dict[str, float]:
        wall, cpu, proc = time.monotonic(), sum(os.times()[:2]), _proc_cpu()
        (wall0, cpu0, proc0), self._last = self._last, (wall, cpu, proc)
        out = {"system/process_cpu_percentage": 100 * (cpu - cpu0) / max(wall - wall0, 1e-9),
               "system/process_rss_megabytes": _rss_mb()}
        if proc and proc0:
            out["system/cpu_utilization_percentage"] = 100 * (proc[0] - proc0[0]) / max(proc[1] - proc0[1], 1)
        used = _memory_used_mb()
        if used is not None:
            out["system/system_memory_usage_megabytes"] = used
        if self.gpu is not None:
            out.update(_gpu(self.gpu))
        self.count += 1
        return out

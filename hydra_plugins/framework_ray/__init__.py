"""`hydra/launcher=ray_cluster`: every job one Ray task on a Ray cluster, and a sweep that outlives its nodes.

    python -m framework.train -m hydra/launcher=ray_cluster hydra.launcher.ray.init.address=HEAD_IP:6379 ...

hydra-ray-launcher's (1.2.2) tasks (`launch_job_on_ray`: `ray.remote(**hydra.launcher.ray.remote)` around
Hydra's `run_job`), collected differently: that launcher `ray.get`s its jobs in order, so a job whose
worker or node died raises in the driver, which exits with a traceback and takes the jobs still running
with it. Here every job is waited for; one that died (any `RayError`: its node or worker process died,
it was cancelled, or Hydra's `run_job` raised) gets a FAILED.json in its folder and returns the
objective's penalty, as a job that fails in `framework.train` does, so the sweep ends with its failed list
and exit 1 (`framework.run.sweep.FailedJobsReport`) and the parent run lists it; its run log, if it had
opened one, is synced as KILLED (a run log without an end whose trainer is gone). ray_cluster.yaml sets
`max_retries: 0`: Ray would rerun the task in the same folder, where its run log already is; rerun the
failed jobs with the same command and `tracking.skip_finished=true` instead.

Each job's `hydra.sweep.dir` is made absolute from the launching directory (hydra-ray-launcher leaves a
relative one, Hydra's default, to the worker, whose working directory is wherever its node was started);
on several machines it must be a shared file system mounted at the same path everywhere.
`ray.init` gets `hydra.launcher.ray.init` as it is (hydra-ray-launcher adds `object_store_memory`, which
Ray refuses when joining a running cluster); an address where nothing listens is one error line before any
job (Ray would retry for minutes).
"""
from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path
from typing import Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict

from framework.errors import ConfigError

log = logging.getLogger(__name__)


class RayLauncher(Launcher):
    def __init__(self, ray: DictConfig) -> None:
        self.ray_cfg = ray
        self.hydra_context = self.task_function = self.config = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        try:
            check_address(self.ray_cfg.init.get("address"))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import ray
        from hydra.core.singleton import Singleton
        from hydra.core.utils import configure_log, filter_overrides, setup_globals

        from hydra_plugins.hydra_ray_launcher._launcher_util import launch_job_on_ray, start_ray

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        log.info("Ray launcher: %d jobs, sweep folder %s", len(job_overrides), self.config.hydra.sweep.dir)
        start_ray(self.ray_cfg.init)
        jobs = []
        for idx, overrides in enumerate(job_overrides, initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg):
                cfg.hydra.job.id, cfg.hydra.job.num = f"job_id_for_{idx}", idx
                cfg.hydra.sweep.dir = str(Path(str(cfg.hydra.sweep.dir)).absolute())  # a worker's cwd is its node's
            jobs.append((cfg, launch_job_on_ray(self.hydra_context, self.ray_cfg.remote, cfg, self.task_function,
                                                Singleton.get_state())))
        returns = []
        for cfg, task in jobs:
            try:
                returns.append(ray.get(task))
            except ray.exceptions.RayError as e:
                returns.append(died(cfg, e))
        return returns


def check_address(address) -> None:
    """ConfigError when `address` (HOST:PORT or ray://HOST:PORT) names a port where nothing listens."""
    if not address or address == "auto":
        return
    host, _, port = str(address).removeprefix("ray://").rpartition(":")
    fix = "give the head's HOST:PORT (`ray start --head --port=PORT` prints it)"
    if not (host and port.isdigit()):
        raise ConfigError(f"hydra.launcher.ray.init.address={address}: not HOST:PORT; {fix}")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise ConfigError(f"hydra.launcher.ray.init.address={address}: no Ray cluster answers there "
                          f"({e.strerror or e}); {fix}") from None


def died(cfg: DictConfig, error: Exception) -> JobReturn:
    """The return of a job whose Ray task failed: FAILED.json in its folder, the objective's penalty."""
    from framework.run.sweep import write_failed
    from framework.train import penalty

    hc = cfg.hydra
    reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
    log.error("job %d died in Ray: %s: %s", hc.job.num, type(error).__name__, reason)
    folder = Path(cfg.hydra.sweep.dir, OmegaConf.select(cfg, "hydra.sweep.subdir"))
    write_failed(folder, hc.job.num, list(hc.overrides.task), f"{type(error).__name__}: {reason}")
    return JobReturn(overrides=list(hc.overrides.task), cfg=cfg, working_dir=str(folder), task_name=hc.job.name,
                     status=JobStatus.COMPLETED, _return_value=penalty(cfg))

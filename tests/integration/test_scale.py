"""Scaling out: BLAS threads per parallel job, the Optuna sweeper's search space and study identity,
the SLURM launcher config, and sweeps on submitit's local executor (Ray: test_ray_cluster.py)."""
from __future__ import annotations

import importlib.util

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf

from framework import ConfigError
from framework.run import launchers
from framework.tracking import sweep_id
from plugins.backends import NumpyBackend
from tests.helpers import compose_all
from tests.integration.test_sweep import check, sweep

needs_submitit = pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                                    reason="hydra-submitit-launcher not installed (pip install -e '.[slurm]')")


def launcher(target: str, **keys):
    return OmegaConf.create({"launcher": {"_target_": target, **keys}})


@pytest.mark.parametrize("hc,threads", [
    (launcher("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", n_jobs=2), 4),
    (launcher("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", n_jobs=3), 2),
    (launcher("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", n_jobs=16), 1),
    (launcher("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", n_jobs=-1), 1),
    (launcher("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", n_jobs=-5), 2),  # 4 jobs
    (launcher("hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher", ray={"init": {}, "remote": {}}), 1),
    (launcher("hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher",
              ray={"init": {}, "remote": {"num_cpus": 3}}), 3),
    (launcher("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", cpus_per_task=4), 4),
    (launcher("hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", cpus_per_task=None), 8),
    (launcher("hydra._internal.core_plugins.basic_launcher.BasicLauncher"), 8),
])
def test_auto_threads_split_the_cores_between_parallel_jobs(monkeypatch, hc, threads):
    monkeypatch.setattr(launchers, "cores", lambda: 8)
    assert launchers.auto_threads(hc) == threads


def test_backend_threads_auto_and_bad_values(monkeypatch):
    """A run resolves `auto` (framework.train) before it creates the backend, which takes a number or None."""
    from framework.train import create, resolved_threads

    monkeypatch.setattr(launchers, "cores", lambda: 3)  # no Hydra job: one job, all (3) cores
    node = OmegaConf.create({"name": "numpy", "dtype": "float32", "threads": "auto"})
    assert create("backend", resolved_threads(node)).threads == 3 and node.threads == "auto"
    for bad in (0, -1, "many", True):
        with pytest.raises(ConfigError, match="backend.threads must be >= 1, auto"):
            NumpyBackend(threads=bad)
    with pytest.raises(ConfigError, match="backend.threads=auto is resolved by a run"):
        NumpyBackend(threads="auto")


def test_optuna_search_space_from_the_override_grammar():
    import optuna.distributions as d

    from hydra_plugins.framework_optuna import OptunaSweeper, distribution

    def dist(line):
        return distribution(OverridesParser.create().parse_override(line))

    assert dist("a=interval(0.1,1)") == d.FloatDistribution(0.1, 1.0)
    assert dist("a=tag(log,interval(1e-4,1e-1))") == d.FloatDistribution(1e-4, 1e-1, log=True)
    assert dist("a=range(8,64,8)") == d.IntDistribution(8, 56, step=8)
    assert dist("a=relu,tanh") == d.CategoricalDistribution(["relu", "tanh"])
    assert dist("a=choice([64],[128,128])") == d.CategoricalDistribution(["[64]", "[128,128]"])
    with pytest.raises(ConfigError, match="nothing to search; give a sweep override"):
        OptunaSweeper(None, None, None, n_trials=1, n_jobs=1, sampler=None, params=None).sweep(["seed=1"])


def test_a_stored_study_is_the_sweep_identity(tmp_path):
    hc = OmegaConf.create({"mode": RunMode.MULTIRUN, "runtime": {"cwd": str(tmp_path)}, "sweep": {"dir": "multirun/x"},
                           "sweeper": {"storage": "sqlite:///optuna.db", "study_name": "lr"}})
    assert sweep_id(hc) == f"sqlite:///{tmp_path.resolve()}/optuna.db#lr"
    hc.sweeper.study_name = None  # a study without a name is new every time: the sweep dir names the sweep
    assert sweep_id(hc) == str((tmp_path / "multirun/x").resolve())


@needs_submitit
def test_slurm_launcher_config_is_ready():
    cfg = compose_all("hydra/launcher=slurm", hydra=True).hydra.launcher  # what `--cfg hydra` prints
    assert cfg._target_.endswith("SlurmLauncher")
    assert {"partition", "timeout_min", "cpus_per_task", "array_parallelism"} <= set(cfg)
    assert cfg.timeout_min > 0 and cfg.cpus_per_task >= 1 and cfg.array_parallelism >= 1


@needs_submitit
@pytest.mark.slow
def test_submitit_local_sweep_runs_jobs_as_separate_processes(tmp_path):
    uri, sweep_dir = sweep(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                           "optimizer.lr=0.05,0.005", "trainer.epochs=1", "trainer.batch_size=16")
    check(uri, sweep_dir, 2, ["optimizer.lr"])
    assert len(list(sweep_dir.glob(".submitit/*/*_log.out"))) == 2  # each job's own process log


def test_hparams_search_preset_is_a_stored_optuna_search_of_the_mnist1d_mlp():
    from hydra_plugins.framework_optuna import distribution

    cfg = compose_all("+hparams_search=mnist1d_optuna", hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.framework_optuna.OptunaSweeper" and cfg.hydra.mode == RunMode.MULTIRUN
    assert sweeper.storage and sweeper.study_name and cfg.data.name == "mnist1d"
    parser = OverridesParser.create()
    assert all(distribution(parser.parse_override(f"{k}={v}")) for k, v in sweeper.params.items())

"""The Python API: `framework.compose` is the config the command line runs, with its error lines;
`framework.train(cfg)` returns a `Result` whose fields are real; `framework.load` takes a folder holding one
run; `framework.train` is callable whichever import comes first, and `import framework` stays light."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

import framework
from benchmarks.servers import ENV
from framework.run.config import ROOT

XOR = ["data=xor", "model.hidden=[8]", "trainer.epochs=2", "trainer.batch_size=16", "trainer.progress=none"]


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framework.train", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300)


def test_compose_is_the_config_the_command_line_runs(tmp_path):
    overrides = [*XOR, "optimizer.lr=1", "tracking.mode=offline", f"tracking.uri=sqlite:///{tmp_path / 'none.db'}"]
    out = _cli(*overrides, f"hydra.run.dir={tmp_path / 'cli'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    recorded = OmegaConf.to_container(OmegaConf.load(tmp_path / "cli" / "config.yaml"))
    cfg = framework.compose(overrides)
    assert OmegaConf.to_container(cfg, resolve=True) == recorded
    assert cfg.optimizer.lr == 1.0 and isinstance(cfg.optimizer.lr, float)  # checked: normalized as recorded
    assert framework.compose(overrides) == cfg  # twice in one process


@pytest.mark.parametrize("override", ["activation=sigmod", "optimizer.lrr=0.1", "optimizer.lr=(1",
                                      "plugins.paths=[/no/such/folder]"])
def test_a_bad_override_is_the_command_lines_line(override, monkeypatch, capsys):
    from framework.train import main

    monkeypatch.setattr(sys, "argv", ["framework.train", override])
    with pytest.raises(SystemExit):
        main()  # these fail before Hydra composes
    with pytest.raises(framework.ConfigError) as e:
        framework.compose([override])
    assert capsys.readouterr().err == f"error: {e.value}\n"


def test_a_bad_value_is_the_command_lines_line(tmp_path):
    out = _cli("trainer.epochs=abc", "tracking=none", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    with pytest.raises(framework.ConfigError) as e:
        framework.compose(["trainer.epochs=abc"])
    assert out.returncode == 1 and out.stderr.splitlines()[-1] == f"error: {e.value}" == \
        "error: trainer.epochs=abc: must be an integer >= 0"
    with pytest.raises(framework.ConfigError, match=r"^nope: unknown key of the config; its keys: activation, "):
        framework.compose(["nope=1"])  # before Hydra's own multi-line refusal


@pytest.mark.sync_process
def test_train_returns_the_run_its_folder_metrics_and_model(tmp_path, new_store):
    mlflow = pytest.importorskip("mlflow")
    uri, runs = new_store(), tmp_path / "runs"
    tracked = [*XOR, f"tracking.uri={uri}", f"tracking.dir={runs}", "tracking.experiment=api"]
    result = framework.train(framework.compose(tracked))
    assert isinstance(result, framework.Result)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.run_id = None
    run = mlflow.MlflowClient(uri).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert {k: run.data.metrics[k] for k in result.metrics if k != "objective"} == \
        {k: v for k, v in result.metrics.items() if k != "objective"}
    assert result.metrics["objective"] == result.metrics["val/loss"]  # objective.metric's default
    assert result.run_dir.parent == runs and (result.run_dir / "weights.npz").is_file()

    X = np.random.default_rng(0).normal(size=(50, 2))
    p = result.model.predict_proba(X)
    assert p.shape == (50, 2) and np.allclose(p.sum(axis=1), 1)
    for source, kw in ((result.run_dir, {}), (runs, {}), (result.run_id, {"uri": uri})):  # runs: holds one run
        assert np.array_equal(framework.load(source, **kw).predict_proba(X), p), source
    off = framework.train(framework.compose([*XOR, "tracking=none"]))  # the same run untracked: same model
    assert off.run_id is None and off.run_dir is None and np.array_equal(off.model.predict_proba(X), p)
    assert off.metrics == result.metrics

    offline = framework.train(framework.compose([*tracked, "tracking.mode=offline", "seed=1"]))
    assert offline.run_id is None and offline.run_dir.parent == runs
    names = ", ".join(sorted(d.name for d in (result.run_dir, offline.run_dir)))
    with pytest.raises(framework.ConfigError, match=rf"'{runs}' holds 2 runs: {names}; load one by its folder"):
        framework.load(runs)
    (tmp_path / "empty").mkdir()
    with pytest.raises(framework.ConfigError, match="holds no trained model: .* or in one folder below it"):
        framework.load(tmp_path / "empty")


LIGHT = "import sys, framework; assert not {'hydra', 'omegaconf', 'mlflow'} & set(sys.modules), sys.modules.keys()"
CALL = ("cfg = framework.compose(['data=xor', 'trainer.epochs=1', 'trainer.progress=none', 'tracking=none'])\n"
        "assert framework.train is sys.modules['framework.train']\n"
        "assert isinstance(framework.train(cfg), framework.Result)\n")


@pytest.mark.parametrize("code", [
    f"{LIGHT}\n{CALL}import framework.train\n{CALL}from framework import train\nassert train is framework.train\n",
    f"import sys, framework.train\nimport framework\n{CALL}from framework.train import main, train\n"
    "assert isinstance(train(cfg), framework.Result) and callable(main)\n",
], ids=["framework-first", "framework.train-first"])
def test_framework_train_is_callable_whichever_import_comes_first(code):
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]

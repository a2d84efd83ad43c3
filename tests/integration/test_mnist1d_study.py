"""The MNIST-1D study's report (experiments/mnist1d/report.py) on a small real MLflow store made here."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import OmegaConf

from experiments.mnist1d import report, study
from framework.run import schema
from framework.run.config import GROUPS
from tests.helpers import make_cfg


def make_store(tmp_path) -> str:
    """A SQLite store holding parents and children the way the study's multiruns record them."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    uri = f"sqlite:///{tmp_path / 'study.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment(study.EXPERIMENT)

    def part(name, overrides, keys, children):
        parent = client.create_run(exp, run_name=name, start_time=1, tags={
            "sweep.role": "parent", "hydra.overrides": overrides, "sweep.keys": keys}).info.run_id
        for params, metrics in children:
            run = client.create_run(exp, tags={"mlflow.parentRunId": parent}).info.run_id
            points = [Metric(k, float(v), 0, step) for k, values in metrics.items()
                      for step, v in enumerate(np.atleast_1d(values))]
            client.log_batch(run, points, [Param(k, str(v)) for k, v in params.items()], [RunTag("x", "1")])
            client.set_terminated(run)
        client.set_terminated(parent, end_time=125_001)

    part("paper_logreg", "+experiment=mnist1d_logreg seed=0,1", "seed",
         [({}, {"test/accuracy": a}) for a in (0.31, 0.33)])
    part("best_mlp", "+experiment=mnist1d_mlp_best seed=0,1", "seed",
         [({"activation.name": "gelu", "optimizer.lr": "0.001"}, {"test/accuracy": a}) for a in (0.74, 0.72)])
    part("sweep", "+hparams_search=mnist1d_optuna", "activation optimizer.lr",
         [({"activation.name": act, "optimizer.lr": lr, "objective.metric": "val/accuracy", "objective.mode": "max"},
           {"val/accuracy": v}) for act, lr, v in (("relu", "0.01", 0.6), ("gelu", "0.001", 0.7))])
    part("robust", "+experiment=mnist1d_mlp_best activation=relu,silu seed=0", "activation seed",
         [({"activation.name": act}, {"val/accuracy": v}) for act, v in (("relu", 0.7), ("silu", 0.75))])
    part("activations", "+experiment=mnist1d_mlp activation=relu,sigmoid seed=0,1", "activation seed",
         [({"activation.name": act}, {"test/accuracy": acc, "val/accuracy": [0.3, acc], "train/loss": [2.0, 1.0]})
          for act, acc in (("sigmoid", 0.5), ("relu", 0.65), ("sigmoid", 0.52), ("relu", 0.67))])
    steps = np.arange(120)
    part("depth", "+experiment=mnist1d_mlp activation=relu,sigmoid model.hidden=[100,100]", "activation model.hidden",
         [({"activation.name": act, "model.hidden": "[100, 100]"},
           {f"grad_norm/layers.{i}.W": scale ** (2 - i) * np.ones_like(steps) for i in range(3)})
          for act, scale in (("relu", 1.0), ("sigmoid", 0.2))])
    return uri


@pytest.mark.slow  # ~6 s unloaded: an MLflow SQLite store and three figures
def test_report_reads_the_study_back_from_mlflow(tmp_path):
    uri = make_store(tmp_path)
    report.main(["--uri", uri, "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "RESULTS.md").read_text()
    assert "| logistic regression (`mnist1d_logreg`) | 32 % | 32.0 ± 1.4 % | 31.0–33.0 |" in text
    assert "within 3 points of the paper's 32 %: **yes** (0.0 points)" in text
    assert ">= 72 %: **yes** (73.0 %)" in text
    assert "| 2 min 05 s (2 runs) |" in text  # the parent's duration
    command = "python -m framework.train -m +experiment=mnist1d_mlp activation=relu,sigmoid 'model.hidden=[100,100]'"
    assert f"`{command}`" in text
    assert "| 70.0 % | gelu | 0.001 |" in text and "has the best trial's values" in text
    assert "| silu | 75.0 % | 1 |\n| relu | 70.0 % | 1 |" in text and "(activation=silu) is the preset" in text
    assert text.index("| `relu` | 66.0 ± 1.4 %") < text.index("| `sigmoid` | 51.0 ± 1.4 %")  # best first
    assert "| `sigmoid` | 0.04 / 0.04 |  |  |" in text  # first layer 0.2^2 of the output layer's; depths 4, 8 not run
    assert "(vanishing): sigmoid at depth 2. At or above 0.1 at every depth: relu." in text
    assert "The part `depth_xavier` has not been run." in text
    for png in ("accuracy_per_activation.png", "activation_curves.png", "grad_norm_per_layer.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"


def test_every_study_part_is_a_multirun_whose_every_job_is_a_valid_config():
    """Each part's command is `python -m framework.train -m <its overrides>` recorded under the study's
    experiment and the part's name. Its first job (every swept key at its first value) composes and passes
    `schema.check`; every other value of a swept key is valid in that job too: a group's value is a
    registered option (tests/integration/test_train.py composes each of those), a key's value passes `schema.check`."""
    parser = OverridesParser.create()
    uri = "sqlite:////tmp/x.db"
    for part, overrides in study.PARTS.items():
        cmd = study.command(part, uri)
        assert cmd[1:4] == ["-m", "framework.train", "-m"] and cmd[4:4 + len(overrides)] == overrides
        recorded = {f"tracking.experiment={study.EXPERIMENT}", f"tracking.run_name={part}", f"tracking.uri={uri}"}
        assert recorded <= set(cmd), cmd
        parsed = parser.parse_overrides(cmd[4:])
        first = [f"{o.get_key_element()}={next(o.sweep_string_iterator())}" if o.is_sweep_override() else o.input_line
                 for o in parsed]
        cfg = make_cfg(*first)
        schema.check(cfg)
        for o in filter(Override.is_sweep_override, parsed):
            for value in list(o.sweep_iterator())[1:]:
                if o.key_or_group in GROUPS:
                    assert value in GROUPS[o.key_or_group].names(), (part, o.input_line, value)
                else:
                    job = cfg.copy()
                    OmegaConf.update(job, o.key_or_group, value, merge=False)
                    schema.check(job)


@pytest.mark.parametrize("mode, sign", [("max", -1), ("min", 1)])
def test_the_sweep_objective_and_its_direction_come_from_the_jobs_config(mode, sign):
    def run(params):
        return SimpleNamespace(data=SimpleNamespace(params=params), info=SimpleNamespace(run_id="p"))
    jobs = [run({"objective.metric": "val/loss", "objective.mode": mode}) for _ in range(2)]
    assert report.sweep_objective(report.Part("sweep", run({}), None, jobs)) == ("val/loss", sign)
    with pytest.raises(SystemExit, match="record objective.metric/mode"):
        report.sweep_objective(report.Part("sweep", run({}), None, [run({})]))

"""The MNIST-1D study's report (experiments/mnist1d/report.py) on a small real MLflow store made here."""
from __future__ import annotations

import numpy as np
import pytest

from experiments.mnist1d import report, study


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

"""A trained model works on raw features: weights.npz holds the input pipeline; `framework.load` and
`python -m framework.predict` give the training run's own predictions for new rows."""
import csv

import numpy as np
import pytest

import framework
from framework.engine.checkpoint import save_checkpoint
from framework.errors import ConfigError
from framework.predict import main
from framework.train import build
from tests import helpers
from tests.helpers import make_cfg


def trained(tmp_path, *overrides):
    return helpers.trained(tmp_path / "artifacts", "trainer.epochs=5", "model.hidden=[16]", *overrides)


def raw(trainer, split="test"):
    """The split's features before standardization."""
    return getattr(trainer.splits, split).X * trainer.splits.x_std + trainer.splits.x_mean


@pytest.mark.parametrize("overrides", [["data=iris"], ["data=diabetes", "loss=mse"],
                                       ["data=breast_cancer", "loss=bce_with_logits", "model.hidden=[]"]])
def test_loaded_model_reproduces_the_runs_predictions_on_raw_features(tmp_path, overrides):
    trainer, folder = trained(tmp_path, *overrides)
    model = framework.load(str(folder))
    _, scores = trainer.predict("test")
    if trainer.task == "regression":
        assert np.allclose(model.predict(raw(trainer)), scores, rtol=1e-4, atol=1e-3)
        return
    proba = model.predict_proba(raw(trainer))
    expected = np.hstack([1 - scores, scores]) if scores.shape[1] == 1 else scores
    assert np.allclose(proba, expected, atol=1e-5)
    names = {"iris": ["setosa", "versicolor", "virginica"],
             "breast_cancer": ["malignant", "benign"]}[trainer.splits.train.name]
    assert model.classes.tolist() == names
    assert model.predict(raw(trainer)).tolist() == [names[i] for i in expected.argmax(axis=1)]


def test_checkpoint_and_hydra_run_folder_load_too(tmp_path):
    trainer, folder = trained(tmp_path, "data=iris")
    run = tmp_path / "run"
    save_checkpoint(trainer, run / "checkpoint")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text((folder / "config.yaml").read_text())
    X = raw(trainer)
    for source in (run, run / "checkpoint"):
        assert np.array_equal(framework.load(str(source)).predict_proba(X),
                              framework.load(str(folder)).predict_proba(X))


@pytest.fixture
def labelled_csv(tmp_path):
    """A CSV whose class labels are 3, 5, 7 (not 0..2), and the same rows without the label column."""
    rng = np.random.default_rng(0)
    y = rng.choice([3, 5, 7], 150)
    X = rng.normal(size=(150, 2)) * 0.3 + np.c_[y, -y]
    train, new = tmp_path / "train.csv", tmp_path / "new.csv"
    with open(train, "w") as f:
        csv.writer(f).writerows([["u", "v", "label"], *np.c_[X, y].tolist()])
    with open(new, "w") as f:
        csv.writer(f).writerows([["v", "u"], *X[:, ::-1].tolist()])  # other column order, no label
    return train, new, y


def test_cli_writes_class_and_probabilities_with_the_original_labels(tmp_path, labelled_csv, capsys):
    train, new, y = labelled_csv
    _, folder = trained(tmp_path, "data=file", f"data.path={train}", "data.task=classification", "optimizer.lr=0.05")
    out = tmp_path / "predictions.csv"
    assert main([str(folder), str(new), "--out", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["class", "p_3", "p_5", "p_7"] and len(rows) == 151
    assert np.mean(np.array([float(r[0]) for r in rows[1:]]) == y) > 0.95
    assert np.allclose([sum(map(float, r[1:])) for r in rows[1:]], 1.0)


@pytest.mark.parametrize("content,message", [
    ("u\n1\n", "error: data file 'bad.csv' lacks the model's column(s) v; unexpected: (none)"),
    ("u,v\n1,2\n3,nan\n", "error: data file '{path}' line 3, column 'v': value 'nan' is not a finite number"),
    ("u,v\n1,2\n3\n", "error: data file '{path}' line 3 has 1 cells but the header has 2 (delimiter ',')"),
])
def test_bad_rows_get_the_data_file_messages(tmp_path, labelled_csv, capsys, content, message):
    train, _, _ = labelled_csv
    _, folder = trained(tmp_path, "data=file", f"data.path={train}", "data.task=classification")
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    assert main([str(folder), str(bad)]) == 1
    assert capsys.readouterr().err.startswith(message.format(path=bad))


def test_a_folder_without_a_model_or_an_unknown_name_is_explained(tmp_path):
    with pytest.raises(ConfigError, match="holds no trained model: expected weights.npz and config.yaml"):
        framework.load(str(tmp_path))
    with pytest.raises(ConfigError, match="'nothere' is neither a folder nor a run id"):
        framework.load("nothere")


@pytest.mark.slow  # a fresh MLflow store and the sync process
def test_a_tracked_run_is_found_by_its_id_prefix_here_and_in_the_runs_table(tmp_path, capsys, new_store):
    from framework.runs import main as runs_main
    from framework.tracking import Tracking

    uri = new_store()
    cfg = make_cfg("data=iris", "trainer.epochs=3", "tracking.enabled=true", f"tracking.uri={uri}",
                   f"tracking.dir={tmp_path / 'runs'}")
    tracker = Tracking(cfg)
    with tracker.run() as callback:
        trainer = build(cfg, [callback])
        trainer.fit()
    model = framework.load(tracker.run_id[:8], uri)
    assert np.allclose(model.predict_proba(raw(trainer)), trainer.predict("test")[1], atol=1e-5)
    with pytest.raises(ConfigError, match="no run id starts with '0123abcd'"):
        framework.load("0123abcd", uri)
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    child = client.create_run(client.get_run(tracker.run_id).info.experiment_id, run_name="child",
                              tags={"mlflow.parentRunId": tracker.run_id})
    runs_main(["--parent", tracker.run_id[:8], "--uri", uri])
    assert "1 runs by val/loss" in capsys.readouterr().out
    client.delete_run(child.info.run_id)
    for parent, message in ((tracker.run_id[:8], f"no runs in sweep {tracker.run_id[:8]} '"),
                            ("0123abcd", "error: no run id starts with '0123abcd' (experiment 'Default')")):
        with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(")", r"\)")):
            runs_main(["--parent", parent, "--uri", uri])

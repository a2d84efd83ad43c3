"""MLflow-native runs: a FINISHED run's pyfunc model (loads without pickle, predicts as `framework.predict`,
serves), its data sets (full-array digests, source, schema) and the model registry (`tracking.register_model`),
all logged by the sync process from the run log, online or synced later."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import framework
from benchmarks.servers import ENV, free_port
from framework.predict import main as predict_main
from framework.tracking import Tracking
from framework.tracking.datasets import digest
from framework.train import build, load_data
from tests.helpers import make_cfg

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.sync_process

FEATURES = ["sepal length", "sepal width", "petal length", "petal width"]


def write_csv(path: Path, change: float = 0.0) -> Path:
    """Iris as a CSV with named columns (`change` added to the first value: a changed file)."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    X = iris.data.copy()
    X[0, 0] += change
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*FEATURES, "species"])
        w.writerows([[*row, int(y)] for row, y in zip(X.tolist(), iris.target)])
    return path


def cfg_for(uri: str, data: Path, *overrides: str):
    runs = Path(uri.removeprefix("sqlite:///")).parent / "runs"
    return make_cfg("data=file", f"data.path={data}", "data.task=classification", "model.hidden=[8]",
                    "trainer.epochs=3", "trainer.batch_size=32", "tracking.enabled=true", f"tracking.uri={uri}",
                    "tracking.experiment=models", f"tracking.dir={runs / str(time.monotonic_ns())}", *overrides)


def fit(cfg) -> str:
    """Train `cfg` (tracked); the store's run id once the run is there (offline: after `framework.sync`)."""
    tracking = Tracking(cfg)
    with tracking.run() as tracker:
        build(cfg, [tracker]).fit()
    if cfg.tracking.mode == "offline":
        from framework.tracking.replay import sync_paths

        assert sync_paths([tracking.folder], None) == 0
    return tracking.run_id


@pytest.fixture(scope="module")
def setup(tmp_path_factory, empty_store):
    """One store, one CSV and a registered online run of it."""
    import shutil

    folder = tmp_path_factory.mktemp("models")
    shutil.copy(empty_store, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    data = write_csv(folder / "iris.csv")
    run_id = fit(cfg_for(uri, data, "tracking.register_model=iris_mlp"))
    return {"uri": uri, "data": data, "run_id": run_id, "folder": folder}


def rows(data: Path) -> np.ndarray:
    with open(data) as f:
        return np.array([[float(v) for v in r[:4]] for r in list(csv.reader(f))[1:]])


def predicted_csv(source: str, data: Path, uri: str, out: Path) -> list[list[str]]:
    assert predict_main([source, str(data), "--uri", uri, "--out", str(out)]) == 0
    with open(out) as f:
        return list(csv.reader(f))


def test_model_loads_without_pickle_and_predicts_as_framework_predict(setup, monkeypatch, tmp_path):
    import pandas as pd

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", setup["uri"])
    model = mlflow.pyfunc.load_model(f"runs:/{setup['run_id']}/model")
    assert [c.name for c in model.metadata.get_input_schema().inputs] == FEATURES
    X = rows(setup["data"])
    frame = pd.DataFrame(X[:, ::-1], columns=FEATURES[::-1])  # columns matched by name
    got = model.predict(frame)
    trained = framework.load(setup["run_id"], setup["uri"])
    proba = trained.predict_proba(X)
    assert np.array_equal(got[[f"p_{c}" for c in trained.classes]].to_numpy(), proba)
    assert got["class"].tolist() == trained.predict(X).tolist()
    expected = predicted_csv(setup["run_id"], setup["data"], setup["uri"], tmp_path / "p.csv")
    assert expected[0] == list(got.columns)
    assert np.allclose(np.array(expected[1:], dtype=float), got.to_numpy(dtype=float), rtol=0, atol=1e-15)
    local = mlflow.artifacts.download_artifacts(f"runs:/{setup['run_id']}/model", dst_path=str(tmp_path / "m"))
    reqs = (Path(local) / "requirements.txt").read_text()
    assert "framework @ file://" in reqs and f"mlflow=={mlflow.__version__}" in reqs
    assert "python_model.pkl" not in os.listdir(local) and (Path(local) / "pyfunc_model.py").is_file()


def test_a_wrong_input_shape_gets_mlflows_schema_error(setup, monkeypatch):
    import pandas as pd
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_URI", setup["uri"])
    model = mlflow.pyfunc.load_model(f"runs:/{setup['run_id']}/model")
    with pytest.raises(MlflowException, match="(?i)schema|missing inputs"):
        model.predict(pd.DataFrame(rows(setup["data"])[:, :3], columns=FEATURES[:3]))


def test_data_sets_have_full_array_digests_source_and_schema(setup):
    client = mlflow.MlflowClient(setup["uri"])
    run = client.get_run(setup["run_id"])
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation", "testing"}
    splits = load_data(cfg_for(setup["uri"], setup["data"]))
    for context, part in (("training", splits.train), ("validation", splits.val), ("testing", splits.test)):
        ds = inputs[context]
        full = digest(part.X, part.y)
        assert ds.digest == full[:len(ds.digest)] and json.loads(ds.profile)["sha256"] == full
        assert json.loads(ds.profile)["features_shape"] == list(part.X.shape)
        source = json.loads(ds.source)
        assert ds.source_type == "local" and source["uri"] == str(setup["data"].resolve())
        assert source["sha256"] == hashlib.sha256(setup["data"].read_bytes()).hexdigest()
        assert [c["name"] for c in json.loads(ds.schema)["mlflow_colspec"]] == [*FEATURES, "target"]


def test_same_data_same_digest_changed_csv_new_one_offline_runs_synced_later(setup, tmp_path):
    client = mlflow.MlflowClient(setup["uri"])

    def digests(run_id):
        return {i.tags[0].value: i.dataset.digest for i in client.get_run(run_id).inputs.dataset_inputs}

    again = fit(cfg_for(setup["uri"], setup["data"], "tracking.mode=offline", "tracking.system_every=null"))
    changed = fit(cfg_for(setup["uri"], write_csv(tmp_path / "iris.csv", change=0.5), "tracking.mode=offline"))
    assert digests(again) == digests(setup["run_id"])
    assert digests(changed)["training"] != digests(setup["run_id"])["training"]
    for run_id in (again, changed):  # synced after training: the model is there too
        assert client.get_run(run_id).outputs.model_outputs
    assert not [k for k in client.get_run(again).data.metrics if k.startswith("system/")]  # system_every=null


def test_system_metrics_at_start_and_end_and_the_model_summary_as_params(setup):
    client = mlflow.MlflowClient(setup["uri"])
    run = client.get_run(setup["run_id"])
    for key in ("system/process_rss_megabytes", "system/process_cpu_percentage", "system/cpu_utilization_percentage"):
        history = client.get_metric_history(setup["run_id"], key)
        assert [m.step for m in history] == [0, 1] and all(m.value >= 0 for m in history)  # a run under 10 s
    assert client.get_metric_history(setup["run_id"], "system/process_rss_megabytes")[0].value > 10
    sizes = [4, 8, 3]  # iris, model.hidden=[8]
    assert run.data.params["model.parameters.layers.0"] == str(4 * 8 + 8)
    assert run.data.params["model.parameters.layers.1"] == str(8 * 3 + 3)
    assert run.data.params["model.parameters"] == str(sum(a * b + b for a, b in zip(sizes, sizes[1:])))


def test_model_is_linked_to_the_final_epoch_and_test_metrics_only(setup):
    client = mlflow.MlflowClient(setup["uri"])
    run = client.get_run(setup["run_id"])
    (output,) = run.outputs.model_outputs
    assert output.step == 2  # trainer.epochs=3: epochs 0, 1, 2
    model = client.get_logged_model(output.model_id)
    linked = {m.key: m for m in model.metrics}
    assert {"train/loss", "val/loss", "test/loss", "test/accuracy"} <= set(linked)
    assert not [k for k in linked if k.startswith(("batch/", "grad_norm/", "system/"))]
    assert all(m.step == 2 and m.value == run.data.metrics[m.key] for m in linked.values())
    testing = next(i.dataset for i in run.inputs.dataset_inputs if i.tags[0].value == "testing")
    assert linked["test/loss"].dataset_digest == testing.digest and linked["epoch/seconds"].dataset_digest is None


def test_registered_model_predicts_through_models_uri(setup, tmp_path):
    client = mlflow.MlflowClient(setup["uri"])
    version = client.get_model_version_by_alias("iris_mlp", "best")
    assert version.run_id == setup["run_id"]
    by_name = predicted_csv("models:/iris_mlp@best", setup["data"], setup["uri"], tmp_path / "a.csv")
    by_run = predicted_csv(setup["run_id"], setup["data"], setup["uri"], tmp_path / "b.csv")
    assert by_name == by_run and len(by_name) == 151
    assert predict_main(["models:/no_such_model@best", str(setup["data"]), "--uri", setup["uri"]]) == 1


def test_failed_run_gets_no_model(setup):
    cfg = cfg_for(setup["uri"], setup["data"], "trainer.divergence.max_loss=1e-9")
    tracking = Tracking(cfg)
    with pytest.raises(Exception), tracking.run() as tracker:  # noqa: B017 - any failure
        build(cfg, [tracker]).fit()
    run = mlflow.MlflowClient(setup["uri"]).get_run(tracking.run_id)
    assert run.info.status == "FAILED" and not run.outputs.model_outputs


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_the_models_predictions(setup):
    port = free_port()
    env = {**ENV, "MLFLOW_TRACKING_URI": setup["uri"], "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
    bin_dir = str(Path(sys.executable).parent)  # `mlflow models serve` starts uvicorn by name
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{setup['run_id']}/model",
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)

    def post(body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    try:
        deadline = time.monotonic() + 40
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "mlflow models serve not up within 40 s"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except OSError:
                time.sleep(0.3)
        X = rows(setup["data"])[:5]
        status, answer = post({"dataframe_split": {"columns": FEATURES, "data": X.tolist()}})
        assert status == 200, answer
        trained = framework.load(setup["run_id"], setup["uri"])
        got = np.array([[p[f"p_{c}"] for c in trained.classes] for p in answer["predictions"]])
        assert np.allclose(got, trained.predict_proba(X), rtol=0, atol=1e-12)
        status, answer = post({"dataframe_split": {"columns": FEATURES[:3], "data": X[:, :3].tolist()}})
        assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE", answer
        assert "failed to enforce schema" in answer["message"].lower(), answer
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["online", "offline"])
def test_a_sweep_registers_its_best_jobs_model_once(tmp_path, mode):
    from framework.tracking.replay import sync_paths
    from tests.integration.test_sweep import sweep

    uri, folder = sweep(tmp_path, "optimizer.lr=0.05,0.001", "trainer.epochs=2", "trainer.batch_size=16",
                        "tracking.register_model=xor_best", f"tracking.mode={mode}")
    if mode == "offline":
        assert sync_paths([folder], None) == 0
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    (version,) = client.search_model_versions("name = 'xor_best'")
    assert version.run_id == parent.data.tags["sweep.best_run_id"]
    assert client.get_model_version_by_alias("xor_best", "best").version == version.version
    assert all(client.get_run(r.info.run_id).outputs.model_outputs for r in runs if r is not parent)


def test_unnamed_features_get_a_tensor_signature(setup, tmp_path, monkeypatch):
    from mlflow.exceptions import MlflowException

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    run_id = fit(cfg_for(setup["uri"], tmp_path / "d.npz", "data.task=binary", "loss=bce_with_logits",
                         "tracking.mode=offline"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", setup["uri"])
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    (spec,) = model.metadata.get_input_schema().inputs
    assert spec.shape == (-1, 3) and spec.type == np.dtype("float64")
    trained = framework.load(run_id, setup["uri"])
    got = model.predict(X[:5])
    assert np.array_equal(got[[f"p_{c}" for c in trained.classes]].to_numpy(), trained.predict_proba(X[:5]))
    with pytest.raises(MlflowException, match="(?i)schema"):
        model.predict(X[:5, :2])

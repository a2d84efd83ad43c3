"""MLflow tracking against a real SQLite store in tmp_path: every point, param, tag and artifact arrives
(run log in the run folder, streamed by this process's sync process)."""
from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.servers import free_port
from framework import Callback, ConfigError, DivergenceError
from framework.run.config import ROOT, config_hash, flatten
from framework.tracking import Tracking, artifact_location, store_uri
from framework.train import build, train
from tests.helpers import make_cfg

mlflow = pytest.importorskip("mlflow")
from framework.tracking.store import mlflow_key  # noqa: E402  (imports mlflow)

pytestmark = pytest.mark.sync_process

BATCH_KEYS = ["batch/loss", "batch/lr", "grad_norm/layers.0.W", "grad_norm/layers.0.b",
              "grad_norm/layers.1.W", "grad_norm/layers.1.b", "grad_norm/global"]


def small(uri: str, *overrides: str):
    """A ~1 s tracked run: xor (140 training rows), one hidden layer, batches of 16; run folders
    beside the store."""
    runs = Path(uri.removeprefix("sqlite:///")).parent / "runs" if uri.startswith("sqlite") else None
    return make_cfg("data=xor", "model.hidden=[8]", "trainer.epochs=3", "trainer.batch_size=16",
                    "trainer.flush_every=4", "tracking.enabled=true", f"tracking.uri={uri}",
                    "tracking.experiment=test", *([f"tracking.dir={runs}"] if runs else []), *overrides)


def fit(cfg, *callbacks):
    """Train `cfg` with its tracking callback first; returns (trainer, tracking) once the run is stored."""
    tracking = Tracking(cfg)
    with tracking.run() as tracker:
        trainer = build(cfg, [tracker, *callbacks])
        trainer.fit()
    return trainer, tracking


@pytest.fixture(scope="module")
def store(tmp_path_factory, empty_store) -> Path:
    """One SQLite file for the module (creating MLflow's tables takes seconds); runs are found by id."""
    import shutil

    folder = tmp_path_factory.mktemp("store")
    shutil.copy(empty_store, folder / "mlflow.db")
    return folder


@pytest.fixture
def uri(store) -> str:
    return f"sqlite:///{store}/mlflow.db"


def history(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_every_point_param_tag_and_artifact_arrives(uri, store, tmp_path):
    cfg = small(uri)
    trainer, tracker = fit(cfg)
    client = mlflow.MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert trainer.step == 27  # 3 epochs x ceil(140 / 16) batches
    for key in BATCH_KEYS:
        assert history(client, tracker.run_id, key) == list(range(27)), key
    for key in trainer.history:  # train/loss, val/loss, val/<metric>, epoch/seconds, epoch/samples_per_second
        assert history(client, tracker.run_id, key) == [0, 1, 2], key
    assert {"val/accuracy", "epoch/seconds", "epoch/samples_per_second"} <= set(trainer.history)
    assert {k for k in run.data.metrics if k.startswith("test/")} >= {"test/loss", "test/accuracy"}
    system = [k for k in run.data.metrics if k.startswith("system/")]  # a start and an end sample
    assert tracker.callback.points == 27 * 7 + 3 * len(trainer.history) + sum(
        k.startswith("test/") for k in run.data.metrics) + 2 * len(system)
    assert run.data.tags["mlflow.source.type"] == "LOCAL" and run.data.tags["mlflow.user"]
    assert mlflow.MlflowClient(uri).get_experiment_by_name("test").tags["mlflow.experimentKind"] == \
        "custom_model_development"

    assert run.data.params == {**{k: str(v) for k, v in flatten(cfg).items()}, "model.sizes": "[2, 8, 2]",
                               "model.parameters.layers.0": "24", "model.parameters.layers.1": "18",
                               "model.parameters": "42"}
    assert {k: run.data.tags[k] for k in ("backend", "dtype", "device")} == {
        "backend": "numpy", "dtype": "float32", "device": "cpu"}

    assert run.info.artifact_uri.startswith((store / "mlartifacts" / "test").as_uri())
    files = {a.path for a in client.list_artifacts(tracker.run_id)} | {
        a.path for a in client.list_artifacts(tracker.run_id, "plots")}
    assert {"config.yaml", "overrides.yaml", "weights.npz", "plots/loss.svg", "plots/confusion_matrix.svg"} <= files
    local = Path(client.download_artifacts(tracker.run_id, "weights.npz", str(tmp_path)))
    with np.load(local, allow_pickle=False) as weights:
        for name, value in trainer.model.state_dict().items():
            np.testing.assert_array_equal(weights[name], value)


def test_regression_plots_predictions_and_subsampled_batches(uri):
    cfg = small(uri, "data=views", "loss=mse", "tracking.log_every_n_batches=4")
    trainer, tracker = fit(cfg)
    client = mlflow.MlflowClient(uri)
    assert history(client, tracker.run_id, "batch/loss") == list(range(0, trainer.step, 4))
    assert "plots/predictions.svg" in {a.path for a in client.list_artifacts(tracker.run_id, "plots")}


def test_too_long_param_goes_to_an_artifact(uri, tmp_path):
    long = "x" * 7000
    trainer, tracker = fit(small(uri, f"+notes={long}"))
    client = mlflow.MlflowClient(uri)
    assert "long_params.yaml" in client.get_run(tracker.run_id).data.params["notes"]
    assert long in Path(client.download_artifacts(tracker.run_id, "long_params.yaml", str(tmp_path))).read_text()


def test_failed_training_is_marked_failed_and_keeps_its_points(uri):
    class Boom(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 1:
                raise RuntimeError("boom")

    cfg = small(uri)
    with pytest.raises(RuntimeError, match="boom"):
        fit(cfg, Boom())
    tracker = _last(uri)
    client = mlflow.MlflowClient(uri)
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    assert history(client, tracker.run_id, "batch/loss") == list(range(18))
    assert history(client, tracker.run_id, "val/loss") == [0, 1]


def test_divergence_is_failed_with_reason_batch_and_param_tags(uri):
    cfg = small(uri, "optimizer=sgd", "optimizer.lr=1e12")
    with np.errstate(all="ignore"), pytest.raises(DivergenceError) as e:
        fit(cfg)
    tracker = _last(uri)
    run = mlflow.MlflowClient(uri).get_run(tracker.run_id)
    assert run.info.status == "FAILED"
    tags = run.data.tags
    assert tags["failure.reason"].startswith("diverged:") and tags["failure.step"] == str(e.value.step)
    assert tags["failure.param"] == str(e.value.param)
    assert history(mlflow.MlflowClient(uri), tracker.run_id, "batch/loss") == list(range(e.value.step + 1))


def test_plugin_plots_are_artifacts(uri):
    _, tracker = fit(small(uri, "activation=tanh"))
    plots = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(tracker.run_id, "plots")}
    assert {"plots/activation_tanh.svg", "plots/activation_identity.svg", "plots/loss_cross_entropy.svg"} <= plots


def test_plots_are_svg_whose_curves_break_at_non_finite_values():
    import xml.etree.ElementTree as ET

    from framework.tracking.plots import plot_confusion, plot_loss, plot_predictions

    ns = "{http://www.w3.org/2000/svg}"
    loss = ET.fromstring(plot_loss({"train/loss": [1.0, 0.5, float("nan"), 0.3, 0.2], "val/loss": [2.0, math.inf]}))
    lines = [p.get("points").split() for p in loss.iter(f"{ns}polyline")]
    assert [len(p) for p in lines] == [2, 2, 1]  # train/loss in two pieces around the NaN, val/loss without inf
    assert {t.text for t in loss.iter(f"{ns}text")} >= {"train/loss", "val/loss", "epoch", "loss"}
    cm = ET.fromstring(plot_confusion(np.array([0, 1, 1]), np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]]),
                                      "classification", "test"))
    digits = [t.text for t in cm.iter(f"{ns}text") if t.text.isdigit()]
    assert digits == ["1", "0", "1", "1", "0", "0", "1", "1"]  # counts [[1, 0], [1, 1]] by row, then the class ticks
    pred = ET.fromstring(plot_predictions(np.arange(6.0), np.arange(6.0) + 0.5, "val"))
    assert len(list(pred.iter(f"{ns}circle"))) == 6 + 1  # the points and the legend's mark


def test_plugin_pictures_are_svg_with_f_its_derivative_and_the_numeric_slope(tmp_path):
    import xml.etree.ElementTree as ET

    from framework.extend.pictures import curves_svg, draw_curves, plugin_curves

    curves = plugin_curves("activation", "tanh")
    x, f, grad = (np.asarray(curves[k]) for k in ("x", "value", "grad"))
    assert np.abs(np.gradient(f, x) - grad)[1:-1].max() < 1e-3 and np.allclose(f, np.tanh(x))  # the slope lies on f'
    svg = ET.fromstring(curves_svg(curves))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(list(svg.iter(f"{ns}polyline"))) == 3
    assert {t.text for t in svg.iter(f"{ns}text")} >= {*curves["labels"][1:], curves["title"]}
    assert draw_curves(curves, tmp_path / "tanh.svg").read_text() == curves_svg(curves)


def test_sync_process_started_early_only_when_it_may_be_needed_and_ended_unused(monkeypatch):
    from framework.tracking import process

    monkeypatch.setattr(process, "_process", None)
    for argv in (["tracking=none"], ["tracking.mode=offline", "seed=1"], ["--cfg", "job"], ["TRACKING.ENABLED=false"]):
        process.start_early(argv)
        assert process._process is None, argv
    process.start_early(["-m", "seed=1,2"])
    started = process._process.process
    process.discard_unused()  # what Tracking does when the job turns out not to track online
    assert started.poll() is not None and process._process is None


def test_a_sweep_job_leaves_its_run_log_to_the_launchers_sync_process_on_the_same_machine(monkeypatch):
    import json
    import socket

    from framework.tracking.process import SWEEP_ENV, sweep_followed

    def launcher(**changes):
        marker = {"host": socket.gethostname(), "pid": os.getppid(), "folder": "/s", "uri": "sqlite:////x.db",
                  **changes}
        monkeypatch.setenv(SWEEP_ENV, json.dumps(marker))

    for changes in ({}, {"pid": os.getpid()}):  # a joblib worker of a live launcher; the basic launcher's job
        launcher(**changes)
        assert sweep_followed("/s", "sqlite:////x.db"), changes
    assert not sweep_followed("/other", "sqlite:////x.db") and not sweep_followed("/s", "http://h:5000")
    gone = 2 ** 22 + 12345  # above Linux's largest pid
    for changes in ({"host": "elsewhere"}, {"pid": gone}):  # submitit on another node, an ended launcher
        launcher(**changes)
        assert not sweep_followed("/s", "sqlite:////x.db"), changes


def test_unreachable_server_fails_before_training():
    port = free_port()
    with pytest.raises(ConfigError, match=f"tracking server http://127.0.0.1:{port} is unreachable.*mode=offline"):
        Tracking(small(f"http://127.0.0.1:{port}"))


@pytest.mark.parametrize("where", ["/proc/nope/x.db", "file"])
def test_unwritable_store_fails_before_the_data_loads(tmp_path, where):
    (tmp_path / "file").write_text("")
    path = where if where.startswith("/") else f"{tmp_path}/file/mlflow.db"
    cfg = small(f"sqlite:///{path}", "data=file", f"data.path={tmp_path / 'missing.csv'}")
    with pytest.raises(ConfigError, match="not writable") as e:  # not the data file's error: checked first
        train(cfg)
    assert str(Path(path).parent) in str(e.value)
    assert all(fix in str(e.value) for fix in ("tracking.uri=", "tracking.mode=offline", "hydra.run.dir="))


def test_a_run_folder_that_holds_a_run_log_fails_before_the_data_loads(tmp_path, monkeypatch):
    """A fixed `hydra.run.dir` used twice: one line naming the folder and the fix, not a traceback after loading."""
    from framework.tracking import job

    (tmp_path / "runlog").mkdir()
    (tmp_path / "runlog" / "journal.jsonl").write_text("")
    monkeypatch.setattr(job, "run_folder", lambda tracking: tmp_path)
    cfg = small(f"sqlite:///{tmp_path}/mlflow.db", "tracking.mode=offline", "data=file",
                f"data.path={tmp_path / 'missing.csv'}")
    with pytest.raises(ConfigError, match=f"{tmp_path} already holds the run log of an earlier run.*hydra.run.dir="):
        train(cfg)


def test_store_uri_honours_mlflow_tracking_uri(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert store_uri(None) == "http://127.0.0.1:5999"
    assert store_uri("sqlite:////x/y.db") == "sqlite:////x/y.db"


def test_skip_finished_returns_the_stored_metrics_without_training(uri):
    cfg = small(uri, "tracking.skip_finished=true", "seed=11", "optimizer.weight_decay=0")  # a float typed as an int
    first = train(cfg)
    client = mlflow.MlflowClient(uri)
    run = _last_run(client)
    assert run.data.params["optimizer.weight_decay"] == "0.0"  # recorded as checked, not as typed
    again = train(small(uri, "tracking.skip_finished=true", "seed=11", "optimizer.weight_decay=0.0"))
    assert again.metrics["objective"] == first.metrics["objective"]
    assert again.metrics["test/accuracy"] == first.metrics["test/accuracy"]
    assert again.run_id == first.run_id == run.info.run_id and again.model is None and again.run_dir is None
    h = config_hash(cfg)
    assert run.data.tags["config.hash"] == h and len(_runs_with_hash(client, h)) == 1
    other = train(small(uri, "tracking.skip_finished=true", "seed=12"))  # another config still trains
    assert len(_runs_with_hash(client, h)) == 1 and "objective" in other.metrics


def _last(uri) -> Tracking:
    """A stand-in for the newest run's Tracking: `.run_id` of the newest run of the test experiment."""
    return type("Last", (), {"run_id": _last_run(mlflow.MlflowClient(uri)).info.run_id})()


def _last_run(client):
    """The newest run of the test experiment."""
    exp = client.get_experiment_by_name("test").experiment_id
    return client.search_runs([exp], order_by=["attributes.start_time DESC"], max_results=1)[0]


def _runs_with_hash(client, h):
    exp = client.get_experiment_by_name("test").experiment_id
    return client.search_runs([exp], f"tags.`config.hash` = '{h}'")


def test_runs_table_sorts_and_shows_only_differing_params(uri):
    from rich.console import Console

    from framework import runs

    ids = {lr: fit(small(uri, f"optimizer.lr={lr}", "tracking.experiment=table"))[1].run_id for lr in (0.05, 0.001)}
    client = mlflow.MlflowClient(uri)
    loss = {lr: client.get_run(i).data.metrics["val/loss"] for lr, i in ids.items()}
    out = io.StringIO()
    runs.main(["--uri", uri, "--experiment", "table"], console=Console(file=out, width=300))
    text = out.getvalue()
    assert "optimizer.lr" in text and "data.name" not in text
    best, worst = sorted(ids, key=loss.get)
    assert text.index(ids[best][:8]) < text.index(ids[worst][:8])


def test_store_defaults_to_the_project_root(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert store_uri(None) == f"sqlite:///{ROOT / 'mlflow.db'}"
    assert store_uri("sqlite:///rel.db") == f"sqlite:///{Path.cwd() / 'rel.db'}"
    assert artifact_location(store_uri(None), "a/b") == (ROOT / "mlartifacts" / "a_b").as_uri()
    assert artifact_location("http://127.0.0.1:5000", "x") is None


@pytest.mark.parametrize("key,valid", [("a[0]", "a_0_"), ("x//y/", "x/y"), ("../up", "_/up"),
                                       ("grad_norm/layers.0.W", "grad_norm/layers.0.W"), ("k=v@w", "k_v_w")])
def test_keys_are_made_valid_for_mlflow(key, valid):
    assert mlflow_key(key) == valid


def _cli(tmp_path, *overrides: str, code: str = "") -> subprocess.CompletedProcess:
    """`python -m framework.train` (with `code` run first) in tmp_path; reports whether mlflow was imported."""
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('MLFLOW_IMPORTED', 'mlflow' in sys.modules))\n"
              f"{code}\nfrom framework.train import main\nsys.argv[1:] = {list(overrides)!r}\nmain()\n")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


CLI = ["data=xor", "model.hidden=[8]", "trainer.epochs=2", "trainer.batch_size=16", "trainer.progress=none"]


@pytest.mark.slow
def test_cli_run_records_without_importing_mlflow_in_the_trainer(tmp_path, uri):
    done = _cli(tmp_path, *CLI, "optimizer.weight_decay=0", f"tracking.uri={uri}", "tracking.experiment=cli")
    assert done.returncode == 0, done.stderr
    assert "MLFLOW_IMPORTED False" in done.stdout
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cli").experiment_id])
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "grad_norm/global")) == 18
    assert run.data.tags["hydra.overrides"].startswith("data=xor")
    assert "optimizer.weight_decay=0.0 " in run.data.tags["hydra.overrides"]  # as checked, like the param
    assert run.data.params["optimizer.weight_decay"] == "0.0"


@pytest.mark.slow
def test_trainer_process_killed_leaves_a_killed_run_with_its_points(tmp_path, uri):
    code = ("import os\nfrom framework.engine import trainer\n"
            "def die(self, *a): os._exit(3) if self.epoch == 2 else None\n"
            "trainer.Trainer._should_stop = die\n")
    done = _cli(tmp_path, *CLI, "trainer.epochs=5", f"tracking.uri={uri}", "tracking.experiment=killed", code=code)
    assert done.returncode == 3
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("killed").experiment_id
    for _ in range(300):  # the sync process sees the pipe close, stores what the run log has, marks the run
        (run,) = client.search_runs([exp])
        if run.info.status != "RUNNING":
            break
        time.sleep(0.1)
    assert run.info.status == "KILLED"
    assert history(client, run.info.run_id, "val/loss") == [0, 1]  # every flushed row is in the run log
    assert history(client, run.info.run_id, "batch/loss") == list(range(18))




def test_no_point_is_lost_or_invented(uri):
    trainer, tracker = fit(small(uri, "trainer.epochs=2", "trainer.flush_every=1"))
    client = mlflow.MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    stored = sum(len(client.get_metric_history(tracker.run_id, k)) for k in run.data.metrics)
    assert stored == tracker.callback.points
    losses = [m.value for m in sorted(client.get_metric_history(tracker.run_id, "train/loss"), key=lambda m: m.step)]
    assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(losses, trainer.history["train/loss"]))

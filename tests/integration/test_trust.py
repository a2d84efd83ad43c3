"""Trust boundaries: loading a model runs no code its config names; secrets stay out of every
record; no silent wrong answer from predict, CSVs, damaged weights or a reused checkpoint folder."""
import csv
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

import framework
from framework.errors import ConfigError
from framework.predict import main as predict
from framework.train import build, train
from tests import helpers
from tests.helpers import ENV, make_cfg

SECRET = "S3cretPW"


def trained(tmp_path, *overrides):
    return helpers.trained(tmp_path / "model", "data=iris", "trainer.epochs=3", "model.hidden=[8]", *overrides)


def write_csv(path, header, rows, bom=False):
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def evil_folder(tmp_path):
    """(folder, marker): a plugin folder whose .py file writes `marker` when imported."""
    evil, marker = tmp_path / "evil", tmp_path / "MARKER"
    evil.mkdir()
    (evil / "payload.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    return evil, marker


def tamper(folder, paths):
    config = OmegaConf.load(folder / "config.yaml")
    config.plugins.paths = [str(p) for p in paths]
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(config))


# ---- 1. loading runs no code unless asked ---------------------------------------------------------------
def test_load_and_predict_never_import_the_plugin_folders_a_config_names(tmp_path, new_store):
    trainer, folder = trained(tmp_path)
    evil, marker = evil_folder(tmp_path)
    tamper(folder, [evil])
    X = trainer.splits.test.X * trainer.splits.x_std + trainer.splits.x_mean
    assert framework.load(str(folder)).predict(X).shape == (len(X),)
    names = trainer.splits.train.feature_names
    data = write_csv(tmp_path / "x.csv", names, X.tolist())
    out = subprocess.run([sys.executable, "-m", "framework.predict", str(folder), str(data)], env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    # the same model downloaded from a real SQLite store by run id
    from framework.tracking.store import open_store

    uri = new_store()
    client = open_store(uri)
    run = client.create_run("0").info.run_id
    client.log_artifacts(run, str(folder))
    assert np.array_equal(framework.load(run[:10], uri).predict(X), framework.load(str(folder)).predict(X))
    assert not marker.exists()


def test_a_model_with_a_user_plugin_needs_it_named_by_the_caller(tmp_path, isolated):
    plugins = tmp_path / "mine"
    plugins.mkdir()
    (plugins / "act.py").write_text(
        "from plugins.activations import Tanh\nfrom framework.registry import activations\n"
        "@activations.register('trusttanh')\nclass TrustTanh(Tanh):\n    pass\n")
    from framework import discovery

    discovery.load_paths([plugins])
    trainer, folder = trained(tmp_path, "activation=trusttanh", "plugins.check=false")
    from framework.registry import activations

    del activations._entries["trusttanh"]
    discovery._state.files.clear()
    with pytest.raises(ConfigError) as e:
        framework.load(str(folder))
    assert "activation 'trusttanh'" in str(e.value) and "--plugins DIR" in str(e.value)
    X = trainer.splits.test.X * trainer.splits.x_std + trainer.splits.x_mean
    assert framework.load(str(folder), plugins=[str(plugins)]).predict(X).shape == (len(X),)


# ---- 3. secrets never recorded -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_password_in_any_uri_is_in_no_file_the_run_leaves(tmp_path):
    """An offline run whose tracking.uri and an extra key hold a password, then synced into a real SQLite
    store: no byte of the password anywhere under tmp_path (run folder, .hydra/, run log, acks, store,
    artifacts), the masked values recorded; a sync without --uri says the password is needed."""
    secret_uri = f"postgresql://alice:{SECRET}@127.0.0.1:1/db"
    run = tmp_path / "run"
    args = [sys.executable, "-m", "framework.train", "data=iris", "trainer.epochs=2", "model.hidden=[8]",
            "trainer.progress=none", "tracking.mode=offline", f"tracking.uri={secret_uri}",
            f"+note='see https://bob:{SECRET}@example.org/x?token={SECRET}'", f"hydra.run.dir={run}"]
    out = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert SECRET not in out.stdout + out.stderr
    nopw = subprocess.run([sys.executable, "-m", "framework.sync", str(run)], env=ENV, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert nopw.returncode == 1 and "--uri" in nopw.stdout and SECRET not in nopw.stdout + nopw.stderr
    store = tmp_path / "store" / "mlflow.db"
    synced = subprocess.run([sys.executable, "-m", "framework.sync", str(run), "--uri", f"sqlite:///{store}"],
                            env=ENV, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 20 and store.is_file() and (run / ".hydra" / "hydra.yaml").is_file()
    assert [p for p in files if SECRET.encode() in p.read_bytes()] == []
    from framework.tracking.store import open_store

    client = open_store(f"sqlite:///{store}")
    stored = client.search_runs([client.get_experiment_by_name("Default").experiment_id])[0].data
    assert stored.params["tracking.uri"] == "postgresql://alice:***@127.0.0.1:1/db"
    assert stored.params["note"] == "see https://bob:***@example.org/x?token=***"
    assert "tracking.uri=postgresql://alice:***@127.0.0.1:1/db" in stored.tags["hydra.overrides"]
    assert "alice:***@" in stored.tags["mlflow.source.name"]


@pytest.mark.parametrize("text, masked", [
    ("postgresql://alice:pw@h:5432/db", "postgresql://alice:***@h:5432/db"),
    ("mysql+pymysql://u:p%40ss@h/db", "mysql+pymysql://u:***@h/db"),
    ("https://h/x?a=1&token=abc&b=2", "https://h/x?a=1&token=***&b=2"),
    ('{"uri": "http://u:p@h:5000"}', '{"uri": "http://u:***@h:5000"}'),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ("postgresql://alice@h/db", "postgresql://alice@h/db"),
    ("lr=0.1 data.path=/a:b@c", "lr=0.1 data.path=/a:b@c"),
])
def test_mask_secrets(text, masked):
    from framework.tracking.masking import mask_secrets

    assert mask_secrets(text) == masked


def test_a_stored_optuna_studys_sweep_id_holds_no_password(tmp_path):
    from hydra.types import RunMode

    from framework.tracking.places import sweep_id

    hc = OmegaConf.create({"mode": RunMode.MULTIRUN, "runtime": {"cwd": str(tmp_path)}, "sweep": {"dir": "sw"},
                           "sweeper": {"storage": f"postgresql://alice:{SECRET}@db/optuna", "study_name": "s"}})
    assert sweep_id(hc) == "postgresql://alice:***@db/optuna#s"


def test_log_lines_of_a_sweep_are_masked(tmp_path):
    """Hydra's launcher logs each job's overrides ("#0 : +note=...") and the job logs into its log file."""
    out = subprocess.run([sys.executable, "-m", "framework.train", "-m", "tracking=none", "trainer.progress=none",
                          "data=iris", "trainer.epochs=1", "model.hidden=[4]", f"hydra.sweep.dir={tmp_path / 'sw'}",
                          f"+note=postgresql://alice:{SECRET}@h/db", "hydra/job_logging=disabled"],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert SECRET not in out.stdout + out.stderr and "alice\\:***@h/db" in out.stdout + out.stderr
    assert [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()] == []


# ---- 5. no silent wrong answers -------------------------------------------------------------------------
def test_predict_matches_columns_by_name_only(tmp_path, capsys):
    trainer, folder = trained(tmp_path)
    names = trainer.splits.train.feature_names
    X = trainer.splits.test.X * trainer.splits.x_std + trainer.splits.x_mean
    wrong = write_csv(tmp_path / "wrong.csv", [*names[:-1], "label"], X.tolist())  # right count, one wrong name
    assert predict([str(folder), str(wrong)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err) <= 200 and "\n" not in err, err
    assert f"lacks the model's column(s) {names[-1]};" in err and "unexpected: label" in err
    bom = write_csv(tmp_path / "bom.csv", names[::-1], X[:, ::-1].tolist(), bom=True)
    out = tmp_path / "p.csv"
    assert predict([str(folder), str(bom), "--out", str(out)]) == 0
    rows = list(csv.reader(open(out)))[1:]
    assert [r[0] for r in rows] == framework.load(str(folder)).predict(X).astype(str).tolist()


def test_a_duplicated_header_is_refused_in_predict_and_training(tmp_path, capsys):
    trainer, folder = trained(tmp_path)
    names = trainer.splits.train.feature_names
    X = trainer.splits.test.X * trainer.splits.x_std + trainer.splits.x_mean
    twice = write_csv(tmp_path / "twice.csv", [names[0], *names[:-1], "label"],
                      np.c_[X[:, :1], X[:, :-1], np.zeros(len(X))].tolist())
    assert predict([str(folder), str(twice)]) == 1
    assert f"names column '{names[0]}' more than once" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="more than once"):
        build(make_cfg("data=file", f"data.path={twice}", "data.task=classification"))


def test_a_bom_is_not_part_of_the_first_feature_name(tmp_path):
    rng = np.random.default_rng(0)
    data = write_csv(tmp_path / "bom.csv", ["a", "b", "label"],
                     np.c_[rng.normal(size=(60, 2)), np.arange(60) % 2].tolist(), bom=True)
    trainer = build(make_cfg("data=file", f"data.path={data}", "data.task=binary", "loss=bce_with_logits"))
    assert trainer.splits.train.feature_names == ["a", "b"]


@pytest.mark.parametrize("damage, words", [
    (lambda a: a["layers.0.W"].__setitem__((0, 0), np.nan), "layers.0.W holds 1 NaN/inf"),
    (lambda a: a["layers.1.b"].__setitem__(0, np.inf), "layers.1.b holds 1 NaN/inf"),
    (lambda a: a["pipeline/x_std"].__setitem__(2, 0.0), "x_std is 0.0 for feature 2"),
])
def test_damaged_weights_are_refused_at_load(tmp_path, damage, words):
    _, folder = trained(tmp_path)
    with np.load(folder / "weights.npz") as f:
        arrays = {k: f[k] for k in f.files}
    damage(arrays)
    np.savez(folder / "weights.npz", **arrays)
    with pytest.raises(ConfigError, match="is damaged") as e:
        framework.load(str(folder))
    assert words in str(e.value)


def test_a_run_never_overwrites_another_runs_checkpoint_without_resume(tmp_path):
    ckpt = tmp_path / "ckpt"
    cfg = make_cfg("data=iris", "trainer.epochs=2", "model.hidden=[8]", f"callbacks.model_checkpoint.directory={ckpt}")
    train(cfg)
    before = (ckpt / "weights.npz").read_bytes()
    with pytest.raises(ConfigError, match=f"trainer.resume={ckpt}"):
        train(cfg)
    assert (ckpt / "weights.npz").read_bytes() == before
    cfg.trainer.resume, cfg.trainer.epochs = str(ckpt), 3
    train(cfg)  # resuming continues it, in place
    assert (ckpt / "weights.npz").read_bytes() != before

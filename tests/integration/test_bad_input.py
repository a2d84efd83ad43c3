"""Each remaining bad input ends the real command with one line on stderr, exit != 0, no traceback."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ENV

# Makes the packages of the `sweep` extra look uninstalled in the command's process.
WITHOUT_SWEEP = '''import sys
class _Missing:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] == "optuna" or name.startswith("hydra_plugins.hydra_joblib_launcher"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _Missing)
'''


def one_line_error(args, cwd, env=None):
    """The command's single stderr line (asserting exit != 0, no traceback, nothing else on stderr)."""
    out = subprocess.run([sys.executable, "-m", *args], env=env or ENV, capture_output=True, text=True,
                         timeout=300, cwd=cwd)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode != 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr
    return lines[0]


TRAIN = ["framework.train", "tracking=none", "trainer.progress=none", "trainer.epochs=1"]


@pytest.mark.parametrize("overrides, words", [
    (["model.hidden=[1000000,1000000]"],  # digits: 64 features, 10 classes
     [f"{64 * 10**6 + 10**6 + 10**12 + 10**6 + 10**7 + 10:,} parameters need about", "smaller model.hidden"]),
    (["data=moons", "data.nois=0.1"], ["data.nois: unknown key of data=moons; closest: noise"]),
    (["optimizer.lrr=0.1"], ["optimizer.lrr: unknown key of optimizer=adam; closest: lr"]),
    (["+experiment=mnist1d_mlp", "data.tes=drop"], ["data.tes: unknown key of data=mnist1d; closest: test"]),
    (["+note=a?b=c"], ["an override does not parse", "key='value'"]),
    (["optimzer.lr=0.1"], ["optimzer: unknown key of the config; closest: optimizer"]),
])
def test_train_refuses_with_one_line(tmp_path, overrides, words):
    line = one_line_error([*TRAIN, f"hydra.run.dir={tmp_path / 'run'}", *overrides], tmp_path)
    assert all(w in line for w in words), line


@pytest.mark.parametrize("wrong, right, message", [
    ("sed", "seed", "sed: unknown key of the config; closest: seed"),
    ("trainer.epoch", "trainer.epochs", "trainer.epoch: unknown key of trainer=default; closest: epochs"),
    ("trainer.limit_batches.trian", "trainer.limit_batches.train",
     "trainer.limit_batches.trian: unknown key of trainer=default; closest: train"),
    ("objective.metrc", "objective.metric", "objective.metrc: unknown key of the config; closest: metric"),
])
def test_a_misspelt_key_of_the_config_or_a_yaml_group_names_the_closest(wrong, right, message):
    from framework.errors import ConfigError
    from framework.train import _check_command_line

    with pytest.raises(ConfigError) as e:
        _check_command_line([f"{wrong}=1"])
    assert str(e.value) == message
    _check_command_line([f"{right}=1"])  # the right key passes (its value is schema.check's)


@pytest.mark.parametrize("overrides", [["-m", "hydra/launcher=joblib"], ["+hparams_search=mnist1d_optuna"]])
def test_a_launcher_or_sweeper_without_its_extra_names_the_install(tmp_path, overrides):
    (tmp_path / "sitecustomize.py").write_text(WITHOUT_SWEEP)
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), ENV.get("PYTHONPATH", "")])}
    line = one_line_error([*TRAIN, f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides], tmp_path, env)
    assert "pip install -e '.[sweep]'" in line and "is not installed" in line, line


def test_a_run_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    line = one_line_error([*TRAIN, f"hydra.run.dir={tmp_path / 'file' / 'run'}"], tmp_path)
    assert "is not writable (Not a directory)" in line and "hydra.run.dir=<folder>" in line


@pytest.mark.parametrize("options, words", [("size=64k", "No space left on device"), ("ro,size=64k", "Read-only")])
def test_a_full_or_read_only_run_folder_is_one_line(tmp_path, options, words):
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        if "ro" not in options:
            subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'fill'}", "bs=4k", "count=64"], capture_output=True)
        line = one_line_error([*TRAIN, f"hydra.run.dir={mount / 'run'}"], tmp_path)
        assert words in line and "hydra.run.dir=<folder>" in line, line
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("command", [["framework.sync", ".", "--uri", "foo://bar"],
                                     ["framework.runs", "--uri", "foo://bar"]])
def test_an_unknown_store_scheme_is_one_line(tmp_path, command):
    (tmp_path / "run" / "runlog").mkdir(parents=True)
    (tmp_path / "run" / "runlog" / "journal.jsonl").write_text("")
    line = one_line_error(command, tmp_path)
    assert "unknown scheme 'foo'" in line and "sqlite://" in line, line


@pytest.mark.parametrize("path, words", [("nowhere", "no such file or folder"), ("empty", "no runlog/journal.jsonl")])
def test_sync_of_a_path_without_a_run_log_is_one_line(tmp_path, path, words):
    (tmp_path / "empty").mkdir()
    line = one_line_error(["framework.sync", str(tmp_path / path)], tmp_path)
    assert line.startswith(f"error: no run log under {tmp_path / path}") and words in line, line


def test_load_of_neither_a_folder_nor_a_run_creates_no_store(tmp_path, monkeypatch):
    import framework
    from framework.errors import ConfigError

    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    with pytest.raises(ConfigError, match="there is no store"):
        framework.load("abc123")
    (tmp_path / "x.csv").write_text("a\n1\n")
    line = one_line_error(["framework.predict", "abc123", "x.csv", "--uri", f"sqlite:///{store}"], tmp_path)
    assert "neither a folder nor a run id" in line
    assert not store.exists() and not Path(str(store) + ".lock").exists()


CONFIG = "activation: {name: relu}\noutput_activation: {name: identity}\nloss: {name: cross_entropy}\n"


@pytest.mark.parametrize("weights, config, words", [
    (np.random.default_rng(0).bytes(4096), CONFIG, "weights.npz' is not a valid weights file"),
    (None, "a: [1\n", "config.yaml' is not a run's config.yaml (ParserError)"),
    (None, "[1, 2]\n", "config.yaml' is not a run's config.yaml: it names no activation, output_activation, loss"),
])
def test_damaged_model_files_are_one_line(tmp_path, weights, config, words):
    model = tmp_path / "model"
    model.mkdir()
    if weights is None:  # valid weights of a 1-4-3 model
        rng = np.random.default_rng(0)
        np.savez(model / "weights.npz", **{"layers.0.W": rng.normal(size=(4, 1)), "layers.0.b": np.zeros(4),
                                           "layers.1.W": rng.normal(size=(3, 4)), "layers.1.b": np.zeros(3),
                                           "pipeline/task": np.array("classification")})
    else:
        (model / "weights.npz").write_bytes(weights)
    (model / "config.yaml").write_text(config)
    (tmp_path / "x.csv").write_text("a\n1\n")
    line = one_line_error(["framework.predict", str(model), "x.csv"], tmp_path)
    assert words in line, line

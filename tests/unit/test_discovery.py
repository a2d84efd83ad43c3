"""Plugin discovery in this process: folders (config and $FRAMEWORK_PLUGIN_PATH), entry points (the built-ins'
first), import errors. A fresh interpreter's discovery: tests/integration/test_discovery_fresh_process.py.

Entry points are tested without building or pip-installing a package: a `<name>.dist-info` folder with
METADATA and entry_points.txt on a temporary sys.path entry is exactly what an install leaves behind,
and importlib.metadata (which discovery uses) finds it there - no build backend, network or venv change.
"""
import os
import sys
import textwrap

import pytest
from omegaconf import OmegaConf

from framework import discovery
from framework.errors import ConfigError
from framework.registry import activations

pytestmark = pytest.mark.usefixtures("isolated")


def write_activation(folder, name):
    """folder/name.py registering the identity as activation `name`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(f'''\
        from framework import ElementwiseActivation
        from framework.registry import activations


        @activations.register("{name}")
        class Act(ElementwiseActivation):
            def forward(self, xp, z):
                return z
        '''))
    return path


def write_dist_info(site, dist, entry_points: dict[str, str]):
    """What `pip install` of a package declaring `entry_points` in group framework.plugins leaves in site/."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{discovery.ENTRY_POINT_GROUP}]\n{lines}")


def test_load_paths_imports_every_file_of_a_folder_once(tmp_path):
    a, b = write_activation(tmp_path, "disc_a"), write_activation(tmp_path, "disc_b")
    assert discovery.load_paths([str(tmp_path)]) == [a, b]
    assert {"disc_a", "disc_b"} <= set(activations.names())
    assert discovery.load_paths(OmegaConf.create([str(tmp_path)])) == [a, b]  # again: no re-import, no clash
    assert discovery.load_paths(str(a)) == [a]                                # a single file, not in a list
    assert activations.create("disc_a").name == "disc_a"


def test_missing_path_is_a_config_error_naming_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="'/no/such/dir' does not exist; fix plugins.paths"):
        discovery.load_paths(["/no/such/dir"])


def test_environment_variable_folders_are_loaded(tmp_path, monkeypatch):
    write_activation(tmp_path / "one", "disc_env1")
    write_activation(tmp_path / "two", "disc_env2")
    monkeypatch.setenv(discovery.ENV_VAR, f"{tmp_path / 'one'}{os.pathsep}{tmp_path / 'two'}")
    assert {"disc_env1", "disc_env2"} <= set(activations.names())


def test_import_error_names_file_line_and_exception_and_a_fixed_file_loads(tmp_path):
    path = write_activation(tmp_path, "disc_broken")
    good = path.read_text()
    path.write_text(good + "undefined_name\n")
    with pytest.raises(discovery.PluginImportError) as e:
        discovery.load_paths([tmp_path])
    assert str(e.value) == (f"plugin file '{path}' failed to import (line {good.count(chr(10)) + 1}): "
                            "NameError: name 'undefined_name' is not defined")
    path.write_text(good)
    discovery.load_paths([tmp_path])
    assert "disc_broken" in activations.names()


def test_syntax_error_names_file_and_line(tmp_path):
    (tmp_path / "bad_syntax.py").write_text("x = 1\ndef oops(:\n")
    with pytest.raises(discovery.PluginImportError, match=r"bad_syntax.py' failed to import: SyntaxError: .*line 2"):
        discovery.load_paths([tmp_path])


def test_a_broken_plugin_fails_every_lookup_not_only_the_first(tmp_path, monkeypatch):
    (tmp_path / "disc_sticky.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.setenv(discovery.ENV_VAR, str(tmp_path))
    for _ in range(2):
        with pytest.raises(discovery.PluginImportError, match="disc_sticky.py' failed to import .*RuntimeError: boom"):
            activations.names()


def test_entry_point_modules_are_imported(tmp_path, monkeypatch):
    write_activation(tmp_path, "disc_ep_mod")
    write_dist_info(tmp_path, "disc-ep-demo", {"demo": "disc_ep_mod"})
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "disc_ep_mod" in activations.names()
        assert activations.get("disc_ep_mod").__module__ == "disc_ep_mod"
    finally:
        sys.modules.pop("disc_ep_mod", None)


def test_entry_point_import_error_names_entry_point_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "disc_ep_bad.py").write_text("import math\nraise ImportError('needs torch')\n")
    write_dist_info(tmp_path, "disc-ep-bad", {"bad": "disc_ep_bad"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(discovery.PluginImportError) as e:
        activations.names()
    assert str(e.value) == (f"plugin entry point 'bad = disc_ep_bad' failed to import "
                            f"({tmp_path / 'disc_ep_bad.py'}, line 2): ImportError: needs torch")


def test_the_built_ins_are_the_projects_entry_point_and_register_before_user_folders(tmp_path):
    from importlib.metadata import entry_points

    own = [ep for ep in entry_points(group=discovery.ENTRY_POINT_GROUP) if ep.dist.name == discovery.DISTRIBUTION]
    assert [(ep.name, ep.value) for ep in own] == [("builtins", "plugins")]  # pyproject.toml, installed
    write_activation(tmp_path, "relu")  # a user file taking a built-in's name is refused: the built-in came first
    with pytest.raises(discovery.PluginImportError, match="'relu' is already registered by plugins.activations"):
        discovery.load_paths([tmp_path])
    write_activation(tmp_path / "mine", "disc_mine")
    discovery.load_paths([tmp_path / "mine"])
    assert discovery.builtin(activations.get("relu")) and not discovery.builtin(activations.get("disc_mine"))


def test_without_the_projects_entry_point_one_line_names_the_install(monkeypatch):
    monkeypatch.setattr(discovery, "entry_points", lambda group: [])
    for _ in range(2):  # every lookup, not only the first
        with pytest.raises(ConfigError, match=r"^no built-in plugins: .* run `pip install -e \.` in the project$"):
            activations.names()

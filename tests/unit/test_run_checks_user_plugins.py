"""A run that uses a plugin which is not built in runs its conformance checks first."""
import time

import pytest

import framework.train as train_module
from framework import check_plugins, discovery
from framework.errors import ConfigError
from framework.train import build, check_user_plugins
from tests.helpers import make_cfg

TANH = '''from framework import ElementwiseActivation
from framework.registry import activations


@activations.register("{name}")
class Tanh(ElementwiseActivation):
    def forward(self, xp, z):
        return xp.tanh(z)

    def derivative(self, xp, z, a):
        return {derivative}
'''
SMALL = ["trainer.epochs=1", "model.hidden=[8]"]


def user_activation(folder, name, derivative):
    """Write and load the plugin (as the train CLI does before Hydra composes); its plugins.paths override."""
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(TANH.format(name=name, derivative=derivative))
    discovery.load_paths([folder])
    return f"plugins.paths=[{folder}]"


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize("name,derivative,ratio", [("flipped", "-(1 - a * a)", "max relative error 2.00e\\+00"),
                                                    ("doubled", "2 * (1 - a * a)", "max relative error 5.00e-01")])
def test_a_wrong_derivative_stops_the_run_with_the_checkers_message(tmp_path, name, derivative, ratio):
    paths = user_activation(tmp_path / "mine", name, derivative)
    with pytest.raises(ConfigError, match=rf"^2 conformance check\(s\) failed \(python -m framework.check_plugins "
                                          rf"{name}\), so the run did not start; plugins.check=false skips them: "
                                          rf"activation '{name}' gradcheck: gradcheck activation '{name}': FAILED, "
                                          rf".*{ratio}.*; activation '{name}' extreme: "):
        build(make_cfg(*SMALL, paths, f"activation={name}"))
    t = build(make_cfg(*SMALL, paths, f"activation={name}", "plugins.check=false"))
    assert t.model.activations[0].name == name


@pytest.mark.usefixtures("isolated")
def test_a_correct_user_plugin_is_checked_in_well_under_a_second(tmp_path, monkeypatch):
    paths = user_activation(tmp_path / "mine", "my_tanh", "1 - a * a")
    build(make_cfg(*SMALL, paths, "activation=my_tanh"))
    monkeypatch.setattr(train_module, "_PASSED", set())  # build() checked it already: time a fresh check
    start = time.perf_counter()
    check_user_plugins({"activation": ["my_tanh", "identity"], "loss": ["cross_entropy"], "optimizer": ["adam"]})
    assert time.perf_counter() - start < 0.5


@pytest.mark.usefixtures("isolated")
def test_a_passing_user_plugin_is_checked_once_per_process(tmp_path, monkeypatch):
    paths = user_activation(tmp_path / "mine", "my_tanh2", "1 - a * a")
    build(make_cfg(*SMALL, paths, "activation=my_tanh2"))  # checked here (and passed)
    calls = []
    monkeypatch.setattr(check_plugins, "check", lambda kind, name: calls.append(name) or [])
    build(make_cfg(*SMALL, paths, "activation=my_tanh2"))  # the next job of a sweep in this process
    assert calls == []

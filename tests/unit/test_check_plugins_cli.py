"""`python -m framework.check_plugins` and its API `check`: one line per check and a summary, user plugin
folders, import failures, unknown names, `--plot` pictures (`framework.extend.pictures.plot_plugin`)."""
import importlib.util

import pytest

from framework import UnknownNameError
from framework.check_plugins import check, main
from framework.extend import conformance
from framework.extend.pictures import plot_plugin
from framework.registry import KINDS, Registry
from tests.unit.test_plugin_checks import WrongDerivative

# a tanh with a wrong derivative also fails its reference (torch.nn.functional.tanh) where torch is installed
BAD_TANH_FAILS = ["gradcheck", "extreme"] + (["reference"] if importlib.util.find_spec("torch") else [])


def test_check_api_returns_the_failures():
    assert check("activation", "tanh") == []
    registry = Registry("activation")
    registry.register("bad")(WrongDerivative)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(KINDS, "activation", registry)
        failures = check("activation", "bad")
    assert [f.split(":")[0] for f in failures] == BAD_TANH_FAILS
    with pytest.raises(UnknownNameError, match="unknown plugin kind 'activations'. Did you mean 'activation'"):
        check("activations", "tanh")


def test_cli_prints_one_line_per_check_and_a_summary(capsys):
    assert main(["tanh", "mse", "sgd"]) == 0  # mse: the loss and the metric
    lines = capsys.readouterr().out.splitlines()
    n = sum(len(conformance.CHECKS[k]) for k in ("activation", "loss", "optimizer", "metric"))
    assert len(lines) == n + 1 and lines[-1] == f"summary: 4 plugins, {n} checks, 0 failed"
    assert lines[0].split() == ["activation", "tanh", "config", "ok", "(no", "arguments)"]
    references = [line.split(None, 4)[4] for line in lines if line.split()[2:3] == ["reference"]]
    if importlib.util.find_spec("torch") is None:
        assert references[2] == "reference torch.optim.SGD: skipped (torch is not installed)"
    else:  # one per plugin: tanh, mse (the loss), sgd, mse (the metric)
        assert references[2].startswith("reference torch.optim.SGD: worst rel. error ") and references[2].endswith(
            " over 20 steps")
    assert len(references) == 4 and references[1].startswith("reference torch.nn.functional.mse_loss: ")


@pytest.mark.usefixtures("isolated")
def test_cli_checks_the_plugins_of_paths_and_names_the_failure(tmp_path, capsys):
    (tmp_path / "bad.py").write_text(
        "from framework.registry import activations\n"
        "Tanh = activations.get('tanh')\n\n\n"
        "@activations.register('bad_tanh')\n"
        "class BadTanh(Tanh):\n"
        "    def derivative(self, xp, z, a):\n"
        "        return 1 - a\n")
    assert main(["--paths", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    checks = len(conformance.CHECKS["activation"])
    assert "sigmoid" not in out and f"summary: 1 plugin, {checks} checks, {len(BAD_TANH_FAILS)} failed" in out
    assert "FAIL activation 'bad_tanh' gradcheck: gradcheck activation 'bad_tanh': FAILED, max relative error" in out
    assert "analytic" in out and "numeric" in out


@pytest.mark.usefixtures("isolated")
def test_cli_import_failure_exits_1_naming_the_file(tmp_path, capsys):
    (tmp_path / "broken.py").write_text("import numpy as np\nnp.nonexistent\n")
    assert main(["--paths", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL plugin file '{tmp_path / 'broken.py'}' failed to import (line 2): AttributeError" in out


def test_cli_unknown_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sigmod"])
    assert e.value.code == 2 and "unknown plugin 'sigmod'. Did you mean 'sigmoid'?" in capsys.readouterr().err


def test_cli_plot_writes_an_svg_per_activation_and_loss(tmp_path, capsys):
    assert main(["softmax", "cross_entropy", "sgd", "--plot", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["activation_softmax.svg", "loss_cross_entropy.svg"]
    assert f"plot         ok    {tmp_path / 'activation_softmax.svg'}" in capsys.readouterr().out


@pytest.mark.parametrize("kind,name,config", [("activation", "leaky_relu", {"alpha": 0.2}), ("loss", "bce", {}),
                                              ("loss", "bce_with_logits", {}), ("loss", "huber", {"delta": 2.0})])
def test_plot_plugin_writes_an_svg_with_three_curves(tmp_path, kind, name, config):
    import xml.etree.ElementTree as ET

    path = plot_plugin(kind, name, tmp_path / "sub" / "p.svg", **config)
    svg = ET.parse(path).getroot()
    assert len(list(svg.iter("{http://www.w3.org/2000/svg}polyline"))) >= 3


def test_plot_plugin_rejects_kinds_without_a_plot(tmp_path):
    with pytest.raises(ValueError, match="plots exist for activation, loss"):
        plot_plugin("optimizer", "sgd", tmp_path / "p.svg")

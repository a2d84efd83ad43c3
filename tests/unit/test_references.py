"""The `reference` check (`framework.extend.conformance.reference`): every built-in that has a counterpart
in torch or scikit-learn declares it and matches it within its kind's tolerance; the check's line names the
worst error, a missing library is a printed skip, a wrong reference name fails. Faults it catches (a NAdam
with a sign error, the user's one-cycle): tests/unit/test_plugin_checks.py. Non-default arguments:
test_optimizers.py, test_builtin_reference_values.py."""
import re
import sys

import pytest

from framework.extend import conformance
from framework.extend.conformance import reference
from framework.registry import KINDS, Registry, optimizers
from tests.unit.nadam import NAdam

# built-ins with no counterpart: the NumPy backend is the backends' reference; these data sets are drawn
# or read by the framework (no loader elsewhere gives their rows)
NO_REFERENCE = {("backend", "numpy"), *(("dataset", n) for n in (
    "file", "mnist1d", "moons", "sigmoid_fit", "spirals", "views", "xor"))}
LINE = re.compile(r"reference (\S+): worst rel\. error (\S+) over .+")


@pytest.mark.parametrize("kind,name", [pytest.param(k, n, id=f"{k}-{n}") for k, n, c in conformance.cases()
                                       if c == "reference"])
def test_builtin_matches_its_reference(kind, name):
    outcome = conformance.run(KINDS[kind], name, "reference")
    assert outcome.ok, str(outcome)
    if (kind, name) in NO_REFERENCE:
        assert outcome.figure == reference.NONE
        return
    if ": skipped (" in outcome.figure:
        pytest.skip(outcome.figure)  # e.g. "reference torch.nn.functional.silu: skipped (torch is not installed)"
    match = LINE.fullmatch(outcome.figure)
    assert match, f"{kind} {name} declares no reference or prints no error: {outcome.figure}"
    assert float(match[2]) <= getattr(conformance, kind).TOL  # the kind's module's tolerance


def test_a_plugin_written_outside_matches_its_reference():
    registry = Registry("optimizer")
    registry.register("nadam")(NAdam)
    figure = conformance.run(registry, "nadam", "reference").figure
    if ": skipped (" in figure:
        pytest.skip(figure)
    assert LINE.fullmatch(figure) and figure.startswith("reference torch.optim.NAdam: worst rel. error")
    assert figure.endswith("over 20 steps") and float(LINE.fullmatch(figure)[2]) < 1e-14


def reference_or_skip(plugin):
    """The object `plugin.reference` names; the test skips, saying why, where its library is missing."""
    try:
        return reference.resolve(plugin.reference)
    except reference.Missing as e:
        pytest.skip(f"reference {plugin.reference}: skipped ({e})")


def test_missing_library_prints_a_skip(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    for kind, name in (("optimizer", "adam"), ("activation", "silu"), ("scheduler", "one_cycle")):
        outcome = conformance.run(KINDS[kind], name, "reference")
        assert outcome.ok and outcome.figure.endswith(": skipped (torch is not installed)"), str(outcome)
    assert conformance.run(KINDS["optimizer"], "adam", "reference").figure == (
        "reference torch.optim.Adam: skipped (torch is not installed)")


def test_wrong_reference_name_fails():
    registry = Registry("optimizer")
    registry.register("typo")(type("Typo", (optimizers.get("adam"),), {"reference": "numpy.linalg.adam"}))
    outcome = conformance.run(registry, "typo", "reference")
    assert not outcome.ok and "reference numpy.linalg.adam: numpy.linalg has no 'adam'" in outcome.figure


def test_relative_error_judges_tiny_entries_against_the_scale():
    assert reference.rel_error([1.0, 0.0], [1.0, 1e-22]) == pytest.approx(1e-14)  # 1e-22 / (1e-8 * 1)
    assert reference.rel_error([1.0, -1.0], [1.0, 1.0]) == 2.0
    assert reference.rel_error([float("nan")], [1.0]) == float("inf")
    assert reference.rel_error([float("inf"), float("nan")], [float("inf"), float("nan")]) == 0.0

"""Reference values of the built-ins: closed forms, and other than default arguments against their declared
references (the `compare` of the kind's conformance module). The generic contract of every registered
plugin (gradient checks on ordinary and extreme inputs, dtype and shape, no input mutation, weights, config
round trip, the reference with the defaults) is `framework.extend.conformance`, run per plugin by
tests/unit/test_plugin_checks.py and tests/unit/test_references.py."""
import math

import numpy as np
import pytest

from framework.extend import conformance
from framework.registry import activations, losses, schedulers
from tests.unit.test_references import reference_or_skip


def test_sigmoid_saturates_exactly():
    a = activations.create("sigmoid").forward(np, np.array([-1e4, 1e4]))
    np.testing.assert_array_equal(a, [0.0, 1.0])


def test_cross_entropy_matches_reference_and_torch_reduction():
    z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
    t = np.array([0, 2])
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    ce = losses.create("cross_entropy")
    assert float(ce.forward(np, z, t)) == pytest.approx(-np.mean(np.log(p[[0, 1], t])))
    w = np.array([1.0, 3.0])
    assert float(ce.forward(np, z, t, w)) == pytest.approx(-(np.log(p[0, 0]) + 3 * np.log(p[1, 2])) / 4)


# ---- activation forwards against reference values ---------------------------------------------------

Z = np.array([[-30.0, -3.0, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 1.0, 3.0, 30.0]])
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946  # Klambauer 2017
_erf = np.vectorize(math.erf)


def _closed_forms():
    """name -> (config, f(z)) written from the textbook formulas (math.erf, no framework code)."""
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731 - |z| <= 30: no overflow
    return {
        "identity": ({}, lambda z: z),
        "sigmoid": ({}, sig),
        "tanh": ({}, np.tanh),
        "relu": ({}, lambda z: np.maximum(z, 0)),
        "leaky_relu": ({"alpha": 0.1}, lambda z: np.where(z > 0, z, 0.1 * z)),
        "elu": ({"alpha": 0.7}, lambda z: np.where(z > 0, z, 0.7 * (np.exp(z) - 1))),
        "selu": ({}, lambda z: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * (np.exp(z) - 1))),
        "gelu": ({}, lambda z: z * 0.5 * (1 + _erf(z / math.sqrt(2)))),
        "softplus": ({"beta": 2.0}, lambda z: np.log1p(np.exp(2 * z)) / 2),
        "silu": ({}, lambda z: z * sig(z)),
        "swish": ({"beta": 1.5}, lambda z: z * sig(1.5 * z)),
        "softmax": ({}, lambda z: np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)),
    }


def test_every_builtin_activation_has_a_reference():
    assert set(activations.names()) <= set(_closed_forms()), "add the new activation's formula here"


@pytest.mark.parametrize("name", sorted(_closed_forms()))
def test_activation_forward_matches_closed_form(name):
    config, f = _closed_forms()[name]
    np.testing.assert_allclose(activations.create(name, **config).forward(np, Z), f(Z), rtol=1e-13, atol=1e-300)


def test_selu_and_gelu_constants():
    selu = activations.create("selu")
    assert (selu.ALPHA, selu.SCALE) == (SELU_ALPHA, SELU_SCALE)
    # gelu(1) = Phi(1) = 0.841344746068543 (standard normal CDF); the tanh form gives 0.8411919906082768
    assert float(activations.create("gelu").forward(np, np.array(1.0))) == pytest.approx(0.841344746068543, rel=1e-14)
    assert float(activations.create("gelu", approximate="tanh").forward(np, np.array(1.0))) == pytest.approx(
        0.8411919906082768, rel=1e-14)


# ---- other than default arguments against the declared references (the check runs the defaults) ------

OTHER_ARGUMENTS = [
    (activations, "leaky_relu", {"alpha": 0.1}), (activations, "elu", {"alpha": 0.7}),
    (activations, "softplus", {"beta": 2.0}), (activations, "gelu", {"approximate": "tanh"}),
    (losses, "huber", {"delta": 0.5}),
]


@pytest.mark.parametrize("registry,name,config", OTHER_ARGUMENTS, ids=[f"{n}-{c}" for _, n, c in OTHER_ARGUMENTS])
def test_matches_its_reference_with_other_arguments(registry, name, config):
    plugin = registry.create(name, **config)
    checks = getattr(conformance, registry.kind)
    worst, _ = checks.compare(plugin, reference_or_skip(plugin))
    assert worst <= checks.TOL


SCHEDULES = [  # (name, config, total steps, steps per epoch): runs that end mid-epoch, fractional warm-ups
    ("one_cycle", {"anneal": "linear", "pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0}, 103, 10),
    ("one_cycle", {}, 40, 40),
    ("cosine", {"min_factor": 0.1, "warmup_epochs": 1.5}, 97, 8),
    ("linear", {"end_factor": 0.1, "warmup_epochs": 0.5}, 61, 6),
    ("step", {"step_size": 2, "gamma": 0.5, "warmup_epochs": 1.0}, 50, 7),
    ("exponential", {"gamma": 0.9}, 45, 4),
]


@pytest.mark.parametrize("name,config,total,spe", SCHEDULES)
def test_schedule_matches_torch(name, config, total, spe):
    """The lr of every update against the torch scheduler the plugin names (to 1e-12 at base lr 1)."""
    sched = schedulers.create(name, **config)
    worst, _ = conformance.scheduler.compare(sched, reference_or_skip(sched), total, spe)
    assert worst <= 1e-12, worst

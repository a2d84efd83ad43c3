"""Reference values of the built-ins. The generic contract of every registered plugin (gradient checks
on ordinary and extreme inputs, dtype and shape, no input mutation, weights, config round trip) is
`framework.extend.conformance`, run per plugin by tests/unit/test_plugin_checks.py."""
import math

import numpy as np
import pytest

from framework.registry import activations, losses


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


def test_losses_agree_with_torch():
    torch = pytest.importorskip("torch", reason="torch not installed: cross-check against PyTorch skipped")
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    prob, bits = rng.uniform(0.05, 0.95, (6, 3)), rng.integers(0, 2, (6, 3)).astype(float)
    logits, classes = rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
    T = torch.tensor
    cases = {
        "mse": (pred, target, F.mse_loss(T(pred), T(target))),
        "mae": (pred, target, F.l1_loss(T(pred), T(target))),
        "huber": (pred, target, F.huber_loss(T(pred), T(target))),
        "bce": (prob, bits, F.binary_cross_entropy(T(prob), T(bits))),
        "bce_with_logits": (pred, bits, F.binary_cross_entropy_with_logits(T(pred), T(bits))),
        "cross_entropy": (logits, classes, F.cross_entropy(T(logits), T(classes))),
    }
    for name, (p, t, ref) in cases.items():
        assert float(losses.create(name).forward(np, p, t)) == pytest.approx(float(ref), rel=1e-12), name


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


def _torch_forms(torch):
    F, T = torch.nn.functional, torch.from_numpy
    return {
        "sigmoid": ({}, torch.sigmoid), "tanh": ({}, torch.tanh), "relu": ({}, F.relu),
        "leaky_relu": ({"alpha": 0.1}, lambda z: F.leaky_relu(z, 0.1)),
        "elu": ({"alpha": 0.7}, lambda z: F.elu(z, 0.7)), "selu": ({}, F.selu),
        "gelu": ({}, F.gelu), "gelu_tanh": ({"approximate": "tanh"}, lambda z: F.gelu(z, approximate="tanh")),
        "softplus": ({"beta": 2.0}, lambda z: F.softplus(z, beta=2.0, threshold=100)),
        "silu": ({}, F.silu), "softmax": ({}, lambda z: F.softmax(z, dim=-1)),
    }, T


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


def test_activation_forwards_match_torch():
    torch = pytest.importorskip("torch", reason="torch not installed: closed forms only")
    forms, T = _torch_forms(torch)
    for key, (config, f) in forms.items():
        name = key.removesuffix("_tanh")
        got = activations.create(name, **config).forward(np, Z)
        np.testing.assert_allclose(got, f(T(Z)).numpy(), rtol=1e-12, atol=1e-300, err_msg=key)

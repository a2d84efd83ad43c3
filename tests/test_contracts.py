"""Reference values of the built-ins. The generic contract of every registered plugin (gradient checks
on ordinary and extreme inputs, dtype and shape, no input mutation, weights, config round trip) is
`framework.conformance`, run per plugin by tests/test_conformance.py."""
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

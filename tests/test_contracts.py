"""Contract tests generated from the registries: a plugin is covered the moment it registers."""
import warnings

import numpy as np
import pytest

from framework.gradcheck import check_activation, check_loss, sample_loss_inputs
from framework.registry import activations, losses

ACTIVATIONS = activations.names()
LOSSES = losses.names()


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("seed", [0, 1])
def test_activation_gradcheck(name, seed):
    check_activation(activations.create(name), shape=(8, 6), seed=seed).raise_if_failed()


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_dtype_shape_no_mutation(name, dtype):
    act = activations.create(name)
    z = np.random.default_rng(0).normal(size=(5, 4)).astype(dtype)
    z0, g = z.copy(), np.ones_like(z)
    a = act.forward(np, z)
    d = act.backward(np, z, a, g)
    assert a.dtype == dtype and d.dtype == dtype
    assert a.shape == z.shape and d.shape == z.shape
    np.testing.assert_array_equal(z, z0)


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_extreme_inputs_are_finite_without_warnings(name, dtype):
    act = activations.create(name)
    z = np.array([[-1e4, -1e3, -50.0, 0.0, 50.0, 1e3, 1e4]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            a = act.forward(np, z)
            d = act.backward(np, z, a, np.ones_like(z))
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(d))


def test_sigmoid_saturates_exactly():
    a = activations.create("sigmoid").forward(np, np.array([-1e4, 1e4]))
    np.testing.assert_array_equal(a, [0.0, 1.0])


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_gradcheck(name, weighted):
    loss = losses.create(name)
    rng = np.random.default_rng(3)
    pred, target = sample_loss_inputs(loss, (7, 3), rng)
    w = rng.uniform(0.2, 2.0, 7) if weighted else None
    check_loss(loss, pred, target, w).raise_if_failed()


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_dtype_shape_no_mutation(name, dtype):
    loss = losses.create(name)
    pred, target = sample_loss_inputs(loss, (6, 3), np.random.default_rng(0))
    pred = pred.astype(dtype)
    target = target if loss.targets == "indices" else target.astype(dtype)
    p0, t0 = pred.copy(), target.copy()
    value, grad = loss.forward(np, pred, target), loss.backward(np, pred, target)
    assert np.ndim(value) == 0 and value.dtype == dtype
    assert grad.shape == pred.shape and grad.dtype == dtype
    np.testing.assert_array_equal(pred, p0)
    np.testing.assert_array_equal(target, t0)


@pytest.mark.parametrize("name", [n for n in LOSSES if losses.get(n).expects_logits])
def test_logit_losses_stable_for_huge_logits(name):
    loss = losses.create(name)
    pred, target = sample_loss_inputs(loss, (4, 3), np.random.default_rng(0))
    pred = np.sign(pred) * 1e4
    with np.errstate(all="raise", under="ignore"):
        value, grad = loss.forward(np, pred, target), loss.backward(np, pred, target)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


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

"""The seed lecture's formulas and worked numbers."""
import numpy as np
import pytest

from framework.model import MLP
from framework.registry import activations, losses, optimizers


def test_worked_example_forward():
    """W=[[1,-2],[-1,1]], x=[1,-1], b=[1,0] gives Z = Wx + b = [4,-2]."""
    m = MLP([2, 2], output_activation="identity", dtype="float64")
    m.params["layers.0.W"][...] = [[1, -2], [-1, 1]]
    m.params["layers.0.b"][...] = [1, 0]
    np.testing.assert_array_equal(m.forward(np.array([[1.0, -1.0]])), [[4.0, -2.0]])


def test_sigmoid_derivative_identity():
    sig = activations.create("sigmoid")
    z = np.linspace(-8, 8, 101)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(sig.forward(np, z), s, rtol=1e-15)
    np.testing.assert_allclose(sig.derivative(np, z, sig.forward(np, z)), s * (1 - s), rtol=1e-14)
    np.testing.assert_allclose(sig.derivative(np, z, s), np.exp(-z) / (1 + np.exp(-z)) ** 2, rtol=1e-12)


class HalfSquared(losses.get("l2")):
    """The seed's L = 1/2 (y - y_hat)^2."""

    def scale(self, pred):
        return 0.5


def test_two_two_one_network_matches_hand_derivation():
    """Section 1.6: the engine's gradients equal the closed forms of the chain-rule derivation."""
    rng = np.random.default_rng(7)
    m = MLP([2, 2, 1], "sigmoid", "sigmoid", dtype="float64", seed=3)
    x = rng.normal(size=(1, 2))
    y = np.array([[0.3]])
    (w11, w12), (w21, w22) = m.params["layers.0.W"] = rng.normal(size=(2, 2))
    b1, b2 = m.params["layers.0.b"] = rng.normal(size=2)
    w1, w2 = m.params["layers.1.W"][0] = rng.normal(size=2)
    x1, x2 = x[0]
    def sig(t):
        return 1 / (1 + np.exp(-t))
    h1, h2 = sig(w11 * x1 + w12 * x2 + b1), sig(w21 * x1 + w22 * x2 + b2)
    y_hat = sig(w1 * h1 + w2 * h2 + m.params["layers.1.b"][0])

    loss = HalfSquared()
    out = m.forward(x)
    assert out[0, 0] == pytest.approx(y_hat, rel=1e-14)
    m.backward(loss.backward(np, out, y))
    y0 = y[0, 0]
    dL_da = -(y0 - y_hat) * y_hat * (1 - y_hat)
    assert m.grads["layers.1.W"][0, 0] == pytest.approx(dL_da * h1, rel=1e-12)          # dL/dw1
    assert m.grads["layers.1.W"][0, 1] == pytest.approx(dL_da * h2, rel=1e-12)          # dL/dw2
    assert m.grads["layers.1.b"][0] == pytest.approx(dL_da, rel=1e-12)                  # dL/db
    dL_da1 = dL_da * w1 * h1 * (1 - h1)
    assert m.grads["layers.0.W"][0, 0] == pytest.approx(dL_da1 * x1, rel=1e-12)         # dL/dw11
    assert m.grads["layers.0.W"][0, 1] == pytest.approx(dL_da1 * x2, rel=1e-12)         # dL/dw12
    assert m.grads["layers.0.b"][0] == pytest.approx(dL_da1, rel=1e-12)                 # dL/db1
    assert m.grads["layers.0.W"][1, 0] == pytest.approx(dL_da * w2 * h2 * (1 - h2) * x1, rel=1e-12)


def test_sgd_step_is_w_minus_lr_g():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=3)}
    grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
    expected = {k: v - 0.1 * grads[k] for k, v in params.items()}
    optimizers.create("sgd", lr=0.1).step(params, grads)
    for k in params:
        np.testing.assert_array_equal(params[k], expected[k])


def test_mse_mae_are_l2_l1_over_n():
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    L = {n: float(losses.create(n).forward(np, pred, target)) for n in ("mse", "mae", "l1", "l2")}
    assert L["mse"] == pytest.approx(np.mean((target - pred) ** 2))
    assert L["l2"] == pytest.approx(pred.size * L["mse"])
    assert L["l1"] == pytest.approx(pred.size * L["mae"])


def test_weighted_l1_l2_are_the_seeds_weighted_sums():
    rng = np.random.default_rng(2)
    pred, target, w = rng.normal(size=(4, 1)), rng.normal(size=(4, 1)), rng.uniform(0.1, 3, 4)
    l2, l1 = losses.create("l2"), losses.create("l1")
    assert float(l2.forward(np, pred, target, w)) == pytest.approx(np.sum(w * (pred - target)[:, 0] ** 2))
    assert float(l1.forward(np, pred, target, w)) == pytest.approx(np.sum(w * np.abs(pred - target)[:, 0]))

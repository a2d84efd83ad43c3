"""Optimizers: PyTorch's update semantics with other than default arguments, and convergence (dtype, state
round trip and the defaults against torch: test_plugin_checks, test_references)."""
import numpy as np
import pytest

from framework import special
from framework.engine.gradients import clip_by_global_norm, global_norm
from framework.extend.conformance import optimizer as optimizer_checks
from framework.registry import backends, optimizers
from tests.unit.test_references import reference_or_skip

CONFIGS = {
    "sgd": [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)],
    "adam": [dict(lr=0.01), dict(lr=0.01, weight_decay=0.1)],
    "adamw": [dict(lr=0.01), dict(lr=0.01, weight_decay=0.1)],
    "rmsprop": [dict(lr=0.01), dict(lr=0.01, momentum=0.9, weight_decay=0.01)],
    "adagrad": [dict(lr=0.1), dict(lr=0.1, weight_decay=0.01)],
}


def test_every_optimizer_has_cases():
    assert set(CONFIGS) <= set(optimizers.names())


CASES = [(n, kw) for n, cs in CONFIGS.items() for kw in cs]


@pytest.mark.parametrize("arrays", ["plain", "backend"])
@pytest.mark.parametrize("name,kw", CASES)
def test_matches_its_reference_with_other_arguments(name, kw, arrays):
    """The reference check's comparison (`conformance.optimizer.compare`: 20 float64 steps against the
    declared torch.optim class; the check itself runs the defaults) on plain arrays (the standard's path)
    and on the NumPy backend's flat arrays (its BLAS axpy and `out=` writes: the path the trainer takes)."""
    opt = optimizers.create(name, **kw)
    target = reference_or_skip(opt)
    xp = backends.create("numpy", dtype="float64").xp if arrays == "backend" else None
    worst, _ = optimizer_checks.compare(opt, target, xp=xp)
    assert worst <= optimizer_checks.TOL, (name, kw, worst)


def _quadratic(p):
    A = np.diag([1.0, 10.0])
    return 0.5 * p @ A @ p, A @ p


def _rosenbrock(p):
    x, y = p
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2, np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


CONVERGE = {  # name -> (kwargs, steps) on the quadratic and on Rosenbrock
    "sgd": [(dict(lr=0.05), 500), (dict(lr=1e-3, momentum=0.9), 20000)],
    "adam": [(dict(lr=0.05), 2000), (dict(lr=0.02), 20000)],
    "adamw": [(dict(lr=0.05, weight_decay=0.0), 2000), (dict(lr=0.02, weight_decay=0.0), 20000)],
    "rmsprop": [(dict(lr=0.01), 2000), (dict(lr=1e-3, momentum=0.9), 20000)],
    "adagrad": [(dict(lr=0.5), 2000), (dict(lr=0.5), 20000)],
}


@pytest.mark.parametrize("name", sorted(CONVERGE))
@pytest.mark.parametrize("problem", ["quadratic", pytest.param("rosenbrock", marks=pytest.mark.slow)])  # 20000 steps
def test_converges(name, problem):
    fn, target, start = {"quadratic": (_quadratic, np.zeros(2), [3.0, -2.0]),
                         "rosenbrock": (_rosenbrock, np.ones(2), [-1.2, 1.0])}[problem]
    kw, steps = CONVERGE[name][problem == "rosenbrock"]
    opt = optimizers.create(name, **kw)
    params = {"p": np.array(start)}
    f0 = fn(params["p"])[0]
    for _ in range(steps):
        opt.step(params, {"p": fn(params["p"])[1]})
    f1 = fn(params["p"])[0]
    assert f1 < 1e-3 * f0 and np.linalg.norm(params["p"] - target) < 0.05, (f0, f1, params["p"])


def test_clip_by_global_norm_matches_torch_rule():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert global_norm(np, grads) == pytest.approx(5.0)
    total = clip_by_global_norm(np, grads, max_norm=1.0)
    assert float(total) == pytest.approx(5.0)
    assert global_norm(np, grads) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(grads["a"], [3.0 / (5.0 + 1e-6), 0.0])
    unchanged = {"a": np.array([0.3, 0.4])}
    clip_by_global_norm(np, unchanged, max_norm=1.0)
    np.testing.assert_array_equal(unchanged["a"], [0.3, 0.4])
    # the same rule for a 0-d array total (device backends) and a Python float (host backends' records)
    for total in (np.array(5.0, np.float32), 5.0):
        grads = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([[4.0]], np.float32)}
        a = grads["a"]
        assert float(clip_by_global_norm(np, grads, 1.0, total)) == 5.0 and grads["a"] is a
        np.testing.assert_allclose(grads["a"], [3.0 / (5.0 + 1e-6), 0.0], rtol=1e-6)
        before = grads["a"].copy()
        clip_by_global_norm(np, grads, 10.0, total)  # 5 <= 10: untouched
        np.testing.assert_array_equal(grads["a"], before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_one_pass_update_where_it_applies(dtype):
    """The NumPy backend's declared axpy (SciPy's BLAS) runs y += alpha x on float32/64 arrays that flatten
    without a copy (also a strided view) and declines elsewhere (float16, a transposed view, mixed
    dtypes); `special.axpy` on its namespace gives p - lr g on every path, and leaves the rest of a viewed
    array alone."""
    be = backends.create("numpy")
    fast = be.capabilities.axpy
    rng = np.random.default_rng(3)
    p, g = rng.normal(size=(6, 8)).astype(dtype), rng.normal(size=(6, 8)).astype(dtype)
    strided, transposed = np.zeros((6, 16), dtype), np.zeros((8, 6), dtype)
    strided[:, ::2], transposed[...] = p, p.T
    applies = dtype != np.float16
    assert fast(p.copy(), -0.1, g) == applies == fast(strided.copy()[:, ::2], -0.1, g)
    assert not fast(transposed.copy().T, -0.1, g)
    assert not fast(p.astype(np.float64), -0.1, g.astype(np.float32))
    want = p.astype(np.float64) - 0.1 * g.astype(np.float64)
    tol = {np.float16: 1e-3, np.float32: 1e-6, np.float64: 1e-14}[dtype]
    for y in (p.copy(), strided[:, ::2], transposed.T):
        special.axpy(be.xp, y, -0.1, g, np.empty_like(g))
        np.testing.assert_allclose(y.astype(np.float64), want, rtol=tol, atol=tol)
    assert not strided[:, 1::2].any()

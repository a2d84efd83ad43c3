"""Optimizers: PyTorch's update semantics and convergence (dtype and state round-trip: test_plugin_checks)."""
import inspect

import numpy as np
import pytest

from framework import special
from framework.engine.gradients import clip_by_global_norm, global_norm
from framework.flat import flat_zeros
from framework.registry import backends, optimizers

CONFIGS = {
    "sgd": [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)],
    "adam": [dict(lr=0.01), dict(lr=0.01, weight_decay=0.1)],
    "adamw": [dict(lr=0.01), dict(lr=0.01, weight_decay=0.1)],
    "rmsprop": [dict(lr=0.01), dict(lr=0.01, momentum=0.9, weight_decay=0.01)],
    "adagrad": [dict(lr=0.1), dict(lr=0.1, weight_decay=0.01)],
}


def test_every_optimizer_has_cases():
    assert set(CONFIGS) <= set(optimizers.names())


def _to_torch_kwargs(kw):
    kw = dict(kw)
    if "beta1" in kw or "beta2" in kw:
        kw["betas"] = (kw.pop("beta1", 0.9), kw.pop("beta2", 0.999))
    return kw


TORCH_CLASSES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}


def _torch_steps(torch, name: str, t_kw: dict, w0: np.ndarray, grads: list) -> np.ndarray:
    """`w0` after one step per gradient by PyTorch's functional update `torch.optim.<name>.<name>` (what the
    class's `step` calls) with the class's defaults and initial state. No optimizer object is made: making
    one imports torch._dynamo (~2.5 s CPU); test_functional_reference_is_the_torch_class checks the two agree."""
    import importlib

    cls = getattr(torch.optim, TORCH_CLASSES[name])
    kw = {k: p.default for k, p in inspect.signature(cls).parameters.items() if p.default is not p.empty} | t_kw
    w = torch.tensor(w0.copy())
    zeros, steps = (lambda: [torch.zeros_like(w)]), [torch.tensor(0.0)]
    if name in ("adam", "adamw"):
        state = [zeros(), zeros(), zeros() if kw["amsgrad"] else [], steps]
        args = dict(amsgrad=kw["amsgrad"], beta1=kw["betas"][0], beta2=kw["betas"][1], lr=kw["lr"],
                    weight_decay=kw["weight_decay"], eps=kw["eps"], maximize=kw["maximize"])
    elif name == "sgd":
        state = [[None]]  # the momentum buffer, made by the first step
        args = {k: kw[k] for k in ("weight_decay", "momentum", "lr", "dampening", "nesterov", "maximize")}
    elif name == "rmsprop":
        state = [zeros(), zeros() if kw["centered"] else [], zeros() if kw["momentum"] > 0 else [], steps]
        args = {k: kw[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")}
    else:
        state = [[torch.full_like(w, kw["initial_accumulator_value"])], steps]
        args = {k: kw[k] for k in ("lr", "weight_decay", "lr_decay", "eps", "maximize")}
    update = getattr(importlib.import_module(f"torch.optim.{name}"), name)
    for g in grads:
        update([w], [torch.tensor(g)], *state, foreach=False, **args)
    return w.numpy()


CASES = [(n, kw) for n, cs in CONFIGS.items() for kw in cs]


@pytest.mark.parametrize("arrays", ["plain", "backend"])
@pytest.mark.parametrize("name,kw", CASES)
def test_matches_torch_optimizer(name, kw, arrays):
    """On plain arrays (the standard's path) and on the NumPy backend's flat arrays (its BLAS axpy and
    `out=` writes: the path the trainer takes)."""
    torch = pytest.importorskip("torch", reason="torch not installed: cross-check against PyTorch skipped")
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3))
    grads = [rng.normal(size=w0.shape) for _ in range(5)]
    if arrays == "backend":  # as the model makes them: views of one flat buffer each
        xp = backends.create("numpy", dtype="float64").xp
        ours, grad = flat_zeros(xp, {"w": w0.shape}, np.float64, {"w": w0}), flat_zeros(xp, {"w": w0.shape}, np.float64)
    else:
        ours, grad = {"w": w0.copy()}, {"w": np.zeros_like(w0)}
    opt = optimizers.create(name, **kw)
    for g in grads:
        grad["w"][...] = g
        opt.step(ours, grad)
    # options left out take each side's defaults (the classes' signatures): equal results check those too
    np.testing.assert_allclose(ours["w"], _torch_steps(torch, name, _to_torch_kwargs(kw), w0, grads), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.slow  # making a torch optimizer imports torch._dynamo: ~2.5 s CPU
def test_functional_reference_is_the_torch_class():
    """_torch_steps gives what torch.optim's classes give, bit for bit (every case above, and the
    options those leave at their defaults: centered RMSprop, Adagrad's lr_decay and initial accumulator)."""
    torch = pytest.importorskip("torch", reason="torch not installed: cross-check against PyTorch skipped")
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(4, 3))
    grads = [rng.normal(size=w0.shape) for _ in range(5)]
    more = [("rmsprop", dict(lr=0.01, centered=True, momentum=0.5)),
            ("adagrad", dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.3))]
    for name, kw in CASES + more:
        t_kw = _to_torch_kwargs(kw)
        tw = torch.tensor(w0.copy(), requires_grad=True)
        topt = getattr(torch.optim, TORCH_CLASSES[name])([tw], **t_kw)
        for g in grads:
            tw.grad = torch.tensor(g)
            topt.step()
        assert np.array_equal(tw.detach().numpy(), _torch_steps(torch, name, t_kw, w0, grads)), (name, kw)


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

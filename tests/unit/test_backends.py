"""Backend contract: every available backend computes what NumPy computes.

Parametrized over NumPy, array-api-strict (the standard's reference: it rejects anything outside the
Array API, so a plugin that passes here is portable), torch through array-api-compat when installed,
and CuPy when a CUDA GPU is present (skipped otherwise, with the reason). Every registered activation,
loss and optimizer is covered.
"""

import numpy as np
import pytest

from framework.engine.data import Dataset, Splits
from framework.engine.gradients import clip_by_global_norm, global_norm
from framework.engine.step import train_step
from framework.engine.trainer import EpochPosition, Trainer
from framework.errors import ConfigError, DivergenceError
from framework.gradcheck import check_model, sample_loss_inputs
from framework.model import MLP
from framework.registry import activations, backends, losses, optimizers


def _probe(make):
    """(available, reason) for a backend factory."""
    try:
        make("float64")
    except (ConfigError, ImportError) as e:
        return False, str(e)
    return True, ""


def _torch_available():
    try:
        import array_api_compat  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        return False, f"torch or array-api-compat not installed ({e})"
    return True, ""


FACTORIES = {
    "numpy": lambda dt: backends.create("numpy", dtype=dt),
    "array_api_strict": lambda dt: backends.create("array_api", namespace="array_api_strict", dtype=dt),
    "torch": lambda dt: backends.create("array_api", namespace="torch", dtype=dt),
    "cupy": lambda dt: backends.create("cupy", dtype=dt),
}
_AVAILABLE = {
    "numpy": (True, ""),
    "array_api_strict": _probe(FACTORIES["array_api_strict"]),
    "torch": _torch_available(),
    "cupy": _probe(FACTORIES["cupy"]),
}


def _param(name):
    ok, reason = _AVAILABLE[name]
    marks = [pytest.mark.skipif(not ok, reason=f"backend {name} unavailable: {reason}")]
    if name == "cupy":
        marks.append(pytest.mark.gpu)
    return pytest.param(name, marks=marks, id=name)


BACKENDS = [_param(n) for n in FACTORIES]
OTHERS = [_param(n) for n in FACTORIES if n != "numpy"]  # compared against NumPy
DTYPES = ["float32", "float64"]
ACTIVATIONS = activations.names()
LOSSES = losses.names()
OPTIMIZER_CASES = {
    "sgd": [dict(lr=0.1), dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)],
    "adam": [dict(lr=0.01), dict(lr=0.01, weight_decay=0.1)],
    "adamw": [dict(lr=0.01, weight_decay=0.1)],
    "rmsprop": [dict(lr=0.01), dict(lr=0.01, momentum=0.9, weight_decay=0.01)],
    "adagrad": [dict(lr=0.1, weight_decay=0.01)],
}
TOL = dict(rtol=1e-12, atol=1e-12)


def make(name, dtype="float64"):
    return FACTORIES[name](dtype)


def host(be, x):
    return np.asarray(be.to_numpy(x))


def is_on(be, x) -> bool:
    """Whether x is an array of the backend's library (not a host NumPy array on a device backend).
    NumPy reductions return NumPy scalars, which count as NumPy's."""
    kind = type(be.asarray(np.zeros(1)))
    return type(x) is kind or (kind is np.ndarray and isinstance(x, np.generic))


def loss_inputs(loss, be, dtype, rng, shape=(6, 3), weighted=False):
    """Host (pred, target, weight) and their backend copies."""
    pred, target = sample_loss_inputs(loss, shape, rng)
    pred = pred.astype(dtype)
    target = target if loss.targets == "indices" else target.astype(dtype)
    weight = rng.uniform(0.2, 2.0, shape[0]).astype(dtype) if weighted else None
    tdt = "int64" if loss.targets == "indices" else dtype
    dev = (be.asarray(pred, dtype), be.asarray(target, tdt), None if weight is None else be.asarray(weight, dtype))
    return (pred, target, weight), dev


# ---- backend basics -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_asarray_to_numpy_round_trip(name, dtype):
    be = make(name, dtype)
    x = np.random.default_rng(0).normal(size=(3, 4))
    d = be.asarray(x)
    assert is_on(be, d) and d.dtype == be.resolve_dtype(dtype)
    back = be.to_numpy(d)
    assert isinstance(back, np.ndarray) and back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, x.astype(dtype))
    assert be.asarray(d) is d, "an array already on the backend with its dtype must not be copied"
    be.synchronize()


@pytest.mark.parametrize("name", BACKENDS)
def test_model_backend_accepts_name_or_instance(name):
    be = make(name, "float64")
    m = MLP([3, 4, 2], backend=be, dtype="float64")
    assert m.backend is be
    assert all(is_on(be, p) for p in m.params.values())
    if name in ("numpy", "cupy"):
        assert MLP([3, 2], backend=name).backend.name == name


@pytest.mark.skipif(_AVAILABLE["cupy"][0], reason="CuPy and CUDA are available here")
def test_cupy_unavailable_says_how_to_fix():
    with pytest.raises(ConfigError) as e:
        backends.create("cupy")
    msg = str(e.value)
    assert "not available" in msg and "pip install -e '.[gpu]'" in msg and "backend=numpy" in msg


def test_array_api_unknown_namespace_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot import namespace 'no_such_array_lib'"):
        backends.create("array_api", namespace="no_such_array_lib")


# ---- plugins against NumPy -------------------------------------------------------------------------

@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("act_name", ACTIVATIONS)
def test_activation_matches_numpy(name, act_name):
    be, act = make(name), activations.create(act_name)
    rng = np.random.default_rng(1)
    z, g = rng.normal(0, 2, (7, 5)), rng.normal(size=(7, 5))
    a0 = act.forward(np, z)
    d0 = act.backward(np, z, a0, g)
    a = act.forward(be.xp, be.asarray(z))
    d = act.backward(be.xp, be.asarray(z), a, be.asarray(g))
    assert is_on(be, a) and is_on(be, d)
    np.testing.assert_allclose(host(be, a), a0, **TOL)
    np.testing.assert_allclose(host(be, d), d0, **TOL)


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_matches_numpy(name, loss_name, weighted):
    be, loss = make(name), losses.create(loss_name)
    (p, t, w), (P, T, W) = loss_inputs(loss, be, "float64", np.random.default_rng(2), weighted=weighted)
    v, g = loss.forward(be.xp, P, T, W), loss.backward(be.xp, P, T, W)
    assert is_on(be, v) and is_on(be, g) and v.ndim == 0
    np.testing.assert_allclose(host(be, v), loss.forward(np, p, t, w), **TOL)
    np.testing.assert_allclose(host(be, g), loss.backward(np, p, t, w), **TOL)
    np.testing.assert_allclose(host(be, loss.predict(be.xp, P)), loss.predict(np, p), **TOL)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_preserved(name, dtype):
    be = make(name, dtype)
    dt = be.resolve_dtype(dtype)
    rng = np.random.default_rng(3)
    z = be.asarray(rng.normal(size=(5, 4)))
    for act_name in ACTIVATIONS:
        act = activations.create(act_name)
        a = act.forward(be.xp, z)
        d = act.backward(be.xp, z, a, be.xp.ones_like(z))
        assert a.dtype == dt and d.dtype == dt, act_name
    for loss_name in LOSSES:
        loss = losses.create(loss_name)
        _, (P, T, W) = loss_inputs(loss, be, dtype, rng, weighted=True)
        v, g = loss.forward(be.xp, P, T, W), loss.backward(be.xp, P, T, W)
        assert v.dtype == dt and g.dtype == dt, loss_name
    m = MLP([4, 6, 3], "tanh", backend=be, dtype=dtype)
    out = m.forward(rng.normal(size=(5, 4)))
    m.backward(be.xp.ones_like(out))
    assert out.dtype == dt and all(g.dtype == dt for g in m.grads.values())
    for opt_name in optimizers.names():
        opt = optimizers.create(opt_name)
        opt.step(m.params, m.grads)
        assert all(p.dtype == dt for p in m.params.values()), opt_name
    assert be.sq_norms(list(m.grads.values())).dtype == dt


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("opt_name,kw", [(n, kw) for n, cs in OPTIMIZER_CASES.items() for kw in cs])
def test_optimizer_step_matches_numpy(name, opt_name, kw):
    be = make(name)
    rng = np.random.default_rng(4)
    p0 = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=3)}
    ref, ours = {k: v.copy() for k, v in p0.items()}, {k: be.asarray(v) for k, v in p0.items()}
    o_ref, o_ours = optimizers.create(opt_name, **kw), optimizers.create(opt_name, **kw)
    for _ in range(5):
        g = {k: rng.normal(size=v.shape) for k, v in p0.items()}
        o_ref.step(ref, g)
        o_ours.step(ours, {k: be.asarray(v) for k, v in g.items()})
    for k in p0:
        assert is_on(be, ours[k])
        np.testing.assert_allclose(host(be, ours[k]), ref[k], **TOL)
    for key, val in o_ours.state_dict().items():
        if key != "t":
            assert is_on(be, val), f"optimizer state {key} left the backend"
            np.testing.assert_allclose(host(be, val), o_ref.state_dict()[key], **TOL)


# ---- the model -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("act,out_act,loss_name", [
    ("tanh", "identity", "cross_entropy"),
    (["relu", "gelu"], "sigmoid", "bce"),
    ("silu", "identity", "huber"),
])
def test_model_gradcheck(name, act, out_act, loss_name):
    be = make(name)
    rng = np.random.default_rng(5)
    m = MLP([3, 5, 4, 2], act, out_act, backend=be, dtype="float64", initializer="xavier_normal", seed=1)
    loss = losses.create(loss_name)
    _, target = sample_loss_inputs(loss, (5, 2), rng)  # 54 parameters and 15 inputs, each differenced
    X, weight = rng.normal(size=(5, 3)), rng.uniform(0.5, 2.0, 5)
    check_model(m, X, loss, target).raise_if_failed()
    check_model(m, X, loss, target, weight).raise_if_failed()


@pytest.mark.parametrize("name", BACKENDS)
def test_everything_stays_on_the_backend(name):
    """Parameters, gradients, optimizer state and gradient norms are arrays of the backend's library."""
    be = make(name, "float32")
    rng = np.random.default_rng(6)
    m = MLP([4, 8, 3], "relu", backend=be)
    opt, loss = optimizers.create("adam"), losses.create("cross_entropy")
    X, y = be.asarray(rng.normal(size=(6, 4))), be.asarray(rng.integers(0, 3, 6), "int64")
    seen = {}

    def inspect(value):
        seen["norms"], seen["total"] = be.sq_norms(list(m.grads.values())), clip_by_global_norm(be.xp, m.grads, 1.0)
        return True

    for _ in range(2):
        value = train_step(m, loss, opt, X, y, before_update=inspect)
    arrays = [value, seen["norms"], seen["total"], global_norm(be.xp, m.grads),
              *m.params.values(), *m.grads.values(), *(v for k, v in opt.state_dict().items() if k != "t")]
    off = [i for i, a in enumerate(arrays) if not is_on(be, a)]
    assert not off, f"arrays {off} are {[type(arrays[i]) for i in off]}, not on backend {name}"


def _synthetic(n=96, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.argmax(X[:, :classes] + 0.3 * rng.normal(size=(n, classes)), axis=1)
    return X, y


def _train(be, steps=50, batch=16, act="relu", loss_name="cross_entropy", opt=("adam", dict(lr=0.01))):
    """Shuffle on the host, move each batch, `train_step`."""
    X, y = _synthetic()
    if loss_name != "cross_entropy":
        y = np.eye(3)[y]
    loss, optimizer = losses.create(loss_name), optimizers.create(opt[0], **opt[1])
    m = MLP([6, 16, 16, 3], act, "identity", backend=be, dtype="float64", seed=3)
    tdt = "int64" if loss.targets == "indices" else "float64"
    rng, values, order = np.random.default_rng(7), [], np.arange(0)
    for _step in range(steps):
        if len(order) < batch:
            order = rng.permutation(len(X))
        idx, order = order[:batch], order[batch:]
        values.append(train_step(m, loss, optimizer, be.asarray(X[idx], "float64"), be.asarray(y[idx], tdt)))
    be.synchronize()
    return np.array([float(host(be, v)) for v in values]), {k: host(be, v) for k, v in m.params.items()}


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("act,loss_name,opt", [
    ("relu", "cross_entropy", ("adam", dict(lr=0.01))),
    ("tanh", "mse", ("sgd", dict(lr=0.05, momentum=0.9))),
])
def test_training_run_matches_numpy(name, act, loss_name, opt):
    ref_losses, ref_params = _train(make("numpy"), act=act, loss_name=loss_name, opt=opt)
    ours, params = _train(make(name), act=act, loss_name=loss_name, opt=opt)
    assert ref_losses[-1] < ref_losses[0], "the reference run should learn"
    np.testing.assert_allclose(ours, ref_losses, rtol=1e-10, atol=1e-10)
    for k in ref_params:
        np.testing.assert_allclose(params[k], ref_params[k], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", BACKENDS)
def test_trainer_skips_a_non_finite_update_on_host_backends(name):
    """The NaN guard stops the run on every backend; where arrays live in host memory (declared by
    `host_memory`) the bad update is never applied."""
    be = make(name, "float32")
    X, y = _synthetic()
    splits = Splits(Dataset(X, y, "classification", 3, "synthetic"), None, None)
    m = MLP([6, 16, 3], "relu", backend=be, dtype="float32", seed=0)
    t = Trainer(m, losses.create("cross_entropy"), optimizers.create("sgd", lr=1e12), splits, epochs=5,
                batch_size=16, divergence=None)
    with np.errstate(all="ignore"), pytest.raises(DivergenceError):
        t.fit()
    assert t.status == "FAILED" and t.failure["reason"].startswith("diverged: ")
    if be.capabilities.host_memory:
        assert all(np.isfinite(v).all() for v in m.state_dict().values()), "the non-finite update was applied"


def test_finite_squared_norms_whose_float32_sum_overflows_still_update():
    """Squared norms that are each finite but sum past float32's 3.4e38 are finite for the NaN guard (no
    skipped update, no overflow warning); an inf or a NaN among them, in any position, is not."""
    X, y = _synthetic()
    m = MLP([6, 16, 3], "relu", backend=make("numpy", "float32"), dtype="float32", seed=0)
    t = Trainer(m, losses.create("cross_entropy"), optimizers.create("sgd", lr=0.1),
                Splits(Dataset(X, y, "classification", 3, "synthetic"), None, None), epochs=1, batch_size=16)
    t.position = EpochPosition(rng_state={})
    for g in m.grads.values():
        g[...] = np.sqrt(2e38 / g.size)  # each squared norm 2e38: finite in float32, their sum is not
    assert t._inspect(np.float32(1.0)) is True
    m.grads["layers.1.b"][0] = np.inf
    assert t._inspect(np.float32(1.0)) is False
    for bad in ("layers.0.W", "layers.1.b"):  # NaN compares false: it must be caught in any position
        for g in m.grads.values():
            g[...] = 1.0
        m.grads[bad][0] = np.nan
        assert t._inspect(np.float32(1.0)) is False, bad
    assert t._inspect(np.float32(np.nan)) is False


def _bits(order, plain_first=False) -> dict:
    """{what: sha256 of its bytes} for one SGD and one Adam training step of a small MLP (tanh, gelu
    through erf, cross-entropy) on each backend of `order`, created in that order (float32 on NumPy:
    BLAS fuses SGD's multiply-add there), and for the same steps, activations and loss on plain NumPy
    arrays (no backend: the standard's path), before the backends are created where `plain_first`."""
    import hashlib

    def digest(*arrays):
        return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()

    rng = np.random.default_rng(11)
    X, T = rng.normal(size=(16, 5)), rng.integers(0, 3, 16)
    z, g = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(6, 5)).astype(np.float32)
    made, out = {} if plain_first else {name: make(name, "float32") for name in order}, {}
    for opt in ("sgd", "adam"):
        params = {"w": z.copy()}
        optimizers.create(opt, lr=0.1).step(params, {"w": g})
        out[f"plain {opt}"] = digest(params["w"])
    for act in ("gelu", "tanh", "softmax"):
        a = activations.create(act)
        out[f"plain {act}"] = digest(a.forward(np, z), a.backward(np, z, a.forward(np, z), g))
    out["plain cross_entropy"] = digest(*losses.create("cross_entropy").value_and_grad(np, z[:, :3], T[:6]))
    for name in order:
        be = made[name] if name in made else make(name, "float32")
        for opt in ("sgd", "adam"):
            m = MLP([5, 8, 3], ["gelu"], "identity", backend=be, dtype="float32", seed=0)
            train_step(m, losses.create("cross_entropy"), optimizers.create(opt, lr=0.1),
                       be.asarray(X, "float32"), be.asarray(T, be.xp.int64))
            out[f"{name} {opt}"] = digest(*(host(be, p) for p in m.params.values()))
    return out


def test_same_bits_whatever_was_created_before():
    """A backend's capabilities travel with the namespace it hands out, never in a process-wide table: the
    same inputs give the same bits whichever backends were created before, in this process (after
    every test that ran before this one) in both orders and in a fresh process that created none before
    its first plain computation."""
    import json
    import subprocess
    import sys

    order = ["numpy"] + [n for n in ("array_api_strict", "torch") if _AVAILABLE[n][0]]
    forward, backward = _bits(order), _bits(order[::-1])
    assert forward == backward
    script = ("import json, sys; sys.path.insert(0, 'tests/unit'); import test_backends as t; "
              f"print(json.dumps(t._bits({order!r}[::-1], plain_first=True)))")
    from pathlib import Path

    fresh = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True,
                           cwd=Path(__file__).parents[2]).stdout
    assert json.loads(fresh.splitlines()[-1]) == forward


def test_capabilities_declared_as_loose_attributes_are_refused():
    """The old way (class attributes `writes_out = True`, ...) would be ignored: said, with the fix."""

    class Loose(backends.get("numpy")):
        writes_out = True

    with pytest.raises(TypeError, match="declares writes_out as attributes, which nothing reads: declare `capab"):
        Loose()

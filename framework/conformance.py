"""Conformance checks for every registered plugin of all eight kinds (checker CLI and tests).

A check is a function `(registry, name) -> figure`: it builds the plugin from its config defaults,
raises (AssertionError, GradcheckError, ...) on failure and returns a short figure on success. `run`
executes one with every warning raised as an error and NumPy floating-point errors raised (underflow
ignored), so overflow, 0/0 or log(0) anywhere is a failure. Checks compute with NumPy (gradient checks
in float64) except `array_api`. The checks per kind:

    config        defaults(name) -> create(name, **defaults); instance.name and attributes reproduce them
                  (data sets, backends: the created object's name is the registered name; one that
                  needs settings or hardware this machine lacks is skipped with its message)
    gradcheck     backward vs central differences at ordinary inputs (losses: with and without weights)
    extreme       |z| (or |pred - target|, |logits|) up to 1e4: finite, no warnings, in float32 and float64;
                  gradcheck at |z| <= 1e3 (tol 1e-4: finite differences next to |f| ~ 1e3 carry
                  noise ~ eps |f| / h ~ 1e-8, a wrong formula is off by O(1))
    weight        losses: unit per-sample weights change nothing; weight 0 zeroes that sample's gradient
    dtype_shape   outputs keep the input's shape and dtype, float32 and float64
    no_mutation   inputs (z, a, grad_a; pred, target, weight; grads) are left unchanged
    array_api     with xp = array_api_strict (the Array API standard, nothing more) results equal NumPy's:
                  the plugin uses only xp, so it runs on CuPy and other backends (skipped if not installed)
    decrease      optimizers: 100 steps on f(p) = p^T diag(1, 10) p / 2 lower f
    state_dict    optimizers: load_state_dict(state_dict()) continues exactly like the original
    flat          optimizers declaring `elementwise`: updating all parameters at once as views of one
                  flat buffer (`framework.flat`) equals updating one at a time, also after load_state_dict
    fused         losses: value_and_grad equals (forward, backward)
    inplace       activations: forward_inplace / backward_inplace (on copies the model owns) equal
                  forward / backward, float32 and float64, also when forward_inplace wrote a over z
    seeded        initializers, data sets: the same seed gives the same values, another seed others
    variance      initializers: the sample variance of a (400, 300) draw is within 3% of `variance`
    lr            schedulers: lr over a run is finite and >= 0; warm-up ramps as (t + 1) / warmup_steps
    loads         data sets: defaults load (a loader that needs settings, e.g. a file path, is skipped
                  with its message) and pass `framework.data.validate`: shapes, dtypes, task, finite
    tasks         metrics: a finite float for each task they declare; a perfect prediction scores at
                  least as well as a random one
    methods       backends: every Backend method (asarray, to_numpy, resolve_dtype, matmul, take,
                  batch_sum, sq_norms, host_sq_norms, synchronize, limits) against NumPy, and the
                  declared capabilities (`host_memory`, `writes_out`, the `direct` forms) hold; a
                  backend that cannot be created here is skipped with its message
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .data import TASKS, validate
from .errors import ConfigError
from .flat import flat_zeros
from .gradcheck import check_activation, check_loss, sample_loss_inputs
from .registry import KINDS, Registry
from .special import direct, kept_declarations

FLOATS = (np.float32, np.float64)
EXTREME = (-1e4, -1e3, -50.0, -1.0, 0.0, 1.0, 50.0, 1e3, 1e4)   # finiteness grid
EXTREME_GRAD = ((-1e3, -100.0, -30.0), (-1.0, 0.0, 1.0), (30.0, 100.0, 1e3))   # gradcheck grid, (3, 3)
EXTREME_TOL = 1e-4


@dataclass(frozen=True)
class Outcome:
    """One check of one plugin: `figure` is the key number on success, the reason on failure."""

    kind: str
    name: str
    check: str
    ok: bool
    figure: str

    def __str__(self) -> str:
        return f"{self.kind:<10} {self.name:<16} {self.check:<12} {'ok' if self.ok else 'FAIL':<4}  {self.figure}"


def run(registry: Registry, name: str, check: str) -> Outcome:
    """Run one check of plugin `name` in `registry`; any exception or warning is a failure."""
    try:
        with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"), kept_declarations():
            warnings.simplefilter("error")
            figure, ok = CHECKS[registry.kind][check](registry, name), True
    except Exception as e:  # noqa: BLE001 - the failure is the result
        figure, ok = _reason(e), False
    return Outcome(registry.kind, name, check, ok, figure)


def cases(names=None, kinds=KINDS) -> list[tuple[str, str, str]]:
    """(kind, name, check) for every check of every plugin of `kinds` (or only those in `names`)."""
    return [(kind, name, check) for kind, reg in kinds.items() for name in reg.names()
            if names is None or name in names for check in CHECKS[kind]]


def _reason(e: Exception) -> str:
    if isinstance(e, AssertionError) and str(e):
        return str(e)
    return f"{type(e).__name__}: {e}"


# ---- shared -------------------------------------------------------------------------------------

_MISSING = object()


def _config(reg: Registry, name: str) -> str:
    required = [p.name for p in inspect.signature(reg.get(name)).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    assert not required, (f"constructor arguments {required} have no default; every argument needs one "
                          f"so that `{reg.group}={name}` works from config")
    config = reg.defaults(name)
    obj = reg.create(name, **config)
    assert obj.name == name, f"instance .name is {obj.name!r}, expected the registered name {name!r}"
    wrong = {k: getattr(obj, k, "<missing>") for k, v in config.items() if getattr(obj, k, _MISSING) != v}
    assert not wrong, (f"attributes {wrong} do not reproduce the config {config}; store each constructor "
                       "argument as an attribute of the same name (self.<arg> = <arg>)")
    return ", ".join(f"{k}={v!r}" for k, v in config.items()) or "(no arguments)"


def _expect(arr, shape, dtype, what: str) -> None:
    assert arr.shape == shape, f"{what} has shape {arr.shape}, expected {shape}"
    assert arr.dtype == dtype, f"{what} has dtype {arr.dtype} for {np.dtype(dtype)} input"


def _finite(what: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """compute(), failing with `what` in the message on a floating-point error or a NaN/inf result."""
    try:
        out = compute()
    except (FloatingPointError, RuntimeWarning) as e:
        raise AssertionError(f"{what}: {type(e).__name__}: {e}") from e
    bad = ~np.isfinite(out)
    assert not bad.any(), f"{what}: non-finite value {np.asarray(out)[bad].flat[0]}"
    return out


def _unchanged(what: str, before, after) -> None:
    assert np.array_equal(before, after), f"{what} was modified in place"


def _strict():
    """The Array API reference namespace, or None where it is not installed."""
    try:
        import array_api_strict
    except ImportError:
        return None
    return array_api_strict


def _agree(what: str, xs, got, expected) -> None:
    """`got` (an array of namespace xs) equals the NumPy result `expected`."""
    assert hasattr(got, "__array_namespace__") and got.__array_namespace__() is xs, (
        f"{what} returned {type(got).__name__}, not an array of xp: "
        "compute with xp only (no numpy, no array methods)")
    assert np.allclose(np.from_dlpack(got), expected, rtol=1e-12, atol=1e-300), (
        f"{what} with xp = array_api_strict differs from NumPy")


_NO_STRICT = "skipped: array_api_strict not installed"


def _all_defaulted(reg, name) -> None:
    required = [p.name for p in inspect.signature(reg.get(name)).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    assert not required, (f"arguments {required} have no default; every argument needs one "
                          f"so that `{reg.group}={name}` works from config")


def _named(reg, name, **changes):
    """create(name) with its defaults (updated by `changes`); a ConfigError's message where it needs
    settings or resources this machine lacks (a data file, a GPU)."""
    _all_defaulted(reg, name)
    try:
        return reg.create(name, **{**reg.defaults(name), **changes})
    except ConfigError as e:
        return str(e)


def _config_created(reg, name):
    """Config check for kinds whose arguments need not be attributes: data sets (factories), backends."""
    obj = _small(reg, name)
    if isinstance(obj, str):
        return f"skipped: not available with its defaults ({obj})"
    assert obj.name == name, f".name is {obj.name!r}, expected the registered name {name!r}"
    return ", ".join(f"{k}={v!r}" for k, v in reg.defaults(name).items()) or "(no arguments)"


def _worst(results):
    worst = max(results, key=lambda r: r.max_error)
    worst.raise_if_failed()
    return f"max rel err {worst.max_error:.1e} (tol {worst.tol:.0e})"


def _normal(shape, dtype, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


# ---- activations --------------------------------------------------------------------------------

def _act_gradcheck(reg, name):
    act = reg.create(name)
    return _worst([check_activation(act, shape=(8, 6), seed=s) for s in (0, 1)])


def _act_extreme(reg, name):
    act = reg.create(name)
    for dtype in FLOATS:
        z = np.array([EXTREME], dtype)
        a = _finite(f"{np.dtype(dtype)} forward at z={list(EXTREME)}", lambda: act.forward(np, z))
        _finite(f"{np.dtype(dtype)} backward at z={list(EXTREME)}", lambda: act.backward(np, z, a, np.ones_like(z)))
    return _worst([check_activation(act, EXTREME_GRAD, tol=EXTREME_TOL)])


def _act_dtype_shape(reg, name):
    act = reg.create(name)
    for dtype in FLOATS:
        z = _normal((5, 4), dtype)
        a = act.forward(np, z)
        _expect(a, z.shape, dtype, "forward")
        _expect(act.backward(np, z, a, np.ones_like(z)), z.shape, dtype, "backward")
    return "float32, float64"


def _act_no_mutation(reg, name):
    act = reg.create(name)
    for dtype in FLOATS:
        z, g = _normal((5, 4), dtype), _normal((5, 4), dtype, seed=1)
        z0, g0 = z.copy(), g.copy()
        a = act.forward(np, z)
        _unchanged("z (by forward)", z0, z)
        a0 = a.copy()
        act.backward(np, z, a, g)
        _unchanged("z (by backward)", z0, z)
        _unchanged("a (by backward)", a0, a)
        _unchanged("grad_a (by backward)", g0, g)
    return "z, a, grad_a"


def _act_inplace(reg, name):
    act = reg.create(name)
    for dtype in FLOATS:
        z, g = _normal((5, 4), dtype), _normal((5, 4), dtype, seed=1)
        a = act.forward(np, z)
        grad = act.backward(np, z, a, g)
        z_own, g_own = z.copy(), g.copy()  # the model's buffers: the fast paths may overwrite them
        a_own = act.forward_inplace(np, z_own)
        assert np.allclose(a_own, a, rtol=1e-6, atol=0), "forward_inplace differs from forward"
        got = act.backward_inplace(np, z_own, a_own, g_own)
        assert np.allclose(got, grad, rtol=1e-6, atol=1e-30), (
            "backward_inplace differs from backward (if forward_inplace writes a over z, backward must "
            "read only a)")
        _expect(got, z.shape, dtype, "backward_inplace")
    return "float32, float64"


def _act_array_api(reg, name):
    if (xs := _strict()) is None:
        return _NO_STRICT
    act = reg.create(name)
    z, g = _normal((5, 4), np.float64), _normal((5, 4), np.float64, seed=1)
    zs = xs.asarray(z)
    a, a_xs = act.forward(np, z), act.forward(xs, zs)
    _agree("forward", xs, a_xs, a)
    _agree("backward", xs, act.backward(xs, zs, a_xs, xs.asarray(g)), act.backward(np, z, a, g))
    return "forward, backward"


# ---- losses -------------------------------------------------------------------------------------

def _loss_inputs(loss, dtype=np.float64, shape=(6, 3), seed=0):
    """(pred, target, weight) in `dtype` (integer targets stay integer)."""
    rng = np.random.default_rng(seed)
    pred, target = sample_loss_inputs(loss, shape, rng)
    target = target if loss.targets == "indices" else target.astype(dtype)
    return pred.astype(dtype), target, rng.uniform(0.2, 2.0, shape[0]).astype(dtype)


def _loss_extreme_inputs(loss, big, dtype):
    """(pred, target, description): |pred - target| = big (values), |logits| = big (logits,
    indices), or probabilities at and next to 0 and 1 (losses on probabilities)."""
    pred, target, _ = _loss_inputs(loss, np.float64, (4, 3))
    sign = np.where(pred >= 0, 1.0, -1.0)
    if loss.on_probabilities:
        pred, what = np.resize([0.0, 1e-12, 1 - 1e-12, 1.0], pred.shape), "p in {0, 1e-12, 1-1e-12, 1}"
    elif loss.expects_logits or loss.targets == "indices":
        pred, what = sign * big, f"logits = +-{big:g}"
    else:
        pred, what = target + sign * big, f"pred = target +- {big:g}"
    target = target if loss.targets == "indices" else target.astype(dtype)
    return pred.astype(dtype), target, f"{np.dtype(dtype)} {what}"


def _loss_gradcheck(reg, name):
    loss = reg.create(name)
    pred, target, weight = _loss_inputs(loss, shape=(7, 3), seed=3)
    return _worst([check_loss(loss, pred, target, w) for w in (None, weight)])


def _loss_extreme(reg, name):
    loss = reg.create(name)
    for big in (1e3, 1e4):
        for dtype in FLOATS:
            pred, target, what = _loss_extreme_inputs(loss, big, dtype)
            _finite(f"forward at {what}", lambda: loss.forward(np, pred, target))
            _finite(f"backward at {what}", lambda: loss.backward(np, pred, target))
    if loss.on_probabilities:  # a finite-difference step would leave [0, 1]
        return f"finite at {what}"
    pred, target, _ = _loss_extreme_inputs(loss, 1e3, np.float64)
    return _worst([check_loss(loss, pred, target, tol=EXTREME_TOL)])


def _loss_weight(reg, name):
    loss = reg.create(name)
    pred, target, _ = _loss_inputs(loss)
    ones, drop0 = np.ones(pred.shape[0]), np.r_[0.0, np.ones(pred.shape[0] - 1)]
    for what, fn in (("forward", loss.forward), ("backward", loss.backward)):
        assert np.allclose(fn(np, pred, target), fn(np, pred, target, ones), rtol=1e-12, atol=0), (
            f"{what} with unit weights differs from no weights")
    grad0 = loss.backward(np, pred, target, drop0)[0]
    assert not np.any(grad0), (f"sample 0 has weight 0 but gradient {np.array2string(grad0, precision=3)}; "
                               "multiply each sample's terms by its weight")
    return "unit weights = none; weight 0 -> zero gradient"


def _loss_dtype_shape(reg, name):
    loss = reg.create(name)
    for dtype in FLOATS:
        pred, target, weight = _loss_inputs(loss, dtype)
        for w in (None, weight):
            value = loss.forward(np, pred, target, w)
            assert np.ndim(value) == 0, f"forward returns shape {np.shape(value)}, expected a 0-d array"
            _expect(value, (), dtype, "forward")
            _expect(loss.backward(np, pred, target, w), pred.shape, dtype, "backward")
    return "float32, float64"


def _loss_no_mutation(reg, name):
    loss = reg.create(name)
    for dtype in FLOATS:
        pred, target, weight = _loss_inputs(loss, dtype)
        before = pred.copy(), target.copy(), weight.copy()
        loss.forward(np, pred, target, weight)
        loss.backward(np, pred, target, weight)
        for what, b, a in zip(("pred", "target", "weight"), before, (pred, target, weight)):
            _unchanged(what, b, a)
    return "pred, target, weight"


def _loss_fused(reg, name):
    loss = reg.create(name)
    for dtype in FLOATS:
        pred, target, weight = _loss_inputs(loss, dtype)
        for w in (None, weight):
            value, grad = loss.value_and_grad(np, pred, target, w)
            tol = dict(rtol=1e-5 if dtype == np.float32 else 1e-12, atol=0)
            assert np.allclose(value, loss.forward(np, pred, target, w), **tol), "value_and_grad value != forward"
            assert np.allclose(grad, loss.backward(np, pred, target, w), **tol), "value_and_grad grad != backward"
            _expect(grad, pred.shape, dtype, "value_and_grad's grad")
    return "= (forward, backward), float32/64, with and without weights"


def _loss_array_api(reg, name):
    if (xs := _strict()) is None:
        return _NO_STRICT
    loss = reg.create(name)
    host = _loss_inputs(loss)
    pred, target, weight = (xs.asarray(x) for x in host)
    _agree("forward", xs, loss.forward(xs, pred, target, weight), loss.forward(np, *host))
    _agree("backward", xs, loss.backward(xs, pred, target, weight), loss.backward(np, *host))
    return "forward, backward"


# ---- optimizers ---------------------------------------------------------------------------------

_A = np.array([1.0, 10.0])   # the quadratic f(p) = sum(A p^2) / 2, gradient A p


def _params(dtype, seed=0):
    return {"w": _normal((4, 3), dtype, seed), "b": _normal((3,), dtype, seed + 1)}


def _opt_dtype_shape(reg, name):
    for dtype in FLOATS:
        opt, params = reg.create(name), _params(dtype)
        arrays = dict(params)
        for _ in range(2):
            opt.step(params, _params(dtype, seed=2))
        for k, p in params.items():
            assert p is arrays[k], f"step replaced params[{k!r}]; update the array in place (p -= ...)"
            _expect(p, arrays[k].shape, dtype, f"params[{k!r}]")
    return "float32, float64"


def _opt_no_mutation(reg, name):
    opt, params, grads = reg.create(name), _params(np.float64), _params(np.float64, seed=2)
    before = {k: g.copy() for k, g in grads.items()}
    for _ in range(2):
        opt.step(params, grads)
    for k in grads:
        _unchanged(f"grads[{k!r}]", before[k], grads[k])
    return "grads"


def _opt_extreme(reg, name):
    for dtype in FLOATS:
        opt, params = reg.create(name), {"p": np.zeros(9, dtype)}
        grads = {"p": np.array([-1e4, -1e3, -1e-30, 0.0, 1e-30, 1e3, 1e4, 0.0, 0.0], dtype)}

        def step():
            opt.step(params, grads)
            return params["p"]

        for _ in range(3):
            _finite(f"{np.dtype(dtype)} params after a step with grads {grads['p'].tolist()}", step)
    return "grads in [-1e4, 1e4]"


def _opt_array_api(reg, name):
    if (xs := _strict()) is None:
        return _NO_STRICT
    host, grads = _params(np.float64), _params(np.float64, seed=2)
    params = {k: xs.asarray(p) for k, p in host.items()}
    opt, opt_xs = reg.create(name), reg.create(name)
    for _ in range(2):
        opt.step(host, grads)
        opt_xs.step(params, {k: xs.asarray(g) for k, g in grads.items()})
    for k in host:
        _agree(f"params[{k!r}] after 2 steps", xs, params[k], host[k])
    return "2 steps"


def _opt_decrease(reg, name, steps=100):
    opt, params = reg.create(name), {"p": np.array([3.0, -2.0])}
    f0 = _quadratic(params["p"])
    for _ in range(steps):
        opt.step(params, {"p": _A * params["p"]})
    f1 = _quadratic(params["p"])
    assert f1 < f0, f"f(p) = p^T diag(1, 10) p / 2 went from {f0:.4g} to {f1:.4g} in {steps} steps (defaults)"
    return f"f {f0:.4g} -> {f1:.4g} in {steps} steps"


def _quadratic(p) -> float:
    return float(np.sum(_A * p * p) / 2)


def _opt_state_dict(reg, name):
    grads = [_params(np.float64, seed=s) for s in range(2, 8)]
    a, pa = reg.create(name), _params(np.float64)
    for g in grads[:3]:
        a.step(pa, g)
    b, pb = reg.create(name), {k: p.copy() for k, p in pa.items()}
    b.load_state_dict(_state_copy(a))
    for g in grads[3:]:
        a.step(pa, g)
        b.step(pb, g)
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), (f"after load_state_dict(state_dict()) params[{k!r}] differ by "
                                              f"{np.max(np.abs(pa[k] - pb[k])):.3g}; keep all state in state_dict")
    return f"{len(a.state_dict())} entries"


def _flat_copy(arrays: dict):
    """A FlatDict (`framework.flat`) holding a copy of `arrays`."""
    return flat_zeros(np, {k: v.shape for k, v in arrays.items()}, np.float64, arrays)


def _state_copy(opt) -> dict:
    """A copy of `opt.state_dict()` (its arrays copied), for another optimizer's load_state_dict."""
    return {k: (v.copy() if hasattr(v, "copy") else v) for k, v in opt.state_dict().items()}


def _opt_flat(reg, name):
    if not reg.create(name).elementwise:
        return "not declared elementwise: updated one parameter at a time"
    grads = [_params(np.float64, seed=s) for s in range(2, 8)]
    a, pa = reg.create(name), _params(np.float64)           # one parameter at a time
    b, pb = reg.create(name), _flat_copy(pa)                 # all at once
    c = reg.create(name)                                     # from a's state after 3 steps, then all at once
    for i, g in enumerate(grads):
        if i == 3:
            c.load_state_dict(_state_copy(a))
            pc = _flat_copy(pa)
        flat_g = _flat_copy(g)
        a.step(pa, g)
        b.step(pb, flat_g)
        if i >= 3:
            c.step(pc, flat_g)
    for k in pa:
        for what, params, fix in (
                ("all parameters at once (flat)", pb, "an update that mixes coordinates (a norm over a parameter) "
                 "must leave `elementwise` False"),
                ("flat after load_state_dict", pc, "keep all state in `slot` arrays (state_dict)")):
            assert np.allclose(params[k], pa[k], rtol=1e-12, atol=1e-300), (
                f"declared elementwise, but updating {what} differs from one parameter at a time in "
                f"params[{k!r}] by {np.max(np.abs(params[k] - pa[k])):.3g}: {fix}")
    assert set(b.state_dict()) == set(a.state_dict()), "the flat state's entries differ from the per-parameter ones"
    return f"{len(grads)} steps, flat = per parameter"


# ---- initializers -------------------------------------------------------------------------------

def _init_shape_dtype(reg, name):
    init = reg.create(name)
    w = _finite("init(rng, (5, 7))", lambda: np.asarray(init(np.random.default_rng(0), (5, 7))))
    assert w.shape == (5, 7), f"init(rng, (5, 7)) has shape {w.shape}"
    assert w.dtype.kind == "f", f"init returned dtype {w.dtype}; return floats (float64 on the host)"
    return f"(5, 7) {w.dtype}"


def _init_seeded(reg, name):
    init = reg.create(name)
    a, b, c = (np.asarray(init(np.random.default_rng(s), (6, 4))) for s in (0, 0, 1))
    assert np.array_equal(a, b), "two draws from generators seeded alike differ: draw only from `rng`"
    if np.ptp(a) > 0:  # a constant initializer (zeros) is the same for every seed
        assert not np.array_equal(a, c), "draws from generators seeded differently are equal"
    return "same seed, same weights"


def _init_variance(reg, name):
    init = reg.create(name)
    fan_out, fan_in = shape = (400, 300)
    expected = init.variance(fan_in, fan_out)
    if expected is None:
        return "skipped: variance(fan_in, fan_out) not declared"
    got = float(np.var(np.asarray(init(np.random.default_rng(0), shape))))
    assert abs(got - expected) <= 0.03 * expected + 1e-12, (
        f"sample variance {got:.4g} of a {shape} draw, but variance({fan_in}, {fan_out}) = {expected:.4g}")
    return f"var {got:.4g} vs {expected:.4g}"


# ---- schedulers ---------------------------------------------------------------------------------

def _sched_lr(reg, name, base=0.1, spe=7, epochs=10):
    sched = reg.create(name)
    total = spe * epochs
    lrs = np.array([sched.lr(base, t, spe, total) for t in range(total)])
    bad = np.flatnonzero(~np.isfinite(lrs) | (lrs < 0))
    assert not len(bad), f"lr at step {bad[0]} of a {epochs}-epoch run is {lrs[bad[0]]}; it must be finite and >= 0"
    return f"lr in [{lrs.min():.3g}, {lrs.max():.3g}] over {total} steps"


def _sched_warmup(reg, name, base=0.1, spe=5, epochs=6):
    if "warmup_epochs" not in reg.defaults(name):
        return "skipped: no warmup_epochs argument"
    plain = reg.create(name, **{**reg.defaults(name), "warmup_epochs": 0.0})
    warm = reg.create(name, **{**reg.defaults(name), "warmup_epochs": 2.0})
    total, steps = spe * epochs, 2 * spe
    for t in range(total):
        ramp = min(1.0, (t + 1) / steps)
        want = ramp * plain.lr(base, t, spe, total)
        got = warm.lr(base, t, spe, total)
        assert np.isclose(got, want, rtol=1e-12, atol=0), (
            f"with warmup_epochs=2 ({steps} steps) lr at step {t} is {got:.6g}, expected {ramp:.3g} x {want / ramp:.6g}")
    return f"linear over {steps} steps"


# ---- data sets ----------------------------------------------------------------------------------

def _small(reg, name, **changes):
    """The data set with its defaults (at most 300 rows where it takes `n`), or the message of the
    ConfigError when it needs settings (a file path)."""
    n = reg.defaults(name).get("n")
    return _named(reg, name, **({"n": min(n, 300)} if isinstance(n, int) else {}), **changes)


def _data_loads(reg, name):
    ds = _small(reg, name)
    if isinstance(ds, str):
        return f"skipped: needs settings ({ds})"
    assert ds.task in TASKS, f"task {ds.task!r} is not one of {TASKS}"
    validate(ds)
    assert ds.X.dtype.kind == "f", f"X has dtype {ds.X.dtype}; features are floats"
    return f"{ds.task}, X {ds.X.shape}, y {ds.y.shape} {ds.y.dtype}"


def _data_seeded(reg, name):
    if "seed" not in reg.defaults(name):
        return "skipped: no seed argument (a fixed data set)"
    a, b, c = (_small(reg, name, seed=s) for s in (0, 0, 1))
    if isinstance(a, str):
        return f"skipped: needs settings ({a})"
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y), "the same seed gave different data"
    assert not np.array_equal(a.X, c.X), "seeds 0 and 1 gave the same X"
    return "same seed, same data"


# ---- metrics ------------------------------------------------------------------------------------

def _metric_inputs(task, rng, n=40, c=3):
    """(y_true, random y_pred for labels, random scores, perfect labels, perfect scores) for `task`."""
    if task == "regression":
        y = rng.normal(size=(n, 2))
        return y, None, rng.normal(size=(n, 2)), None, y.copy()
    k = 2 if task == "binary" else c
    y = np.r_[np.arange(k), rng.integers(0, k, n - k)]
    p = rng.dirichlet(np.ones(k), n)
    onehot = np.eye(k)[y]
    scores, perfect = (p[:, 1], onehot[:, 1]) if task == "binary" else (p, onehot)
    return y, rng.integers(0, k, n), scores, y.copy(), perfect


def _metric_tasks(reg, name):
    metric = reg.create(name)
    assert metric.tasks and set(metric.tasks) <= set(TASKS), f"tasks {metric.tasks!r} must be a non-empty subset of {TASKS}"
    assert metric.uses in ("labels", "scores"), f"uses is {metric.uses!r}, expected 'labels' or 'scores'"
    figures = []
    for task in metric.tasks:
        y, labels, scores, perfect_labels, perfect_scores = _metric_inputs(task, np.random.default_rng(0))
        random_pred, perfect_pred = ((scores, perfect_scores) if metric.uses == "scores" or task == "regression"
                                     else (labels, perfect_labels))
        r, p = float(metric(y, random_pred)), float(metric(y, perfect_pred))
        assert np.isfinite(r) and np.isfinite(p), f"{task}: non-finite value {r} or {p}"
        better = p >= r if metric.higher_is_better else p <= r
        assert better, (f"{task}: a perfect prediction scores {p:.4g}, a random one {r:.4g}, but "
                        f"higher_is_better={metric.higher_is_better}")
        figures.append(f"{task} perfect {p:.3g} random {r:.3g}")
    return "; ".join(figures)


# ---- backends -----------------------------------------------------------------------------------

def _backend_methods(reg, name):
    be = _named(reg, name)
    if isinstance(be, str):
        return f"skipped: not available here ({be})"
    rng = np.random.default_rng(0)
    host = {k: rng.normal(size=s).astype(np.float32) for k, s in (("A", (5, 4)), ("B", (4, 3)), ("g", (3, 2)))}
    dev = {k: be.asarray(v) for k, v in host.items()}
    assert be.resolve_dtype("float32") == dev["A"].dtype, "asarray's default dtype is not resolve_dtype('float32')"
    assert be.asarray(dev["A"]) is dev["A"], "asarray copied an array already on the backend with its dtype"
    back = be.to_numpy(dev["A"])
    assert isinstance(back, np.ndarray) and np.array_equal(back, host["A"]), "to_numpy(asarray(x)) != x"
    want = host["A"] @ host["B"]
    out = be.asarray(np.zeros((5, 3), np.float32))
    got = be.matmul(dev["A"], dev["B"], out=out if be.writes_out else None)
    assert np.allclose(be.to_numpy(got), want, rtol=1e-5), "matmul differs from NumPy"
    if be.writes_out:
        assert np.allclose(be.to_numpy(out), want, rtol=1e-5), "writes_out is declared but matmul left `out` unwritten"
    idx = be.asarray(np.array([3, 0, 3]), "int64")
    rows = be.asarray(np.zeros((3, 4), np.float32))
    taken = be.take(dev["A"], idx, out=rows if be.writes_out else None)
    assert np.array_equal(be.to_numpy(taken), host["A"][[3, 0, 3]]), "take differs from NumPy's"
    if be.writes_out:
        assert np.array_equal(be.to_numpy(rows), host["A"][[3, 0, 3]]), "writes_out is declared but take left `out` unwritten"
    sums = be.asarray(np.zeros(4, np.float32))
    got = be.batch_sum(dev["A"], out=sums if be.writes_out else None)
    assert np.allclose(be.to_numpy(got), host["A"].sum(axis=0), rtol=1e-5), "batch_sum differs from sum(axis=0)"
    if be.writes_out:
        assert np.allclose(be.to_numpy(sums), host["A"].sum(axis=0), rtol=1e-5), (
            "writes_out is declared but batch_sum left `out` unwritten")
    _direct_forms(be, dev["A"])
    sq = be.to_numpy(be.sq_norms([dev["A"], dev["g"]]))
    want = [np.sum(host["A"] ** 2), np.sum(host["g"] ** 2)]
    assert np.allclose(sq, want, rtol=1e-5), "sq_norms differs from sum(g^2)"
    if be.host_memory:  # what the trainer reads every batch there
        got = be.host_sq_norms([dev["A"], dev["g"]])
        assert all(type(v) is float for v in got), f"host_sq_norms must return Python floats, got {got!r}"
        assert np.allclose(got, want, rtol=1e-5), "host_sq_norms differs from sum(g^2)"
    be.synchronize()
    with be.limits():
        pass
    try:
        np.from_dlpack(dev["A"])
        readable = True
    except Exception:  # noqa: BLE001 - device memory
        readable = False
    assert readable == be.host_memory, f"host_memory={be.host_memory} is declared but NumPy can{'' if readable else 'not'} view its arrays"
    return f"host_memory={be.host_memory}, writes_out={be.writes_out}"


def _direct_forms(be, A) -> None:
    """The `direct` forms of the backend's namespace give what its standard functions give (same
    shape, dtype and values), with the standard's defaults (e.g. sum over all axes)."""
    xp, d = be.xp, direct(be.xp)
    rows, flat_rows = be.asarray(np.array([3, 0, 3]), "int64"), be.asarray(np.array([7, 0, 19]), "int64")
    cases = {
        "sum(x)": (d.sum(A), xp.sum(A)),
        "sum(x, axis=-1, keepdims=True)": (d.sum(A, axis=-1, keepdims=True), xp.sum(A, axis=-1, keepdims=True)),
        "max(x)": (d.max(A), xp.max(A)),
        "max(x, axis=-1, keepdims=True)": (d.max(A, axis=-1, keepdims=True), xp.max(A, axis=-1, keepdims=True)),
        "take(x, rows, axis=0)": (d.take(A, rows, axis=0), xp.take(A, rows, axis=0)),
        "reshape(x, (-1,))": (d.reshape(A, (-1,)), xp.reshape(A, (-1,))),
        "take(x_1d, indices)": (d.take(d.reshape(A, (-1,)), flat_rows), xp.take(xp.reshape(A, (-1,)), flat_rows)),
        "astype(x, float64)": (d.astype(A, xp.float64), xp.astype(A, xp.float64)),
    }
    for what, (got, want) in cases.items():
        got, want = np.asarray(be.to_numpy(got)), np.asarray(be.to_numpy(want))
        assert got.shape == want.shape and got.dtype == want.dtype and np.allclose(got, want, rtol=1e-6), (
            f"direct {what} gives {got.dtype} {got.shape}, the namespace's {want.dtype} {want.shape}"
            + ("" if got.shape != want.shape else f", max difference {np.max(np.abs(got - want))}"))


CHECKS: dict[str, dict[str, Callable[[Registry, str], str]]] = {
    "activation": {"config": _config, "gradcheck": _act_gradcheck, "extreme": _act_extreme,
                   "dtype_shape": _act_dtype_shape, "no_mutation": _act_no_mutation, "inplace": _act_inplace,
                   "array_api": _act_array_api},
    "loss": {"config": _config, "gradcheck": _loss_gradcheck, "extreme": _loss_extreme, "weight": _loss_weight,
             "dtype_shape": _loss_dtype_shape, "no_mutation": _loss_no_mutation, "fused": _loss_fused,
             "array_api": _loss_array_api},
    "optimizer": {"config": _config, "dtype_shape": _opt_dtype_shape, "no_mutation": _opt_no_mutation,
                  "extreme": _opt_extreme, "decrease": _opt_decrease, "state_dict": _opt_state_dict,
                  "flat": _opt_flat, "array_api": _opt_array_api},
    "initializer": {"config": _config, "dtype_shape": _init_shape_dtype, "seeded": _init_seeded,
                    "variance": _init_variance},
    "scheduler": {"config": _config, "lr": _sched_lr, "warmup": _sched_warmup},
    "dataset": {"config": _config_created, "loads": _data_loads, "seeded": _data_seeded},
    "metric": {"config": _config, "tasks": _metric_tasks},
    "backend": {"config": _config_created, "methods": _backend_methods},
}

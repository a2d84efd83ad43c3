"""What the checks of every kind share: building a plugin from its config defaults, the config check,
finiteness, shape/dtype and no-mutation assertions, the Array API reference namespace, input grids."""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

from framework.errors import ConfigError
from framework.registry import Registry

FLOATS = (np.float32, np.float64)
EXTREME = (-1e4, -1e3, -50.0, -1.0, 0.0, 1.0, 50.0, 1e3, 1e4)   # finiteness grid
EXTREME_GRAD = ((-1e3, -100.0, -30.0), (-1.0, 0.0, 1.0), (30.0, 100.0, 1e3))   # gradcheck grid, (3, 3)
EXTREME_TOL = 1e-4

_MISSING = object()


def config_check(reg: Registry, name: str) -> str:
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


def expect(arr, shape, dtype, what: str) -> None:
    assert arr.shape == shape, f"{what} has shape {arr.shape}, expected {shape}"
    assert arr.dtype == dtype, f"{what} has dtype {arr.dtype} for {np.dtype(dtype)} input"


def finite(what: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """compute(), failing with `what` in the message on a floating-point error or a NaN/inf result."""
    try:
        out = compute()
    except (FloatingPointError, RuntimeWarning) as e:
        raise AssertionError(f"{what}: {type(e).__name__}: {e}") from e
    bad = ~np.isfinite(out)
    assert not bad.any(), f"{what}: non-finite value {np.asarray(out)[bad].flat[0]}"
    return out


def unchanged(what: str, before, after) -> None:
    assert np.array_equal(before, after), f"{what} was modified in place"


def strict_namespace():
    """The Array API reference namespace, or None where it is not installed."""
    try:
        import array_api_strict
    except ImportError:
        return None
    return array_api_strict


def agree(what: str, xs, got, expected) -> None:
    """`got` (an array of namespace xs) equals the NumPy result `expected`."""
    assert hasattr(got, "__array_namespace__") and got.__array_namespace__() is xs, (
        f"{what} returned {type(got).__name__}, not an array of xp: "
        "compute with xp only (no numpy, no array methods)")
    assert np.allclose(np.from_dlpack(got), expected, rtol=1e-12, atol=1e-300), (
        f"{what} with xp = array_api_strict differs from NumPy")


NO_STRICT = "skipped: array_api_strict not installed"


def all_defaulted(reg, name) -> None:
    required = [p.name for p in inspect.signature(reg.get(name)).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    assert not required, (f"arguments {required} have no default; every argument needs one "
                          f"so that `{reg.group}={name}` works from config")


def named(reg, name, **changes):
    """create(name) with its defaults (updated by `changes`); a ConfigError's message where it needs
    settings or resources this machine lacks (a data file, a GPU)."""
    all_defaulted(reg, name)
    try:
        return reg.create(name, **{**reg.defaults(name), **changes})
    except ConfigError as e:
        return str(e)


def created_config(reg, name):
    """Config check for kinds whose arguments need not be attributes: data sets (factories), backends."""
    obj = small(reg, name)
    if isinstance(obj, str):
        return f"skipped: not available with its defaults ({obj})"
    assert obj.name == name, f".name is {obj.name!r}, expected the registered name {name!r}"
    return ", ".join(f"{k}={v!r}" for k, v in reg.defaults(name).items()) or "(no arguments)"


def worst_error(results):
    worst = max(results, key=lambda r: r.max_error)
    worst.raise_if_failed()
    return f"max rel err {worst.max_error:.1e} (tol {worst.tol:.0e})"


def normal_array(shape, dtype, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def small(reg, name, **changes):
    """The data set with its defaults (at most 300 rows where it takes `n`), or the message of the
    ConfigError when it needs settings (a file path)."""
    n = reg.defaults(name).get("n")
    return named(reg, name, **({"n": min(n, 300)} if isinstance(n, int) else {}), **changes)

"""Functions the Array API standard lacks, with what each array library provides declared by its
backend (`Backend.writes_out`, `erf`, `axpy`, `direct`, recorded here by `provide`), never guessed
from type or module names.

- `sigmoid`: the logistic function, stable for any input (activations and logit losses share it).
- `erf`: the Gauss error function (not in the standard): the namespace's declared one, else computed
  on the host with SciPy.
- `axpy`: y += alpha x in one pass (a BLAS level-1 call) where the backend declares one (optimizers).
- `namespace_of`: the namespace of an array (for code handed arrays only, like optimizers).
- `direct`: sum, max, take, reshape, astype with the standard's signatures, as the C-level callables
  a backend declares (NumPy: `np.add.reduce`, ndarray methods; `np.sum` & co. are Python wrappers
  that cost a few microseconds a call, a fifth of a small model's step in its loss), else `xp`'s own.
- `into`: `out[...] = func(*args)` without a temporary. The standard has in-place operators
  (`a += b`) but no `out=` argument; NumPy and CuPy functions take one (`Backend.writes_out`), which
  saves an allocation and a pass over memory on the hot path (optimizer updates). Other libraries
  compute, then copy.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, NamedTuple

import numpy as np


def namespace_of(x):
    """The Array-API namespace of array `x`: its `__array_namespace__()` (NumPy, CuPy,
    array-api-strict), else array-api-compat's wrapper (e.g. torch)."""
    try:
        return x.__array_namespace__()
    except AttributeError:
        from array_api_compat import array_namespace

        return array_namespace(x)


_WRITES_OUT: set = set()   # array types whose namespace's elementwise functions take `out=`
_ERF: dict = {}             # namespace -> its library's erf
_AXPY: dict = {}            # array type -> axpy(y, alpha, x) -> bool
_DIRECT: dict = {}          # namespace -> its Direct forms


class Direct(NamedTuple):
    """Standard functions called as `f(x, ...)` with the standard's arguments (`axis=`, `keepdims=`
    by keyword): sum(x, axis=None, keepdims=False), max(x, axis=None, keepdims=False),
    take(x, indices, axis=None), reshape(x, shape), astype(x, dtype)."""

    sum: Callable
    max: Callable
    take: Callable
    reshape: Callable
    astype: Callable


def provide(xp, array_type, *, writes_out: bool = False, erf=None, axpy=None, direct=None) -> None:
    """Record what namespace `xp` with arrays of `array_type` offers beyond the standard. Called only
    by `Backend.__init__` from the backend's declarations (`Backend.writes_out`, `erf`, `axpy`,
    `direct`)."""
    if writes_out:
        _WRITES_OUT.add(array_type)
    if erf is not None:
        _ERF[xp] = erf
    if axpy is not None:
        _AXPY[array_type] = axpy
    if direct is not None:
        _DIRECT[xp] = direct


@contextmanager
def kept_declarations():
    """The declarations recorded by `provide` as they are now, back after the block: what a backend created
    inside it declared (a faulty test backend's false claims included) does not outlive the block; a
    backend created later declares its own again (the conformance checks run each check inside one)."""
    tables = (_WRITES_OUT, _ERF, _AXPY, _DIRECT)
    saved = [table.copy() for table in tables]
    try:
        yield
    finally:
        for table, before in zip(tables, saved):
            table.clear()
            table.update(before)


def direct(xp) -> Direct:
    """The `Direct` forms of namespace xp: its backend's declared ones, else xp's own functions."""
    found = _DIRECT.get(xp)
    if found is None:
        found = _DIRECT[xp] = Direct(xp.sum, xp.max, xp.take, xp.reshape, xp.astype)
    return found


def axpy(y, alpha: float, x) -> bool:
    """y += alpha * x in place, in one pass without a temporary, by the BLAS axpy declared for y's
    type; returns False (y untouched) where none is declared or it does not apply (dtype, layout),
    so the caller computes the update itself. (`axpy_for(y)` looks the function up once.)"""
    return axpy_for(y)(y, alpha, x)


def _no_axpy(y, alpha, x) -> bool:
    return False


def axpy_for(array):
    """The declared `axpy(y, alpha, x) -> bool` for arrays of `array`'s type; one that always returns
    False (nothing declared) otherwise."""
    return _AXPY.get(type(array), _no_axpy)


def into(out, func, *args):
    """Write `func(*args)` into the preallocated array `out` (same shape and dtype) and return `out`.

    `func` is an elementwise function of the array's namespace (`xp.multiply`, `xp.sqrt`, ...). Where
    that namespace is declared `writes_out` it writes straight into `out`; elsewhere
    `out[...] = func(*args)`. The values are the same either way.
    """
    if type(out) in _WRITES_OUT:
        return func(*args, out=out)
    if any(isinstance(a, (int, float)) for a in args):  # Python scalars in functions: only since 2024.12
        xp = namespace_of(out)
        args = [xp.asarray(a, dtype=out.dtype, device=out.device) if isinstance(a, (int, float)) else a
                for a in args]
    out[...] = func(*args)
    return out


def sigmoid(xp, z):
    """1 / (1 + e^-z), elementwise, without overflow for any z: e^-|z| never exceeds 1."""
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def erf(xp, z):
    """Gauss error function, elementwise, same shape and dtype as `z`."""
    own = _ERF.get(xp)
    if own is not None:
        return own(z)
    from scipy.special import erf as host_erf  # no declared erf: compute on the host

    host = np.from_dlpack(xp.asarray(z))  # asarray: a NumPy scalar (0-d arithmetic gives one) has no __dlpack__
    return xp.asarray(host_erf(host).astype(host.dtype, copy=False), device=getattr(z, "device", None))

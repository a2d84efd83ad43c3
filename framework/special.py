"""Functions the Array API standard lacks, dispatched on the array's library.

- `sigmoid`: the logistic function, stable for any input (activations and logit losses share it).
- `erf`: the Gauss error function (not in the standard).
- `namespace_of`: the namespace of an array (for code handed arrays only, like optimizers).
- `into`: `out[...] = func(*args)` without a temporary. The standard has in-place operators
  (`a += b`) but no `out=` argument; NumPy and CuPy ufuncs take one, which saves an allocation and a
  pass over memory on the hot path (optimizer updates). Other libraries compute, then copy.
"""
from __future__ import annotations

import numpy as np


def _library(x) -> str:
    """Top-level package of an array's type: "numpy", "cupy", "torch", "array_api_strict", ..."""
    return type(x).__module__.split(".", 1)[0]


def namespace_of(x):
    """The Array-API namespace of array `x`: its `__array_namespace__()` (NumPy, CuPy,
    array-api-strict), else array-api-compat's wrapper (e.g. torch)."""
    try:
        return x.__array_namespace__()
    except AttributeError:
        from array_api_compat import array_namespace

        return array_namespace(x)


_TAKES_OUT: dict = {}  # (type of func, type of out) -> whether func(*args, out=out) works


def into(out, func, *args):
    """Write `func(*args)` into the preallocated array `out` (same shape and dtype) and return `out`.

    `func` is an elementwise function of the array's namespace (`xp.multiply`, `xp.sqrt`, ...). Where it
    is a NumPy/CuPy ufunc it writes straight into `out`; elsewhere `out[...] = func(*args)`. The values
    are the same either way.
    """
    key = (type(func), type(out))
    takes_out = _TAKES_OUT.get(key)
    if takes_out is None:
        takes_out = _TAKES_OUT[key] = type(func).__name__ == "ufunc" and _library(func) == _library(out)
    if takes_out:
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
    lib = _library(z)
    if lib == "numpy":
        from scipy.special import erf as np_erf

        return np_erf(z).astype(z.dtype, copy=False)
    if lib == "cupy":
        from cupyx.scipy.special import erf as cp_erf

        return cp_erf(z)
    if lib == "torch":
        import torch

        return torch.special.erf(z)
    from scipy.special import erf as np_erf  # any other library: compute on the host

    host = np.from_dlpack(z)
    return xp.asarray(np_erf(host).astype(host.dtype, copy=False), device=getattr(z, "device", None))

"""What an array library offers beyond the Array API standard, as its backend declares it, and the
functions plugin code calls to use it.

A backend declares its `Capabilities` once (`Backend.capabilities`) and hands plugins its namespace as
an `ArrayNamespace`: the library's module with the backend's capabilities attached. The functions below
read them from the `xp` they are given, never from a process-wide table, so the same inputs give the
same bits whatever else was created in the process. A plain module (`numpy` passed by a user) declares
nothing: it gets the standard's path.

- `sigmoid`: the logistic function, stable for any input (activations and logit losses share it).
- `erf`: the Gauss error function (not in the standard): the declared one, else SciPy's on the host.
- `axpy`: y += alpha x, in one BLAS pass where one is declared (optimizers).
- `direct`: sum, max, take, reshape, astype with the standard's signatures, as the C-level callables a
  backend declares (NumPy: `np.add.reduce`, ndarray methods; `np.sum` & co. are Python wrappers that
  cost a few microseconds a call, a fifth of a small model's step in its loss), else `xp`'s own.
- `into`: `out[...] = func(*args)` without a temporary where the namespace writes into `out=`.
- `namespace_of`: the namespace of an array (for code handed arrays only).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Callable, NamedTuple

import numpy as np


class Direct(NamedTuple):
    """Standard functions called as `f(x, ...)` with the standard's arguments (`axis=`, `keepdims=`
    by keyword): sum(x, axis=None, keepdims=False), max(x, axis=None, keepdims=False),
    take(x, indices, axis=None), reshape(x, shape), astype(x, dtype)."""

    sum: Callable
    max: Callable
    take: Callable
    reshape: Callable
    astype: Callable

    @classmethod
    def of(cls, xp) -> Direct:
        """The namespace's own functions."""
        return cls(xp.sum, xp.max, xp.take, xp.reshape, xp.astype)


@dataclass(frozen=True)
class Capabilities:
    """What a backend's arrays and namespace can do beyond the standard; declared, never guessed.

    host_memory: arrays live in host memory, so reading a scalar costs no device sync (the trainer then
        checks every batch for NaN/inf before the update).
    writes_out: the backend's `matmul`, `take`, `batch_sum` and the namespace's elementwise functions
        write into a preallocated `out=` (else they return a new array and the engine keeps no buffers).
    erf: the library's error function, `erf(z)`; None: SciPy's on the host.
    axpy: `axpy(y, alpha, x) -> bool`: y += alpha x in place in one pass, False (y untouched) where it
        does not apply (dtype, layout); None: two elementwise passes.
    direct: the `Direct` forms; None: the namespace's own functions.
    """

    host_memory: bool = True
    writes_out: bool = False
    erf: Callable | None = None
    axpy: Callable | None = None
    direct: Direct | None = None

    def __deepcopy__(self, memo):  # immutable: a copied backend shares it
        return self


class ArrayNamespace(ModuleType):
    """An array library's namespace as a backend hands it out: a module holding every attribute of
    `module` (copied once; a module's attribute lookup, so `xp.add` costs what `numpy.add` costs, and the
    library's own module `__getattr__` still serves its lazy names), plus `capabilities` (the backend's
    `Capabilities`) and `module` (the library's own namespace)."""

    def __init__(self, module, capabilities: Capabilities):
        module = module.module if isinstance(module, ArrayNamespace) else module
        super().__init__(module.__name__, module.__doc__)
        self.__dict__.update(vars(module))
        self.module, self.capabilities = module, capabilities

    def __reduce__(self):  # by the module's name: a module does not pickle
        return _namespace, (self.module.__name__, self.capabilities)

    def __deepcopy__(self, memo):
        return self

    def __repr__(self) -> str:
        return f"ArrayNamespace({self.module.__name__})"


def _namespace(module_name: str, capabilities: Capabilities) -> ArrayNamespace:
    import importlib

    return ArrayNamespace(importlib.import_module(module_name), capabilities)


def namespace_of(x):
    """The Array-API namespace of array `x`: its `__array_namespace__()` (NumPy, CuPy,
    array-api-strict), else array-api-compat's wrapper (e.g. torch). A plain namespace: no capabilities."""
    try:
        return x.__array_namespace__()
    except AttributeError:
        from array_api_compat import array_namespace

        return array_namespace(x)


def direct(xp) -> Direct:
    """The `Direct` forms of namespace xp: its backend's declared ones, else xp's own functions."""
    found = xp.capabilities.direct if isinstance(xp, ArrayNamespace) else None
    return Direct.of(xp) if found is None else found


def axpy(xp, y, alpha: float, x, work) -> None:
    """y += alpha x in place: one BLAS pass where `xp` declares an axpy that applies to these arrays
    (one rounding: fused multiply-add), else alpha x into `work` (an array like y; may be x itself when x
    is scratch) and y += work (two roundings)."""
    fast = xp.capabilities.axpy if isinstance(xp, ArrayNamespace) else None
    if fast is None or not fast(y, alpha, x):
        y += into(xp, work, xp.multiply, x, alpha)


def into(xp, out, func, *args):
    """Write `func(*args)` into the preallocated array `out` (same shape and dtype) and return `out`.

    `func` is an elementwise function of namespace `xp` (`xp.multiply`, `xp.sqrt`, ...). Where `xp`
    declares `writes_out` it writes straight into `out` (no temporary, one pass less over memory); else
    `out[...] = func(*args)`. The values are the same either way.
    """
    if isinstance(xp, ArrayNamespace) and xp.capabilities.writes_out:
        return func(*args, out=out)
    if any(isinstance(a, (int, float)) for a in args):  # Python scalars in functions: only since 2024.12
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
    own = xp.capabilities.erf if isinstance(xp, ArrayNamespace) else None
    if own is not None:
        return own(z)
    from scipy.special import erf as host_erf  # none declared: compute on the host

    host = np.from_dlpack(xp.asarray(z))  # asarray: a NumPy scalar (0-d arithmetic gives one) has no __dlpack__
    return xp.asarray(host_erf(host).astype(host.dtype, copy=False), device=getattr(z, "device", None))

"""Array backends: NumPy on the host, CuPy on an NVIDIA GPU, any Array-API library by module name.

A backend is an object holding `xp` (the array namespace that plugin code computes with), never a
process-wide switch, so several backends live side by side in one process:

    backends.create("numpy", dtype="float32")
    backends.create("cupy", dtype="float32")                       # needs CUDA and CuPy
    backends.create("array_api", namespace="array_api_strict", dtype="float64")

Host data (initial weights, batches) is drawn with NumPy and moved once with `asarray`; results come
back with `to_numpy` (one transfer). Parameters, gradients and optimizer state stay on the backend.
"""
from __future__ import annotations

import functools
import importlib

import numpy as np

from framework import Backend
from framework.errors import ConfigError
from framework.registry import backends
from framework.special import Capabilities, Direct


def _host_dtype(dtype):
    """The NumPy dtype of the same name as a library dtype (`cupy.float32` is `numpy.float32`; an
    Array-API library's `float32` object has a name or a repr ending in it)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        return np.dtype(str(dtype).rsplit(".", 1)[-1])


class ScipyBlas:
    """SciPy's BLAS level-1 routines for float32 and float64: y += a x (`axpy`) and x . y (`sq_norms`).
    SciPy ships its own OpenBLAS: made when a NumpyBackend is, before `limits()` scans the BLAS libraries
    (both then get the thread limit). Pickles as a fresh load (f2py routines do not pickle)."""

    def __init__(self):
        from scipy.linalg import blas  # imported when a NumPy backend is made, not with this module

        self._axpy = {np.dtype(np.float32): blas.saxpy, np.dtype(np.float64): blas.daxpy}
        self._dot = {np.dtype(np.float32): blas.sdot, np.dtype(np.float64): blas.ddot}

    def __reduce__(self):
        return ScipyBlas, ()

    def axpy(self, y, alpha, x) -> bool:
        """y += alpha * x by saxpy/daxpy on the flattened arrays (one pass, no temporary, one rounding);
        False where it does not apply (another dtype, mixed dtypes, a y that cannot be flattened without a
        copy)."""
        routine = self._axpy.get(y.dtype)
        if routine is None or x.dtype != y.dtype:
            return False
        try:
            flat = y.reshape(-1, copy=False)  # a view of y, or ValueError
        except ValueError:
            return False
        done = routine(x.reshape(-1), flat, a=alpha)
        if done is not flat:  # f2py computed into a copy (a strided view): write it back
            flat[...] = done
        return True

    def sq_norms(self, arrays) -> list[float]:
        """[x . x for x in arrays] as Python floats, each by a BLAS dot of the flattened array (float64's
        for other dtypes)."""
        dot = self._dot
        return [dot.get(f.dtype, dot[_F64])(f, f) for f in map(np.ndarray.ravel, arrays)]


_F64 = np.dtype(np.float64)


def _numpy_erf(z):
    from scipy.special import erf

    return erf(z).astype(z.dtype, copy=False)


_NUMPY_DIRECT = Direct(sum=functools.partial(np.add.reduce, axis=None),  # the standard's default: all axes
                      max=functools.partial(np.maximum.reduce, axis=None),
                      take=np.ndarray.take, reshape=np.ndarray.reshape, astype=np.ndarray.astype)


@backends.register("numpy")
class NumpyBackend(Backend):
    """NumPy on the host; float32 by default, float64 on request.

    `asarray` never copies an array that already has the requested dtype; `matmul` and `take` write
    into `out` (a preallocated buffer) so the training step allocates nothing for its matrix products
    and batches. `threads` caps the BLAS threads while `Trainer.fit` runs (`limits()`, threadpoolctl;
    None: the library's default; the run's `backend.threads=auto` is resolved before, by
    `framework.train`). Declares host memory, writing into `out`, SciPy's erf, SciPy's BLAS axpy (SGD's
    update in one pass; that BLAS also gives the squared gradient norms, and the thread limit covers it
    too), and the ufuncs' reduce and the ndarray methods as the direct forms of sum, max, take, reshape,
    astype. Small MLPs' GEMMs gain nothing from more threads, and an extra thread that has to wake up on
    a core shared with another process (the sync process) slows every product down.
    """

    xp = np
    device = "cpu"

    def __init__(self, dtype: str = "float32", threads: int | None = None):
        if threads == "auto":
            raise ConfigError("backend.threads=auto is resolved by a run (python -m framework.train); in Python "
                              "pass a number (framework.run.launchers.auto_threads() gives auto's) or None")
        if threads is not None and (isinstance(threads, bool) or not str(threads).isdigit() or int(threads) < 1):
            raise ConfigError(f"backend.threads must be >= 1, auto (cores // parallel jobs) or null "
                              f"(library default), got {threads}")
        self.threads = None if threads is None else int(threads)
        self._controller = None
        self._blas = ScipyBlas()
        super().__init__(dtype)

    def declare(self) -> Capabilities:
        return Capabilities(host_memory=True, writes_out=True, erf=_numpy_erf, axpy=self._blas.axpy,
                            direct=_NUMPY_DIRECT)

    def asarray(self, x, dtype=None):
        return np.asarray(x, dtype=self.resolve_dtype(dtype))

    def to_numpy(self, x):
        return np.asarray(x)

    # matmul(a, b, out=None) and batch_sum(a, out=None) are NumPy's own C callables: no Python frame
    # per call (a small model's step makes ~100 calls; np.sum's Python wrapper alone costs ~3 us)
    matmul = staticmethod(np.matmul)
    batch_sum = staticmethod(functools.partial(np.add.reduce, axis=0))

    def take(self, a, indices, out=None):
        # mode "wrap" (indices in -n..n-1 mean the same rows as with "raise"): with `out`, NumPy's
        # default "raise" first gathers into a temporary buffer (7.5 us vs 0.6 us for 32 x 64 rows)
        return a.take(indices, 0, out, "wrap")

    def host_sq_norms(self, arrays):
        # a BLAS dot of each flattened array: no g*g temporary (~8x faster on 784x256); SciPy's sdot/ddot
        # take fewer instructions per call than ndarray.dot, np.vdot or a segmented reduction of one
        # flat buffer (4 calls a batch on a 2-layer model), and return Python floats
        return self._blas.sq_norms(arrays)

    def limits(self):
        if self.threads is None:
            return super().limits()
        if self._controller is None:  # scanning the loaded libraries costs milliseconds: once
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        return self._controller.limit(limits=int(self.threads), user_api="blas")


CUPY_HELP = ("install CuPy for CUDA 12 with `pip install -e '.[gpu]'` (it pins cupy-cuda12x) on a machine "
             "with an NVIDIA GPU and driver, or run on the CPU with `backend=numpy`")


@backends.register("cupy")
class CupyBackend(Backend):
    """CuPy on CUDA device `device_id`: everything stays on the GPU; `synchronize` waits for the stream.

    CuPy is imported here, not at module import, so registering this backend costs nothing on a
    machine without a GPU; creating it there raises `ConfigError` saying how to fix it.
    """

    reference = "numpy"  # the NumPy backend: the same training step gives the same numbers

    device = "cuda"

    def __init__(self, dtype: str = "float32", device_id: int = 0):
        try:
            import cupy
        except (ImportError, OSError, RuntimeError) as e:  # not installed, or its CUDA libraries missing
            raise ConfigError(f"backend=cupy: CuPy is not available ({type(e).__name__}: {e}); {CUPY_HELP}") from None
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # noqa: BLE001 - CUDARuntimeError, missing driver library, ...
            raise ConfigError(f"backend=cupy: CUDA is not available ({type(e).__name__}: {e}); {CUPY_HELP}") from None
        if not 0 <= int(device_id) < n:
            raise ConfigError(f"backend=cupy: device_id={device_id} but this machine has {n} CUDA device(s) "
                              f"(0..{n - 1})")
        self._cp = cupy
        self.device_id = int(device_id)
        self.device = f"cuda:{self.device_id}"
        cupy.cuda.Device(self.device_id).use()
        self.xp = _compat_namespace(cupy.empty(0)) or cupy
        super().__init__(dtype)

    def declare(self) -> Capabilities:
        from cupyx.scipy.special import erf

        return Capabilities(host_memory=False, writes_out=True, erf=erf)

    def asarray(self, x, dtype=None):
        dtype = self.resolve_dtype(dtype)
        cp = self._cp
        if isinstance(x, cp.ndarray):
            return x if x.dtype == dtype else x.astype(dtype)
        # cast on the host first, so exactly one host->device copy of the final dtype happens
        return cp.asarray(np.asarray(x, dtype=_host_dtype(dtype)))

    def to_numpy(self, x):
        return self._cp.asnumpy(x) if isinstance(x, self._cp.ndarray) else np.asarray(x)

    def synchronize(self):
        self._cp.cuda.get_current_stream().synchronize()

    def matmul(self, a, b, out=None):
        return self._cp.matmul(a, b, out=out)

    def take(self, a, indices, out=None):
        return self._cp.take(a, indices, axis=0, out=out)

    def batch_sum(self, a, out=None):
        return self._cp.sum(a, axis=0, out=out)

    def __repr__(self):
        return f"CupyBackend(dtype={self.dtype}, device={self.device})"


@backends.register("array_api")
class ArrayAPIBackend(Backend):
    """Any library that implements the Python Array API standard, named by its module:
    `namespace="array_api_strict"` (the standard's reference, which rejects anything outside it),
    `"numpy"`, `"torch"`, ... Libraries that are not compliant themselves get array-api-compat's
    wrapper namespace (`pip install array-api-compat`). `device`: the library's device (default: its
    default device), e.g. "cpu" or "cuda" for torch.
    """

    reference = "numpy"  # the NumPy backend: the same training step gives the same numbers

    def __init__(self, namespace: str = "array_api_strict", dtype: str = "float32", device=None):
        try:
            module = importlib.import_module(namespace)
        except ImportError as e:
            raise ConfigError(f"backend=array_api: cannot import namespace '{namespace}' ({e}); "
                              f"install it (`pip install {namespace.replace('_', '-')}`) or pick another") from None
        self.namespace = namespace
        self.xp = _namespace(module, namespace)
        self.device = _device(self.xp, device)
        self._host_memory = _in_host_memory(self.xp.zeros(1, device=self.device))
        super().__init__(dtype)

    def declare(self) -> Capabilities:
        """Host memory where NumPy can view the library's arrays; torch's erf; nothing else (the standard's
        functions return new arrays)."""
        erf = None
        if self.namespace == "torch":
            import torch

            erf = torch.special.erf
        return Capabilities(host_memory=self._host_memory, erf=erf)

    def asarray(self, x, dtype=None):
        dtype = self.resolve_dtype(dtype)
        xp = self.xp
        if _is_array_of(xp, x):
            return x if x.dtype == dtype else xp.astype(x, dtype)
        if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
            x = np.asarray(x, dtype=_host_dtype(dtype))  # cast on the host; the library copies once
        return xp.asarray(x, dtype=dtype, device=self.device)

    def to_numpy(self, x):
        """A host array; it may share memory with `x` where the library lives on the host (copy it to keep)."""
        if isinstance(x, np.ndarray):
            return x
        if str(getattr(x, "device", "cpu")).startswith("cuda") and hasattr(x, "cpu"):  # torch on a GPU
            x = x.cpu()
        try:
            return np.from_dlpack(x)
        except (TypeError, BufferError, RuntimeError, AttributeError):
            return np.asarray(x)

    def synchronize(self):
        if self.namespace == "torch" and str(self.device).startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def __repr__(self):
        return f"ArrayAPIBackend(namespace={self.namespace!r}, dtype={self.dtype}, device={self.device})"


def _compat_namespace(array):
    """array-api-compat's namespace for `array`, or None when array-api-compat is not installed."""
    try:
        from array_api_compat import array_namespace
    except ImportError:
        return None
    try:
        return array_namespace(array)
    except TypeError:  # a library array-api-compat does not know
        return None


def _namespace(module, name: str):
    """A compliant namespace for `module`: array-api-compat's wrapper where it has one (numpy, cupy,
    torch, ...), else the module itself if it declares compliance."""
    try:
        probe = module.asarray(0.0)
    except Exception:  # noqa: BLE001 - not an array library at all
        probe = None
    compat = _compat_namespace(probe) if probe is not None else None
    if compat is not None:
        return compat
    if hasattr(module, "__array_api_version__"):
        return module
    raise ConfigError(
        f"backend=array_api: '{name}' does not declare Array API compliance (no __array_api_version__) and "
        "array-api-compat has no wrapper for it; `pip install array-api-compat` or pick a compliant library")


def _device(xp, device):
    """The library's device for `device`: its default for None; a name the library accepts as is
    ("cpu", "cuda:0" for torch); else the device of `xp.__array_namespace_info__().devices()` whose repr
    holds that name (array-api-strict's "device1")."""
    info = getattr(xp, "__array_namespace_info__", None)
    if device is None:
        return info().default_device() if info is not None else None
    if not isinstance(device, str) or info is None:
        return device
    try:
        xp.zeros(1, device=device)
        return device
    except Exception:  # noqa: BLE001 - the library wants a device object
        pass
    for d in info().devices():
        if device == str(d) or f"'{device}'" in repr(d):
            return d
    raise ConfigError(f"backend=array_api: device {device!r} is not one of {list(info().devices())}")


def _in_host_memory(array) -> bool:
    """Whether `array` is in host memory: NumPy can view it through DLPack."""
    try:
        np.from_dlpack(array)
        return True
    except Exception:  # noqa: BLE001 - BufferError, RuntimeError, TypeError: device memory
        return False


def _is_array_of(xp, x) -> bool:
    """Whether `x` is already an array of the library of `xp` (an `ArrayNamespace`), so `asarray` need
    not copy it."""
    try:
        from array_api_compat import array_namespace

        return array_namespace(x) is xp.module
    except (ImportError, TypeError):
        ns = getattr(x, "__array_namespace__", None)
        return ns is not None and ns() is xp.module

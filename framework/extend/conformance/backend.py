"""Backends: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import numpy as np

from framework.extend.conformance import common, reference
from framework.registry import backends
from framework.special import direct


def _backend_methods(reg, name):
    be = common.named(reg, name)
    if isinstance(be, str):
        return f"skipped: not available here ({be})"
    rng, caps = np.random.default_rng(0), be.capabilities
    host = {k: rng.normal(size=s).astype(np.float32) for k, s in (("A", (5, 4)), ("B", (4, 3)), ("g", (3, 2)))}
    dev = {k: be.asarray(v) for k, v in host.items()}
    assert be.resolve_dtype("float32") == dev["A"].dtype, "asarray's default dtype is not resolve_dtype('float32')"
    assert be.asarray(dev["A"]) is dev["A"], "asarray copied an array already on the backend with its dtype"
    back = be.to_numpy(dev["A"])
    assert isinstance(back, np.ndarray) and np.array_equal(back, host["A"]), "to_numpy(asarray(x)) != x"
    want = host["A"] @ host["B"]
    out = be.asarray(np.zeros((5, 3), np.float32))
    got = be.matmul(dev["A"], dev["B"], out=out if caps.writes_out else None)
    assert np.allclose(be.to_numpy(got), want, rtol=1e-5), "matmul differs from NumPy"
    if caps.writes_out:
        assert np.allclose(be.to_numpy(out), want, rtol=1e-5), "writes_out is declared but matmul left `out` unwritten"
    idx = be.asarray(np.array([3, 0, 3]), "int64")
    rows = be.asarray(np.zeros((3, 4), np.float32))
    taken = be.take(dev["A"], idx, out=rows if caps.writes_out else None)
    assert np.array_equal(be.to_numpy(taken), host["A"][[3, 0, 3]]), "take differs from NumPy's"
    if caps.writes_out:
        assert np.array_equal(be.to_numpy(rows), host["A"][[3, 0, 3]]), (
            "writes_out is declared but take left `out` unwritten")
    sums = be.asarray(np.zeros(4, np.float32))
    got = be.batch_sum(dev["A"], out=sums if caps.writes_out else None)
    assert np.allclose(be.to_numpy(got), host["A"].sum(axis=0), rtol=1e-5), "batch_sum differs from sum(axis=0)"
    if caps.writes_out:
        assert np.allclose(be.to_numpy(sums), host["A"].sum(axis=0), rtol=1e-5), (
            "writes_out is declared but batch_sum left `out` unwritten")
    _direct_forms(be, dev["A"])
    if caps.axpy is not None:  # y += alpha x in place, or False with y untouched
        y = be.asarray(host["A"].copy())
        applied = caps.axpy(y, -0.5, dev["A"])
        want = host["A"] - 0.5 * host["A"] if applied else host["A"]
        what = "returned True but left y" if applied else "returned False but changed y"
        assert np.allclose(be.to_numpy(y), want, rtol=1e-6), f"the declared axpy(y, -0.5, x) {what}"
    sq = be.to_numpy(be.sq_norms([dev["A"], dev["g"]]))
    want = [np.sum(host["A"] ** 2), np.sum(host["g"] ** 2)]
    assert np.allclose(sq, want, rtol=1e-5), "sq_norms differs from sum(g^2)"
    if caps.host_memory:  # what the trainer reads every batch there
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
    assert readable == caps.host_memory, (
        f"host_memory={caps.host_memory} is declared but NumPy can{'' if readable else 'not'} view its arrays")
    return f"host_memory={caps.host_memory}, writes_out={caps.writes_out}"


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


TOL = 1e-12  # float64; the same operations, up to the libraries' summation order


def _backend_reference(reg, name):
    be = common.named(reg, name, dtype="float64")
    if isinstance(be, str):
        return f"reference {reg.get(name).reference}: skipped (backend not available here: {be})"
    return reference.check(be, lambda be, target: compare(be, backends.create(be.reference, dtype="float64")), TOL)


def compare(be, ref, steps=3):
    """A backend's reference is a backend of `framework.registry.backends`, by name (`reference = "numpy"`:
    also a module, so the check resolves it like any reference): the same float64
    MLP (5 -> 8 -> 3, tanh; the same seeded weights) trained `steps` SGD-with-momentum steps on the same
    batch on both; the losses and every parameter after the last step compared."""
    from framework.engine.step import train_step
    from framework.model import MLP
    from framework.registry import losses, optimizers

    rng = np.random.default_rng(0)
    X, T = rng.normal(size=(16, 5)), rng.normal(size=(16, 3))
    results = []
    for backend in (be, ref):
        model = MLP([5, 8, 3], activation="tanh", backend=backend, dtype="float64")
        loss, opt = losses.create("mse"), optimizers.create("sgd", lr=0.1, momentum=0.9)
        Xb, Tb = backend.asarray(X, model.dtype), backend.asarray(T, model.dtype)
        values = [float(train_step(model, loss, opt, Xb, Tb)) for _ in range(steps)]
        results.append((values, {k: backend.to_numpy(p) for k, p in model.params.items()}))
    (values, params), (ref_values, ref_params) = results
    worst = max(reference.rel_error(values, ref_values), *(reference.rel_error(params[k], ref_params[k])
                                                           for k in ref_params))
    return worst, f"the losses and parameters of {steps} float64 MLP training steps"


CHECKS = {"config": common.created_config, "methods": _backend_methods, "reference": _backend_reference}

"""Optimizers: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import numpy as np

from framework.extend.conformance import common, reference
from framework.flat import flat_zeros

_A = np.array([1.0, 10.0])   # the quadratic f(p) = sum(A p^2) / 2, gradient A p


def _params(dtype, seed=0):
    return {"w": common.normal_array((4, 3), dtype, seed), "b": common.normal_array((3,), dtype, seed + 1)}


def _opt_dtype_shape(reg, name):
    for dtype in common.FLOATS:
        opt, params = reg.create(name), _params(dtype)
        arrays = dict(params)
        for _ in range(2):
            opt.step(params, _params(dtype, seed=2))
        for k, p in params.items():
            assert p is arrays[k], f"step replaced params[{k!r}]; update the array in place (p -= ...)"
            common.expect(p, arrays[k].shape, dtype, f"params[{k!r}]")
    return "float32, float64"


def _opt_no_mutation(reg, name):
    opt, params, grads = reg.create(name), _params(np.float64), _params(np.float64, seed=2)
    before = {k: g.copy() for k, g in grads.items()}
    for _ in range(2):
        opt.step(params, grads)
    for k in grads:
        common.unchanged(f"grads[{k!r}]", before[k], grads[k])
    return "grads"


def _opt_extreme(reg, name):
    for dtype in common.FLOATS:
        opt, params = reg.create(name), {"p": np.zeros(9, dtype)}
        grads = {"p": np.array([-1e4, -1e3, -1e-30, 0.0, 1e-30, 1e3, 1e4, 0.0, 0.0], dtype)}

        def step(opt=opt, params=params, grads=grads):
            opt.step(params, grads)
            return params["p"]

        for _ in range(3):
            common.finite(f"{np.dtype(dtype)} params after a step with grads {grads['p'].tolist()}", step)
    return "grads in [-1e4, 1e4]"


def _opt_array_api(reg, name):
    if (xs := common.strict_namespace()) is None:
        return common.NO_STRICT
    host, grads = _params(np.float64), _params(np.float64, seed=2)
    params = {k: xs.asarray(p) for k, p in host.items()}
    opt, opt_xs = reg.create(name), reg.create(name)
    for _ in range(2):
        opt.step(host, grads)
        opt_xs.step(params, {k: xs.asarray(g) for k, g in grads.items()})
    for k in host:
        common.agree(f"params[{k!r}] after 2 steps", xs, params[k], host[k])
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


def _flat_copy(arrays: dict, xp=np):
    """A FlatDict (`framework.flat`) of namespace `xp` holding a copy of `arrays`."""
    return flat_zeros(xp, {k: v.shape for k, v in arrays.items()}, np.float64, arrays)


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


TOL = 1e-10  # float64 parameters after each of 20 steps; the updates differ in rounding only
STEPS = 20


def _opt_reference(reg, name):
    return reference.check(reg.create(name), compare, TOL)


def compare(opt, target, steps=STEPS, xp=None):
    """A `steps`-step trajectory in float64: the same start (`_params`) and gradients (a fresh normal
    draw per step) for `opt` and for the torch.optim class made with `opt.reference_arguments()` (torch's
    default dtype float64, so its scalar state is too); the parameters compared after every step.
    `opt` must be fresh (no steps taken). `xp`: parameters and gradients as FlatDicts of that namespace
    (a backend's: the path the trainer takes, e.g. NumPy's BLAS axpy) instead of plain arrays."""
    torch = reference.library(opt)
    arrays = (lambda d: d) if xp is None else (lambda d: _flat_copy(d, xp))
    params = arrays(_params(np.float64))
    with reference.quiet(), reference.torch_float64(torch):
        tensors = {k: torch.tensor(p.copy(), requires_grad=True) for k, p in params.items()}
        theirs = target(list(tensors.values()), **opt.reference_arguments())
    worst = 0.0
    for i in range(steps):
        grads = arrays(_params(np.float64, seed=100 + i))
        opt.step(params, grads)
        with reference.quiet(), reference.torch_float64(torch):
            for k, tensor in tensors.items():
                tensor.grad = torch.tensor(grads[k])
            theirs.step()
        worst = max(worst, *(reference.rel_error(params[k], tensors[k].detach().numpy()) for k in params))
    return worst, f"{steps} steps"


CHECKS = {"config": common.config_check, "dtype_shape": _opt_dtype_shape, "no_mutation": _opt_no_mutation,
                  "extreme": _opt_extreme, "decrease": _opt_decrease, "state_dict": _opt_state_dict,
                  "flat": _opt_flat, "array_api": _opt_array_api, "reference": _opt_reference}

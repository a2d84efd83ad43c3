"""Activations: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import numpy as np

from framework.extend.conformance import common, reference
from framework.gradcheck import check_activation


def _act_gradcheck(reg, name):
    act = reg.create(name)
    return common.worst_error([check_activation(act, shape=(8, 6), seed=s) for s in (0, 1)])


def _act_extreme(reg, name):
    act = reg.create(name)
    for dtype in common.FLOATS:
        z = np.array([common.EXTREME], dtype)
        a = common.finite(f"{np.dtype(dtype)} forward at z={list(common.EXTREME)}", lambda z=z: act.forward(np, z))
        common.finite(f"{np.dtype(dtype)} backward at z={list(common.EXTREME)}",
               lambda z=z, a=a: act.backward(np, z, a, np.ones_like(z)))
    return common.worst_error([check_activation(act, common.EXTREME_GRAD, tol=common.EXTREME_TOL)])


def _act_dtype_shape(reg, name):
    act = reg.create(name)
    for dtype in common.FLOATS:
        z = common.normal_array((5, 4), dtype)
        a = act.forward(np, z)
        common.expect(a, z.shape, dtype, "forward")
        common.expect(act.backward(np, z, a, np.ones_like(z)), z.shape, dtype, "backward")
    return "float32, float64"


def _act_no_mutation(reg, name):
    act = reg.create(name)
    for dtype in common.FLOATS:
        z, g = common.normal_array((5, 4), dtype), common.normal_array((5, 4), dtype, seed=1)
        z0, g0 = z.copy(), g.copy()
        a = act.forward(np, z)
        common.unchanged("z (by forward)", z0, z)
        a0 = a.copy()
        act.backward(np, z, a, g)
        common.unchanged("z (by backward)", z0, z)
        common.unchanged("a (by backward)", a0, a)
        common.unchanged("grad_a (by backward)", g0, g)
    return "z, a, grad_a"


def _act_inplace(reg, name):
    act = reg.create(name)
    for dtype in common.FLOATS:
        z, g = common.normal_array((5, 4), dtype), common.normal_array((5, 4), dtype, seed=1)
        a = act.forward(np, z)
        grad = act.backward(np, z, a, g)
        z_own, g_own = z.copy(), g.copy()  # the model's buffers: the fast paths may overwrite them
        a_own = act.forward_inplace(np, z_own)
        assert np.allclose(a_own, a, rtol=1e-6, atol=0), "forward_inplace differs from forward"
        got = act.backward_inplace(np, z_own, a_own, g_own)
        assert np.allclose(got, grad, rtol=1e-6, atol=1e-30), (
            "backward_inplace differs from backward (if forward_inplace writes a over z, backward must "
            "read only a)")
        common.expect(got, z.shape, dtype, "backward_inplace")
    return "float32, float64"


def _act_array_api(reg, name):
    if (xs := common.strict_namespace()) is None:
        return common.NO_STRICT
    act = reg.create(name)
    z, g = common.normal_array((5, 4), np.float64), common.normal_array((5, 4), np.float64, seed=1)
    zs = xs.asarray(z)
    a, a_xs = act.forward(np, z), act.forward(xs, zs)
    common.agree("forward", xs, a_xs, a)
    common.agree("backward", xs, act.backward(xs, zs, a_xs, xs.asarray(g)), act.backward(np, z, a, g))
    return "forward, backward"


TOL = 1e-10  # float64; the formulas differ in rounding only (torch's softplus is linear beyond beta z > 20: 1e-13)


def _act_reference(reg, name):
    return reference.check(reg.create(name), compare, TOL)


def compare(act, target):
    """Values and vector-Jacobian products (torch autograd, float64) on the checker's inputs: a (8, 6)
    normal draw and the extreme grid z in [-1e4, 1e4]."""
    torch = reference.library(act)
    f = reference.as_function(target, act.reference_arguments())
    worst = 0.0
    for z in (common.normal_array((8, 6), np.float64), np.array([common.EXTREME])):
        g = common.normal_array(z.shape, np.float64, seed=5)
        a = act.forward(np, z)
        grad = act.backward(np, z, a, g)
        with reference.quiet():
            zt = torch.tensor(z, requires_grad=True)
            out = f(zt)
            out.backward(torch.tensor(g))
        worst = max(worst, reference.rel_error(a, out.detach().numpy()), reference.rel_error(grad, zt.grad.numpy()))
    return worst, "values and gradients at 48 normal z and z in [-1e4, 1e4]"


CHECKS = {"config": common.config_check, "gradcheck": _act_gradcheck, "extreme": _act_extreme,
                   "dtype_shape": _act_dtype_shape, "no_mutation": _act_no_mutation, "inplace": _act_inplace,
                   "array_api": _act_array_api, "reference": _act_reference}

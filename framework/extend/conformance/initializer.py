"""Initializers: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import numpy as np

from framework.extend.conformance import common, reference


def _init_shape_dtype(reg, name):
    init = reg.create(name)
    w = common.finite("init(rng, (5, 7))", lambda: np.asarray(init(np.random.default_rng(0), (5, 7))))
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


TOL = 0.03  # two independent (400, 300) draws: variance and quantiles agree to ~1% (3.4 sd of the difference)
QUANTILES = (0.05, 0.5, 0.95)


def _init_reference(reg, name):
    return reference.check(reg.create(name), compare, TOL)


def compare(init, target, shape=(400, 300)):
    """Moments of a large draw, not values: the plugin draws from NumPy's generator, torch.nn.init from
    torch's, so the streams differ. The reference fills a float64 tensor of the same (out, in) shape
    (torch's fan_in = in, as here) under its own seeded generator, `target(tensor,
    **reference_arguments())`; the error is max(|var - var_ref| / var_ref, |q - q_ref| / std_ref over
    the 5%, 50% and 95% quantiles q), which tells N(0, s^2) from U(-a, a) of the same variance. A
    constant reference (zeros_) is compared value for value."""
    torch = reference.library(init)
    ours = np.asarray(init(np.random.default_rng(0), shape), np.float64)
    with reference.quiet(), torch.random.fork_rng():
        torch.manual_seed(0)
        tensor = torch.empty(shape, dtype=torch.float64)
        target(tensor, **init.reference_arguments())
        theirs = tensor.numpy()
    what = f"a {shape} draw"
    std = float(np.std(theirs))
    if std == 0:
        return reference.rel_error(ours, theirs), f"{what} (constant)"
    moments = [abs(float(np.var(ours)) / std**2 - 1)]
    moments += list(np.abs(np.quantile(ours, QUANTILES) - np.quantile(theirs, QUANTILES)) / std)
    return max(moments), f"the variance and 5/50/95% quantiles of {what} (RNG streams differ: moments compared)"


CHECKS = {"config": common.config_check, "dtype_shape": _init_shape_dtype, "seeded": _init_seeded,
                    "variance": _init_variance, "reference": _init_reference}

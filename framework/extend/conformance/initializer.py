"""Initializers: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import numpy as np

from framework.extend.conformance import common


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


CHECKS = {"config": common.config_check, "dtype_shape": _init_shape_dtype, "seeded": _init_seeded,
                    "variance": _init_variance}

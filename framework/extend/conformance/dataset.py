"""Data sets: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import numpy as np

from framework.engine.data import TASKS, validate
from framework.extend.conformance import common


def _data_loads(reg, name):
    ds = common.small(reg, name)
    if isinstance(ds, str):
        return f"skipped: needs settings ({ds})"
    assert ds.task in TASKS, f"task {ds.task!r} is not one of {TASKS}"
    validate(ds)
    assert ds.X.dtype.kind == "f", f"X has dtype {ds.X.dtype}; features are floats"
    return f"{ds.task}, X {ds.X.shape}, y {ds.y.shape} {ds.y.dtype}"


def _data_seeded(reg, name):
    if "seed" not in reg.defaults(name):
        return "skipped: no seed argument (a fixed data set)"
    a, b, c = (common.small(reg, name, seed=s) for s in (0, 0, 1))
    if isinstance(a, str):
        return f"skipped: needs settings ({a})"
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y), "the same seed gave different data"
    assert not np.array_equal(a.X, c.X), "seeds 0 and 1 gave the same X"
    return "same seed, same data"


CHECKS = {"config": common.created_config, "loads": _data_loads, "seeded": _data_seeded}

"""Data sets: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import numpy as np

from framework.engine.data import TASKS, validate
from framework.extend.conformance import common, reference


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


TOL = 0.0  # the same rows: exactly


def _data_reference(reg, name):
    return reference.check(reg.get(name), lambda loader, target: compare(reg, name, target), TOL)


def compare(reg, name, target):
    """The data set with its defaults against the reference loader called without arguments (a
    function registered with `datasets.register(name, reference="sklearn.datasets.load_digits")`):
    X against the loader's `data` (or the first of a returned pair), y against its `target` (or the
    second), row for row; y's shapes (n,) and (n, 1) count as the same."""
    ds = common.named(reg, name)
    assert not isinstance(ds, str), f"the data set does not load with its defaults ({ds})"
    with reference.quiet():
        loaded = target()
    X, y = (loaded.data, loaded.target) if hasattr(loaded, "data") else loaded[:2]
    X, y = np.asarray(X), np.asarray(y)
    assert ds.X.shape == X.shape, f"X has shape {ds.X.shape}, the reference's data {X.shape}"
    assert ds.y.size == y.size, f"y has {ds.y.size} values, the reference's target {y.size}"
    worst = max(reference.rel_error(ds.X, X, floor=0.0), reference.rel_error(ds.y.ravel(), y.ravel(), floor=0.0))
    return worst, f"{X.shape[0]} rows of X and y"


CHECKS = {"config": common.created_config, "loads": _data_loads, "seeded": _data_seeded, "reference": _data_reference}

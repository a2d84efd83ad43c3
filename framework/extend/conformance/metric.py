"""Metrics: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import numpy as np

from framework.engine.data import TASKS
from framework.extend.conformance import common, reference


def _metric_inputs(task, rng, n=40, c=3):
    """(y_true, random y_pred for labels, random scores, perfect labels, perfect scores) for `task`."""
    if task == "regression":
        y = rng.normal(size=(n, 2))
        return y, None, rng.normal(size=(n, 2)), None, y.copy()
    k = 2 if task == "binary" else c
    y = np.r_[np.arange(k), rng.integers(0, k, n - k)]
    p = rng.dirichlet(np.ones(k), n)
    onehot = np.eye(k)[y]
    scores, perfect = (p[:, 1], onehot[:, 1]) if task == "binary" else (p, onehot)
    return y, rng.integers(0, k, n), scores, y.copy(), perfect


def _metric_tasks(reg, name):
    metric = reg.create(name)
    assert metric.tasks and set(metric.tasks) <= set(TASKS), (
        f"tasks {metric.tasks!r} must be a non-empty subset of {TASKS}")
    assert metric.uses in ("labels", "scores"), f"uses is {metric.uses!r}, expected 'labels' or 'scores'"
    figures = []
    for task in metric.tasks:
        y, labels, scores, perfect_labels, perfect_scores = _metric_inputs(task, np.random.default_rng(0))
        random_pred, perfect_pred = ((scores, perfect_scores) if metric.uses == "scores" or task == "regression"
                                     else (labels, perfect_labels))
        r, p = float(metric(y, random_pred)), float(metric(y, perfect_pred))
        assert np.isfinite(r) and np.isfinite(p), f"{task}: non-finite value {r} or {p}"
        better = p >= r if metric.higher_is_better else p <= r
        assert better, (f"{task}: a perfect prediction scores {p:.4g}, a random one {r:.4g}, but "
                        f"higher_is_better={metric.higher_is_better}")
        figures.append(f"{task} perfect {p:.3g} random {r:.3g}")
    return "; ".join(figures)


TOL = 1e-12
SEEDS = 5


def _metric_reference(reg, name):
    return reference.check(reg.create(name), compare, TOL)


def compare(metric, target):
    """Values on random predictions (`_metric_inputs`, several seeds) for every task the metric declares:
    `target(y_true, y_pred, **reference_arguments())`, y_pred the predicted labels (uses="labels"; the
    scores for regression) or the scores (uses="scores": class 1's probability for binary, (n, C) for
    classification, (n, k) for regression)."""
    worst = 0.0
    kwargs = metric.reference_arguments()
    for task in metric.tasks:
        for seed in range(SEEDS):
            y, labels, scores, _, _ = _metric_inputs(task, np.random.default_rng(seed))
            pred = scores if metric.uses == "scores" or task == "regression" else labels
            with reference.quiet():
                want = float(target(y, pred, **kwargs))
            worst = max(worst, reference.rel_error(float(metric(y, pred)), want))
    return worst, f"{SEEDS} random predictions per task ({', '.join(metric.tasks)})"


CHECKS = {"config": common.config_check, "tasks": _metric_tasks, "reference": _metric_reference}

"""Evaluation: `evaluate` (metric names -> values) and `confusion_matrix`; `Metric` (defined in
`framework.interfaces`) and `default_metrics` (`framework.engine.tasks`) re-exported for metric plugins.

`evaluate` takes `scores`, the model's prediction in target space (`Loss.predict`): classification (n, C)
probabilities, binary (n, 1) or (n, 2), regression (n, k); and `y_true`, the Dataset's y. Each metric gets
what its `uses` asks for (`Metric`): the predicted classes (n,) int64, or the scores, binary ones as (n,)
P(class 1). Concrete metrics are registered in `plugins/metrics.py`.
"""
from __future__ import annotations

import numpy as np

from framework.engine.tasks import default_metrics, labels, positive_scores
from framework.errors import ConfigError, ShapeError
from framework.interfaces import Metric
from framework.registry import metrics

__all__ = ["Metric", "confusion_matrix", "default_metrics", "evaluate", "metrics_for"]


def metrics_for(task: str) -> list[str]:
    """Registered metric names that apply to `task`."""
    return [n for n in metrics.names() if task in metrics.get(n).tasks]


def evaluate(names: list[str] | None, task: str, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """`{name: value}` for each metric in `names` (None -> `default_metrics(task)`); numpy inputs."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    scores = scores.reshape(len(scores), -1)
    if task == "regression":
        y_true = y_true.reshape(len(y_true), -1)
    if len(y_true) == 0 or len(y_true) != len(scores) or (task == "regression" and y_true.shape != scores.shape):
        raise ShapeError(f"cannot evaluate scores of shape {scores.shape} against y_true of shape {y_true.shape}")
    predicted = None if task == "regression" else labels(task, scores)  # for metrics with uses="labels"
    if task == "binary":
        scores = positive_scores(scores)
    out = {}
    for name in default_metrics(task) if names is None else names:
        metric = metrics.create(name)
        if task not in metric.tasks:
            raise ConfigError(f"metric '{name}' does not apply to task '{task}'; "
                              f"metrics for {task}: {', '.join(metrics_for(task))}")
        out[name] = float(metric(y_true, scores if metric.uses == "scores" else predicted))
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts; row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    for label, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ConfigError(f"{label} has classes outside 0..{n_classes - 1}: min {y.min()}, max {y.max()}")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes**2).reshape(n_classes, n_classes)

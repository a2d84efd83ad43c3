"""What a task means, defined once: the targets a loss is fed, the labels read from the model's
outputs, and the metrics logged when none are configured.

    task             y (Dataset)               model outputs               labels from scores
    classification   (n,) int64 classes 0..C-1  (n, C)                      argmax over the C scores
    binary           (n,) int64 in {0, 1}       (n, 1) P(class 1), or (n, 2) P(class 1) >= THRESHOLD
    regression       (n, k) float64             (n, k)                      none

`scores` are outputs mapped to target space by the loss (`Loss.predict`: probabilities or values).
"""
from __future__ import annotations

import numpy as np

from framework.errors import ConfigError

TASKS = ("classification", "binary", "regression")
THRESHOLD = 0.5   # binary: class 1 when P(class 1) >= THRESHOLD
DEFAULT_METRICS = {
    "classification": ["accuracy", "f1_macro", "precision_macro", "recall_macro"],
    "binary": ["accuracy", "f1", "roc_auc"],
    "regression": ["mse", "mae", "r2"],
}


def default_metrics(task: str) -> list[str]:
    """The metrics logged for `task` when none are configured."""
    if task not in DEFAULT_METRICS:
        raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    return list(DEFAULT_METRICS[task])


def output_size(ds, targets: str = "values", loss: str = "?") -> int:
    """Model outputs data set `ds` needs when loss `loss` (a name, for the error) is fed `targets`:
    "indices": one per class (2 for binary); "values": C (one-hot), 1 for binary (a logit or
    P(class 1)), k for regression. The one table of output widths."""
    if targets not in ("indices", "values"):
        raise ConfigError(f"loss '{loss}' declares targets={targets!r}; targets must be 'indices' or 'values'")
    if targets == "indices":
        if ds.task == "regression":
            raise ConfigError(f"loss '{loss}' needs class targets but data '{ds.name}' is a regression "
                              f"task; use loss=mse, mae or huber")
        return ds.n_classes
    if ds.task == "regression":
        return ds.y.shape[1]
    return 1 if ds.task == "binary" else ds.n_classes


def positive_scores(scores: np.ndarray) -> np.ndarray:
    """Binary: (n, 1) or (n, 2) scores (or (n,)) -> (n,) P(class 1)."""
    scores = np.asarray(scores)
    return scores.reshape(len(scores), -1)[:, -1]


def labels(task: str, scores: np.ndarray) -> np.ndarray:
    """(n,) int64 predicted classes from scores: argmax, or P(class 1) >= THRESHOLD for binary."""
    if task == "binary":
        return (positive_scores(scores) >= THRESHOLD).astype(np.int64)
    if task == "classification":
        return np.asarray(scores).argmax(axis=1).astype(np.int64)
    raise ConfigError(f"task {task!r} has no class labels")


def targets_for(ds, targets: str) -> np.ndarray:
    """What the loss compares the model output of data set `ds` with (the output's width being the one
    `output_size` gives, which the trainer checks first). targets="indices": int64 classes (n,).
    targets="values": float64: y (n, k) for regression, 0/1 as (n, 1) for binary, one-hot (n, C) for
    classification."""
    if targets == "indices":
        return ds.y.astype(np.int64)
    if ds.task == "regression":
        return ds.y.astype(np.float64)
    if ds.task == "binary":
        return ds.y.astype(np.float64)[:, None]
    return np.eye(ds.n_classes)[ds.y]

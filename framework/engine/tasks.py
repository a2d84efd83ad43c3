"""What a task means, defined once: the targets a loss is fed, the labels read from the model's
outputs, and the metrics logged when none are configured.

    task             y (Dataset)               model outputs               labels from scores
    classification   (n,) int64 classes 0..C-1  (n, C)                      argmax over the C scores
    binary           (n,) int64 in {0, 1}       (n, 1) P(class 1), or (n, 2) P(class 1) >= THRESHOLD
    regression       (n, k) float64             (n, k)                      none

`scores` are outputs mapped to target space by the loss (`Loss.predict`: probabilities or values).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

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


class Feed(NamedTuple):
    """How a loss that takes `targets` is fed on one task: the model's output width and the targets array."""

    width: Callable   # ds -> int
    targets: Callable  # ds -> array the loss compares the (n, width) output with


# (loss targets, task) -> Feed: the one table. "indices": int64 classes (n,), one output per class (2 for
# binary); "values": float64 one-hot (n, C), 0/1 as (n, 1) for binary (a logit or P(class 1)), y (n, k).
FEEDS = {
    ("indices", "classification"): Feed(lambda ds: ds.n_classes, lambda ds: ds.y.astype(np.int64)),
    ("indices", "binary"): Feed(lambda ds: ds.n_classes, lambda ds: ds.y.astype(np.int64)),
    ("values", "classification"): Feed(lambda ds: ds.n_classes, lambda ds: np.eye(ds.n_classes)[ds.y]),
    ("values", "binary"): Feed(lambda ds: 1, lambda ds: ds.y.astype(np.float64)[:, None]),
    ("values", "regression"): Feed(lambda ds: ds.y.shape[1], lambda ds: ds.y.astype(np.float64)),
}


def feed(ds, targets: str, loss: str = "?") -> Feed:
    """The `FEEDS` entry of data set `ds` for loss `loss` (a name, for the error) taking `targets`."""
    if targets not in ("indices", "values"):
        raise ConfigError(f"loss '{loss}' declares targets={targets!r}; targets must be 'indices' or 'values'")
    if (targets, ds.task) not in FEEDS:
        raise ConfigError(f"loss '{loss}' needs class targets but data '{ds.name}' is a regression "
                          f"task; use loss=mse, mae or huber")
    return FEEDS[targets, ds.task]


def output_size(ds, targets: str = "values", loss: str = "?") -> int:
    """Model outputs data set `ds` needs when loss `loss` is fed `targets` (`FEEDS`)."""
    return feed(ds, targets, loss).width(ds)


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
    """What the loss compares the model output of data set `ds` with (`FEEDS`; the output's width being
    the one `output_size` gives, which the trainer checks first)."""
    return feed(ds, targets).targets(ds)

"""Trainer callbacks: tracking, progress and checkpoints hook in here; the trainer imports none of them.

Per-batch numbers stay on the device: each update writes its loss and squared gradient norms into a row
of a device buffer; every `flush_every` batches and at each epoch end the trainer moves the new rows to the
host in one transfer and hands them to `on_batches` as a `BatchRecord` (the learning rates and the global
norm added), so a callback never forces a per-batch sync.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The per-batch record's columns, named once: the trainer, its divergence check and callbacks use these.
LOSS = "batch/loss"              # the batch's loss
LR = "batch/lr"                  # the learning rate of the update
GLOBAL_NORM = "grad_norm/global"  # sqrt(sum over parameters of |g|^2)


def grad_norm_key(param: str) -> str:
    """Column of parameter `param`'s gradient norm, e.g. "grad_norm/layers.0.W"."""
    return f"grad_norm/{param}"


def record_keys(params) -> list[str]:
    """The columns for a model with parameter names `params`, in order:
    [LOSS, LR, grad_norm_key(p) for each p, GLOBAL_NORM]."""
    return [LOSS, LR, *(grad_norm_key(p) for p in params), GLOBAL_NORM]


@dataclass
class BatchRecord:
    """Host copy of flushed per-batch rows.

    steps:   (n,) int64 global batch indices (0-based)
    keys:    column names, `record_keys(model.params)`
    values:  (n, len(keys)) float64
    epoch:   epoch the rows belong to
    """

    steps: np.ndarray
    keys: list[str]
    values: np.ndarray
    epoch: int

    def column(self, key: str) -> np.ndarray:
        """(n,) values of column `key` (LOSS, LR, GLOBAL_NORM or a grad_norm_key)."""
        return self.values[:, self.keys.index(key)]


class Callback:
    """Override what you need. `trainer` exposes `model`, `loss`, `optimizer`, `splits`, `epoch`, `step`,
    `history`, `status`, `failure` and `request_stop(reason)` (stop at the next batch boundary: KILLED);
    raise `framework.engine.trainer.StopTraining` to end early (FINISHED). Registered with
    `@framework.registry.callbacks.register("name")`, a callback is an entry of the `callbacks` config group."""

    def set_folder(self, folder: Path) -> None:
        """Before training: the run folder (Hydra's job folder, else the tracking run folder), where a
        callback that writes files puts them unless configured otherwise."""

    def files(self) -> list[Path]:
        """The files it writes (logged as run artifacts when they are in the tracked run folder)."""
        return []

    def on_train_start(self, trainer) -> None: ...

    def on_batch_end(self, trainer, step: int) -> None:
        """After each update; `trainer.batch_loss` is the loss as a device 0-d array (read lazily)."""

    def on_batches(self, trainer, record: BatchRecord) -> None:
        """Flushed per-batch rows (host arrays)."""

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        """`logs`: train/loss, val/loss, val/<metric>, epoch/seconds, epoch/samples_per_second."""

    def on_train_end(self, trainer, status: str, logs: dict[str, float]) -> None:
        """`status`: FINISHED, FAILED or KILLED; `logs`: final metrics (test/<metric>, ...)."""

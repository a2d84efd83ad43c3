"""The run's plots, drawn by the sync process from what the training process put in the run log.

`End.plots` = {"history": {key: [value per epoch]}, "task": str, "split": str | None (predictions
in runlog/predictions.npz: y_true, scores), "plugins": {file name: `plugin_curves(...)`}}; `draw`
writes plots/loss.png, plots/confusion_matrix.png or plots/predictions.png, and plots/<file name>.
Matplotlib's Agg figures only (no pyplot), imported once per sync process; a plugin picture already
drawn by this process for the same curves is copied, not drawn again.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .runlog import LOG


def draw(folder: Path, spec: dict) -> None:
    """Every plot of `spec` into `folder`/plots."""
    from ..plugin_plots import draw_curves

    out = folder / "plots"
    out.mkdir(exist_ok=True)
    figures = {"loss.png": plot_loss(spec["history"])}
    if spec.get("split"):
        with np.load(folder / LOG / "predictions.npz", allow_pickle=False) as f:
            y_true, scores = f["y_true"], f["scores"]
        if spec["task"] == "regression":
            figures["predictions.png"] = plot_predictions(y_true, scores, spec["split"])
        else:
            figures["confusion_matrix.png"] = plot_confusion(y_true, scores, spec["task"], spec["split"])
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=100)
    for name, curves in spec.get("plugins", {}).items():
        key = json.dumps(curves, sort_keys=True)
        if key not in _drawn or not _drawn[key].exists():  # a sweep's jobs mostly share their plugins
            _drawn[key] = draw_curves(curves, out / name)
        elif _drawn[key] != out / name:
            shutil.copyfile(_drawn[key], out / name)


_drawn: dict[str, Path] = {}  # plugin curves -> the PNG this process drew of them


def _figure(**kw):
    from matplotlib.figure import Figure

    fig = Figure(layout="constrained", **kw)
    return fig, fig.add_subplot()


def plot_loss(history: dict):
    """Every `*/loss` curve of the history against the epoch."""
    fig, ax = _figure(figsize=(6, 4))
    for key, values in history.items():
        if key.endswith("loss"):
            ax.plot(np.arange(len(values)), values, label=key)
    ax.set(xlabel="epoch", ylabel="loss", title="loss")
    if ax.lines:
        ax.legend()
    return fig


def plot_confusion(y_true, scores, task: str, split: str):
    """Confusion matrix on `split`; classes as `framework.tasks.labels` predicts them."""
    from ..metrics import confusion_matrix
    from ..tasks import labels

    scores = np.asarray(scores).reshape(len(scores), -1)
    n = 2 if task == "binary" else scores.shape[1]
    cm = confusion_matrix(y_true, labels(task, scores), n)
    fig, ax = _figure(figsize=(1 + 0.5 * n, 1 + 0.5 * n))
    ax.imshow(cm, cmap="Blues")
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, count, ha="center", va="center", fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion matrix ({split})", xticks=range(n), yticks=range(n))
    return fig


def plot_predictions(y_true, scores, split: str):
    """Predictions on `split` against targets, one colour per output; the diagonal is perfect."""
    y_true = np.asarray(y_true).reshape(len(y_true), -1)
    scores = np.asarray(scores).reshape(y_true.shape)
    fig, ax = _figure(figsize=(5, 5))
    for k in range(y_true.shape[1]):
        ax.scatter(y_true[:, k], scores[:, k], s=6, alpha=0.6, label=f"output {k}")
    lo, hi = float(min(y_true.min(), scores.min())), float(max(y_true.max(), scores.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set(xlabel="target", ylabel="prediction", title=f"predictions vs targets ({split})")
    return fig

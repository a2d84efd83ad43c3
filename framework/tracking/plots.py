"""The run's plots, drawn by the sync process from what the training process put in the run log.

`End.plots` = {"history": {key: [value per epoch]}, "task": str, "split": str | None (predictions
in runlog/predictions.npz: y_true, scores), "plugins": {file name: `plugin_plots.plugin_curves(...)`}};
`draw` writes plots/loss.svg, plots/confusion_matrix.svg or plots/predictions.svg, and
plots/<file name> (activation_<name>.svg, loss_<name>.svg: f and f', the dotted numeric slope lies
on the dashed derivative unless the derivative is wrong).
Drawn by `framework.tracking.report.svg` (SVG as text; the MLflow UI shows .svg artifacts as images).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from framework.extend.pictures import curves_svg
from framework.tracking.report.svg import Axes, svg_document, text
from framework.tracking.runlog import LOG

MAX_SCATTER = 5000  # predictions plot: at most this many points per output (evenly spaced rows)


def draw(folder: Path, spec: dict) -> None:
    """Every plot of `spec` into `folder`/plots."""
    out = folder / "plots"
    out.mkdir(exist_ok=True)
    figures = {"loss.svg": plot_loss(spec["history"])}
    if spec.get("split"):
        with np.load(folder / LOG / "predictions.npz", allow_pickle=False) as f:
            y_true, scores = f["y_true"], f["scores"]
        if spec["task"] == "regression":
            figures["predictions.svg"] = plot_predictions(y_true, scores, spec["split"])
        else:
            figures["confusion_matrix.svg"] = plot_confusion(y_true, scores, spec["task"], spec["split"])
    for name, curves in spec.get("plugins", {}).items():  # (run logs of older versions named them .png)
        figures[Path(name).with_suffix(".svg").name] = curves_svg(curves)
    for name, svg in figures.items():
        (out / name).write_text(svg, encoding="utf-8")


def plot_loss(history: dict) -> str:
    """Every `*/loss` curve of the history against the epoch."""
    series = [(key, np.arange(len(values)), np.asarray(values, float), "-")
              for key, values in history.items() if key.endswith("loss")]
    return Axes(series, "loss", "epoch", "loss").svg()


def plot_predictions(y_true, scores, split: str) -> str:
    """Predictions on `split` against targets, one colour per output; the dashed diagonal is perfect."""
    y_true = np.asarray(y_true, float).reshape(len(y_true), -1)
    scores = np.asarray(scores, float).reshape(y_true.shape)
    rows = np.linspace(0, len(y_true) - 1, min(len(y_true), MAX_SCATTER)).astype(int) if len(y_true) else []
    series = [(f"output {k}", y_true[rows, k], scores[rows, k], "o") for k in range(y_true.shape[1])]
    return Axes(series, f"predictions vs targets ({split})", "target", "prediction", diagonal=True,
                size=(420, 420)).svg()


def plot_confusion(y_true, scores, task: str, split: str) -> str:
    """Confusion matrix on `split` (rows: true class, columns: predicted, as `framework.engine.tasks.labels`
    predicts them), counts written in the cells."""
    from framework.engine.metrics import confusion_matrix
    from framework.engine.tasks import labels

    scores = np.asarray(scores).reshape(len(scores), -1)
    n = 2 if task == "binary" else scores.shape[1]
    cm = confusion_matrix(y_true, labels(task, scores), n)
    cell = max(8, min(40, 480 // n))
    left, top = 56, 34
    width, height = left + n * cell + 12, top + n * cell + 44
    top_count = max(int(cm.max()), 1)
    parts = [text(left + n * cell / 2, 20, f"confusion matrix ({split})", size=13, anchor="middle")]
    for (i, j), count in np.ndenumerate(cm):
        shade = count / top_count
        rgb = [round(a + (b - a) * shade) for a, b in zip((247, 251, 255), (8, 48, 107))]
        x, y = left + j * cell, top + i * cell
        parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({rgb[0]},{rgb[1]},{rgb[2]})"/>')
        if cell >= 18:
            parts.append(text(x + cell / 2, y + cell / 2 + 4, str(count), size=min(11, cell // 2),
                               anchor="middle", fill="white" if shade > 0.5 else "black"))
    every = max(1, math.ceil(14 / cell))  # class numbers at least 14 px apart
    for k in range(0, n, every):
        parts.append(text(left + k * cell + cell / 2, top + n * cell + 14, str(k), anchor="middle"))
        parts.append(text(left - 6, top + k * cell + cell / 2 + 4, str(k), anchor="end"))
    parts.append(text(left + n * cell / 2, height - 8, "predicted", anchor="middle"))
    parts.append(text(14, top + n * cell / 2, "true", anchor="middle", rotate=True))
    return svg_document(width, height, parts)

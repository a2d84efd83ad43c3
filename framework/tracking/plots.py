"""The run's plots, drawn by the sync process from what the training process put in the run log.

`End.plots` = {"history": {key: [value per epoch]}, "task": str, "split": str | None (predictions
in runlog/predictions.npz: y_true, scores), "plugins": {file name: `plugin_plots.plugin_curves(...)`}};
`draw` writes plots/loss.svg, plots/confusion_matrix.svg or plots/predictions.svg, and
plots/<file name> (activation_<name>.svg, loss_<name>.svg: f and f', the dotted numeric slope lies
on the dashed derivative unless the derivative is wrong).
SVG written as text (the MLflow UI shows .svg artifacts as images): no matplotlib in the sync process,
about a millisecond per figure instead of its import (~1 s) and ~0.3 s of drawing per figure.
"""
from __future__ import annotations

import math
from html import escape
from pathlib import Path

import numpy as np

from framework.tracking.runlog import LOG

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
DASH = {"-": "", "--": ' stroke-dasharray="6 4"', ":": ' stroke-dasharray="1.5 3"'}
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
        figures[Path(name).with_suffix(".svg").name] = plot_curves(curves)
    for name, svg in figures.items():
        (out / name).write_text(svg, encoding="utf-8")


def plot_loss(history: dict) -> str:
    """Every `*/loss` curve of the history against the epoch."""
    series = [(key, np.arange(len(values)), np.asarray(values, float), "-")
              for key, values in history.items() if key.endswith("loss")]
    return Axes(series, "loss", "epoch", "loss").svg()


def plot_curves(curves: dict) -> str:
    """A plugin's `plugin_curves` as `framework.extend.pictures.picture` says: f, its derivative (dashed),
    f's numeric slope (dotted), y = 0 in grey."""
    from framework.extend.pictures import picture

    drawn = picture(curves)
    return Axes(drawn["series"], drawn["title"], drawn["xlabel"], "", hline=drawn["hline"]).svg()


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
    parts = [_text(left + n * cell / 2, 20, f"confusion matrix ({split})", size=13, anchor="middle")]
    for (i, j), count in np.ndenumerate(cm):
        shade = count / top_count
        rgb = [round(a + (b - a) * shade) for a, b in zip((247, 251, 255), (8, 48, 107))]
        x, y = left + j * cell, top + i * cell
        parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({rgb[0]},{rgb[1]},{rgb[2]})"/>')
        if cell >= 18:
            parts.append(_text(x + cell / 2, y + cell / 2 + 4, str(count), size=min(11, cell // 2),
                               anchor="middle", fill="white" if shade > 0.5 else "black"))
    every = max(1, math.ceil(14 / cell))  # class numbers at least 14 px apart
    for k in range(0, n, every):
        parts.append(_text(left + k * cell + cell / 2, top + n * cell + 14, str(k), anchor="middle"))
        parts.append(_text(left - 6, top + k * cell + cell / 2 + 4, str(k), anchor="end"))
    parts.append(_text(left + n * cell / 2, height - 8, "predicted", anchor="middle"))
    parts.append(_text(14, top + n * cell / 2, "true", anchor="middle", rotate=True))
    return _svg(width, height, parts)


class Axes:
    """One x-y chart: `series` = [(label, xs, ys, style)], style "-", "--", ":" (lines; non-finite
    points break them) or "o" (points); linear axes with 1-2-5 ticks, a legend when labelled."""

    def __init__(self, series, title: str, xlabel: str, ylabel: str, hline: float | None = None,
                 diagonal: bool = False, size: tuple[int, int] = (480, 320)):
        self.series, self.title, self.xlabel, self.ylabel = series, title, xlabel, ylabel
        self.hline, self.diagonal = hline, diagonal
        self.width, self.height = size
        self.box = (64, 30, self.width - 16, self.height - 44)  # plot area: left, top, right, bottom
        xs = np.concatenate([np.asarray(s[1], float) for s in series] or [np.zeros(0)])
        ys = np.concatenate([np.asarray(s[2], float) for s in series] or [np.zeros(0)])
        if diagonal:
            xs = ys = np.concatenate([xs, ys])
        self.xlim, self.ylim = _limits(xs), _limits(ys if hline is None else np.append(ys, hline))

    def svg(self) -> str:
        left, top, right, bottom = self.box
        parts = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" '
                 f'stroke="#444"/>', _text((left + right) / 2, 20, self.title, size=13, anchor="middle")]
        for t in _ticks(*self.xlim):
            x = self._x(t)
            parts += [f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#444"/>',
                      _text(x, bottom + 16, _fmt(t), anchor="middle")]
        for t in _ticks(*self.ylim):
            y = self._y(t)
            parts += [f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#444"/>',
                      _text(left - 6, y + 4, _fmt(t), anchor="end")]
        parts += [_text((left + right) / 2, self.height - 8, self.xlabel, anchor="middle"),
                  _text(14, (top + bottom) / 2, self.ylabel, anchor="middle", rotate=True)]
        if self.hline is not None:
            y = self._y(self.hline)
            parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#ccc"/>')
        if self.diagonal:
            lo, hi = self.xlim
            parts.append(f'<line x1="{self._x(lo):.1f}" y1="{self._y(lo):.1f}" x2="{self._x(hi):.1f}" '
                         f'y2="{self._y(hi):.1f}" stroke="black"{DASH["--"]}/>')
        for k, (_, xs, ys, style) in enumerate(self.series):
            parts += self._marks(np.asarray(xs, float), np.asarray(ys, float), style, COLORS[k % len(COLORS)])
        parts += self._legend()
        return _svg(self.width, self.height, parts)

    def _x(self, v):  # a number or an array
        lo, hi = self.xlim
        return self.box[0] + (v - lo) / (hi - lo) * (self.box[2] - self.box[0])

    def _y(self, v):
        lo, hi = self.ylim
        return self.box[3] - (v - lo) / (hi - lo) * (self.box[3] - self.box[1])

    def _marks(self, xs, ys, style: str, color: str) -> list[str]:
        ok = np.isfinite(xs) & np.isfinite(ys)
        if style == "o":
            dots = [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2"/>' for x, y in zip(self._x(xs[ok]).tolist(),
                                                                                self._y(ys[ok]).tolist())]
            return [f'<g fill="{color}" fill-opacity="0.6">', *dots, "</g>"]
        runs = np.split(np.arange(len(xs)), np.flatnonzero(~ok)) if len(xs) else []
        px, py = self._x(xs).tolist(), self._y(ys).tolist()  # every point at once (NaN where not finite)
        out = []
        for run in runs:
            run = run[ok[run]]
            if len(run):
                points = " ".join([f"{px[i]:.1f},{py[i]:.1f}" for i in run.tolist()])
                out.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.6"'
                           f'{DASH[style]}/>')
        return out

    def _legend(self) -> list[str]:
        labels = [(k, s[0], s[3]) for k, s in enumerate(self.series) if s[0]]
        if not labels:
            return []
        width = 36 + 6.5 * max(len(label) for _, label, _ in labels)
        x, y = self.box[2] - width - 6, self.box[1] + 6
        out = [f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{8 + 16 * len(labels)}" fill="white" '
               f'fill-opacity="0.85" stroke="#bbb"/>']
        for row, (k, label, style) in enumerate(labels):
            cy, color = y + 12 + 16 * row, COLORS[k % len(COLORS)]
            mark = (f'<circle cx="{x + 16:.1f}" cy="{cy}" r="3" fill="{color}"/>' if style == "o" else
                    f'<line x1="{x + 6:.1f}" y1="{cy}" x2="{x + 26:.1f}" y2="{cy}" stroke="{color}" '
                    f'stroke-width="1.6"{DASH[style]}/>')
            out += [mark, _text(x + 32, cy + 4, label)]
        return out


def _limits(values: np.ndarray) -> tuple[float, float]:
    """(lo, hi) of the finite values, padded by 5%; (0, 1) when there are none."""
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo) * 0.05, 0.5)
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 x 10^k apart) inside [lo, hi], about `count` of them."""
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step)
    return [k * step for k in range(first, math.floor(hi / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.6g}" if abs(v) > 1e-12 else "0"


def _text(x: float, y: float, text: str, size: int = 11, anchor: str = "start", fill: str = "black",
          rotate: bool = False) -> str:
    turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{turn}>'
            f'{escape(str(text))}</text>')


def _svg(width: float, height: float, parts: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans, Arial, sans-serif">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(parts) + "\n</svg>\n")

"""SVG written as text: the one renderer of the project's charts (the run's plots, the plugins' pictures,
the sweep report). No matplotlib: a chart costs no heavy import and little drawing, and the output is plain
text a browser, MLflow's artifact viewer or a report page shows as it is.

    Axes([("val/loss", epochs, values, "-")], "loss", "epoch", "loss", ylog=True).svg()
    heatmap(counts, edges, "layers.0.W weights", "epoch")
"""
from __future__ import annotations

import math
from html import escape

import numpy as np

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#7b4173", "#3182bd")
DASH = {"-": "", "--": ' stroke-dasharray="6 4"', ":": ' stroke-dasharray="1.5 3"'}


def color(k: int) -> str:
    return COLORS[k % len(COLORS)]


def wants_log(values) -> bool:
    """Whether `values` call for a log axis: all finite ones positive, spanning more than 2 decades."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return bool(len(v)) and v.min() > 0 and v.max() / v.min() > 100


class Axes:
    """One x-y chart. `series` = [(label, xs, ys, style[, colour index])], style "-", "--", ":" (lines;
    non-finite points, and non-positive ones on a log axis, break them) or "o" (points); colour index
    default: the series' position. `bands` = [(xs, lo, hi, colour index)]: filled areas between lo and
    hi (a ± std or inter-quartile band). Axes linear (1-2-5 ticks) or log (`xlog`, `ylog`: decade ticks);
    `xticks` = [(x, label)] replaces the x ticks (categories); a legend lists the labelled series."""

    def __init__(self, series, title: str, xlabel: str, ylabel: str, hline: float | None = None,
                 diagonal: bool = False, size: tuple[int, int] = (480, 320), xlog: bool = False, ylog: bool = False,
                 bands=(), xticks=None):
        self.series = [(s[0], np.asarray(s[1], float), np.asarray(s[2], float), s[3], s[4] if len(s) > 4 else k)
                       for k, s in enumerate(series)]
        self.bands = [(np.asarray(x, float), np.asarray(lo, float), np.asarray(hi, float), c) for x, lo, hi, c in bands]
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.hline, self.diagonal, self.xlog, self.ylog = hline, diagonal, xlog, ylog
        self.xticks = xticks
        self.width, self.height = size
        self.box = (64, 30, self.width - 16, self.height - 44)  # plot area: left, top, right, bottom
        xs = [s[1] for s in self.series] + [b[0] for b in self.bands]
        ys = [s[2] for s in self.series] + [v for b in self.bands for v in b[1:3]]
        xs, ys = (np.concatenate(v or [np.zeros(0)]) for v in (xs, ys))
        if diagonal:
            xs = ys = np.concatenate([xs, ys])
        if hline is not None:
            ys = np.append(ys, hline)
        self.xlim, self.ylim = _limits(self._tx(xs), xlog), _limits(self._ty(ys), ylog)

    def _tx(self, v):
        return _log(v) if self.xlog else v

    def _ty(self, v):
        return _log(v) if self.ylog else v

    def svg(self) -> str:
        left, top, right, bottom = self.box
        parts = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" '
                 f'stroke="#444"/>', text((left + right) / 2, 20, self.title, size=13, anchor="middle")]
        xticks = self.xticks or [(t, _fmt(t, self.xlog)) for t in _ticks(*self.xlim, self.xlog)]
        for t, label in xticks:
            x = self._x(t)
            parts += [f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#444"/>',
                      text(x, bottom + 16, label, anchor="middle")]
        for t in _ticks(*self.ylim, self.ylog):
            y = self._y(t)
            parts += [f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#444"/>',
                      text(left - 6, y + 4, _fmt(t, self.ylog), anchor="end")]
        parts += [text((left + right) / 2, self.height - 8, self.xlabel, anchor="middle"),
                  text(14, (top + bottom) / 2, self.ylabel, anchor="middle", rotate=True)]
        if self.hline is not None:
            y = self._y(self._ty(self.hline))
            parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#ccc"/>')
        if self.diagonal:
            lo, hi = self.xlim
            parts.append(f'<line x1="{self._x(lo):.1f}" y1="{self._y(lo):.1f}" x2="{self._x(hi):.1f}" '
                         f'y2="{self._y(hi):.1f}" stroke="black"{DASH["--"]}/>')
        for xs, lo, hi, c in self.bands:
            parts += self._band(xs, lo, hi, color(c))
        for _, xs, ys, style, c in self.series:
            parts += self._marks(xs, ys, style, color(c))
        parts += self._legend()
        return svg_document(self.width, self.height, parts)

    def _x(self, v):  # a number or an array, already on the axis' scale (log10 for a log axis)
        lo, hi = self.xlim
        return self.box[0] + (v - lo) / (hi - lo) * (self.box[2] - self.box[0])

    def _y(self, v):
        lo, hi = self.ylim
        return self.box[3] - (v - lo) / (hi - lo) * (self.box[3] - self.box[1])

    def _points(self, xs, ys):
        """(pixel x list, pixel y list, finite mask) of data points."""
        px, py = self._x(self._tx(xs)), self._y(self._ty(ys))
        return px.tolist(), py.tolist(), np.isfinite(px) & np.isfinite(py)

    def _marks(self, xs, ys, style: str, colour: str) -> list[str]:
        px, py, ok = self._points(xs, ys)
        if style == "o":
            dots = [f'<circle cx="{px[i]:.1f}" cy="{py[i]:.1f}" r="2"/>' for i in np.flatnonzero(ok).tolist()]
            return [f'<g fill="{colour}" fill-opacity="0.6">', *dots, "</g>"]
        out = []
        for run in _runs(ok):
            points = " ".join([f"{px[i]:.1f},{py[i]:.1f}" for i in run])
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"{DASH[style]}/>')
        return out

    def _band(self, xs, lo, hi, colour: str) -> list[str]:
        px, plo, ok_lo = self._points(xs, lo)
        _, phi, ok_hi = self._points(xs, hi)
        out = []
        for run in _runs(ok_lo & ok_hi):
            edge = [f"{px[i]:.1f},{phi[i]:.1f}" for i in run] + [f"{px[i]:.1f},{plo[i]:.1f}" for i in reversed(run)]
            out.append(f'<polygon points="{" ".join(edge)}" fill="{colour}" fill-opacity="0.18" stroke="none"/>')
        return out

    def _legend(self) -> list[str]:
        labels = [(label, style, c) for label, _, _, style, c in self.series if label]
        if not labels:
            return []
        width = 36 + 6.5 * max(len(label) for label, _, _ in labels)
        x, y = self.box[2] - width - 6, self.box[1] + 6
        out = [f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{8 + 16 * len(labels)}" fill="white" '
               f'fill-opacity="0.85" stroke="#bbb"/>']
        for row, (label, style, c) in enumerate(labels):
            cy, colour = y + 12 + 16 * row, color(c)
            mark = (f'<circle cx="{x + 16:.1f}" cy="{cy}" r="3" fill="{colour}"/>' if style == "o" else
                    f'<line x1="{x + 6:.1f}" y1="{cy}" x2="{x + 26:.1f}" y2="{cy}" stroke="{colour}" '
                    f'stroke-width="1.6"{DASH[style]}/>')
            out += [mark, text(x + 32, cy + 4, label)]
        return out


def heatmap(counts: np.ndarray, edges, title: str, ylabel: str, size: tuple[int, int] = (480, 240)) -> str:
    """Rows of histogram counts (row i: e.g. epoch i; column j: bin j between edges[j] and edges[j + 1],
    signed power-of-two bins as `framework.tracking.messages.Histograms` makes them) as a heat map, darker =
    more values (log of the count): only the columns from the first to the last non-empty bin are drawn,
    neighbouring cells of a row with the same shade as one rectangle, one path per shade (8 shades)."""
    counts = np.asarray(counts, float)
    used = np.flatnonzero(counts.sum(axis=0))
    left, top, right, bottom = 64, 30, size[0] - 16, size[1] - 44
    parts = [text((left + right) / 2, 20, title, size=13, anchor="middle"),
             text((left + right) / 2, size[1] - 8, "value (signed log scale)", anchor="middle"),
             text(14, (top + bottom) / 2, ylabel, anchor="middle", rotate=True)]
    if not len(used):
        return svg_document(*size, parts + [text(left, top + 20, "no values")])
    a, b = int(used[0]), int(used[-1]) + 1
    cells = counts[:, a:b]
    rows, cols = cells.shape
    cw, ch = (right - left) / cols, (bottom - top) / rows
    shade = np.zeros(cells.shape, int)
    nonzero = cells > 0
    shade[nonzero] = 1 + np.minimum(7, (7 * np.log1p(cells[nonzero]) / np.log1p(cells.max())).astype(int))
    paths: dict[int, list[str]] = {}
    for r, row in enumerate(shade.tolist()):  # a row's neighbouring cells of one shade: one rectangle
        c = 0
        while c < cols:
            end = c + 1
            while end < cols and row[end] == row[c]:
                end += 1
            if row[c]:
                w = (end - c) * cw
                x, y = left + c * cw, top + r * ch
                paths.setdefault(row[c], []).append(f"M{x:.1f} {y:.1f}h{w:.1f}v{ch:.1f}h{-w:.1f}z")
            c = end
    for level, segments in sorted(paths.items()):
        grey = round(235 - 225 * level / 8)
        parts.append(f'<path d="{"".join(segments)}" fill="rgb({grey},{grey},{min(255, grey + 40)})"/>')
    parts.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" '
                 f'stroke="#444"/>')
    edges = np.asarray(edges, float)
    mid = (len(edges) - 1) // 2  # the bin around 0, between edges mid and mid + 1
    every = next(n for n in (1, 2, 4, 5, 8, 10, 20, 40) if n * cw >= 44)  # labels >= 44 px apart
    for k in range(a, b + 1):
        power = round(math.log2(abs(edges[k])))
        if k in (mid, mid + 1) or power % every:
            continue
        x = left + (k - a) * cw
        parts += [f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#444"/>',
                  text(x, bottom + 16, _short(edges[k]), anchor="middle", size=10)]
    if a <= mid < b:
        parts.append(text(left + (mid - a + 0.5) * cw, bottom + 16, "0", anchor="middle", size=10))
    for r in range(0, rows, max(1, math.ceil(rows / 6))):
        parts.append(text(left - 6, top + (r + 0.5) * ch + 4, str(r), anchor="end"))
    return svg_document(*size, parts)


def _short(v: float) -> str:
    """0.125, 1, 256 as they are (3 significant digits), else '-1e-6' (the exponent without padding)."""
    return f"{v:.3g}" if 0.01 <= abs(v) < 1000 else f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")


def _runs(ok: np.ndarray) -> list[list[int]]:
    """Index lists of the consecutive True stretches of `ok`."""
    if not len(ok):
        return []
    cuts = np.flatnonzero(np.diff(ok.astype(np.int8))) + 1
    return [run.tolist() for run in np.split(np.arange(len(ok)), cuts) if ok[run[0]]]


def _log(v):
    v = np.asarray(v, float)
    out = np.full(v.shape, np.nan)
    np.log10(v, out=out, where=v > 0)
    return out


def _limits(values: np.ndarray, log: bool = False) -> tuple[float, float]:
    """(lo, hi) of the finite values, padded by 5% (log: by a tenth of a decade); (0, 1) when there are none."""
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo) * 0.05, 0.5)
    if log:
        pad = max(pad, 0.1)
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, log: bool = False, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 x 10^k apart; on a log axis whole decades) inside [lo, hi], about `count`."""
    raw = (hi - lo) / count
    if log:
        step = max(1, math.ceil(raw))
        return [float(k) for k in range(math.ceil(lo / step) * step, math.floor(hi) + 1, step)]
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step)
    return [k * step for k in range(first, math.floor(hi / step) + 1)]


def _fmt(v: float, log: bool = False) -> str:
    if log:  # v is the decade
        k = round(v)
        return f"{10.0 ** k:g}" if -2 <= k <= 3 else f"1e{k}"
    return f"{v:.6g}" if abs(v) > 1e-12 else "0"


def text(x: float, y: float, content, size: int = 11, anchor: str = "start", fill: str = "black",
         rotate: bool = False) -> str:
    turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{turn}>'
            f'{escape(str(content))}</text>')


def svg_document(width: float, height: float, parts: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans, Arial, sans-serif">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(parts) + "\n</svg>\n")

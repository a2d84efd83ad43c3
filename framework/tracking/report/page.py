"""The report page: one HTML file, its figures inline SVG (`svg`), its styles inline; no script, no font or
image fetched, so it opens the same from file://, a mail attachment or MLflow's artifact viewer. Written
as well-formed XML (void elements closed) with each group row's numbers in `data-` attributes, so a
program reads it back exactly.

Sections: groups (the runs grouped over seeds, ranked by the objective, Welch's test against the best;
the runs not counted and why), curves (epoch metrics: group mean ± std; batch loss: each run's EMA),
gradients (per-layer gradient norms: median and inter-quartile band over a group's seeds; first/last
layer ratios), distributions (per-layer histograms of weights and gradients per epoch), params (each
swept key against the objective).
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from html import escape

import numpy as np

from framework.tracking.report import stats
from framework.tracking.report.data import Sweep
from framework.tracking.report.svg import Axes, color, heatmap, wants_log

MAX_RUN_POINTS = 1000   # batch loss: points per run
MAX_BAND_POINTS = 300   # gradient norms: points per layer and group
SIZE = (440, 290)
STYLE = """body{font-family:DejaVu Sans,Arial,sans-serif;margin:1.5em;color:#222;max-width:1500px}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
td:first-child,th:first-child,td.l{text-align:left}tr.best{background:#eef7e8;font-weight:bold}
.figs{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}figcaption{font-size:12px;color:#555;max-width:440px}
.key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
p.note{font-size:13px;color:#444;max-width:1100px}code{background:#f4f4f4;padding:0 3px}"""


def natural(key: str):
    """Sort key: digits as numbers ("layers.10.W" after "layers.2.W")."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _num(values: list[str]) -> np.ndarray | None:
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return None


class Page:
    """The report of `sweep`, runs grouped by `by` (default: all params but `seed`)."""

    def __init__(self, sweep: Sweep, by: list[str] | None = None):
        self.sweep, self.metric, self.mode = sweep, sweep.metric, sweep.mode
        self.groups = stats.group_runs(sweep.runs, by)
        self.ranked = stats.rank(self.groups, self.metric, self.mode)
        self.order = [r.group for r in self.ranked]  # colour k = the k-th group in rank order
        self.swept = [k for k in stats.varying_keys(sweep.runs) if k != stats.SEED]

    def html(self) -> str:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        body = [f"<h1>Sweep report: {escape(self.sweep.title)}</h1>",
                f'<p class="note">{len(self.sweep.runs)} runs from <code>{escape(self.sweep.source)}</code>, '
                f"{len(self.groups)} groups, objective "
                f"<code>{escape(self.metric)}</code> ({escape(self.mode)}). Swept: "
                f"{', '.join(f'<code>{escape(k)}</code>' for k in self.swept) or 'nothing'}. Generated {now} by "
                f"<code>python -m framework.report</code>.</p>",
                *self.groups_section(), *self.curves_section(), *self.gradients_section(),
                *self.distributions_section(), *self.params_section()]
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/><title>{escape(self.sweep.title)}'
                f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    # ---- groups ------------------------------------------------------------------------------------
    def groups_section(self) -> list[str]:
        tests = sorted({k for r in self.sweep.runs for k in r.final if k.startswith("test/") and k != self.metric})
        head = ["", "group", "n", f"{self.metric} mean ± std", "min–max", "Welch p vs best",
                *(f"{k} mean ± std (min–max)" for k in tests)]
        rows = []
        for k, r in enumerate(self.ranked):
            g, s = r.group, r.summary
            n = f"{s.n}" if s.n == len(g.runs) else f"{s.n} of {len(g.runs)}"
            cells = [f'<span style="color:{color(k)}">■</span>' + (" best" if r.best else ""),
                     escape(g.label), n, s.text(), s.range(), "" if math.isnan(r.p) else f"{r.p:.3g}"]
            for key in tests:
                t = stats.summarize(g.values(key, self.metric))
                cells.append(f"{t.text()} ({t.range()})" if t.n else "")
            data = f' data-group="{escape(g.label)}" data-n="{s.n}" data-mean="{s.mean!r}" data-std="{s.std!r}"'
            rows.append(f'<tr class="{"best" if r.best else ""}"{data}>' +
                        "".join(f'<td class="{"l" if i == 1 else ""}">{c}</td>' for i, c in enumerate(cells)) + "</tr>")
        out = ["<h2>Groups</h2>",
               f'<p class="note">Runs whose params differ only in <code>seed</code> form a group; mean ± sample std '
               f"and min–max of the final <code>{escape(self.metric)}</code> over a group's finished runs, best "
               f"{'lowest' if self.mode == 'min' else 'highest'} mean first; p: Welch's two-sided t-test of the "
               f"group's values against the best group's (unequal variances; blank with fewer than 2 runs).</p>",
               "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>", *rows, "</table>"]
        failed = [(g, run, why) for g in self.groups for run in g.runs
                  for why in [stats.failure(run, self.metric)] if why is not None]
        out.append(f"<h3>Runs not counted: {len(failed)} of {len(self.sweep.runs)}</h3>")
        if failed:
            out += ["<table><tr><th>run</th><th>group</th><th>status</th><th>reason</th></tr>",
                    *(f'<tr><td>{escape(run.name)}</td><td class="l">{escape(g.label)}</td><td>{escape(run.status)}'
                      f'</td><td class="l">{escape(why)}</td></tr>' for g, run, why in failed), "</table>"]
        return out

    def _key(self) -> str:
        return '<p class="key">' + "".join(f'<span style="background:{color(k)}"></span>{escape(g.label)}'
                                           for k, g in enumerate(self.order)) + "</p>"

    @staticmethod
    def _figure(svg: str, caption: str) -> str:
        return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"

    # ---- curves ------------------------------------------------------------------------------------
    def curves_section(self) -> list[str]:
        figs = []
        keys = sorted({k for g in self.order for r in g.counted(self.metric) for k in r.epochs},
                      key=lambda k: (k.startswith("epoch/"), k))
        for key in keys:
            series, bands, values = [], [], []
            for k, g in enumerate(self.order):
                curves = [r.epochs[key] for r in g.counted(self.metric) if key in r.epochs and len(r.epochs[key][0])]
                if not curves:
                    continue
                steps, rows = stats.aligned(curves)
                mean, std = stats.mean_std(rows)
                series.append(("", steps, mean, "-", k))
                bands.append((steps, mean - std, mean + std, k))
                values.append(rows.ravel())
            log = bool(values) and wants_log(np.concatenate(values))
            caption = f"{key}: mean over each group's seeds, band ± 1 std" + (", log axis" if log else "")
            figs.append(self._figure(Axes(series, key, "epoch", key, size=SIZE, ylog=log, bands=bands).svg(), caption))
        runs = [(k, r) for k, g in enumerate(self.order) for r in g.counted(self.metric) if "batch/loss" in r.batches]
        if runs:
            series, half, values = [], 1, []
            for k, r in runs:
                steps, loss = r.batches["batch/loss"]
                half = stats.half_life(len(loss))
                smooth = stats.ema(loss, half)
                series.append(("", *stats.downsample(steps, smooth, MAX_RUN_POINTS), "-", k))
                values.append(smooth)
            log = wants_log(np.concatenate(values))
            figs.append(self._figure(
                Axes(series, "batch/loss (EMA)", "batch", "batch/loss", size=SIZE, ylog=log).svg(),
                f"batch/loss of every run, EMA with a half-life of {half} batches (n/50), <= {MAX_RUN_POINTS} "
                f"points per run" + (", log axis" if log else "")))
        return ["<h2>Curves</h2>", self._key(), '<div class="figs">', *figs, "</div>"]

    # ---- gradients ---------------------------------------------------------------------------------
    def _layers(self, run) -> list[str]:
        keys = sorted((k for k in run.batches if k.startswith("grad_norm/") and k != "grad_norm/global"), key=natural)
        weights = [k for k in keys if k.endswith(".W")]
        return weights or keys

    def gradients_section(self) -> list[str]:
        figs, rows = [], []
        for k, g in enumerate(self.order):
            runs = [r for r in g.counted(self.metric) if self._layers(r)]
            if not runs:
                continue
            layers = self._layers(runs[0])
            series, bands = [], []
            for j, key in enumerate(layers):
                curves = [r.batches[key] for r in runs if key in r.batches]
                steps, values = stats.aligned(curves)
                half = stats.half_life(len(steps))
                smooth = np.array([stats.ema(np.log(np.maximum(v, 1e-30)), half) for v in values])
                q = np.exp(stats.quantiles(smooth))
                keep = stats.downsample(np.arange(len(steps)), np.arange(len(steps)), MAX_BAND_POINTS)[0]
                series.append((key.removeprefix("grad_norm/"), steps[keep], q[1][keep], "-", j))
                bands.append((steps[keep], q[0][keep], q[2][keep], j))
            figs.append(self._figure(Axes(series, g.label[:60], "batch", "gradient norm", size=SIZE, ylog=True,
                                          bands=bands).svg(),
                                     f"{g.label}: per-layer gradient norm, median over {len(runs)} seed(s), band: "
                                     f"inter-quartile range; each run's norm smoothed by an EMA of its log "
                                     f"(half-life n/50 batches)"))
            early, late = zip(*(stats.layer_ratios(r.batches[layers[0]][1], r.batches[layers[-1]][1]) for r in runs))
            rows.append(f'<tr><td class="l"><span style="color:{color(k)}">■</span> {escape(g.label)}</td>'
                        f"<td>{escape(layers[0].removeprefix('grad_norm/'))} / "
                        f"{escape(layers[-1].removeprefix('grad_norm/'))}</td>"
                        f"<td>{np.median(early):.3g}</td><td>{np.median(late):.3g}</td></tr>")
        if not figs:
            return ["<h2>Gradients</h2>", '<p class="note">No per-layer gradient norms recorded.</p>']
        return ["<h2>Gradients</h2>",
                '<p class="note">First layer\'s gradient norm over the last layer\'s, median over each group\'s '
                "seeds of: the median over the first 10 batches (at initialization) / over the last 10 % of "
                "batches. Well below 1: vanishing toward the input; well above: exploding.</p>",
                "<table><tr><th>group</th><th>layers</th><th>first 10 batches</th><th>last 10 %</th></tr>",
                *rows, "</table>", '<div class="figs">', *figs, "</div>"]

    # ---- distributions -----------------------------------------------------------------------------
    def distributions_section(self) -> list[str]:
        out = []
        for g in self.order:
            run = next((r for r in g.counted(self.metric) if r.histograms), None)
            if run is None:
                continue
            h = run.histograms
            names = sorted(h[0].params, key=natural)
            names = [n for n in names if n.endswith(".W")] or names
            figs = []
            for name in names:
                for kind in ("weights", "grads"):
                    counts = np.array([getattr(e, kind)().get(name, np.zeros(len(e.edges()) - 1)) for e in h])
                    figs.append(self._figure(heatmap(counts, h[0].edges(), f"{name} {kind}", "epoch", size=(330, 200)),
                                             f"{name}: {'weights' if kind == 'weights' else 'last batch gradients'}"
                                             f" per epoch (darker: more values)"))
            out += [f"<h3>{escape(g.label)} (run {escape(run.name)})</h3>", '<div class="figs">', *figs, "</div>"]
        if not out:
            return ["<h2>Distributions</h2>",
                    '<p class="note">No histograms recorded (tracking.histograms=none, or older run logs).</p>']
        h = next(r for g in self.order for r in g.counted(self.metric) if r.histograms).histograms[0]
        return ["<h2>Distributions</h2>",
                f'<p class="note">Each group\'s first run: at every epoch end, a histogram of each layer\'s weights '
                f"and of that epoch's last batch gradients. Bins: signed, one per power of two in |x| from "
                f"2^{h.lo} ({2.0 ** h.lo:.2g}) to 2^{h.hi} on each side of a bin holding |x| &lt; 2^{h.lo}, so a "
                f"gradient that vanishes to 1e-8 is still its own column.</p>", *out]

    # ---- params ------------------------------------------------------------------------------------
    def params_section(self) -> list[str]:
        figs = []
        counted = [(k, r) for k, g in enumerate(self.order) for r in g.counted(self.metric)]
        for key in self.swept:
            values = [r.params.get(key, "") for _, r in counted]
            y = [r.final[self.metric] for _, r in counted]
            numbers = _num(values)
            xticks, xlog = None, False
            if numbers is None:
                cats = sorted(set(values))
                rng = np.random.default_rng(0)
                x = np.array([cats.index(v) for v in values], float) + rng.uniform(-0.15, 0.15, len(values))
                xticks = [(i, c[:14]) for i, c in enumerate(cats)]
            else:
                x, xlog = numbers, wants_log(numbers)
            series = [("", x[[i for i, (k, _) in enumerate(counted) if k == g]],
                       np.array(y)[[i for i, (k, _) in enumerate(counted) if k == g]], "o", g)
                      for g in sorted({k for k, _ in counted})]
            figs.append(self._figure(Axes(series, f"{key} vs {self.metric}", key, self.metric, size=(360, 260),
                                          xlog=xlog, ylog=wants_log(y), xticks=xticks).svg(),
                                     "one dot per finished run, coloured by group"))
        if not figs:
            return []
        return ["<h2>Params</h2>", '<div class="figs">', *figs, "</div>"]


def write(sweep: Sweep, out, by: list[str] | None = None):
    """Write `out`/report.html for `sweep`; returns its path."""
    from pathlib import Path

    path = Path(out) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(Page(sweep, by).html(), encoding="utf-8")
    return path

"""Runs grouped over seeds and compared: the statistics every report (the sweep report, the MNIST-1D
study) takes from here.

- `group_runs`: runs whose params differ only in `seed` form a group (or: the same values of `by`).
- `summarize`: n, mean, sample std (ddof=1), min, max of a group's finite values.
- `rank`: groups by the objective's mean, best first, each with Welch's t-test p-value against the best
  (two-sided, unequal variances: `scipy.stats.ttest_ind(equal_var=False)`).
- `failure`: why a run is not counted (failed, diverged, no finite objective).
- `ema`, `downsample`, `quantiles`: curves for the page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SEED = "seed"


@dataclass
class Summary:
    """n, mean, sample std (NaN for n < 2), min and max of finite values (all NaN for n = 0)."""

    n: int
    mean: float
    std: float
    lo: float
    hi: float

    def text(self, digits: int = 4, scale: float = 1.0) -> str:
        """'0.9123 ± 0.0040' (mean ± std, `digits` significant digits, values times `scale`)."""
        if self.n == 0:
            return "no runs"
        std = f" ± {scale * self.std:.{digits}g}" if self.n > 1 else ""
        return f"{scale * self.mean:.{digits}g}{std}"

    def range(self, digits: int = 4, scale: float = 1.0) -> str:
        return "" if self.n == 0 else f"{scale * self.lo:.{digits}g}–{scale * self.hi:.{digits}g}"


def summarize(values) -> Summary:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    return Summary(len(v), float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                   float(v.min()), float(v.max()))


def welch_p(a, b) -> float:
    """Two-sided p-value of Welch's t-test of samples `a` and `b` (NaN where either has < 2 values or
    both have no spread)."""
    a, b = (np.asarray(x, float) for x in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return math.nan
    from scipy.stats import ttest_ind

    return float(ttest_ind(a, b, equal_var=False).pvalue)


def failure(run, metric: str) -> str | None:
    """Why `run` is not counted in its group's statistics, or None: not FINISHED (its `failure.reason`,
    e.g. "diverged: ..."), or no finite `metric`."""
    if run.status != "FINISHED":
        return run.reason or f"status {run.status}"
    value = run.final.get(metric)
    if value is None or not math.isfinite(value):
        return run.reason or f"no finite {metric}"
    return None


@dataclass
class Group:
    """Runs with the same values of the grouping keys: `key` = ((param, value), ...)."""

    key: tuple[tuple[str, str], ...]
    runs: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.key) or "all runs"

    def counted(self, metric: str) -> list:
        """The runs that count in the statistics (`failure` is None)."""
        return [r for r in self.runs if failure(r, metric) is None]

    def values(self, key: str, metric: str) -> np.ndarray:
        """Final values of `key` over the counted runs (counted by `metric`)."""
        return np.array([r.final[key] for r in self.counted(metric) if key in r.final], float)


def varying_keys(runs) -> list[str]:
    """The params whose values differ among `runs` (a missing param counts as a value), sorted."""
    keys = sorted({k for r in runs for k in r.params})
    return [k for k in keys if len({r.params.get(k) for r in runs}) > 1]


def group_runs(runs, by: list[str] | None = None) -> list[Group]:
    """Runs grouped by the values of `by` (default: every param that differs among them except `seed`),
    in order of first appearance."""
    keys = [k for k in varying_keys(runs) if k != SEED] if by is None else list(by)
    groups: dict[tuple, Group] = {}
    for r in runs:
        key = tuple((k, r.params.get(k, "")) for k in keys)
        groups.setdefault(key, Group(key)).runs.append(r)
    return list(groups.values())


@dataclass
class Ranked:
    """A group's place: its objective's summary and Welch's p-value against the best group."""

    group: Group
    summary: Summary
    p: float
    best: bool


def rank(groups: list[Group], metric: str, mode: str = "min") -> list[Ranked]:
    """`groups` by the mean of `metric` over their counted runs, best first ("min": lowest first);
    groups without a counted run last."""
    sign = -1.0 if mode == "max" else 1.0
    scored = [(g, summarize(g.values(metric, metric))) for g in groups]
    scored.sort(key=lambda gs: (gs[1].n == 0, sign * gs[1].mean if gs[1].n else 0.0))
    if not scored or scored[0][1].n == 0:
        return [Ranked(g, s, math.nan, False) for g, s in scored]
    best = scored[0][0].values(metric, metric)
    return [Ranked(g, s, math.nan if i == 0 else welch_p(g.values(metric, metric), best), i == 0)
            for i, (g, s) in enumerate(scored)]


def layer_ratios(first, last, early: int = 10, late: int | None = None) -> tuple[float, float]:
    """First layer's gradient norm over the last layer's (per-batch values `first`, `last`): the ratio of
    their medians over the first `early` batches (at initialization) and over the last `late` ones
    (default: the last 10 %, at least 10). Well below 1: vanishing toward the input."""
    first, last = np.asarray(first, float), np.asarray(last, float)
    n = min(len(first), len(last))
    late = max(10, n // 10) if late is None else late
    return (float(np.median(first[:early]) / np.median(last[:early])),
            float(np.median(first[n - late:n]) / np.median(last[n - late:n])))


# ---- curves ----------------------------------------------------------------------------------------
def half_life(n: int) -> int:
    """The smoothing half-life (in points) for a curve of `n` points: n / 50, at least 1."""
    return max(1, n // 50)


def ema(values, half: float) -> np.ndarray:
    """Exponential moving average with half-life `half` points (a point's weight halves every `half`
    points: y_t = a x_t + (1 - a) y_(t-1), a = 1 - 2^(-1/half)), bias-corrected at the start (divided by
    1 - (1 - a)^(t+1), as Adam's moments); a NaN stays NaN from there on. NumPy only (scipy.signal's
    lfilter would cost its import): per block of <= 200 half-lives, y_(s+i) = (1 - a)^i ((1 - a)
    y_(s-1) + a cumsum_j((1 - a)^-j x_(s+j))), the scale factors within 2^200."""
    v = np.asarray(values, float)
    a = 1.0 - 0.5 ** (1.0 / half)
    out, state, block = np.empty_like(v), 0.0, max(1, int(200 * half))
    for start in range(0, len(v), block):
        x = v[start:start + block]
        grow = 2.0 ** (np.arange(len(x)) / half)  # (1 - a)^-i
        out[start:start + len(x)] = ((1.0 - a) * state + a * np.cumsum(x * grow)) / grow
        state = out[start + len(x) - 1]
    return out / (1.0 - (1.0 - a) ** np.arange(1, len(v) + 1))


def downsample(steps, values, max_points: int):
    """(steps, values) at <= `max_points` evenly spaced indices, the last point kept."""
    steps, values = np.asarray(steps), np.asarray(values)
    if len(steps) <= max_points:
        return steps, values
    keep = np.unique(np.linspace(0, len(steps) - 1, max_points).round().astype(int))
    return steps[keep], values[keep]


def aligned(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values (runs, steps)) of curves on the steps all of them have (NaN-free steps not required)."""
    common = curves[0][0]
    for steps, _ in curves[1:]:
        common = np.intersect1d(common, steps)
    rows = [values[np.searchsorted(steps, common)] for steps, values in curves]
    return common, np.array(rows, float).reshape(len(curves), len(common))


def mean_std(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: mean and sample std over the rows (std 0 for one row)."""
    mean = rows.mean(axis=0)
    std = rows.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(rows.shape[1])
    return mean, std


def quantiles(rows: np.ndarray, qs=(0.25, 0.5, 0.75)) -> np.ndarray:
    """Per column: the `qs` quantiles over the rows, shape (len(qs), columns)."""
    return np.quantile(rows, qs, axis=0)

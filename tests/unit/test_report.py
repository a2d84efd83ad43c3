"""The sweep report's parts: histogram bins, grouping and statistics, the SVG renderer, the page read
from run logs that real training (`Trainer.fit` with `RunLogger`) wrote."""
from __future__ import annotations

import math
import re
import secrets
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from framework.errors import DivergenceError
from framework.tracking.logger import RunLogger, epoch_histograms, signed_log_counts
from framework.tracking.messages import Histograms, RunStart, decode, encode
from framework.tracking.report import stats
from framework.tracking.report.data import Run, Sweep, load_folder, load_run
from framework.tracking.report.page import Page, write
from framework.tracking.report.svg import Axes, heatmap
from framework.tracking.runlog import RunLogWriter, now_ms
from framework.train import build
from tests.helpers import make_cfg

SVG = "{http://www.w3.org/2000/svg}"


def test_histogram_bins_are_signed_powers_of_two_and_agree_with_numpy():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(500) * 10.0 ** rng.integers(-14, 4, 500), [0.0, -0.0, 1.0, -1.0]])
    edges = np.array(Histograms(0, 0, [], "").edges())
    counts = signed_log_counts(x, -40, 8)[0]
    assert len(counts) == len(edges) - 1 == 2 * 48 + 1
    inside = np.clip(x, edges[0] * 0.999, edges[-1] * 0.999)  # values past +-2^8 count in the outermost bins
    positive = np.histogram(inside[inside > 0], edges)[0]
    negative = np.histogram(-inside[inside < 0], -edges[::-1])[0][::-1]  # mirror: |x| in [2^k, 2^(k+1))
    mid = 48
    assert counts[mid] == np.sum(np.abs(x) < 2.0 ** -40)
    assert np.array_equal(counts[mid + 1:], positive[mid + 1:])
    assert np.array_equal(counts[:mid], negative[:mid])
    single = x.astype(np.float32)
    assert np.array_equal(signed_log_counts(single, -40, 8)[0], signed_log_counts(single.astype(np.float64), -40, 8)[0])
    assert np.array_equal(signed_log_counts(x.astype(np.float16), -40, 8)[0],
                          signed_log_counts(x.astype(np.float16).astype(np.float64), -40, 8)[0])
    nan = signed_log_counts(np.array([np.nan, np.inf, -np.inf, 1e-9]), -40, 8)[0]
    assert nan.sum() == 3 and nan[-1] == 1 and nan[0] == 1  # NaN nowhere, +-inf outermost


def test_epoch_histograms_over_the_flat_buffer_equal_the_per_parameter_ones():
    from framework.model import MLP

    model = MLP(sizes=[5, 7, 3], activation="tanh", seed=1)
    for g in model.grads.values():
        g[...] = np.random.default_rng(2).standard_normal(g.shape) * 1e-6
    model.grads["layers.0.W"][0] = 0.0
    flat, each = epoch_histograms(model, 3, 9, {}), epoch_histograms(model, 3, 9)
    assert flat == each and flat.params == list(model.params)
    assert {k: v.sum() for k, v in flat.grads().items()} == {k: np.prod(v.shape) for k, v in model.params.items()}
    assert flat.grads()["layers.0.W"][48] == 5  # the zeroed row sits in the bin around 0
    for name, W in model.params.items():
        assert np.array_equal(flat.weights()[name], signed_log_counts(W, -40, 8)[0])
    again = decode(encode(flat))  # the journal line
    assert again == flat and np.array_equal(again.array(), flat.array())
    assert Histograms.of(3, 9, flat.params, [list(flat.weights().values()), list(flat.grads().values())]) == flat


def test_welch_p_is_the_unequal_variance_t_test():
    from scipy.stats import t as student

    a, b = np.array([0.9, 0.92, 0.95, 0.91]), np.array([0.8, 0.85, 0.83])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    expected = 2 * student.sf(abs(a.mean() - b.mean()) / math.sqrt(va + vb), df)
    assert stats.welch_p(a, b) == pytest.approx(expected, rel=1e-9)
    assert math.isnan(stats.welch_p(a, [0.5])) and math.isnan(stats.welch_p([1, 1], [2, 2]))


def run(name, status="FINISHED", **params_and_metric):
    value = params_and_metric.pop("value", None)
    params = {k.replace("__", "."): str(v) for k, v in params_and_metric.items()}
    return Run(name, name, status, params, {} if value is None else {"val/acc": value, "test/acc": value / 2},
               tags={"failure.reason": "diverged: loss inf"} if status == "FAILED" else {})


def test_groups_differ_only_in_seed_ranked_by_the_objective_with_failures_apart():
    runs = [run("a0", act="relu", seed=0, value=0.9), run("a1", act="relu", seed=1, value=0.8),
            run("b0", act="tanh", seed=0, value=0.5), run("b1", act="tanh", seed=1, value=0.7),
            run("b2", "FAILED", act="tanh", seed=2), run("c0", act="gelu", seed=0, value=math.nan)]
    groups = stats.group_runs(runs)
    assert [g.label for g in groups] == ["act=relu", "act=tanh", "act=gelu"]
    ranked = stats.rank(groups, "val/acc", "max")
    assert [r.group.label for r in ranked] == ["act=relu", "act=tanh", "act=gelu"] and ranked[0].best
    relu = ranked[0].summary
    assert (relu.n, relu.mean, relu.lo, relu.hi) == (2, pytest.approx(0.85), 0.8, 0.9)
    assert relu.std == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert ranked[1].p == pytest.approx(stats.welch_p([0.5, 0.7], [0.9, 0.8]))
    assert stats.rank(groups, "val/acc", "min")[0].group.label == "act=tanh"
    assert [stats.failure(r, "val/acc") for r in runs[4:]] == ["diverged: loss inf", "no finite val/acc"]
    assert [g.label for g in stats.group_runs(runs, by=["seed"])] == ["seed=0", "seed=1", "seed=2"]


def test_ema_halves_a_step_after_its_half_life_and_downsampling_keeps_the_ends():
    step = np.r_[np.zeros(300), np.ones(200)]
    smooth = stats.ema(step, 10)
    assert smooth[299] == 0 and smooth[309] == pytest.approx(0.5, rel=1e-8)  # 10 points after the step
    assert np.allclose(stats.ema(np.full(7, 3.0), 2), 3.0)  # bias-corrected: no ramp from 0
    from scipy.signal import lfilter

    x, a = np.random.default_rng(0).standard_normal(3000) - 2, 1 - 0.5 ** (1 / 4)  # 750 half-lives: 4 blocks
    debiased = lfilter([a], [1, a - 1], x) / (1 - (1 - a) ** np.arange(1, len(x) + 1))
    assert np.allclose(stats.ema(x, 4), debiased, rtol=0, atol=1e-12)
    steps, values = stats.downsample(np.arange(1200), np.arange(1200.0), 1000)
    assert len(steps) <= 1000 and steps[0] == 0 and steps[-1] == 1199 and np.array_equal(steps, values)


def test_log_axes_tick_whole_decades_and_bands_are_filled():
    x = np.arange(10.0)
    svg = ET.fromstring(Axes([("a", x, 10.0 ** -x, "-")], "t", "x", "y", ylog=True,
                             bands=[(x, 10.0 ** -x / 2, 10.0 ** -x * 2, 0)]).svg())
    labels = {t.text for t in svg.iter(f"{SVG}text")}
    assert {"1", "0.01", "1e-4", "1e-6"} <= labels and "0.5" not in labels
    assert len(list(svg.iter(f"{SVG}polygon"))) == 1 and len(list(svg.iter(f"{SVG}polyline"))) == 1


def test_heatmap_draws_the_used_bins_as_shaded_rectangles():
    counts = np.zeros((3, 97))
    counts[:, 60:70] = [[1], [10], [100]]
    svg = ET.fromstring(heatmap(counts, Histograms(0, 0, [], "").edges(), "h", "epoch"))
    paths = list(svg.iter(f"{SVG}path"))
    assert len(paths) == 3 and all(p.get("d").count("M") == 1 for p in paths)  # one rectangle per row's run


def fit_run(folder, *overrides: str):
    """A real run log: an xor job (tiny) trained by `Trainer.fit` with the run log's `RunLogger`."""
    cfg = make_cfg("data=xor", "model.hidden=[8]", "trainer.epochs=2", *overrides)
    log = RunLogWriter(folder, RunStart(secrets.token_hex(16), "t", now_ms(), folder.name,
                                        {"optimizer.lr": str(cfg.optimizer.lr), "seed": str(cfg.seed),
                                         "objective.metric": "val/loss", "objective.mode": "min"}))
    try:
        build(cfg, [RunLogger(log, cfg, list(overrides), 1, False)]).fit()
    except DivergenceError:
        pass


def test_page_of_real_run_logs_groups_lists_the_diverged_run_and_every_figure_has_data(tmp_path):
    for seed in (0, 1):
        fit_run(tmp_path / f"a{seed}", "optimizer.lr=0.01", f"seed={seed}")
    fit_run(tmp_path / "big", "optimizer.lr=1e6", "optimizer=sgd", "seed=0")
    run = load_run(tmp_path / "a0")
    assert run.status == "FINISHED" and len(run.histograms) == 2 and "grad_norm/layers.0.W" in run.batches
    assert (tmp_path / "a0" / "histograms.json").exists()
    diverged = load_run(tmp_path / "big")
    assert diverged.status == "FAILED" and diverged.reason.startswith("diverged")
    sweep = load_folder(tmp_path)
    page = Page(sweep)
    assert [r.group.label for r in page.ranked] == ["optimizer.lr=0.01", "optimizer.lr=1000000.0"]
    path = write(sweep, tmp_path / "out")
    html = path.read_text()
    assert "Runs not counted: 1 of 3" in html and "diverged" in html
    assert not re.search(r"<script|<link|<img|\bsrc=|\bhref=|url\(|@import", html)  # nothing to fetch
    body = ET.fromstring(re.sub(r"^<!DOCTYPE html>\n", "", html).replace("&nbsp;", " "))
    svgs = list(body.iter(f"{SVG}svg"))
    assert len(svgs) >= 8
    for svg in svgs:
        marks = [e for tag in ("polyline", "polygon", "circle", "path") for e in svg.iter(f"{SVG}{tag}")]
        assert marks, ET.tostring(svg)[:200]


def test_report_command_names_an_unknown_group_key_and_a_missing_target(tmp_path, capsys):
    from framework.report import main

    fit_run(tmp_path / "r", "seed=0")
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path), "--group-by", "optimizer.lrr"])
    assert "'optimizer.lrr' (did you mean 'optimizer.lr'?) is no param" in str(e.value)
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "empty")] if (tmp_path / "empty").mkdir() is None else [])
    assert "no run log in it or below it" in str(e.value)
    main([str(tmp_path), "--out", str(tmp_path / "o")])
    assert "report.html (1 runs" in capsys.readouterr().out


def test_sweep_of_runs_without_points_still_reports(tmp_path):
    sweep = Sweep("s", "here", [run("x", "FAILED", seed=0), run("y", "FAILED", seed=1)], "val/acc", "max")
    html = Page(sweep).html()
    assert "Runs not counted: 2 of 2" in html and "No per-layer gradient norms recorded" in html


def test_layer_ratios_compare_the_first_and_last_layers_at_the_start_and_the_end():
    first = np.r_[np.full(10, 0.01), np.full(190, 1.0)]  # vanishing at initialization, recovered later
    last = np.full(200, 0.5)
    assert stats.layer_ratios(first, last) == (pytest.approx(0.02), pytest.approx(2.0))
    assert stats.layer_ratios(first, last, early=20, late=100) == (pytest.approx(1.01), pytest.approx(2.0))

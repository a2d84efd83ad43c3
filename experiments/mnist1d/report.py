"""`python -m experiments.mnist1d.report`: RESULTS.md and its plots, read back from the MLflow runs of
the MNIST-1D study (`python -m experiments.mnist1d.study`).

    python -m experiments.mnist1d.report                         # the framework's store, experiment mnist1d_study
    python -m experiments.mnist1d.report --uri sqlite:////abs/study.db --out /tmp/report

Each part of the study is the latest parent run named after it (`tracking.run_name=<part>`) with its
children; a row's command is the parent's recorded Hydra overrides, its wall time the parent's duration.
Runs are grouped and summarized by the sweep report's functions (`framework.tracking.report.stats`).
Only the paper's numbers (`PAPER`) are typed in here.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from experiments.mnist1d.study import DEPTHS, EXPERIMENT, PARTS
from framework.tracking.report.data import from_mlflow
from framework.tracking.report.stats import group_runs, layer_ratios, rank, summarize

HERE = Path(__file__).resolve().parent
PAPER = {"logistic regression": 32, "MLP": 68, "CNN": 94, "GRU": 91, "human": 96}
"""Test accuracy (%) on the default split, Greydanus 2020, "Scaling Down Deep Learning" (arXiv:2011.14439)."""
ACCURACY = "test/accuracy"
VANISHED = 0.1
"""A first layer whose gradient norm is below VANISHED x the output layer's counts as vanishing."""


@dataclass
class Part:
    """One part of the study: its parent run and finished children, and the store they are in."""

    name: str
    parent: object
    client: object
    children: list = field(default_factory=list)

    @property
    def command(self) -> str:
        overrides = self.parent.data.tags.get("hydra.overrides", "").split()
        return " ".join(["python -m framework.train -m", *map(shlex.quote, overrides)])

    @property
    def wall(self) -> str:
        info = self.parent.info
        if not info.end_time:
            return f"unfinished ({info.status})"
        return f"{duration((info.end_time - info.start_time) / 1000)} ({len(self.children)} runs)"

    def values(self, key: str, runs=None) -> np.ndarray:
        runs = self.children if runs is None else runs
        return np.array([r.data.metrics[key] for r in runs if key in r.data.metrics])


def duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes else f"{s} s"


def pct(values: np.ndarray) -> str:
    """'71.3 ± 0.8 %' (mean ± sample std over the runs, in percent)."""
    s = summarize(values)
    if s.n == 0:
        return "no runs"
    std = f" ± {100 * s.std:.1f}" if s.n > 1 else ""
    return f"{100 * s.mean:.1f}{std} %"


def groups(p: Part, keys: list[str], metric: str):
    """The part's children grouped by `keys` (`activation` as recorded: `activation.name`), best mean of
    `metric` (higher is better) first: [(values of keys, Group)]."""
    runs = [from_mlflow(r) for r in p.children]
    recorded = [k if any(k in r.params for r in runs) else f"{k}.name" for k in keys]
    return [(tuple(v for _, v in r.group.key), r.group) for r in rank(group_runs(runs, recorded), metric, "max")]


def load_parts(client, experiment: str) -> dict[str, Part]:
    """{part: Part} for every part of `PARTS` that has a parent run in `experiment` (the latest one)."""
    from framework.tracking.store import search

    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"error: no experiment '{experiment}' in {client.uri}: run python -m "
                         f"experiments.mnist1d.study first, or name the store with --uri")
    runs = search(client, [exp.experiment_id])  # one query; parents and children told apart by their tags
    parents = sorted((r for r in runs if r.data.tags.get("sweep.role") == "parent"), key=lambda r: r.info.start_time)
    parts = {r.info.run_name: Part(r.info.run_name, r, client) for r in parents if r.info.run_name in PARTS}
    by_id = {part.parent.info.run_id: part for part in parts.values()}
    for r in sorted(runs, key=lambda r: r.info.start_time):
        part = by_id.get(r.data.tags.get("mlflow.parentRunId"))
        if part is not None and r.info.status == "FINISHED":
            part.children.append(r)
    return parts


def param(run, key: str) -> str:
    """A run's value of a swept key: `activation` is recorded as `activation.name`."""
    params = run.data.params
    return params.get(key, params.get(f"{key}.name", "?"))


def short(value: str) -> str:
    """A recorded param for a table: floats to 3 significant digits, anything else as it is."""
    try:
        return value if value.isdigit() else f"{float(value):.3g}"
    except ValueError:
        return value


def table(header: list[str], rows: list[list]) -> list[str]:
    return [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}", *(f"| {' | '.join(map(str, r))} |" for r in rows)]


def paper_table(parts: dict[str, Part]) -> list[str]:
    rows, checks = [], []
    for part, model, label in (("paper_logreg", "logistic regression", "logistic regression (`mnist1d_logreg`)"),
                               ("paper_mlp", "MLP", "MLP, the paper's recipe (`mnist1d_mlp`)"),
                               ("best_mlp", "MLP", "MLP, the sweep's winner (`mnist1d_mlp_best`)"),
                               ("robust_mlp", "MLP", "MLP, the seed-checked winner (`mnist1d_mlp_robust`)")):
        p = parts.get(part)
        acc = p.values(ACCURACY) if p else np.array([])
        seeds = f"{100 * acc.min():.1f}–{100 * acc.max():.1f}" if len(acc) else ""
        rows.append([label, f"{PAPER[model]} %", pct(acc), seeds, f"`{p.command}`" if p else "not run",
                     p.wall if p else ""])
        if part == "paper_logreg" and len(acc):
            gap = abs(100 * acc.mean() - PAPER[model])
            checks.append(f"- Logistic regression within 3 points of the paper's {PAPER[model]} %: "
                          f"**{'yes' if gap <= 3 else 'no'}** ({gap:.1f} points).")
        if part in ("best_mlp", "robust_mlp") and len(acc):
            checks.append(f"- {label}, mean over {len(acc)} seeds >= 72 %: "
                          f"**{'yes' if 100 * acc.mean() >= 72 else 'no'}** ({100 * acc.mean():.1f} %).")
    rows += [[m, f"{PAPER[m]} %", "not built here (a fully-connected framework)", "", "", ""] for m in ("CNN", "GRU")]
    rows.append(["human", f"{PAPER['human']} %", "", "", "", ""])
    return [*table(["model", "paper", "ours: test accuracy, mean ± std", "seeds min–max", "command", "wall time here"],
                   rows), "", *checks]


def sweep_objective(p: Part) -> tuple[str, int]:
    """(metric, sort sign: -1 where higher is better) of a sweep: what its jobs optimized, from the config
    each recorded (`objective.metric`, `objective.mode`)."""
    found = {(param(r, "objective.metric"), param(r, "objective.mode")) for r in p.children}
    if len(found) != 1 or "?" in next(iter(found)):
        raise SystemExit(f"error: the jobs of sweep {p.parent.info.run_id} record objective.metric/mode "
                         f"{sorted(found) or 'nowhere'}; expected one pair (were they run by framework.train?)")
    metric, mode = found.pop()
    return metric, -1 if mode == "max" else 1


def sweep_section(parts: dict[str, Part]) -> list[str]:
    p = parts.get("sweep")
    if p is None:
        return ["The sweep has not been run."]
    keys = p.parent.data.tags.get("sweep.keys", "").split()
    objective, sign = sweep_objective(p)
    trials = sorted((r for r in p.children if objective in r.data.metrics),
                    key=lambda r: sign * r.data.metrics[objective])
    lines = [f"Optuna (TPE, seeded) over {', '.join(f'`{k}`' for k in keys)}: {len(trials)} finished trials, each "
             f"scored by `{objective}` on 600 validation rows carved from the 4000 training rows (the test rows "
             f"are not loaded: `data.test=drop`). Command: `{p.command}`; wall time {p.wall}. The five best:", ""]
    lines += table(["val accuracy", *keys],
                   [[f"{100 * r.data.metrics[objective]:.1f} %", *(short(param(r, k)) for k in keys)]
                    for r in trials[:5]])
    best = parts.get("best_mlp")
    if trials and best and best.children:
        same = all(param(trials[0], k) == param(best.children[0], k) for k in keys if k != "split.val_fraction")
        lines += ["", f"The preset `mnist1d_mlp_best` {'has' if same else 'does NOT have'} the best trial's values "
                      f"of the swept keys; it trains on all 4000 training rows (`split.val_fraction=0`) and is "
                      f"tested once per seed."]
    return lines


def robust_section(parts: dict[str, Part]) -> list[str]:
    p = parts.get("robust")
    if p is None:
        return ["The seed check has not been run."]
    keys = [k for k in p.parent.data.tags.get("sweep.keys", "").split() if k != "seed"]
    ranked = groups(p, keys, "val/accuracy")
    rows = [[*key, pct(g.values("val/accuracy", "val/accuracy")), len(g.runs)] for key, g in ranked]
    best = parts.get("best_mlp")
    loss = best.values("train/loss") if best else np.array([])
    spread = f"; final train loss {loss.min():.3g} to {loss.max():.3g} over its seeds" if len(loss) else ""
    return ["The sweep scored each trial on one run (seed 0), and its winner's test runs spread widely (the "
            f"table above{spread}): with a constant step size some seeds end far from a minimum. This check was "
            "added after seeing that spread, so the seed-checked winner's test row is a second look at the test "
            "rows, not an untouched estimate. The winner's settings with each of these values, 3 seeds each, "
            f"scored on the 600 validation rows (test rows not loaded). Command: `{p.command}`; wall time {p.wall}.",
            "", *table([*keys, "val accuracy, mean ± std", "seeds"], rows), "",
            f"The best mean ({', '.join(f'{k}={v}' for k, v in zip(keys, ranked[0][0]))}) is the preset "
            f"`mnist1d_mlp_robust`."]


def activation_section(parts: dict[str, Part], out: Path) -> list[str]:
    p = parts.get("activations")
    if p is None:
        return ["The activation study has not been run."]
    ranked = groups(p, ["activation"], ACCURACY)
    stored = {r.info.run_id: r for r in p.children}
    by_act = {a: [stored[r.id] for r in g.runs] for (a,), g in ranked}
    order = list(by_act)
    rows = [[f"`{a}`", pct(g.values(ACCURACY, ACCURACY)), len(g.runs), pct(g.values("val/accuracy", ACCURACY)),
             f"{summarize(g.values('train/loss', ACCURACY)).mean:.3g}"] for (a,), g in ranked]
    plot_activations(p, by_act, order, out)
    same = [f"`{a}` = `{b}`" for i, a in enumerate(order) for b in order[i + 1:]
            if np.array_equal(p.values(ACCURACY, by_act[a]), p.values(ACCURACY, by_act[b]))]
    return [f"The paper's MLP (40-100-100-10, Adam 0.01, batches of 100) for 30 epochs with each built-in "
            f"activation (softmax is an output activation), 600 of the training rows held out for the curves. "
            f"Command: `{p.command}`; wall time {p.wall}.", "",
            *table(["activation", "test accuracy", "seeds", "final val accuracy", "final train loss"], rows), "",
            *([f"Identical test accuracies, seed for seed (the same function with these defaults): "
               f"{', '.join(same)}.", ""] if same else []),
            "![test accuracy per activation](accuracy_per_activation.png)", "",
            "![training curves per activation](activation_curves.png)"]


def plot_activations(p: Part, by_act: dict, order: list[str], out: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    for i, a in enumerate(order):
        acc = 100 * p.values(ACCURACY, by_act[a])
        s = summarize(acc)
        ax.bar(i, s.mean, color="C0", alpha=0.6)
        ax.errorbar(i, s.mean, yerr=s.std if s.n > 1 else 0, color="k", capsize=3)
        ax.plot(np.full(len(acc), i), acc, "k.", ms=4)
    ax.axhline(PAPER["MLP"], color="C3", ls="--", label=f"paper's MLP ({PAPER['MLP']} %)")
    ax.set_xticks(range(len(order)), order, rotation=30)
    ax.set(ylabel="test accuracy (%)", title="MNIST-1D test accuracy per activation (mean ± std, dots: seeds)")
    ax.set_ylim(max(0, 100 * min(p.values(ACCURACY).min(), 0.3) - 5),
                max(PAPER["MLP"], 100 * p.values(ACCURACY).max()) + 6)
    ax.legend(loc="upper right")
    fig.savefig(out / "accuracy_per_activation.png", dpi=110)

    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for i, a in enumerate(order):
        for ax, key in zip(axes, ("train/loss", "val/accuracy")):
            curves = [np.array([m.value for m in sorted(p.client.get_metric_history(r.info.run_id, key),
                                                         key=lambda m: m.step)]) for r in by_act[a]]
            n = min(map(len, curves))
            ax.plot(np.arange(n), np.mean([c[:n] for c in curves], axis=0), color=f"C{i % 10}",
                    ls="-" if i < 10 else "--", label=a)
    axes[0].set(xlabel="epoch", ylabel="train loss (mean over seeds)", yscale="log")
    axes[1].set(xlabel="epoch", ylabel="val accuracy (mean over seeds)")
    axes[1].legend(ncol=2, fontsize=8)
    fig.savefig(out / "activation_curves.png", dpi=110)


INITS = {"depth": "He-uniform (the preset's)", "depth_xavier": "Xavier-uniform"}
"""The gradient parts and the initialization each uses."""


def grad_section(parts: dict[str, Part], out: Path, name: str) -> list[str]:
    p = parts.get(name)
    if p is None:
        return [f"The part `{name}` has not been run."]
    png = f"grad_norm_per_layer{name[len('depth'):]}.png"
    runs = {(param(r, "activation"), len(json.loads(r.data.params["model.hidden"]))): r for r in p.children}
    acts = list(dict.fromkeys(a for a, _ in runs))
    curves = {k: layer_curves(p.client, r) for k, r in runs.items()}
    plot_grad_norms(curves, acts, out / png, INITS[name])
    rows, vanished = [], []
    for a in acts:
        row = [f"`{a}`"]
        for d in DEPTHS:
            layers = curves.get((a, d))
            if layers is None:
                row.append("")
                continue
            early, late = layer_ratios(layers[0][1], layers[-1][1], EARLY, LATE)
            row.append(f"{early:.2g} / {late:.2g}")
            if early < VANISHED:
                vanished.append(f"{a} at depth {d}")
        rows.append(row)
    kept = [a for a in acts if not any(v.startswith(f"{a} at") for v in vanished)]
    return [f"### {INITS[name]} initialization", "",
            f"The paper's MLP with 2, 4 and 8 hidden layers of 100 units, 20 epochs, seed 0; every batch's "
            f"gradient norm of each layer's weights (`grad_norm/layers.<i>.W`, Frobenius norm of dL/dW). "
            f"Command: `{p.command}`; wall time {p.wall}.", "",
            "First layer's gradient norm over the output layer's, median over the first 10 batches (at "
            f"initialization) / over the last 100 batches. {INITS[name]} initialization and Adam, whose "
            "per-parameter step scaling lets the first layers move even when their gradients are tiny, so a "
            "vanished gradient can recover as the weights grow:", "",
            *table(["activation", *(f"depth {d}" for d in DEPTHS)], rows), "",
            (f"Below {VANISHED} in the first 10 batches (vanishing): {', '.join(vanished)}." if vanished else
             f"No configuration has a first-layer ratio below {VANISHED} in the first 10 batches.") +
            (f" At or above {VANISHED} at every depth: {', '.join(kept)}." if kept else ""), "",
            f"![gradient norm per layer, {INITS[name]} initialization]({png})"]


EARLY, LATE = 10, 100
"""Batches compared in the gradient table: the first 10 (at initialization) and the last 100."""


def layer_curves(client, run) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(steps, values) of grad_norm/layers.<i>.W for i = 0, 1, ...] of one run."""
    out, i = [], 0
    while f"grad_norm/layers.{i}.W" in run.data.metrics:
        history = sorted(client.get_metric_history(run.info.run_id, f"grad_norm/layers.{i}.W"), key=lambda m: m.step)
        out.append((np.array([m.step for m in history]), np.array([m.value for m in history])))
        i += 1
    return out


def plot_grad_norms(curves: dict, acts: list[str], path: Path, init: str) -> None:
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * len(DEPTHS), 2.6 * len(acts)), layout="constrained")
    axes = fig.subplots(len(acts), len(DEPTHS), sharex=True, sharey=True, squeeze=False)
    for i, a in enumerate(acts):
        for j, d in enumerate(DEPTHS):
            ax = axes[i, j]
            layers = curves.get((a, d), [])
            for k, (steps, values) in enumerate(layers):
                smooth = np.convolve(values, np.ones(5) / 5, mode="valid") if len(values) >= 5 else values
                ax.plot(1 + steps[len(steps) - len(smooth):], smooth, lw=1,
                        color=colormaps["viridis"](k / max(len(layers) - 1, 1)),
                        label="first layer" if k == 0 else "output layer" if k == len(layers) - 1 else None)
            ax.set(xscale="log", yscale="log", title=f"{a}, {d} hidden layers")
            if j == 0:
                ax.set_ylabel("‖dL/dW‖ per layer")
            if i == len(acts) - 1:
                ax.set_xlabel("batch (log scale)")
            if i == 0 and j == 0 and layers:
                ax.legend(fontsize=8)
    fig.suptitle(f"Gradient norm of each layer's weights over training, {init} initialization\n(moving mean "
                 "of 5 batches; colour: first layer dark to output layer yellow)")
    fig.savefig(path, dpi=100)


def write(parts: dict[str, Part], out: Path, uri: str, experiment: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# MNIST-1D: the paper's table with this framework", "",
             f"Generated by `python -m experiments.mnist1d.report` on {now} from the MLflow experiment "
             f"`{experiment}` (store `{uri}`); do not edit by hand. The study runs with "
             f"`python -m experiments.mnist1d.study` (each part below names its own command). Wall times are "
             f"this machine's, with the runs at `nice -n 19` beside other work, so they are upper bounds.", "",
             "Data: the `mnist1d` package's default arguments (5000 samples, seed 42, `train_split` 0.8) "
             "generated locally: the paper's 4000 training and 1000 test rows (`data=mnist1d`, `data.test=own`). "
             "Paper: Greydanus 2020, *Scaling Down Deep Learning*; its numbers are the only ones typed in.", "",
             "## Test accuracy: ours beside the paper's", "", *paper_table(parts), "",
             "Where our paper rows differ from the paper's code (greydanus/mnist1d, `notebooks/models.py`, "
             "`train.py`): its MLP adds the second layer's output to its input (`h + relu(W2 h)`), ours is the "
             "plain 40-100-100-10 MLP (its `MLPBase` default width is 100, its training arguments name 256); it "
             "steps through the training rows in order, we shuffle each epoch (6000 updates either way); it "
             "initializes as PyTorch does (U(±1/sqrt(fan_in))), we use Xavier (logistic regression) and He (MLP) "
             "uniform; it reads the published data file, we regenerate the data from the same arguments.", "",
             "## Model selection (the sweep)", "", *sweep_section(parts), "",
             "## Checking the winner over seeds", "", *robust_section(parts), "",
             "## Activations", "", *activation_section(parts, out), "",
             "## Where the gradients vanish: gradient norm per layer at depths 2, 4, 8", "",
             *(line for name in INITS for line in (*grad_section(parts, out, name), ""))]
    path = out / "RESULTS.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> None:
    from framework.tracking.places import store_uri
    from framework.tracking.store import Client

    p = argparse.ArgumentParser(prog="python -m experiments.mnist1d.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else the project's mlflow.db)")
    p.add_argument("--experiment", default=EXPERIMENT, help="MLflow experiment (default: %(default)s)")
    p.add_argument("--out", type=Path, default=HERE, help="folder for RESULTS.md and the PNGs (default: %(default)s)")
    args = p.parse_args(argv)
    uri = store_uri(args.uri)
    client = Client(uri)
    print(write(load_parts(client, args.experiment), args.out, uri, args.experiment))


if __name__ == "__main__":
    sys.exit(main())

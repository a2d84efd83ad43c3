"""What the MLflow UI shows of a run besides its numbers: its name and its description (the tag
`mlflow.note.content`, Markdown, shown on the run's Overview).

- A sweep job is named by its swept values (`relu lr=0.1 seed=0`, at most `NAME_CHARS` characters): a
  config group's choice by its value, any other key by its last part (`optimizer.lr` -> `lr`, the whole key
  where two last parts clash), numbers to 4 significant digits. A single run is named the same way by its
  command-line overrides, else `<data> <activation> <optimizer>`. `tracking.run_name` overrides both.
- A job's description: its overrides and its final metrics; a sweep parent's: the jobs grouped by config
  minus `seed` (n, mean ± std, min, max of the objective, best first), the failed jobs, and where the
  report and the runs table are.
No mlflow import: the training and launcher processes write these into the run log.
"""
from __future__ import annotations

from dataclasses import dataclass

from framework.tracking.report.stats import group_runs, rank

NOTE = "mlflow.note.content"
NAME_CHARS = 40
GROUP_ROWS = 30  # groups listed in a sweep's description (MLflow keeps tag values up to 8,000 characters)


def short(override: str) -> str:
    """`optimizer.lr=0.0123456` -> `lr=0.01235`, `activation=relu` -> `relu` (see the module docstring)."""
    if "=" not in override:
        return override
    key, _, value = override.partition("=")
    name = key_name(key)
    return number(value) if name == group_of(key) else f"{name}={number(value)}"


def group_of(key: str) -> str | None:
    """The config group `key` chooses (`activation`, `activation.name`), else None."""
    from framework.run.config import GROUPS

    key = key.lstrip("+~").removesuffix(".name")  # a flattened config's `activation.name`: the group's choice
    return key if key in GROUPS or key == "experiment" else None


def key_name(key: str) -> str:
    """A key as names show it: a group by its name, any other key by its last part."""
    return group_of(key) or key.lstrip("+~").rsplit(".", 1)[-1]


NOT_DIFFERENCES = ("tracking.", "hydra.", "trainer.progress")  # overrides that change where, not what, a run is


def differences(task: list[str], swept: list[str] | None, sweep: bool) -> list[str]:
    """The overrides that say how a run differs: a sweep job's swept ones (`swept`: the swept keys; None:
    unknown, all), else all but where it is recorded and shown (`NOT_DIFFERENCES`)."""
    if sweep and swept is not None:
        return [o for o in task if o.split("=", 1)[0].lstrip("+~") in swept]
    return [o for o in task if not o.lstrip("+~").startswith(NOT_DIFFERENCES)]


def number(value: str) -> str:
    """A number with more than 4 significant digits to 4 (`0.0123456` -> `0.01235`); anything else as it is."""
    try:
        x = float(value)
    except ValueError:
        return value
    return f"{x:.4g}" if len(value.lstrip("-").replace(".", "").lstrip("0")) > 4 else value


def label(overrides: list[str], limit: int = NAME_CHARS) -> str:
    """The overrides in their short forms, clashing last parts given in full, cut to `limit` characters."""
    parts = [short(o) for o in overrides]
    names = [p.split("=", 1)[0] for p in parts if "=" in p]
    parts = [f"{o.split('=', 1)[0].lstrip('+~')}={number(o.split('=', 1)[1])}"
             if "=" in p and names.count(p.split("=", 1)[0]) > 1 else p for o, p in zip(overrides, parts)]
    text = " ".join(parts)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def run_name(name: str | None, cfg, differs: list[str]) -> str:
    """`tracking.run_name`, else the label of the overrides that say how the run differs (`differences`),
    else `<data> <activation> <optimizer>`."""
    return name or label(differs or [cfg.data.name, cfg.activation.name, cfg.optimizer.name])


def sweep_name(name: str | None, swept: list[str]) -> str:
    """A sweep parent's name: `tracking.run_name`, else `sweep: ` and the swept keys' short names."""
    return name or label(["sweep:", *map(key_name, swept)])


def metrics_table(values: dict[str, float]) -> str:
    rows = [f"| {k} | {v:.6g} |" for k, v in values.items() if isinstance(v, (int, float))]
    return "\n".join(["| metric | final |", "|---|---:|", *rows]) if rows else ""


def job_note(differs: list[str], final: dict[str, float], status: str) -> str:
    """A job's description: status (unless FINISHED), how it differs (`differences`), final metrics."""
    lines = [] if status == "FINISHED" else [f"**{status}**", ""]
    lines.append(f"**Differs:** `{' '.join(differs)}`" if differs else "**Differs:** nothing (the default config)")
    table = metrics_table({k: v for k, v in final.items() if not k.startswith("epoch/")})
    return "\n".join([*lines, "", table] if table else lines)


@dataclass
class _Job:
    """A sweep job as `framework.tracking.report.stats` groups and ranks runs: its params and objective."""

    params: dict[str, str]
    final: dict[str, float]
    status: str = "FINISHED"
    reason: str | None = None


def sweep_note(jobs: list[tuple[dict[str, str], float | None]], metric: str, mode: str, failed: dict[str, str],
               folder, report: bool = True) -> str:
    """A sweep parent's description (see the module docstring); `report`: the sweep folder holds report.html."""
    runs = [_Job(params, {} if value is None else {metric: value}) for params, value in jobs]
    ranked = [r for r in rank(group_runs(runs), metric, mode) if r.summary.n]
    scored = sum(r.summary.n for r in ranked)
    lines = [f"**{len(jobs)} runs** in {len(ranked)} group(s) of configs that differ only in `seed`, by `{metric}` "
             f"({'lowest' if mode == 'min' else 'highest'} mean first; {scored} scored).", "",
             f"| group | n | {metric} mean ± std | min | max |", "|---|---:|---:|---:|---:|"]
    for r in ranked[:GROUP_ROWS]:
        s, name = r.summary, label([f"{k}={v}" for k, v in r.group.key if v != ""], limit=80) or "all runs"
        std = f"{s.std:.3g}" if s.n > 1 else "–"
        lines.append(f"| {name} | {s.n} | {s.mean:.4g} ± {std} | {s.lo:.4g} | {s.hi:.4g} |")
    if len(ranked) > GROUP_ROWS:
        lines.append(f"| … {len(ranked) - GROUP_ROWS} more groups (see the report) | | | | |")
    if failed:
        lines += ["", f"**Failed:** {len(failed)} job(s): " + "; ".join(
            f"job {j}: {why[:120]}" for j, why in sorted(failed.items(), key=lambda x: int(x[0]))[:10])]
    if report:
        lines += ["", f"**Report:** `report.html` in this run's Artifacts tab (file: `{folder}/report.html`)."]
    lines += ["", f"**Runs table:** `python -m framework.runs --sweep {folder}`."]
    return "\n".join(lines)

"""`python -m framework.runs`'s table: fits a width, never cuts an id, names the closest keys, says its scope."""
from __future__ import annotations

import secrets

import pytest

from framework.errors import ConfigError
from framework.tracking.notes import label, sweep_note
from framework.tracking.table import Run, render, select


def runs(n: int = 12, parent: str | None = None, start: int = 0) -> list[Run]:
    """`n` finished runs whose 9 params differ (long values included), with a long name each."""
    out = []
    for i in range(n):
        params = {"activation.name": ["relu", "tanh", "leaky_relu"][i % 3], "optimizer.lr": str(10 ** -(i % 4)),
                  "model.hidden": str([64 * (i % 3 + 1)] * (i % 4 + 1)), "seed": str(i % 2),
                  "trainer.batch_size": str(16 * (i % 5 + 1)), "optimizer.name": ["adam", "sgd"][i % 2],
                  "scheduler.name": ["constant", "cosine"][i // 6 % 2], "data.name": "digits",
                  "initializer.name": ["he_uniform", "xavier_uniform"][i % 2],
                  "callbacks.early_stopping.patience": str(i)}
        tags = {"mlflow.parentRunId": parent} if parent else {}
        out.append(Run(secrets.token_hex(16), f"a rather long run name that says a lot {i}", "FINISHED", start + i,
                       params, {"val/loss": 1.0 / (i + 1), "val/accuracy": i / n, "test/accuracy": i / (n + 1),
                                "test/loss": 2.0 / (i + 1)}, tags))
    return out


@pytest.mark.parametrize("width", [80, 100, 200])
def test_the_table_fits_its_width_and_shows_every_id_whole(width):
    shown = runs()
    text = render(shown, "every run", width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    for run in shown:
        row = next(line for line in lines if line.startswith(run.run_id[:8]))
        assert row.split()[0] == run.run_id[:8] and "FINISHED" in row
    header = lines[1].split()
    assert header[:3] == ["id", "status", "name"] and header[-2:] == ["val/loss", "test/accuracy"]
    left_out = [k for k in shown[0].params if k not in header and k != "data.name"]  # data.name: the same in all
    if left_out:
        assert "--wide" in lines[-1]
    if width == 200:
        assert "optimizer.lr" in header


def test_rows_come_best_first_and_wide_shows_every_differing_param_and_metric():
    shown = runs()
    lines = render(shown, "every run", 80).splitlines()
    ids = [line[:8] for line in lines[3:3 + len(shown)]]
    best_first = sorted(shown, key=lambda r: r.metrics["val/loss"])
    assert ids == [r.run_id[:8] for r in best_first]
    wide = render(shown, "every run", 80, wide=True).splitlines()
    header = wide[1].split()
    assert {"optimizer.lr", "callbacks.early_stopping.patience", "val/accuracy", "test/loss"} <= set(header)
    assert "data.name" not in header  # the same in every run
    assert shown[0].name in "\n".join(wide)  # nothing cut
    by_acc = render(shown, "every run", 100, sort="val/accuracy").splitlines()
    assert by_acc[3].startswith(max(shown, key=lambda r: r.metrics["val/accuracy"]).run_id[:8])


def test_an_unknown_sort_or_column_key_names_the_closest_ones():
    with pytest.raises(ConfigError, match=r"unknown --sort key 'val/acc' \(closest: val/accuracy"):
        render(runs(), "every run", 100, sort="val/acc")
    with pytest.raises(ConfigError, match=r"unknown column key 'optimiser.lr' \(closest: optimizer.lr"):
        render(runs(), "every run", 100, columns=["optimiser.lr"])


def test_the_default_scope_is_the_latest_sweep_else_the_last_20_runs_and_the_header_says_which():
    singles = runs(25, start=0)
    parent = Run(secrets.token_hex(16), "sweep: lr seed", "FINISHED", 100, {}, {}, {"sweep.role": "parent"})
    jobs = runs(4, parent=parent.run_id, start=101)
    shown, header = select(singles + [parent] + jobs)
    assert header.startswith(f"latest sweep {parent.run_id[:8]} 'sweep: lr seed'")
    assert {r.run_id for r in shown} == {r.run_id for r in jobs}
    later = runs(1, start=200)
    shown, header = select(singles + [parent] + jobs + later)
    assert header.startswith("last 20 of 30 runs")
    assert len(shown) == 20 and shown[-1].run_id == later[0].run_id
    shown, header = select(singles + [parent] + jobs + later, parent=parent.run_id[:6])
    assert {r.run_id for r in shown} == {r.run_id for r in jobs}
    shown, header = select(singles + [parent] + jobs + later, every=True)
    assert len(shown) == 30 and header == "every run"
    text = render(shown, header, 100)
    assert text.splitlines()[0] == "every run: 30 runs by val/loss"


def test_names_say_what_differs_in_at_most_40_characters():
    assert label(["activation=relu", "optimizer.lr=0.1", "seed=0"]) == "relu lr=0.1 seed=0"
    assert label(["optimizer.lr=0.012345678", "scheduler.lr=3"]) == "optimizer.lr=0.01235 scheduler.lr=3"
    long = label([f"model.layer{i}.width=12345" for i in range(9)])
    assert len(long) == 40 and long.endswith("…")


def test_a_sweep_description_groups_runs_over_seeds_with_mean_and_std():
    jobs = [({"activation.name": a, "seed": str(s)}, v) for a, s, v in
            [("relu", 0, 0.2), ("relu", 1, 0.4), ("tanh", 0, 0.1), ("tanh", 1, 0.3), ("tanh", 2, None)]]
    note = sweep_note(jobs, "val/loss", "min", {"4": "ConfigError: bad"}, "/sweeps/x")
    rows = [line for line in note.splitlines() if line.startswith("| tanh") or line.startswith("| relu")]
    assert rows == ["| tanh | 2 | 0.2 ± 0.141 | 0.1 | 0.3 |", "| relu | 2 | 0.3 ± 0.141 | 0.2 | 0.4 |"]
    assert "**Failed:** 1 job(s): job 4: ConfigError: bad" in note and "/sweeps/x/report.html" in note

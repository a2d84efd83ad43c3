"""Damaged run logs: each is one line of `framework.sync` (which file, which line or bytes, what to do), the
intact runs beside it sync, a run log cut short syncs the points it has and is marked FAILED; a fuzz test
mutates journals, acknowledgements and points files of a real offline run and syncs each."""
from __future__ import annotations

import contextlib
import io
import json
import random
import re
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from framework.tracking.messages import Metrics
from framework.tracking.runlog import JOURNAL, LOG, POINTS, read_ack, read_records, store_key, write_ack
from tests.helpers import make_cfg

mlflow = pytest.importorskip("mlflow")
from framework.tracking.replay import main, sync_paths  # noqa: E402

SEED, CASES = 26, 200


@pytest.fixture(scope="module")
def runs(tmp_path_factory, empty_store) -> dict[str, Path]:
    """A real offline run (`train(cfg)`, 2 epochs of xor, a checkpoint directory outside its folder), as it was left
    ("fresh"), and a copy of it synced into a copy of `empty_store` ("synced", "synced.db")."""
    from framework.train import train

    base = tmp_path_factory.mktemp("damage")
    fresh = train(make_cfg("data=xor", "model.hidden=[8]", "trainer.epochs=2", "trainer.batch_size=16",
                           "trainer.flush_every=4", "tracking.enabled=true", "tracking.mode=offline",
                           f"tracking.dir={base / 'runs'}",
                           f"callbacks.model_checkpoint.directory={base / 'ckpt'}")).run_dir
    synced = shutil.copytree(fresh, base / "synced")
    shutil.copy(empty_store, base / "synced.db")
    with contextlib.redirect_stdout(io.StringIO()):
        assert sync_paths([synced], f"sqlite:///{base / 'synced.db'}") == 0
    return {"fresh": fresh, "synced": synced, "synced.db": base / "synced.db"}


def copy_run(source: Path, to: Path, uri: str | None = None, acked: str | None = None) -> Path:
    """A copy of run folder `source` with a run-log id of its own (copies of one run log are one store run);
    `acked`: the URI `source` was synced to, its acknowledgement moved to `uri` (a copy of that store)."""
    folder = shutil.copytree(source, to)
    journal = folder / LOG / JOURNAL
    first, rest = journal.read_text().split("\n", 1)
    if acked is None:
        start = json.loads(first)
        start["runlog_id"] = f"{random.Random(str(to)).getrandbits(128):032x}"
        first = json.dumps(start)
    journal.write_text(first + "\n" + rest)
    if acked is not None:
        ack = read_ack(folder, acked)
        (folder / LOG / "acks" / f"{store_key(acked)}.json").unlink()
        write_ack(folder, {**ack, "uri": uri})
    return folder


def metric_rows(db: Path) -> tuple[int, int]:
    """(points in the store, (run, key, step) that occur more than once): the `metrics` table
    `get_metric_history` reads."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        rows = con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
        dups = con.execute("SELECT COUNT(*) FROM (SELECT 1 FROM metrics GROUP BY run_uuid, key, step "
                           "HAVING COUNT(*) > 1)").fetchone()[0]
    return rows, dups


def sync(folder, uri) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = sync_paths([folder], uri)
    return code, out.getvalue()


def test_one_damaged_run_is_one_line_and_the_others_sync(runs, tmp_path, new_store):
    uri = new_store()
    top = tmp_path / "runs"
    intact, garbage, bad_ack = (copy_run(runs["fresh"], top / name) for name in ("intact", "garbage", "bad_ack"))
    journal = garbage / LOG / JOURNAL
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:3]) + "{not json\n" + "".join(lines[3:]))
    (bad_ack / LOG / "acks").mkdir()
    (bad_ack / LOG / "acks" / f"{store_key(uri)}.json").write_text("[1, 2")
    code, out = sync(top, uri)
    assert code == 2 and "Traceback" not in out
    said = out.splitlines()
    (damaged,) = [line for line in said if line.startswith(f"{garbage}: damaged:")]
    assert damaged.startswith(f"{garbage}: damaged: runlog/journal.jsonl line 4: not JSON (")
    assert damaged.endswith("the records before it are synced, the run is marked FAILED; restore the run folder "
                            "from a good copy and sync again")
    assert f"{bad_ack}: runlog/acks/{store_key(uri)}.json: " in out and "synced again from its start" in out
    assert sorted(said[-1].split(", ")[:3]) == ["damaged: 1 run", "synced now: 1 run", "synced with problems: 1 run"]
    client = mlflow.MlflowClient(uri)
    status = {f: client.get_run(read_ack(f, uri)["run_id"]) for f in (intact, garbage, bad_ack)}
    assert status[intact].info.status == status[bad_ack].info.status == "FINISHED"
    assert status[garbage].info.status == "FAILED"
    assert "runlog/journal.jsonl line 4: not JSON" in status[garbage].data.tags["failure.reason"]
    assert metric_rows(Path(uri.removeprefix("sqlite:///")))[1] == 0


def test_a_points_file_cut_short_syncs_its_whole_records_and_fails_the_run(runs, tmp_path, new_store):
    uri, run = new_store(), copy_run(runs["fresh"], tmp_path / "run")
    records = [r for r in read_records(run) if isinstance(r, Metrics)]
    cut = records[3]
    with open(run / LOG / POINTS, "r+b") as f:
        f.truncate(cut.offset + 8 * 3)  # three values into the fourth record
    code, out = sync(run, uri)
    assert code == 1
    line = [s for s in out.splitlines() if ": damaged: " in s]
    end = cut.offset + 8 * cut.points // len(cut.keys) * (2 + len(cut.keys))
    assert line == [f"{run}: damaged: runlog/points.f64 bytes {cut.offset}..{end} (journal line "
                    f"{read_records(run).index(cut) + 1}): the file ends at byte {cut.offset + 24} (cut short); the "
                    f"records before it are synced, the run is marked FAILED; restore the run folder from a good copy "
                    f"and sync again"]
    client = mlflow.MlflowClient(uri)
    stored = client.get_run(read_ack(run, uri)["run_id"])
    assert stored.info.status == "FAILED" and "cut short" in stored.data.tags["failure.reason"]
    sent = sum(r.points for r in records[:3])
    assert f"damaged: 1 run, {sent:,} points sent" in out
    db = Path(uri.removeprefix("sqlite:///"))
    assert metric_rows(db) == (sent, 0)
    code, again = sync(run, uri)  # the same line, nothing sent
    assert code == 1 and again.splitlines()[-1] == "damaged: 1 run, 0 points sent" and metric_rows(db) == (sent, 0)


def test_a_path_without_a_run_log_and_a_second_sync_say_so(runs, tmp_path, new_store, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "no" / "such" / "path")])
    assert e.value.code == 1
    assert capsys.readouterr().out == f"no run log under {tmp_path / 'no' / 'such' / 'path'}\n"
    uri, run = new_store(), copy_run(runs["fresh"], tmp_path / "run")
    for expect in ("synced now: 1 run, ", "already complete: 1 run, 0 points sent"):
        with pytest.raises(SystemExit) as e:
            main([str(run), "--uri", uri])
        assert e.value.code == 0 and capsys.readouterr().out.splitlines()[-1].startswith(expect)


# ---- fuzz -----------------------------------------------------------------------------------------------
WRONG = ["x", 7, -1, 1.5, True, None, [], ["x"], {}, {"a": 1}]


def mutate(folder: Path, target: str, op: str, rng: random.Random) -> None:
    """Damage one file of run folder `folder` as `op` says ("truncate", "garbage bytes", "garbage line",
    "wrong type", "repeat line", "swap lines", "empty", "delete")."""
    path = {"journal": folder / LOG / JOURNAL, "points": folder / LOG / POINTS,
            "ack": next((folder / LOG / "acks").glob("*.json"), None)}[target]
    data = path.read_bytes()
    if op == "delete":
        path.unlink()
        return
    if op == "empty":
        data = b""
    elif op == "truncate":
        data = data[:rng.randrange(len(data) + 1)]
    elif op == "garbage bytes":
        at, n = rng.randrange(len(data)), rng.randint(1, 16)
        data = data[:at] + rng.randbytes(n) + data[at + n:]
    else:
        lines = data.splitlines(keepends=True)
        i = rng.randrange(len(lines))
        if op == "garbage line":
            lines.insert(i, rng.choice([rng.randbytes(rng.randint(1, 40)), b"[]", b"{}", b'{"type": "End"}', b"null",
                                        b'{"type": "Metrics", "keys": ["a"], "points": 1, "offset": 8}']) + b"\n")
        elif op == "repeat line":
            lines.insert(i, lines[i])
        elif op == "swap lines":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        else:  # wrong type: a field's value of another JSON type, or the field left out
            record = json.loads(lines[i])
            key = rng.choice(sorted(record))
            if rng.random() < 0.25:
                del record[key]
            else:
                record[key] = rng.choice([w for w in WRONG if type(w) is not type(record[key])])
            lines[i] = (json.dumps(record) + "\n").encode()
        data = b"".join(lines)
    path.write_bytes(data)


@pytest.mark.slow
def test_fuzz_damaged_run_logs_never_crash_a_sync_nor_duplicate_a_point(runs, tmp_path, empty_store, capsys):
    """CASES mutations (seed SEED) of the journal, points file and acknowledgement of a real offline run, fresh or
    already synced: each synced into its own store copy must not raise, store no (run, key, step) twice, print
    no traceback, and a second sync must send no point."""
    rng = random.Random(SEED)
    ops = {"journal": ["truncate", "garbage bytes", "garbage line", "wrong type", "repeat line", "swap lines",
                       "empty", "delete"],
           "points": ["truncate", "garbage bytes", "empty", "delete"],
           "ack": ["truncate", "garbage bytes", "wrong type", "empty", "delete"]}
    tried, crashes, duplicates, resent, exits = 0, [], [], [], {0: 0, 1: 0}
    started = time.monotonic()
    for case in range(CASES):
        synced = rng.random() < 0.5
        target = rng.choice(["journal", "points", "ack"] if synced else ["journal", "points"])
        op = rng.choice(ops[target])
        db = tmp_path / f"{case}.db"
        shutil.copy(runs["synced.db"] if synced else empty_store, db)
        uri = f"sqlite:///{db}"
        folder = (copy_run(runs["synced"], tmp_path / str(case), uri, f"sqlite:///{runs['synced.db']}") if synced
                  else copy_run(runs["fresh"], tmp_path / str(case)))
        mutate(folder, target, op, rng)
        what = f"case {case}: {'synced' if synced else 'fresh'} run, {target}: {op}"
        tried += 1
        try:
            code, out = sync(folder, uri)
            rows, dups = metric_rows(db)
            again, out2 = sync(folder, uri)
        except Exception as e:  # noqa: BLE001 - counted: the assertion below names them
            crashes.append(f"{what}: {type(e).__name__}: {e}")
            continue
        exits[min(code, 1)] += 1
        if dups:
            duplicates.append(f"{what}: {dups} (run, key, step) stored twice")
        sent = re.search(r"([\d,]+) points sent$", out2.strip())  # the summary line (none: no run log found)
        if metric_rows(db)[0] != rows or sent and sent.group(1) != "0":
            resent.append(f"{what}: second sync: {out2.strip().splitlines()[-1:]}")
        if "Traceback" in out + out2:
            crashes.append(f"{what}: a traceback printed")
        shutil.rmtree(folder)
        db.unlink()
    seconds = time.monotonic() - started
    with capsys.disabled():
        print(f"\nsync fuzz (seed {SEED}): {tried} mutations tried in {seconds:.0f} s, {len(crashes)} crashes, "
              f"{len(duplicates)} with a duplicated point, {len(resent)} second syncs sending points; exit 0: "
              f"{exits[0]}, exit 1: {exits[1]}")
    assert not crashes and not duplicates and not resent, crashes + duplicates + resent

"""The run log: everything a run records, on local disk first, in a format these docs define.

    <run folder>/runlog/
      journal.jsonl       one record per line (`framework.tracking.messages`: RunStart, Params, Tags,
                          Metrics, Histograms, DataSets, End / SweepEnd), appended in order; a line
                          without its newline is an unfinished write and is ignored; a line that is not a
                          record (or a record out of place) ends what is read: the run log is damaged there
                          (`Damaged`)
      points.f64          the points of every `Metrics` record, appended: (n, 2 + k) rows of raw
                          little-endian float64 (step, timestamp ms, one value per key) at the record's
                          byte `offset` (each record's right after the previous one's), with their CRC-32,
                          written before the record (bytes no record names are ignored)
      predictions.npz     y_true, scores of the evaluated split, for the plots (optional)
      acks/<store>.json   what one store acknowledged: {"uri", "run_id", "done": records applied,
                          "status": the status set when the run ended without an End (KILLED) or
                          its run log is damaged (FAILED),
                          "creating": a sync was creating the run (written before it asks the store;
                          a later sync then looks the run up by its `runlog.id` tag first, as does
                          the first sync to a store when another store's ack is there; removed once
                          "run_id" is written)}; a file that is not such an object is ignored
      train.lock          held (flock) by the training process while the run is open
      sync.lock           held (flock) by the process syncing this run log
No pickle anywhere: JSON and `.npz` read with `allow_pickle=False`. A run is the run log's folder;
its artifacts (config.yaml, overrides.yaml, weights.npz, checkpoint/, plots/) are files beside it.
Every path a run log names is relative: End's artifacts and SweepEnd's best job to the run folder, a
job's parent (".." parts only) to the job's folder, so a run or sweep folder can be moved or copied
anywhere; a sync reads only what lies inside the run folder (`inside`, `sweep_parent`; run logs of
earlier versions named absolute paths: those inside are taken as relative ones).
A run log whose journal has no End while `train.lock` is free belongs to a process that died: it is
synced as KILLED. Locks are `fcntl.flock` (local file systems; on NFS give each run a local folder).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import zlib
from pathlib import Path

import numpy as np

from framework.errors import ConfigError
from framework.tracking.masking import mask_secrets
from framework.tracking.messages import End, Metrics, RunStart, SweepEnd, decode, encode

LOG = "runlog"
JOURNAL = "journal.jsonl"
POINTS = "points.f64"
MAX_INT = 2.0 ** 63  # steps and timestamps are int64 in the store


class Damaged(Exception):
    """A run-log file that is not as its writer left it: `where` (the file and its line or byte), `what` is
    wrong; `index`: how many of the journal's records are intact before it; `outcome`: what a sync did."""

    def __init__(self, where: str, what: str, index: int = 0, outcome: str = ""):
        super().__init__(f"{where}: {what}")
        self.where, self.what, self.index, self.outcome = where, what, index, outcome


def now_ms() -> int:
    return int(time.time() * 1000)


def write_atomic(path: Path, data: bytes) -> None:
    """`path` holds `data` or its previous content, never half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Lock:
    """An exclusive `flock` on `path`, released by `release()` or when the process dies."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def acquire(self, block: bool = True) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:  # a symbolic link (ELOOP), a folder, no runlog/ folder
            raise Damaged(f"{LOG}/{self.path.name}", f"not a lock file ({e.strerror}): delete it") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock now."""
        if not self.path.exists():
            return False
        if self.acquire(block=False):
            self.release()
            return False
        return True


class RunLogWriter:
    """Appends records to `<folder>/runlog`; `add_points` writes points and their `Metrics` record."""

    def __init__(self, folder, start: RunStart):
        self.folder = Path(folder)
        self.dir = self.folder / LOG
        check_new(self.folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock = Lock(self.dir / "train.lock")
        self.lock.acquire()
        self._points = os.open(self.dir / POINTS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._offset = 0
        self._journal = open(self.dir / JOURNAL, "a", encoding="utf-8")
        self.points = 0
        self.closed = False
        self.append(start)

    def append(self, record) -> None:
        self._journal.write(encode(record))

    def flush(self) -> None:
        self._journal.flush()

    def add_points(self, keys, steps: np.ndarray, values: np.ndarray, timestamp_ms: int) -> None:
        """Points values[i, j] of keys[j] at steps[i]: (n,) int steps, (n, k) values. One write to
        points.f64, then the record (the journal is flushed by `flush`)."""
        rows = np.empty((len(steps), 2 + values.shape[1]), dtype="<f8")
        rows[:, 0], rows[:, 1], rows[:, 2:] = steps, timestamp_ms, values
        written = os.write(self._points, rows)  # the array's own buffer: no copy
        if written != rows.nbytes:
            raise OSError(f"short write to {LOG}/points.f64: {written} of {rows.nbytes} bytes")
        self.append(Metrics(list(keys), int(values.size), self._offset, crc=zlib.crc32(rows)))
        self._offset += rows.nbytes
        self.points += values.size

    def close(self, end: End | SweepEnd) -> None:
        """Append the last record, make the journal durable and release the run."""
        if self.closed:
            return
        self.append(end)
        self._journal.flush()
        os.fsync(self._points)
        os.close(self._points)
        os.fsync(self._journal.fileno())
        self._journal.close()
        self.closed = True
        self.lock.release()


class JournalReader:
    """Reads `folder`'s journal incrementally: `read()` returns every complete record so far, up to the
    first damaged line (then `damage` says which and why); `lines[i]`: the line number of record i."""

    def __init__(self, folder):
        self.path = Path(folder) / LOG / JOURNAL
        self.records: list = []
        self.lines: list[int] = []
        self.damage: Damaged | None = None
        self._offset = self._line = self._points = 0  # bytes, lines of the journal read; bytes of points named

    def read(self) -> list:
        if self.damage is None and self.path.exists() and self.path.stat().st_size > self._offset:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
            complete = data[:data.rfind(b"\n") + 1]  # a line without its newline is still being written
            for line in complete.splitlines(keepends=True):
                self._line += 1
                try:
                    record = decode(line.decode("utf-8")) if line.strip() else None
                    self._check_place(record)
                except ValueError as e:  # UnicodeDecodeError included
                    self.damage = Damaged(f"{LOG}/{JOURNAL} line {self._line}", str(e), len(self.records))
                    break
                self._offset += len(line)
                if record is not None:
                    self.records.append(record)
                    self.lines.append(self._line)
        return self.records

    def _check_place(self, record) -> None:
        """A RunStart first, nothing after an End or SweepEnd; each Metrics record's points right after the
        previous one's (as the writer appends them)."""
        if record is None:
            return
        if isinstance(record, Metrics) and record.offset is not None:
            if record.offset != self._points:
                raise ValueError(f"a Metrics record at byte {record.offset} of {POINTS}; the record before it ends "
                                 f"at byte {self._points}")
            self._points += 8 * record.points // len(record.keys) * (2 + len(record.keys))
        if isinstance(record, RunStart) != (not self.records):
            raise ValueError("a RunStart record after the first line" if self.records else
                             f"the first record is a {type(record).__name__}, not a RunStart")
        if is_complete(self.records):
            raise ValueError(f"a {type(record).__name__} record after the run's last record")

    def line(self, i: int) -> int:
        """The journal line number of record `i` (the line after the last record for i = len(records))."""
        return self.lines[i] if i < len(self.lines) else (self.lines[-1] + 1 if self.lines else 1)


def read_records(folder) -> list:
    """Every complete record of `folder`'s journal, in order."""
    return JournalReader(folder).read()


def read_chunk(folder, record: Metrics) -> np.ndarray:
    """The (n, 2 + k) rows of a `Metrics` record: step, timestamp, values."""
    return read_chunks(folder, [record])[0]


def read_chunks(folder, records: list[Metrics]) -> list[np.ndarray]:
    """The rows of each of `records` (as `read_chunk`), points.f64 read once: the byte range they span.
    Damaged (its `index`: the position in `records`) for rows the file does not hold (cut short) or that
    are not rows its writer wrote (steps and timestamps whole numbers, steps increasing)."""
    folder = Path(folder)
    shape = {id(r): (r.points // len(r.keys), 2 + len(r.keys)) for r in records}
    inline = [r for r in records if r.chunk is None]
    size = lo = 0
    if inline:
        path = folder / LOG / POINTS
        size = path.stat().st_size if path.is_file() else 0
        lo = min(r.offset for r in inline)
        hi = min(size, max(r.offset + 8 * shape[id(r)][0] * shape[id(r)][1] for r in inline))
        data = np.fromfile(path, dtype="<f8", count=(hi - lo) // 8, offset=lo) if hi > lo else np.empty(0)
    rows = []
    for i, r in enumerate(records):
        n, width = shape[id(r)]
        if r.chunk is not None:
            where = f"{LOG}/{r.chunk}"
            try:
                block = np.load(folder / LOG / inside(folder / LOG, r.chunk), allow_pickle=False)
            except Exception as e:  # noqa: BLE001 - any unreadable file is the same damage
                raise Damaged(where, f"not the .npy file of its record ({type(e).__name__}: {e})", i) from None
            if block.shape != (n, width):
                raise Damaged(where, f"holds an array of shape {block.shape}, its record names {(n, width)}", i)
        else:
            where, end = f"{LOG}/{POINTS} bytes {r.offset}..{r.offset + 8 * n * width}", r.offset + 8 * n * width
            if end > size:
                raise Damaged(where, f"the file ends at byte {size} (cut short)", i)
            start = (r.offset - lo) // 8
            block = data[start:start + n * width].reshape(n, width)
            if r.crc is not None and zlib.crc32(block) != r.crc:
                raise Damaged(where, "bytes changed since they were written (their CRC-32 differs)", i)
        problem = bad_rows(block)
        if problem:
            raise Damaged(where, f"not rows of points ({problem})", i)
        rows.append(block)
    return rows


def bad_rows(rows: np.ndarray) -> str | None:
    """What makes (n, 2 + k) `rows` not rows a writer wrote, or None: steps and timestamps are whole numbers
    within int64, steps increase within a record."""
    for j, what in ((0, "step"), (1, "timestamp")):
        col = rows[:, j]
        if not (np.isfinite(col) & (np.abs(col) < MAX_INT) & (col == np.round(col))).all():
            return f"a {what} that is not a whole number"
    if (np.diff(rows[:, 0]) <= 0).any():
        return "steps that do not increase"
    return None


def read_start(folder) -> RunStart | None:
    """The run log's first record (its RunStart), read without the rest of the journal."""
    with open(Path(folder) / LOG / JOURNAL, encoding="utf-8") as f:
        line = f.readline()
    return decode(line) if line.endswith("\n") else None


def last_values(folder, keys=None) -> dict[str, float]:
    """Each metric's value (of `keys`, default all) at its highest step (the run's final metrics);
    records holding none of `keys` are not read."""
    out: dict[str, tuple[float, float]] = {}
    for record in read_records(folder):
        if isinstance(record, Metrics) and (keys is None or not set(keys).isdisjoint(record.keys)):
            try:
                rows = read_chunk(folder, record)
            except Damaged:
                continue  # (a sync reports it)
            i = int(np.argmax(rows[:, 0]))
            for j, key in enumerate(record.keys):
                if key not in out or rows[i, 0] >= out[key][0]:
                    out[key] = (rows[i, 0], float(rows[i, 2 + j]))
    return {k: v for k, (_, v) in out.items()}


RUN_FOLDER_FIX = ("give this run its own folder with hydra.run.dir=<new folder> (Hydra's default, "
                  "outputs/<date>/<time>, is new for each run)")


def check_new(folder, what: str = "run folder", fix: str = RUN_FOLDER_FIX) -> None:
    """ConfigError naming `fix` if `folder` (a `what`) already holds a run log (a fixed hydra.run.dir used
    again): a run log is one run's."""
    if (Path(folder) / LOG / JOURNAL).exists():
        raise ConfigError(f"the {what} {folder} already holds the run log of an earlier run: {fix}")


def trainer_alive(folder) -> bool:
    """Whether the process that writes `folder`'s run log is still running it."""
    return Lock(Path(folder) / LOG / "train.lock").held_elsewhere()


def store_key(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def read_ack(folder, uri: str) -> dict:
    """What store `uri` acknowledged of `folder`'s run log: {"uri", "run_id", "done"}. A file that is not
    such an object (or a symbolic link) reads as nothing acknowledged, the run to be looked up by its
    `runlog.id` tag ("creating"), and "damaged": what is wrong with it."""
    path = Path(folder) / LOG / "acks" / f"{store_key(uri)}.json"
    fresh = {"uri": uri, "run_id": None, "done": 0}
    if not path.exists() and not path.is_symlink():
        return fresh
    try:
        if path.is_symlink():
            raise ValueError("a symbolic link")
        ack = json.loads(path.read_bytes())
        if not isinstance(ack, dict):
            raise ValueError("not a JSON object")
        ack = {**fresh, **ack, "uri": uri}
        if not (isinstance(ack["run_id"], (str, type(None))) and type(ack["done"]) is int and ack["done"] >= 0
                and isinstance(ack.get("status"), (str, type(None))) and type(ack.get("creating", False)) is bool):
            raise ValueError("not the fields of an acknowledgement (run_id, done, status, creating)")
    except (OSError, ValueError, RecursionError) as e:
        return {**fresh, "creating": True, "damaged": f"{LOG}/acks/{path.name}: {e}"}
    return ack


def acked_elsewhere(folder, uri: str) -> bool:
    """Whether a store other than `uri` has acknowledged records of `folder`'s run log (it may be the
    same store under another URI: a file path and a server in front of it)."""
    acks = Path(folder) / LOG / "acks"
    return acks.is_dir() and any(p.name != f"{store_key(uri)}.json" for p in acks.glob("*.json"))


def write_ack(folder, ack: dict) -> None:
    path = Path(folder) / LOG / "acks" / f"{store_key(ack['uri'])}.json"
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, json.dumps({**ack, "uri": mask_secrets(ack["uri"])}).encode())  # the file: no password


def find_runlogs(paths, known: set[str] = frozenset()) -> list[Path]:
    """Run folders at or under `paths`, sweep parents before their jobs; hidden folders and the
    folders in `known` (with what is under them) skipped."""
    found = set()
    for top in map(Path, paths):
        for folder, dirs, _ in os.walk(top):
            if LOG in dirs and folder not in known and (Path(folder) / LOG / JOURNAL).exists():
                found.add(Path(folder).resolve())
            dirs[:] = [d for d in dirs if d != LOG and not d.startswith((".", "__"))
                       and os.path.join(folder, d) not in known]
    return sorted(found, key=lambda f: (len(f.parts), str(f)))


def inside(folder, name: str) -> Path:
    """`name` (a path a run log names) relative to `folder`, if it lies inside: ValueError saying why not (an
    absolute path elsewhere, a `..` part, a symbolic link out). Absolute paths inside (run logs of earlier
    versions) are made relative."""
    folder, path = Path(folder), Path(name)
    if path.is_absolute():
        for base in (folder, folder.resolve()):
            if path.is_relative_to(base):
                path = path.relative_to(base)
                break
        else:
            raise ValueError("an absolute path outside the run folder")
    if ".." in path.parts:
        raise ValueError("a path with '..'")
    target = resolved(folder / path)
    if not target.is_relative_to(folder.resolve()):
        raise ValueError(f"a symbolic link to {target}, outside the run folder")
    return path


def resolved(path: Path) -> Path:
    """`path` with every symbolic link followed; ValueError for a loop of links."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as e:
        raise ValueError(f"symbolic links that cannot be followed ({e})") from None


def sweep_parent(folder, parent: str) -> Path:
    """The sweep folder a job's RunStart names (".." parts; earlier versions: absolute), if it is a folder
    above the job's that holds a run log: ValueError saying why not."""
    folder, path = Path(folder).resolve(), Path(parent)
    if not path.is_absolute() and set(path.parts) != {".."}:
        raise ValueError("not a path of '..' parts")
    target = resolved(folder / path)
    if target == folder or not folder.is_relative_to(target):
        raise ValueError("not a folder above the job's")
    if not (target / LOG / JOURNAL).is_file():
        raise ValueError("holds no run log")
    return target


def check_files(folder) -> None:
    """Damaged unless runlog/, its journal and its points file lie inside `folder` (no symbolic link out)."""
    for name in (LOG, f"{LOG}/{JOURNAL}", f"{LOG}/{POINTS}"):
        try:
            inside(folder, name)
        except ValueError as e:
            raise Damaged(name, f"{e}: not read") from None


def is_complete(records: list) -> bool:
    return bool(records) and isinstance(records[-1], (End, SweepEnd))

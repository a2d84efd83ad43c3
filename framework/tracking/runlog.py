"""The run log: everything a run records, on local disk first, in a format these docs define.

    <run folder>/runlog/
      journal.jsonl       one record per line (`framework.tracking.messages`: RunStart, Params, Tags,
                          Metrics, End / SweepEnd), appended in order; a line without its newline is
                          an unfinished write and is ignored
      points.f64          the points of every `Metrics` record, appended: (n, 2 + k) rows of raw
                          little-endian float64 (step, timestamp ms, one value per key) at the record's
                          byte `offset`, written before the record (bytes no record names are ignored)
      predictions.npz     y_true, scores of the evaluated split, for the plots (optional)
      acks/<store>.json   what one store acknowledged: {"uri", "run_id", "done": records applied,
                          "status": the status set when the run ended without an End (KILLED),
                          "creating": a sync was creating the run (written before it asks the store;
                          a later sync then looks the run up by its `runlog.id` tag first, as does
                          the first sync to a store when another store's ack is there; removed once
                          "run_id" is written)}
      train.lock          held (flock) by the training process while the run is open
      sync.lock           held (flock) by the process syncing this run log
No pickle anywhere: JSON and `.npz` read with `allow_pickle=False`. A run is the run log's folder;
its artifacts (config.yaml, overrides.yaml, weights.npz, checkpoint/, plots/) are files beside it.
A run log whose journal has no End while `train.lock` is free belongs to a process that died: it is
synced as KILLED. Locks are `fcntl.flock` (local file systems; on NFS give each run a local folder).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from framework.errors import ConfigError
from framework.tracking.masking import mask_secrets
from framework.tracking.messages import End, Metrics, RunStart, SweepEnd, decode, encode

LOG = "runlog"
JOURNAL = "journal.jsonl"
POINTS = "points.f64"


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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
        self.append(Metrics(list(keys), int(values.size), self._offset))
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
    """Reads `folder`'s journal incrementally: `read()` returns every complete record so far."""

    def __init__(self, folder):
        self.path = Path(folder) / LOG / JOURNAL
        self.records: list = []
        self._offset = 0

    def read(self) -> list:
        if self.path.exists() and self.path.stat().st_size > self._offset:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
            complete = data[:data.rfind(b"\n") + 1]  # a line without its newline is still being written
            self._offset += len(complete)
            self.records += [decode(line) for line in complete.decode("utf-8").splitlines() if line]
        return self.records


def read_records(folder) -> list:
    """Every complete record of `folder`'s journal, in order."""
    return JournalReader(folder).read()


def read_chunk(folder, record: Metrics) -> np.ndarray:
    """The (n, 2 + k) rows of a `Metrics` record: step, timestamp, values."""
    return read_chunks(folder, [record])[0]


def read_chunks(folder, records: list[Metrics]) -> list[np.ndarray]:
    """The rows of each of `records` (as `read_chunk`), points.f64 read once: the byte range they span."""
    shape = {id(r): (r.points // max(len(r.keys), 1), 2 + len(r.keys)) for r in records}
    inline = [r for r in records if r.chunk is None]
    if inline:
        lo = min(r.offset for r in inline)
        hi = max(r.offset + 8 * shape[id(r)][0] * shape[id(r)][1] for r in inline)
        data = np.fromfile(Path(folder) / LOG / POINTS, dtype="<f8", count=(hi - lo) // 8, offset=lo)
        if 8 * data.size < hi - lo:
            raise OSError(f"{folder}/{LOG}/{POINTS} ends at byte {lo + 8 * data.size}; its records name bytes "
                          f"up to {hi} (the file was cut short: copy the run folder again)")
    rows = []
    for r in records:
        if r.chunk is not None:
            rows.append(np.load(Path(folder) / LOG / r.chunk, allow_pickle=False))
        else:
            n, width = shape[id(r)]
            start = (r.offset - lo) // 8
            rows.append(data[start:start + n * width].reshape(n, width))
    return rows


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
            rows = read_chunk(folder, record)
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
    """What store `uri` acknowledged of `folder`'s run log: {"uri", "run_id", "done"}."""
    path = Path(folder) / LOG / "acks" / f"{store_key(uri)}.json"
    return {**json.loads(path.read_text()), "uri": uri} if path.exists() else {"uri": uri, "run_id": None, "done": 0}


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


def is_complete(records: list) -> bool:
    return bool(records) and isinstance(records[-1], (End, SweepEnd))

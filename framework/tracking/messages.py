"""Everything that crosses a process boundary in tracking, defined once; both sides import this module.

Run-log records: one JSON object per line of `runlog/journal.jsonl`, `{"type": <class name>, <fields>}`
(`encode` / `decode`). The training process writes them; any sync process reads them.

Requests and replies: what the training process and its sync process (`framework.tracking.service`)
send each other through a pipe (pickled dataclasses; nothing here is ever written to disk that way).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields


# ---- run-log records --------------------------------------------------------------------------------
@dataclass
class RunStart:
    """First record. `runlog_id` identifies the run in every store (tag `runlog.id`); `parent` is the
    sweep folder of a sweep job; `resume_run_id` continues that store run instead of creating one."""

    runlog_id: str
    experiment: str
    start_ms: int
    run_name: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    role: str = "job"  # "job" or "sweep" (a multirun's parent run)
    parent: str | None = None
    resume_run_id: str | None = None
    uri: str | None = None  # the store the run was configured for (what `framework.sync` uses by default)


@dataclass
class Params:
    """Params known after the start (e.g. `model.sizes` once the data fixed the input width)."""

    params: dict[str, str]


@dataclass
class Tags:
    tags: dict[str, str]


@dataclass
class Metrics:
    """`points` points as an (n, 2 + k) float64 array whose row i holds a step, its timestamp (ms; both
    exact in float64) and the values of `keys` (k of them) at that step: n rows of raw little-endian
    float64 at byte `offset` of `runlog/points.f64` (run logs of earlier versions: the .npy file `chunk`)."""

    keys: list[str]
    points: int
    offset: int | None = None
    chunk: str | None = None


@dataclass
class End:
    """Last record of a job: its status, the files (relative to the run folder) to upload as artifacts,
    and what the sync process draws into `plots/` first (`framework.tracking.plots.draw`)."""

    status: str
    end_ms: int
    artifacts: list[str] = field(default_factory=list)
    plots: dict | None = None
    register: str | None = None  # tracking.register_model: register the run's MLflow model under this name


@dataclass
class DataSets:
    """The run's data (`framework.tracking.datasets.describe`): `splits` {"train" / "val" / "test": {"digest":
    sha256 hex of the split's X and y bytes as trained on, "features_shape", "targets_shape"}}, `source`
    (the data set's name and arguments, or a CSV file's path and sha256), the raw feature names (None: unnamed)
    and `example`: the first rows of train in raw feature space (the MLflow model's input example)."""

    name: str
    splits: dict[str, dict]
    source: dict
    features: list[str] | None
    example: list[list[float]]


@dataclass
class SweepEnd:
    """Last record of a sweep's parent: the best job's folder by `metric` ("min" or "max": `mode`), the
    job count and the failed jobs (job number -> reason) of this sweep folder. A reopened parent (a
    continued Optuna study) counts and ranks all its children in the store."""

    status: str
    end_ms: int
    metric: str
    best: str | None = None
    value: float | None = None
    runs: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    mode: str = "min"
    register: str | None = None  # tracking.register_model: register the best job's MLflow model


RECORDS = {cls.__name__: cls for cls in (RunStart, Params, Tags, Metrics, DataSets, End, SweepEnd)}


def encode(record) -> str:
    """One journal line (with its newline)."""
    return json.dumps({"type": type(record).__name__, **asdict(record)}) + "\n"


def decode(line: str):
    d = json.loads(line)
    cls = RECORDS[d.pop("type")]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


# ---- training process <-> sync process ----------------------------------------------------------------
@dataclass
class Follow:
    """Sync the run log in `folder` into `uri`, following it until its last record; answer `Synced`
    when `reply` is set."""

    folder: str
    uri: str
    reply: bool = True
    jobs: bool = False  # a sweep folder: also follow every job's run log that appears under it


@dataclass
class Synced:
    """Reply to `Follow`: `folder`'s run is complete in the store (`missing` empty), or what is not
    there yet and why."""

    folder: str
    run_id: str | None
    missing: str = ""


@dataclass
class FindFinished:
    """A FINISHED run of `experiment` tagged `config.hash` = `config_hash`: answer its final metrics
    plus "run_id", or None."""

    id: int
    uri: str
    experiment: str
    config_hash: str


@dataclass
class FindCheckpoint:
    """Answer {"folder": the local copy of the `checkpoint` artifact, "run_id": the full id} of the run
    whose id is, or starts with, `run_id`."""

    id: int
    uri: str
    run_id: str


@dataclass
class Answer:
    id: int
    value: object = None
    error: str | None = None

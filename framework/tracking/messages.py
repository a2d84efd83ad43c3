"""Everything that crosses a process boundary in tracking, defined once; both sides import this module.

Run-log records: one JSON object per line of `runlog/journal.jsonl`, `{"type": <class name>, <fields>}`
(`encode` / `decode`). The training process writes them; any sync process reads them.

Requests and replies: what the training process and its sync process (`framework.tracking.service`)
send each other through a pipe (pickled dataclasses; nothing here is ever written to disk that way).
"""
from __future__ import annotations

import base64
import json
import types
import typing
from dataclasses import MISSING, dataclass, field, fields

import numpy as np

from framework.tracking.masking import mask_secrets

Value = str | int | float | bool | None  # a tag's value as the training process records it (a step, a name, ...)


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
    tags: dict[str, Value] = field(default_factory=dict)
    role: str = "job"  # "job" or "sweep" (a multirun's parent run)
    parent: str | None = None  # relative to the job's run folder: ".." parts only (the sweep folder holds the job's)
    resume_run_id: str | None = None
    uri: str | None = None  # the store the run was configured for (what `framework.sync` uses by default)


@dataclass
class Params:
    """Params known after the start (e.g. `model.sizes` once the data fixed the input width)."""

    params: dict[str, str]


@dataclass
class Tags:
    tags: dict[str, Value]


@dataclass
class Metrics:
    """`points` points as an (n, 2 + k) float64 array whose row i holds a step, its timestamp (ms; both
    exact in float64) and the values of `keys` (k of them) at that step: n rows of raw little-endian
    float64 at byte `offset` of `runlog/points.f64` (run logs of earlier versions: the .npy file `chunk`),
    whose bytes have the CRC-32 `crc` (earlier versions: none), so a damaged points file is told apart."""

    keys: list[str]
    points: int
    offset: int | None = None
    chunk: str | None = None
    crc: int | None = None


@dataclass
class Histograms:
    """Per-parameter histograms at the end of epoch `epoch` (`step`: the global index of its last batch):
    of the weights and of that batch's gradients (as the optimizer got them) of each of `params`.

    `counts`: base64 of a little-endian uint32 array of shape (2, len(params), 2m + 1), [0] the weights'
    and [1] the gradients' counts per bin (`weights()`, `grads()`; `of` makes one from arrays): compact
    and cheap to write each epoch, no pickle. Signed log-spaced |x| bins, one per power of two, so a
    gradient of 1e-8 is a bar of its own instead of a sliver of the bin around 0: m = hi - lo bins per
    sign; bin m holds |x| < 2^lo (and 0), bin m + k (k = 1..m) the x with 2^(lo+k-1) <= x < 2^(lo+k),
    bin m - k the same negative x; |x| >= 2^hi counts in the outermost bins, NaN in none (`edges()`).
    Defaults: 2^-40 ~ 9.1e-13 to 2^8 = 256."""

    epoch: int
    step: int
    params: list[str]
    counts: str
    lo: int = -40
    hi: int = 8

    @classmethod
    def of(cls, epoch: int, step: int, params: list[str], counts, lo: int = -40, hi: int = 8) -> Histograms:
        """From `counts`, shape (2, len(params), 2m + 1): the weights' and the gradients' per param."""
        array = np.asarray(counts).astype("<u4").reshape(2, len(params), 2 * (hi - lo) + 1)
        return cls(epoch, step, list(params), base64.b64encode(array.tobytes()).decode(), lo, hi)

    def array(self) -> np.ndarray:
        """(2, params, 2m + 1) counts: [0] weights, [1] gradients."""
        flat = np.frombuffer(base64.b64decode(self.counts), "<u4")
        return flat.reshape(2, len(self.params), 2 * (self.hi - self.lo) + 1)

    def weights(self) -> dict[str, np.ndarray]:
        return dict(zip(self.params, self.array()[0]))

    def grads(self) -> dict[str, np.ndarray]:
        return dict(zip(self.params, self.array()[1]))

    def edges(self) -> list[float]:
        """The 2m + 2 bin edges from -2^hi to 2^hi (bin i between edges i and i + 1; bin m: +-2^lo)."""
        mags = [2.0 ** k for k in range(self.lo, self.hi + 1)]
        return [-v for v in reversed(mags)] + mags


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
    """Last record of a sweep's parent: the best job's folder (relative to the sweep folder) by `metric`
    ("min" or "max": `mode`), the job count, the failed jobs (job number -> reason) of this sweep folder and
    the files (relative to it: report.html) to upload to the parent. A reopened parent (a continued Optuna
    study) counts and ranks all its children in the store."""

    status: str
    end_ms: int
    metric: str
    best: str | None = None
    value: float | None = None
    runs: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    mode: str = "min"
    artifacts: list[str] = field(default_factory=list)
    register: str | None = None  # tracking.register_model: register the best job's MLflow model


RECORDS = {cls.__name__: cls for cls in (RunStart, Params, Tags, Metrics, Histograms, DataSets, End, SweepEnd)}
ENDS = ("FINISHED", "FAILED", "KILLED")  # the statuses a run ends with
_FIELDS = {cls: [(f, typing.get_type_hints(cls)[f.name]) for f in fields(cls)] for cls in RECORDS.values()}


def encode(record) -> str:
    """One journal line (with its newline); secrets masked (`framework.tracking.masking`): a run log never holds one."""
    return mask_secrets(json.dumps({"type": type(record).__name__, **vars(record)})) + "\n"  # JSON values: no deep copy


def decode(line: str):
    """The record of one journal line; ValueError saying what is wrong with it (not JSON, an unknown type,
    a missing field, a field of the wrong type, a Metrics record whose numbers cannot name its points)."""
    try:
        d = json.loads(line)
    except RecursionError:
        raise ValueError("not JSON (nested too deeply)") from None
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(d, dict) or d.get("type") not in RECORDS:
        raise ValueError(f"not a run-log record (a JSON object whose \"type\" is one of {', '.join(RECORDS)})")
    cls = RECORDS[d["type"]]
    values = {}
    for f, hint in _FIELDS[cls]:
        if f.name not in d:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ValueError(f"{cls.__name__} record without its field \"{f.name}\"")
            continue
        if not _is(d[f.name], hint):
            raise ValueError(f"{cls.__name__} field \"{f.name}\" is {json.dumps(d[f.name])[:40]}, not {_name(hint)}")
        values[f.name] = d[f.name]
    record = cls(**values)
    if isinstance(record, Metrics):
        _check_metrics(record)
    if isinstance(record, (End, SweepEnd)) and record.status not in ENDS:
        raise ValueError(f"{cls.__name__} status {record.status!r} is not one of {', '.join(ENDS)}")
    return record


def _check_metrics(r: Metrics) -> None:
    """A Metrics record names whole rows (points = rows * keys) at one place: a byte offset (a multiple of 8)
    or an earlier version's .npy `chunk` (a file name in runlog/)."""
    if not r.keys or r.points <= 0 or r.points % len(r.keys):
        raise ValueError(f"Metrics record of {r.points} points for {len(r.keys)} keys (not whole rows)")
    if (r.offset is None) == (r.chunk is None):
        raise ValueError("Metrics record with both or neither of \"offset\" and \"chunk\"")
    if r.offset is not None and (r.offset < 0 or r.offset % 8):
        raise ValueError(f"Metrics record at byte offset {r.offset} (not a multiple of 8)")


def _is(value, hint) -> bool:
    """Whether JSON `value` has type `hint` (str, int, float, bool, None, list[...], dict[..., ...], unions)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_is(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_is(k, args[0]) and _is(v, args[1]) for k, v in value.items())
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _name(hint) -> str:
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None else str(hint).replace("typing.", "")


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
    """Reply to `Follow`: `folder`'s run is complete in the store (`missing` empty; its experiment's id
    then given, for the UI address), or what is not there yet and why."""

    folder: str
    run_id: str | None
    missing: str = ""
    experiment_id: str | None = None


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

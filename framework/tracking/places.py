"""Where a run goes: the store URI, the artifact folder, the run folder; checked before training.

- Store: `tracking.uri`, else `$MLFLOW_TRACKING_URI`, else `sqlite:///<project root>/mlflow.db`
  (artifacts beside it in `mlartifacts/<experiment>`); relative SQLite paths are made absolute,
  so every Hydra job of a sweep writes to the same file.
- Sweep: a multirun's folder (`sweep_folder`) holds its parent's run log; its id (`sweep_id`, the tag
  `sweep.id`) is that folder, or `<storage>#<study>` for a stored Optuna study.
- Run folder (holds the run log and the artifact files): the Hydra job's output folder; outside
  Hydra (`train(cfg)` from Python) `tracking.dir`, else `runs/<YYYYmmdd-HHMMSS>-<6 hex>` under the
  current directory.
No mlflow import here: the training process uses this module.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from framework.errors import ConfigError
from framework.run.config import ROOT, absolute_sqlite, hydra_config
from framework.tracking.masking import mask_file, mask_secrets

# MLflow's tracking stores (a database URI may name its driver: postgresql+psycopg2://); "": a local folder
SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")


def store_uri(uri: str | None) -> str:
    """`uri`, else $MLFLOW_TRACKING_URI, else the project's SQLite file; relative SQLite paths made absolute.
    An unknown scheme is a ConfigError listing the known ones."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ROOT / 'mlflow.db'}"
    scheme = urlparse(uri).scheme.split("+")[0].lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"store URI {mask_secrets(uri)!r}: unknown scheme '{scheme}'; MLflow stores are "
                          f"{', '.join(s + '://' for s in SCHEMES if s)} (e.g. sqlite:////abs/path/mlflow.db)")
    return absolute_sqlite(uri, _original_cwd())


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///` store, else None."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def artifact_root(uri: str) -> Path | None:
    """The artifact root of a SQLite store: `mlartifacts/` beside the file (absolute); None (the server
    decides) for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):]).absolute().parent / "mlartifacts"


def artifact_location(uri: str, experiment: str) -> str | None:
    """Pinned artifact root of a new experiment: `<artifact_root>/<experiment>` for an absolute SQLite
    path (`store_uri` makes them so); None for other stores."""
    root = artifact_root(uri) if uri.startswith("sqlite:////") else None
    return None if root is None else (root / experiment.replace("/", "_")).as_uri()


def _original_cwd() -> Path:
    hc = hydra_config()
    return Path(hc.runtime.cwd) if hc else Path.cwd()


def run_folder(tracking) -> Path:
    """The folder of this run's log and artifact files (see the module docstring)."""
    hc = hydra_config()
    if hc is not None:
        return Path(hc.runtime.output_dir)
    base = Path(tracking.get("dir") or Path.cwd() / "runs")
    return base / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


FIXES = ("fix it with tracking.uri=<a writable sqlite:////abs/path/mlflow.db or http://host:port>, keep only "
         "the local run log with tracking.mode=offline (send it later with `python -m framework.sync`), or move "
         "the run folder with hydra.run.dir=<writable folder>")


MIN_FREE = 2**20  # bytes a run folder needs at least (config files, run log): less is a full disk


def check_writable(folder: Path, what: str, fixes: str = FIXES) -> None:
    """ConfigError naming `folder` and the fixes unless files can be created in it and its file
    system has `MIN_FREE` bytes free."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder) as f:
            f.write(b"0" * 4096)
            f.flush()
        free = shutil.disk_usage(folder).free
    except OSError as e:
        raise ConfigError(f"{what} '{folder}' is not writable ({e.strerror or e}); {fixes}") from None
    if free < MIN_FREE:
        raise ConfigError(f"{what} '{folder}' is on a full disk ({free // 1024} KiB free); {fixes}")


def check_store(uri: str, experiment: str, online: bool) -> None:
    """Before any data loads: a SQLite store's folder and its artifact folder are writable, a database store's
    driver imports, an HTTP server answers (online mode only; offline touches no store)."""
    if not online:
        return
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        check_writable(db.parent, "the SQLite store's folder")
        if db.exists() and not os.access(db, os.W_OK):
            raise ConfigError(f"the SQLite store '{db}' is read-only; {FIXES}")
        check_writable(Path(urlparse(artifact_location(uri, experiment)).path), "the artifact folder")
    check_driver(uri)
    check_reachable(uri)


DATABASES = ("postgresql", "mysql", "mssql")  # stores MLflow opens through SQLAlchemy and a driver of their own
DRIVER_FIX = {  # the install command of a driver SQLAlchemy imports (default: `pip install <driver>`)
    "psycopg": "pip install -e '.[postgres]'",
    "psycopg2": "pip install psycopg2-binary, or write the URI postgresql://... (psycopg 3, the faster driver) and "
                "pip install -e '.[postgres]'",
    "mysqldb": "pip install mysqlclient",
}


def check_driver(uri: str) -> None:
    """For a database store: the Python driver SQLAlchemy picks for `uri` imports (`postgresql://` -> psycopg 3,
    `postgresql+psycopg2://` -> psycopg2, `mysql://` -> MySQLdb), else a ConfigError with its install command:
    without it the run could only be kept in its run log."""
    if urlparse(uri).scheme.split("+")[0].lower() not in DATABASES:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(uri).get_dialect()
    except (ArgumentError, NoSuchModuleError) as e:
        raise ConfigError(f"store URI {mask_secrets(uri)!r}: {e}; name a driver SQLAlchemy knows "
                          f"(e.g. postgresql://, postgresql+psycopg2://)") from None
    try:
        dialect.import_dbapi()
    except ImportError as e:
        fix = DRIVER_FIX.get(dialect.driver, f"pip install {dialect.driver}")
        raise ConfigError(f"store URI {mask_secrets(uri)} needs the Python driver {dialect.driver} ({e}): {fix}; "
                          "or train with tracking.mode=offline and sync from a machine that has it") from None


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """For an http(s) tracking server: fail now, before training, if nothing answers at its address."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"tracking server {mask_secrets(uri)} is unreachable ({e}); start it (e.g. `mlflow server "
                          f"--host {parsed.hostname} --port {port}`), fix tracking.uri, train now and sync later "
                          f"with tracking.mode=offline, or turn tracking off with tracking=none") from None


def mask_hydra_record(hc) -> None:
    """Mask the secrets (`mask_secrets`) in what Hydra wrote before the job ran: the job's
    `.hydra/{config,hydra,overrides}.yaml` and a multirun's `multirun.yaml` hold the command line."""
    from omegaconf import OmegaConf

    folder, job = sweep_folder(hc), OmegaConf.select(hc, "runtime.output_dir")  # None: no job is running
    files = [*(Path(job, hc.output_subdir).glob("*.yaml") if job and hc.output_subdir else ()),
             *([folder / "multirun.yaml"] if folder else ())]
    for path in files:
        mask_file(path)


def sweep_folder(hc) -> Path | None:
    """A multirun's absolute sweep folder (it holds the parent's run log and the jobs'), else None."""
    from hydra.types import RunMode

    if hc is None or hc.mode != RunMode.MULTIRUN:
        return None
    return Path(hc.runtime.cwd, hc.sweep.dir).resolve()


def sweep_id(hc) -> str | None:
    """A multirun's id, the same in the launcher and in every job: `<storage>#<study_name>` when the
    sweeper keeps its study in a database (`hydra/sweeper=optuna` with both keys set: running the
    command again continues the same sweep, under the same parent run), else the sweep folder."""
    folder = sweep_folder(hc)
    if folder is None:
        return None
    storage, study = hc.sweeper.get("storage"), hc.sweeper.get("study_name")
    if storage and study:
        return mask_secrets(f"{absolute_sqlite(storage, hc.runtime.cwd)}#{study}")  # a tag: no password
    return str(folder)

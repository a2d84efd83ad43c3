import atexit
import gc
import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


# Python's cyclic garbage collector walks every tracked object at each full collection: after the imports
# (torch, scikit-learn, MLflow, Hydra) that is hundreds of thousands of objects that live until exit, walked
# again while importing, while testing, after the session (pytest's) and at exit; the three hooks below spare
# most of those walks.
@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    """Collecting imports the test modules' libraries: objects that live until exit, hardly any garbage,
    so the collector is off meanwhile."""
    gc.disable()
    try:
        return (yield)
    finally:
        gc.enable()


_module = [None]  # the module of the test that ran last


def pytest_runtest_setup(item):
    """Before each test module's first test: what is alive then (modules, collected tests, session fixtures,
    caches) is collected once and frozen (`gc.freeze`), so later full collections skip it."""
    if item.module is not _module[0]:
        _module[0] = item.module
        gc.collect()
        gc.freeze()


atexit.register(gc.freeze)  # Python's last collections at exit then skip every object


def pytest_collection_finish(session):
    """Tests marked `sync_process` track runs online through this process's sync process: when one is
    selected, that process is started now, so its import of mlflow (seconds) overlaps the tests before it."""
    if any(item.get_closest_marker("sync_process") for item in session.items):
        from framework.tracking.process import sync_process

        sync_process()


@pytest.fixture
def isolated(monkeypatch):
    """Fresh discovery state and registries (built-ins kept), restored after the test."""
    from framework import discovery
    from framework.registry import ALL

    discovery.load_plugins()  # the built-ins register once per process: before the snapshot
    for reg in ALL.values():
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    monkeypatch.setattr(discovery, "_state", discovery._State())
    monkeypatch.delenv(discovery.ENV_VAR, raising=False)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, empty_store):
    """The session's one `mlflow server` on 127.0.0.1 (`benchmarks.servers.MlflowServer`; starting one is the
    slowest set-up of the suite): tests write to experiments or runs of their own; the outage test stops it and
    starts it again (same port, same store). Its store starts as a copy of `empty_store` (no migrations)."""
    import shutil

    from benchmarks.servers import MlflowServer

    folder = tmp_path_factory.mktemp("mlflow_server")
    shutil.copy(empty_store, folder / "server.db")
    with MlflowServer(folder) as server:
        yield server


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory):
    """A new MLflow SQLite store as `framework.tracking.store.open_store` creates one (creating the tables
    takes seconds): made once, in the working directory `cwd/` beside it; tests copy it (`new_store`),
    test_sync checks where its Default experiment keeps artifacts."""
    pytest.importorskip("mlflow")
    from framework.tracking.store import open_store

    path = tmp_path_factory.mktemp("template") / "empty.db"
    (path.parent / "cwd").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path.parent / "cwd")
        open_store(f"sqlite:///{path}")
    return path


@pytest.fixture
def new_store(empty_store, tmp_path):
    """new_store("a.db") -> the URI of a fresh copy of `empty_store` in tmp_path."""
    import shutil

    def make(name: str = "s.db") -> str:
        shutil.copy(empty_store, tmp_path / name)
        return f"sqlite:///{tmp_path / name}"

    return make


def pytest_terminal_summary(terminalreporter, config):
    """The seed of a shuffled order (`-p randomly`, pytest-randomly) also under -q, which hides the header
    that prints it: `--randomly-seed=N` repeats that order."""
    if config.pluginmanager.hasplugin("randomly"):
        terminalreporter.write_line(f"shuffled order: --randomly-seed={config.getoption('randomly_seed')}")
    if not terminalreporter.hasopt("s"):
        reasons = {r.longrepr[2] for r in terminalreporter.stats.get("skipped", []) if isinstance(r.longrepr, tuple)}
        for reason in sorted(reasons):  # why tests were skipped, also under -q (-rs lists each test)
            terminalreporter.write_line(reason)


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server on 127.0.0.1 (`benchmarks.servers.PostgresServer`: a temp folder of its
    own, stopped at the end, killed with the session if it dies): tests create databases of their own
    (`postgres.database(name)`). Skipped, with the reason, without PostgreSQL or its driver."""
    from benchmarks.servers import PostgresServer

    why = PostgresServer.unavailable()
    if why:
        pytest.skip(why)
    pytest.importorskip("psycopg", reason="no PostgreSQL driver (psycopg 3): pip install -e '.[postgres]'")
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def slurm_cluster():
    """The session's one-node SLURM cluster (`benchmarks.servers.SlurmCluster`: Debian's munge, slurmctld and
    slurmd as root, up in ~2 s); tests reach it through its `env` (SLURM_CONF). Skips, saying why, where
    SLURM is not installed (.ci/run installs it) or the tests do not run as root."""
    from benchmarks.servers import SlurmCluster, slurm_missing

    reason = slurm_missing()
    if reason:
        pytest.skip(reason)
    with SlurmCluster() as cluster:
        yield cluster

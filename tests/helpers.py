"""Shared test helpers: compose the project's Hydra config in-process; local MLflow servers and Ray heads."""
from __future__ import annotations

import copy
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl  # Hydra's own value-override code
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from framework.run.config import CONF_DIR, GROUPS, node_for, register_configs

QUIET = ["tracking.enabled=false", "trainer.progress=none"]
_registered: dict = {}     # (group, name) -> the plugin whose option is in Hydra's ConfigStore
_composed: dict = {}       # group choices -> Hydra's composition of them (value overrides not applied)
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}

# Each Hydra compose deep-copies its config repository and with it the ConfigStore singleton (every registered
# option as a DictConfig): ~80 of a ~260 ms compose here. Nothing writes through that copy (`ConfigStore.load`
# hands out copies of its nodes; tests/unit/test_helpers.py checks a compose leaves the store as it was), so in the
# tests the copy is the store itself.
ConfigStore.__deepcopy__ = lambda self, memo: self


def register() -> None:
    """Store the registered options in Hydra's ConfigStore (`register_configs`) once per test session; later,
    only the plugins a test has registered since, or put under a stored name (`override=True`, or a built-in put
    back after a test). Only the latter drops the cached compositions: none of them can select a new name (its
    compose would have failed)."""
    options = {(group, name): registry.get(name) for group, registry in GROUPS.items() for name in registry.names()}
    changed = {option for option, plugin in options.items() if _registered.get(option) is not plugin}
    if not _registered:
        register_configs()
    else:
        for group, name in changed:  # stored as register_configs stores them (all of them: ~0.2 s)
            if not (CONF_DIR / group / f"{name}.yaml").exists():
                ConfigStore.instance().store(group=group, name=name, node=node_for(GROUPS[group], name))
    if changed & _registered.keys():
        _composed.clear()
    _registered.update(options)


def compose_all(*overrides: str, hydra: bool = False):
    """One Hydra compose of the project's config with `overrides` (`hydra`: keep the `hydra.*` node)."""
    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def make_cfg(*overrides: str):
    """The composed config (like `python -m framework.train <overrides>`), tracking and progress off.

    Hydra composes the defaults list of the group choices (~0.2 s), then applies the value overrides
    (`a.b=v`, `+k=v`) to the result. Here the first step runs once per set of group choices and the
    second is Hydra's own code on a copy, so the result is that of `compose_all(*QUIET, *overrides)`
    (`tests/unit/test_helpers.py`).
    """
    register()
    parsed = OverridesParser.create().parse_overrides([*QUIET, *overrides])
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        repo = GlobalHydra.instance().config_loader().repository
        composed = [o.key_or_group.startswith("hydra") or o.is_sweep_override() or repo.group_exists(o.key_or_group)
                    for o in parsed]
    choices = tuple(o.input_line for o, c in zip(parsed, composed) if c)
    if choices not in _composed:
        _composed[choices] = compose_all(*choices)
    cfg = copy.deepcopy(_composed[choices])
    ConfigLoaderImpl._apply_overrides_to_config([o for o, c in zip(parsed, composed) if not c], cfg)
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(ready, process: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    """Poll `ready()` until it is true; fail if `process` exits first or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"{what} exited with code {process.returncode}"
        assert time.monotonic() < deadline, f"{what} not ready within {timeout:.0f} s"
        time.sleep(0.2)


@contextmanager
def mlflow_server(tmp_path: Path, port: int | None = None, workers: int = 1):
    """`mlflow server` on 127.0.0.1:`port` (default: a free one; SQLite backend `tmp_path/server.db`, a
    copy of an empty store there skips MLflow's migrations, and artifacts in tmp_path, so a second server
    on the same folder serves the same store) with `workers` workers (MLflow's default is 4: each imports
    mlflow, slow on a busy 2-core machine); yields its URI, stops it (and its workers) after. Tests and
    benchmarks/tracking_overhead.py use it."""
    import mlflow

    port = port or free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination", str(tmp_path / "art"),
         "--workers", str(workers)],
        # no job runner: its ~8 Huey worker processes (GenAI jobs, periodic tasks) would each import mlflow
        env={**ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            mlflow.MlflowClient(uri).search_experiments()
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    try:
        _wait(answers, server, "mlflow server")
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers
        server.wait(30)


@contextmanager
def ray_head(cpus: int = 2):
    """A Ray head on 127.0.0.1 with `cpus` CPUs and its own temp dir; yields its address "127.0.0.1:PORT".

    `ray start --block` runs in a new process group; at exit (also after a failure) that group and
    every process the head started are killed by pid (`ray stop` would stop every Ray on the machine),
    and its temp dir is removed.
    """
    port, tmp = free_port(), tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit 107 bytes
    log = Path(tmp, "head.log")
    with log.open("w") as out:
        head = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}",
             "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={tmp}"],
            env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: "Ray runtime started" in log.read_text(), head, f"ray head (log: {log})")
        yield f"127.0.0.1:{port}"
    finally:
        started = descendants(head.pid)  # Ray's workers have sessions of their own
        os.killpg(head.pid, signal.SIGKILL)
        for pid in started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        head.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


def descendants(pid: int) -> list[int]:
    """The ids of every process below `pid` (from `ps`)."""
    table = [line.split() for line in subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True,
                                                     text=True).stdout.splitlines()]
    children: dict[int, list[int]] = {}
    for child, parent in table:
        children.setdefault(int(parent), []).append(int(child))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found

"""Local servers for the benchmarks and the tests: `mlflow server` and a Ray head on 127.0.0.1.

Framework-independent (no `framework` import), so the tests (tests/conftest.py) and the benchmarks share
this one copy.
"""
from __future__ import annotations

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

ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(ready, process: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    """Poll `ready()` until it is true; fail if `process` exits first or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout:.0f} s")
        time.sleep(0.2)


class MlflowServer:
    """`mlflow server` on 127.0.0.1:`port` (default: a free one) with `workers` workers (MLflow's default,
    4, each imports mlflow: slow on a busy 2-core machine); SQLite backend `folder/server.db` (put a copy of
    an empty store there to skip MLflow's migrations), artifacts in `folder/art`.

        with MlflowServer(folder) as server:   # started; stopped (with its workers) at the end
            ... server.uri ...
            server.stop(); ...; server.start()  # an outage: the same store on the same port again
    """

    def __init__(self, folder: Path, port: int | None = None, workers: int = 1):
        self.folder, self.port, self.workers = Path(folder), port or free_port(), workers
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the server (if it is not running) and wait until it answers."""
        if self.process is not None:
            return
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", f"sqlite:///{self.folder}/server.db",
             "--artifacts-destination", str(self.folder / "art"), "--workers", str(self.workers)],
            # no job runner: its ~8 Huey worker processes (GenAI jobs, periodic tasks) would each import mlflow
            env={**ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_until(self.answers, self.process, "mlflow server")
        except BaseException:
            self.stop()
            raise

    def answers(self) -> bool:
        import mlflow

        try:
            mlflow.MlflowClient(self.uri).search_experiments()
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def stop(self) -> None:
        """Stop the server and its workers (its process group)."""
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)
        self.process = None

    def __enter__(self) -> MlflowServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


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
        wait_until(lambda: "Ray runtime started" in log.read_text(), head, f"ray head (log: {log})")
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

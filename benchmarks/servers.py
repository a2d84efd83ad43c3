"""Local servers for the benchmarks and the tests: `mlflow server` and a Ray cluster on 127.0.0.1.

Framework-independent (no `framework` import), so the tests (tests/conftest.py) and the benchmarks share
this one copy.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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


class RayCluster:
    """A Ray cluster on 127.0.0.1: a head and `nodes - 1` more nodes, each one `ray start --block` with
    `cpus` CPUs, the custom resource `node<i>: 1` (pins a job to node i:
    `+hydra.launcher.ray.remote.resources={node1:1}`) and a temp dir of its own (short: Ray's socket paths
    must fit 107 bytes).

        with RayCluster(nodes=2, cpus=1) as cluster:   # all nodes up
            cluster.address                            # "127.0.0.1:PORT": hydra.launcher.ray.init.address
            cluster.node_ids[1]                        # node 1's Ray node id (from its raylet's log)
            cluster.kill(1)                            # node 1 fails: SIGKILL to all of its processes
            cluster.start_node(1)                      # a new node 1 joins (a new id)

    Stopping kills each node's process group and every process below it by pid (`ray stop` would stop
    every Ray on the machine) and removes the temp dirs. Each `ray start` gets SIGTERM when the process
    that started it dies (PR_SET_PDEATHSIG) and then stops its node's processes: a killed test session
    leaves no cluster behind.
    """

    def __init__(self, nodes: int = 1, cpus: int = 2):
        self.nodes, self.cpus, self.port = nodes, cpus, free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen | None] = [None] * nodes
        self.node_ids: list[str | None] = [None] * nodes
        self.dirs: list[str] = []

    def start(self) -> None:
        try:
            for i in range(self.nodes):
                self.start_node(i)
        except BaseException:
            self.stop()
            raise

    def start_node(self, i: int) -> None:
        """Start node `i` (0: the head) and wait until it has joined; its id goes to `node_ids[i]`."""
        self.kill(i)
        tmp = tempfile.mkdtemp(prefix="ray")
        self.dirs.append(tmp)
        role = ["--head", f"--port={self.port}", "--include-dashboard=false",
                f"--ray-client-server-port={free_port()}"] if i == 0 else [f"--address={self.address}"]
        log = Path(tmp, "node.log")
        with log.open("w") as out:
            node = subprocess.Popen(
                [str(Path(sys.executable).with_name("ray")), "start", "--block", *role, "--node-ip-address=127.0.0.1",
                 f"--num-cpus={self.cpus}", f'--resources={{"node{i}": 1}}', "--disable-usage-stats",
                 f"--temp-dir={tmp}"],
                env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_term_with_parent)
        self.processes[i] = node
        wait_until(lambda: "Ray runtime started" in log.read_text(), node, f"ray node {i} (log: {log})")
        raylet = Path(tmp, "session_latest", "logs", "raylet.out")
        wait_until(lambda: raylet.is_file() and "node_id=" in raylet.read_text(), node, f"ray node {i}'s id")
        self.node_ids[i] = re.search(r"node_id=([0-9a-f]+)", raylet.read_text()).group(1)

    def kill(self, i: int) -> None:
        """Node `i`'s `ray start`, raylet and workers get SIGKILL (Ray's workers have sessions of their own)."""
        node = self.processes[i]
        if node is None:
            return
        started = descendants(node.pid)
        os.killpg(node.pid, signal.SIGKILL)
        for pid in started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        node.wait(30)
        self.processes[i] = None

    def stop(self) -> None:
        for i in reversed(range(self.nodes)):
            self.kill(i)
        for tmp in self.dirs:
            shutil.rmtree(tmp, ignore_errors=True)

    def __enter__(self) -> RayCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _term_with_parent() -> None:
    """In a child before exec: SIGTERM when its parent dies (Linux prctl PR_SET_PDEATHSIG; elsewhere nothing)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


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

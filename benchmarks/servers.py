"""Local servers for the benchmarks and the tests, on 127.0.0.1: `mlflow server`, a Ray cluster, PostgreSQL, SLURM.

Framework-independent (no `framework` import), so the tests (tests/conftest.py) and the benchmarks share
this one copy.
"""
from __future__ import annotations

import atexit
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
    4, each imports mlflow: slow on a busy 2-core machine); backend store `backend` (default: the SQLite file
    `folder/server.db`; put a copy of an empty store there to skip MLflow's migrations), artifacts in `folder/art`.

        with MlflowServer(folder) as server:   # started; stopped (with its workers) at the end
            ... server.uri ...
            server.stop(); ...; server.start()  # an outage: the same store on the same port again
    """

    def __init__(self, folder: Path, port: int | None = None, workers: int = 1, backend: str | None = None):
        self.folder, self.port, self.workers = Path(folder), port or free_port(), workers
        self.backend = backend or f"sqlite:///{self.folder}/server.db"
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the server (if it is not running) and wait until it answers."""
        if self.process is not None:
            return
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", *(a for flag in self.flags().items() for a in flag)],
            # no job runner: its ~8 Huey worker processes (GenAI jobs, periodic tasks) would each import mlflow
            env={**ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_until(self.answers, self.process, "mlflow server")
        except BaseException:
            self.stop()
            raise

    def flags(self) -> dict[str, str]:
        """The options of its `mlflow server` command."""
        return {"--host": "127.0.0.1", "--port": str(self.port), "--backend-store-uri": self.backend,
                "--artifacts-destination": str(self.folder / "art"), "--workers": str(self.workers)}

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


class PostgresServer:
    """A throw-away PostgreSQL server on 127.0.0.1:`port` (default: a free one), for MLflow stores in the
    tests and benchmarks: `initdb` in a new folder under the system temp dir, trust authentication (user
    `postgres`, no password), `fsync=off` (durability is not what is measured). As root it runs as the
    `postgres` user (PostgreSQL refuses root); its data folder is under /tmp, not in a 0700 folder of root's.

        if (why := PostgresServer.unavailable()) is None:
            with PostgresServer() as pg:                  # started; stopped and its folder removed at the end
                uri = pg.database("store")                # postgresql://postgres@127.0.0.1:PORT/store (empty)

    The server is this process's child: stopped at exit (`atexit`), and sent SIGQUIT (PostgreSQL's immediate
    shutdown) by the kernel if this process dies without exiting (`PR_SET_PDEATHSIG`: when the thread that
    started it ends; start it from a thread that lives as long as it should); the folder such a death leaves is
    removed by the next start.
    """

    SETTINGS = ("fsync=off", "full_page_writes=off", "synchronous_commit=off")
    PREFIX = "framework-pg-"  # its folders in the temp dir

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.folder: Path | None = None

    @staticmethod
    def bindir() -> Path | None:
        """The folder of `initdb` and `postgres`: `pg_config --bindir`, else the one of `initdb` on PATH."""
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            out = ""
        if out and Path(out, "initdb").exists():
            return Path(out)
        found = shutil.which("initdb")
        return Path(found).parent if found else None

    @classmethod
    def unavailable(cls) -> str | None:
        """Why no server can be started here (no binaries; root without a `postgres` user), else None."""
        if cls.bindir() is None:
            return "PostgreSQL is not installed (no `pg_config --bindir` with initdb, no initdb on PATH)"
        if os.geteuid() == 0:
            import pwd

            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no `postgres` user to run PostgreSQL as"
        return None

    def _owner(self):
        """preexec_fn of the server's processes: as root, become `postgres`; the server also dies with us."""
        import ctypes
        import pwd

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

        def become():
            if os.geteuid() == 0:
                user = pwd.getpwnam("postgres")
                os.setgroups([])
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            os.setsid()  # Ctrl-C in a terminal (SIGINT to its process group) is this process's to handle
            # after the setuid (a credential change clears it): SIGQUIT when the process that started it dies
            prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG

        return become

    def start(self) -> None:
        """initdb, then the server, waiting until it accepts connections."""
        if self.process is not None:
            return
        why = self.unavailable()
        if why:
            raise RuntimeError(why)
        bindir = self.bindir()
        self.remove_orphans()
        self.folder = Path(tempfile.mkdtemp(prefix=self.PREFIX))  # 0700, under the traversable temp dir
        (self.folder / "owner").write_text(str(os.getpid()))
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        data = self.folder / "data"
        atexit.register(self.stop)  # (unregistered by stop)
        try:
            subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                            "--no-sync", "--no-instructions"], check=True, capture_output=True, timeout=120,
                           preexec_fn=self._owner())
            settings = [a for s in self.SETTINGS for a in ("-c", s)]
            with open(self.folder / "log", "w") as log:
                self.process = subprocess.Popen(
                    [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port),
                     "-k", str(self.folder), *settings], stdout=subprocess.DEVNULL, stderr=log,
                    preexec_fn=self._owner())
            wait_until(lambda: self._status(data) == "ready", self.process, f"postgres (log: {self.folder / 'log'})",
                       timeout=60)
        except BaseException:
            self.stop()
            raise

    @classmethod
    def remove_orphans(cls) -> None:
        """Remove the folders of servers whose starting process died without stopping them (`owner`: its pid)."""
        for folder in Path(tempfile.gettempdir()).glob(cls.PREFIX + "*"):
            try:
                os.kill(int((folder / "owner").read_text()), 0)
            except ProcessLookupError:
                shutil.rmtree(folder, ignore_errors=True)
            except (OSError, ValueError):  # being created, or not ours to judge
                pass

    @staticmethod
    def _status(data: Path) -> str:
        """The postmaster's state from its pid file's 8th line ("starting", "ready", ...)."""
        try:
            lines = (data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return ""
        return lines[7].strip() if len(lines) > 7 else ""

    def uri(self, database: str = "postgres") -> str:
        """The SQLAlchemy (and MLflow) URI of `database`: `postgresql://` is psycopg 3 in SQLAlchemy >= 2.1."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self, name: str, template: str | None = None) -> str:
        """Create database `name` (empty, or a copy of database `template`, which no session may be connected to:
        no MLflow migrations) and give its URI."""
        done = subprocess.run([str(self.bindir() / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                               "postgres", *(["-T", template] if template else []), name], capture_output=True,
                              text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"createdb {name}: {done.stderr.strip()}")
        return self.uri(name)

    def stop(self) -> None:
        """Immediate shutdown (SIGQUIT: no checkpoint, the data is thrown away), then the folder removed."""
        if self.process is not None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
            self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        atexit.unregister(self.stop)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


SLURM_COMMANDS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel")


def slurm_missing() -> str | None:
    """Why this machine cannot run a `SlurmCluster` (None: it can)."""
    missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
    if missing:
        return (f"SLURM is not installed ({' '.join(missing)} not found): "
                "apt-get install slurmctld slurmd slurm-client munge (.ci/run does)")
    if os.geteuid() != 0:
        return "the SLURM test cluster runs its daemons as root"
    return None


class SlurmCluster:
    """A one-node SLURM cluster on this machine from Debian's packages, its daemons run as root:
    munged (its own key and socket), slurmctld, slurmd. slurm.conf, free ports, state, spool and logs
    live in a temp folder, so it never meets a system install; clients find it through `env`
    (SLURM_CONF). Node `localhost` has this machine's CPUs and memory (`slurmd -C`); partition `debug`
    (the default) has `max_minutes` as its time limit; no accounting (submitit: "Bypassing sacct error").

        with SlurmCluster() as cluster:   # up: the node is idle
            subprocess.run(["sinfo"], env=cluster.env)

    The daemons run in the foreground under `setpriv --pdeathsig KILL`: they die with this process
    even when it is killed; `stop` cancels the jobs left, stops the daemons and removes the folder.
    """

    def __init__(self, max_minutes: int = 60, kill_wait: int = 5):
        self.max_minutes, self.kill_wait = max_minutes, kill_wait
        self.folder: Path | None = None
        self.env: dict[str, str] = {}
        self.node: dict[str, int] = {}  # {"cpus": N, "mem_mb": M}
        self._daemons: list[subprocess.Popen] = []

    def start(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="slurm"))  # short: the munge socket's path must fit 107 bytes
        self.folder.chmod(0o755)  # munged wants its socket's folders executable by all
        key = self.folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        socket_path = self.folder / "munge.socket"
        conf = self.folder / "slurm.conf"
        conf.write_text(self._conf(socket_path))
        self.env = {**ENV, "SLURM_CONF": str(conf)}
        try:
            munged = self._daemon("munged", "-F", f"--key-file={key}", f"--socket={socket_path}",
                                  f"--pid-file={self.folder}/munged.pid", f"--seed-file={self.folder}/munged.seed")
            wait_until(socket_path.exists, munged, "munged", timeout=30)
            self._daemon("slurmctld", "-D", "-f", str(conf))
            slurmd = self._daemon("slurmd", "-D", "-N", "localhost", "-f", str(conf))
            wait_until(lambda: self.sinfo("%t") == "idle", slurmd, f"slurm node (logs: {self.folder})", timeout=60)
        except BaseException:
            self.stop()
            raise

    def _conf(self, munge_socket: Path) -> str:
        """slurm.conf of the one-node cluster; the node's hardware as `slurmd -C` finds it."""
        found = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.split()
        hardware = " ".join(f for f in found if f.split("=")[0] not in ("NodeName", "UpTime"))
        fields = dict(f.split("=", 1) for f in found if "=" in f)
        self.node = {"cpus": int(fields["CPUs"]), "mem_mb": int(fields["RealMemory"])}
        f = self.folder
        return "\n".join([
            "ClusterName=framework", "SlurmctldHost=localhost", f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={munge_socket}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "ReturnToService=2",
            f"KillWait={self.kill_wait}", "SchedulerParameters=sched_interval=1",
            f"StateSaveLocation={f}/state", f"SlurmdSpoolDir={f}/spool",
            f"SlurmctldPidFile={f}/slurmctld.pid", f"SlurmdPidFile={f}/slurmd.pid",
            f"SlurmctldLogFile={f}/slurmctld.log", f"SlurmdLogFile={f}/slurmd.log",
            f"NodeName=localhost {hardware} State=UNKNOWN",
            f"PartitionName=debug Nodes=localhost Default=YES MaxTime={self.max_minutes} State=UP", ""])

    def _daemon(self, *command: str) -> subprocess.Popen:
        with (self.folder / f"{command[0]}.out").open("w") as out:
            process = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", *command], env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self._daemons.append(process)
        return process

    def sinfo(self, fmt: str) -> str:
        """`sinfo -h -o FMT` of this cluster ("" while slurmctld does not answer)."""
        done = subprocess.run(["sinfo", "-h", "-o", fmt], env=self.env, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    def jobs(self) -> list[dict[str, str]]:
        """The jobs in the queue: [{"id", "name", "state"}] (`squeue`)."""
        done = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], env=self.env, capture_output=True, text=True,
                              check=True)
        return [dict(zip(("id", "name", "state"), line.split())) for line in done.stdout.splitlines()]

    def stop(self) -> None:
        """Cancel the jobs left (their steps end within KillWait), stop the daemons, remove the folder."""
        if self._daemons and self._daemons[-1].poll() is None and self.sinfo("%t"):
            subprocess.run(["scancel", "--full", f"--user={os.getuid()}"], env=self.env, capture_output=True)
            deadline = time.monotonic() + self.kill_wait + 10
            while self.jobs() and time.monotonic() < deadline:
                time.sleep(0.5)
        for process in reversed(self._daemons):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._daemons = []
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

"""Sweeps on a real two-node Ray cluster on this machine (`benchmarks.servers.RayCluster`: a head and a second
node, one CPU each): the jobs land on both nodes, each run tagged with its node; a node that dies while its
job trains leaves a failed job that the sweep lists (exit 1, no traceback), and the same command with
`tracking.skip_finished=true` runs only that job; an address where no cluster answers is one error line."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from benchmarks.servers import ENV, RayCluster, free_port
from tests.integration.test_sweep import JOB, check, mlflow, sweep

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="no hydra-ray-launcher: pip install -e '.[ray]'")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """A head (node 0) and node 1, 1 CPU each: a job's task needs 1, so two jobs run at once, one per node."""
    with RayCluster(nodes=2, cpus=1) as c:
        yield c


def launcher(cluster) -> list[str]:
    return ["hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={cluster.address}"]


def runs(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name("sweep").experiment_id])


def split(runs: list) -> tuple[list, dict]:
    """(the parent runs, the child runs by job number)."""
    return ([r for r in runs if r.data.tags.get("sweep.role") == "parent"],
            {r.data.tags["sweep.job"]: r for r in runs if r.data.tags.get("sweep.role") != "parent"})


def test_a_sweep_runs_on_both_nodes_and_tags_each_run_with_its_node(tmp_path, cluster):
    uri, sweep_dir = sweep(tmp_path, *launcher(cluster), "optimizer.lr=0.05,0.005", "trainer.epochs=1,2",
                           "trainer.batch_size=16")
    parent, children = check(uri, sweep_dir, 4, ["optimizer.lr", "trainer.epochs"])
    assert {c.data.tags["node.ray_id"] for c in children} == set(cluster.node_ids)
    assert {r.data.tags["node.host"] for r in [parent, *children]} == {socket.gethostname()}
    assert parent.data.tags["sweep.launcher"] == "hydra_plugins.framework_ray.RayLauncher"


def test_a_dead_node_s_job_is_listed_as_failed_and_a_skip_finished_rerun_runs_only_it(tmp_path, cluster):
    from framework.tracking.runlog import find_runlogs, last_values, read_start

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = [sys.executable, "-m", "framework.train", "-m", *JOB, *launcher(cluster), "seed=0,1,2,3",
               "trainer.epochs=100", "trainer.batch_size=16", f"tracking.uri={uri}"]
    first = subprocess.Popen([*command, "hydra.sweep.dir=first"], cwd=tmp_path, env=ENV,  # relative: from tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # not the nodes' folder
    victim, deadline = None, time.monotonic() + 300
    try:
        while victim is None and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            for folder in find_runlogs([tmp_path / "first"]):
                start = read_start(folder)
                if start and start.tags.get("node.ray_id") == cluster.node_ids[1] and last_values(folder):
                    victim = start.tags["sweep.job"]  # on node 1, training: its first batches are in the run log
                    dead = cluster.node_ids[1]
                    cluster.kill(1)
                    break
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
        if victim is not None:
            cluster.start_node(1)  # for the other test, whichever order they run in
    assert victim is not None, f"no job trained on node 1 (exit {first.returncode}): {err[-3000:]}"
    assert first.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert f"1 sweep job(s) failed:\n  job {victim} [" in err and "NodeDiedError" in err
    (parent,), children = split(runs(uri))
    assert parent.data.tags["sweep.failed"].startswith(f"job {victim}: NodeDiedError")
    assert parent.data.tags["sweep.runs"] == "4" and parent.info.status == "FINISHED"
    assert children[victim].info.status == "KILLED"  # its run log ends without an End: synced as KILLED
    finished = {job: r for job, r in children.items() if job != victim}
    assert len(finished) == 3 and all(r.info.status == "FINISHED" for r in finished.values())
    assert children[victim].data.tags["node.ray_id"] == dead
    assert {r.data.tags["node.ray_id"] for r in finished.values()} == {cluster.node_ids[0]}  # the head's

    again = subprocess.run([*command, "tracking.skip_finished=true", "hydra.sweep.dir=again"],
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    for job, run in finished.items():
        log = (tmp_path / "again" / job / "train.log").read_text()
        assert f"skipped: run {run.info.run_id} already finished" in log
    before = {parent.info.run_id, *(c.info.run_id for c in children.values())}
    _, rerun = split([r for r in runs(uri) if r.info.run_id not in before])
    (child,) = rerun.values()  # only the dead node's job trained again
    assert child.data.tags["sweep.job"] == victim and child.info.status == "FINISHED"
    assert child.data.params["seed"] == children[victim].data.params["seed"]


def test_an_address_where_no_cluster_answers_is_one_error_line(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    done = subprocess.run([sys.executable, "-m", "framework.train", "-m", "data=xor", "tracking=none", "seed=0,1",
                           "hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={address}",
                           f"hydra.sweep.dir={tmp_path}/sweep"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"error: hydra.launcher.ray.init.address={address}: no Ray cluster answers there")

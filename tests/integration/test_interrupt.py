"""A training process killed with SIGTERM keeps everything and resumes bit-identically."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from framework.engine.weights import export
from framework.train import build
from tests.helpers import make_cfg

pytestmark = pytest.mark.slow
SPE = 40  # digits: 1257 training rows in batches of 32
EPOCHS = 40  # ~45 ms each on an idle core: the SIGTERM sent after epoch 2 has ~1.7 s to arrive before the end
ARGS = ["model.hidden=[256,256]", f"trainer.epochs={EPOCHS}", "trainer.progress=plain", "seed=3"]


def _start(tmp_path, name, *extra):
    cmd = [sys.executable, "-m", "framework.train", *ARGS, f"hydra.run.dir={tmp_path / name}", *extra]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_sigterm_then_resume_by_run_id(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _start(tmp_path, "run", f"tracking.uri={uri}")
    lines = []
    for line in proc.stdout:  # wait for the second epoch, then stop the job as a scheduler would
        lines.append(line)
        if line.startswith(f"epoch 2/{EPOCHS}"):
            proc.send_signal(signal.SIGTERM)
            break
    out = "".join(lines) + proc.stdout.read()
    assert proc.wait(timeout=120) == 143, out
    assert "interrupted by SIGTERM" in out

    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    stopped_at = state["trainer"]["step"]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert run.info.status == "KILLED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "batch/loss")]
    assert steps == list(range(stopped_at)), "every finished batch is in the store, nothing more"
    assert 2 * SPE <= stopped_at < EPOCHS * SPE

    resumed = _start(tmp_path, "resumed", f"tracking.uri={uri}",
                     f"trainer.resume={run.info.run_id[:8]}")  # an id prefix, as framework.runs shows it
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "true"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "batch/loss")]
    assert steps == list(range(EPOCHS * SPE)), "the resumed run continues the same curve, no gap, no repeat"

    reference = build(make_cfg(*ARGS))  # the uninterrupted run: in this process (no second CLI run needed)
    reference.fit()
    expected = export(reference)  # what a checkpoint's weights.npz holds
    with np.load(tmp_path / "resumed" / "checkpoint" / "weights.npz") as a:
        assert set(a.files) == set(expected)
        for k, v in expected.items():
            assert a[k].tobytes() == np.asarray(v).tobytes(), k
    print(f"\ninterrupted at step {stopped_at}; points before resume {stopped_at}, after {EPOCHS * SPE}; "
          f"weights bit-identical to the uninterrupted run")

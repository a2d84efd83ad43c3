"""plugins/README.md's sweep command runs as written (a `python -m framework.train -m` process)."""
import shlex
import subprocess
import sys

import pytest

from tests.unit.test_plugin_guide import TEXT, write_blocks


@pytest.mark.slow
def test_sweep_command_of_the_guide_runs(tmp_path):
    """The guide's sweep, shortened (1 epoch, no MLflow), in a scratch working directory."""
    command = next(line for line in TEXT.splitlines() if line.startswith("python -m framework.train -m"))
    folder = write_blocks(tmp_path / "my_plugins")
    args = shlex.split(command.replace("$HOME/my_plugins", str(folder)))[1:]
    run = subprocess.run([sys.executable, *args, "tracking=none", "trainer.epochs=1", "trainer.progress=none"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stdout.count("final metrics") == 3

"""plugins/README.md's run and sweep commands run as written (`python -m framework.train` processes)."""
import shlex
import subprocess
import sys

import pytest

from tests.unit.test_plugin_guide import TEXT, write_blocks

SHORT = ["tracking=none", "trainer.epochs=1", "trainer.progress=none"]   # 1 epoch, no MLflow


def guide_command(start: str, folder) -> list[str]:
    """The guide's command line that starts with `start`, its plugin folder replaced by `folder`."""
    command = next(line for line in TEXT.splitlines() if line.startswith(start))
    return shlex.split(command.replace("$HOME/my_plugins", str(folder)))[1:]


@pytest.mark.slow
def test_sweep_command_of_the_guide_runs(tmp_path):
    """The guide's sweep, shortened, in a scratch working directory."""
    folder = write_blocks(tmp_path / "my_plugins")
    args = guide_command("python -m framework.train -m", folder)
    run = subprocess.run([sys.executable, *args, *SHORT], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stdout.count("final metrics") == 3


@pytest.mark.slow
def test_the_guides_runs_with_a_plugin_of_every_kind(tmp_path):
    """Its two runs together use the examples of all eight kinds (each an option only because the folder is loaded:
    an unknown name stops a run), at once on two cores: top-2 accuracy is logged, the rotated moons train."""
    folder = write_blocks(tmp_path / "my_plugins")
    starts = ['python -m framework.train "plugins.paths=[$HOME/my_plugins]" data=iris activation=mish',
              'python -m framework.train "plugins.paths=[$HOME/my_plugins]" data=rotated_moons']
    runs = [subprocess.Popen([sys.executable, *guide_command(start, folder), *SHORT], cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for start in starts]
    (iris, iris_err), (moons, moons_err) = (run.communicate(timeout=300) for run in runs)
    assert [run.returncode for run in runs] == [0, 0], iris[-2000:] + iris_err[-2000:] + moons_err[-2000:]
    assert "test/top2" in iris and "test/accuracy" in iris
    assert "test/roc_auc" in moons

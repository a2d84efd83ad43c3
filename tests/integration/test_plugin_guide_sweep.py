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
@pytest.mark.parametrize("data", ["iris", "rotated_moons"])
def test_the_guides_runs_with_a_plugin_of_every_kind(tmp_path, data):
    """Its two runs together use the examples of all nine kinds (each an option only because the folder is loaded:
    an unknown name stops a run): top-2 accuracy is logged and the epoch CSV written, the rotated moons train."""
    args = guide_command(f'python -m framework.train "plugins.paths=[$HOME/my_plugins]" data={data}',
                         write_blocks(tmp_path / "my_plugins"))
    run = subprocess.run([sys.executable, *args, *SHORT], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert ("test/top2" if data == "iris" else "test/roc_auc") in run.stdout
    if data == "iris":  # epoch_csv's file in the run folder (Hydra's job folder): a header and the one epoch
        (curve,) = (tmp_path / "outputs").glob("*/*/curve.csv")
        header, row = curve.read_text().splitlines()
        values = dict(zip(header.split(","), row.split(",")))
        assert values["epoch"] == "1" and 0 < float(values["val/loss"]) < 10 and "val/top2" in values, values

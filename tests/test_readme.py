"""README's Python example runs and does what it says: one SGD step lowers the loss."""
import re
import subprocess
import sys

from framework.config import ROOT


def test_readme_python_example_lowers_the_loss(tmp_path):
    (block,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    before = block.replace("sgd.step(model.params, model.grads)", "pass")
    run = lambda code: float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                            check=True, cwd=tmp_path).stdout)
    assert run(block) < run(before)

"""README's Python example runs and does what it says: one SGD step lowers the loss."""
import contextlib
import io
import re

from framework.run.config import ROOT


def _printed(code: str) -> float:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    return float(out.getvalue())


def test_readme_python_example_lowers_the_loss():
    (block,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    before = block.replace("sgd.step(model.params, model.grads)", "pass")
    assert before != block and _printed(block) < _printed(before)

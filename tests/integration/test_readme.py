"""README's Python blocks run, in order, in a temporary folder, and do what they say."""
import contextlib
import io
import re
import shutil

import pytest

from framework.run.config import ROOT

pytestmark = pytest.mark.sync_process  # the first block tracks its run in a store (a copy of `empty_store`)

FENCES = re.findall(r"^```(\S*)([^\n]*)\n(.*?)^```$", (ROOT / "README.md").read_text(), re.S | re.M)
RUN = [code for lang, rest, code in FENCES if lang == "python" and not rest.strip()]
NOT_RUN = [code for lang, rest, code in FENCES if lang == "python" and rest.strip() == "no-run"]


def _printed(code: str, namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), namespace)
    return out.getvalue()


def test_every_python_block_is_run_or_marked():
    """A fence `py`, `python3`, `python skip`, ... would escape the run below: only `python` and
    `python no-run` are allowed."""
    odd = [f"```{lang}{rest}" for lang, rest, _ in FENCES
           if lang.startswith("py") and (lang != "python" or rest.strip() not in ("", "no-run"))]
    assert odd == [] and len(RUN) >= 3


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch, empty_store, capsys):
    shutil.copy(empty_store, tmp_path / "mlflow.db")  # the project's store stands in for ROOT/mlflow.db
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    printed = [_printed(code, namespace) for code in RUN]
    with capsys.disabled():
        print(f"\nREADME.md: ran {len(RUN)} python blocks; {len(NOT_RUN)} marked no-run")
    result, record = namespace["result"], namespace["record"]
    assert result.run_dir.parent == tmp_path / "runs" and result.run_id in printed[0]      # where it said
    assert 0.0 < result.metrics["test/accuracy"] <= 1.0
    assert len(record.history) < 500 and str(len(record.history)) in printed[1]  # early stopping stopped it


def test_readme_one_step_example_lowers_the_loss():
    (block,) = [code for code in RUN if "sgd.step(model.params, model.grads)" in code]
    before = block.replace("sgd.step(model.params, model.grads)", "pass")
    assert float(_printed(block, {})) < float(_printed(before, {}))

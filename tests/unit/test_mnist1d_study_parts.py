"""The MNIST-1D study's parts (experiments/mnist1d/study.py) are valid multiruns, and its report takes a
sweep's objective from the jobs' config; in-process (the report on a real store:
tests/integration/test_mnist1d_study.py)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import OmegaConf

from experiments.mnist1d import report, study
from framework.run import schema
from framework.run.config import GROUPS
from tests.helpers import make_cfg


def test_every_study_part_is_a_multirun_whose_every_job_is_a_valid_config():
    """Each part's command is `python -m framework.train -m <its overrides>` recorded under the study's
    experiment and the part's name. Its first job (every swept key at its first value) composes and passes
    `schema.check`; every other value of a swept key is valid in that job too: a group's value is a
    registered option (tests/integration/test_train.py composes each of those), a key's value passes `schema.check`."""
    parser = OverridesParser.create()
    uri = "sqlite:////tmp/x.db"
    for part, overrides in study.PARTS.items():
        cmd = study.command(part, uri)
        assert cmd[1:4] == ["-m", "framework.train", "-m"] and cmd[4:4 + len(overrides)] == overrides
        recorded = {f"tracking.experiment={study.EXPERIMENT}", f"tracking.run_name={part}", f"tracking.uri={uri}"}
        assert recorded <= set(cmd), cmd
        parsed = parser.parse_overrides(cmd[4:])
        first = [f"{o.get_key_element()}={next(o.sweep_string_iterator())}" if o.is_sweep_override() else o.input_line
                 for o in parsed]
        cfg = make_cfg(*first)
        schema.check(cfg)
        for o in filter(Override.is_sweep_override, parsed):
            for value in list(o.sweep_iterator())[1:]:
                if o.key_or_group in GROUPS:
                    assert value in GROUPS[o.key_or_group].names(), (part, o.input_line, value)
                else:
                    job = cfg.copy()
                    OmegaConf.update(job, o.key_or_group, value, merge=False)
                    schema.check(job)


@pytest.mark.parametrize("mode, sign", [("max", -1), ("min", 1)])
def test_the_sweep_objective_and_its_direction_come_from_the_jobs_config(mode, sign):
    def run(params):
        return SimpleNamespace(data=SimpleNamespace(params=params), info=SimpleNamespace(run_id="p"))
    jobs = [run({"objective.metric": "val/loss", "objective.mode": mode}) for _ in range(2)]
    assert report.sweep_objective(report.Part("sweep", run({}), None, jobs)) == ("val/loss", sign)
    with pytest.raises(SystemExit, match="record objective.metric/mode"):
        report.sweep_objective(report.Part("sweep", run({}), None, [run({})]))

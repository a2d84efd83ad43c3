"""`hydra/sweeper=optuna`: an Optuna search on current Optuna (ask/tell), resumable from a database.

    python -m framework.train -m hydra/sweeper=optuna hydra.sweeper.n_trials=20 \
        hydra.sweeper.storage=sqlite:///optuna.db hydra.sweeper.study_name=lr_search \
        'optimizer.lr=tag(log, interval(1e-4, 1e-1))' model.hidden='choice([64],[128,128])'

Search space: the command line's sweep overrides and `hydra.sweeper.params` (the command line wins),
in Hydra's override grammar: `interval(a, b)` -> a float (an int if both ends are ints) in [a, b],
`tag(log, interval(a, b))` on a log scale, `range(a, b, step)` -> ints (floats if any is a float)
a, a+step, ..., < b, `choice(x, y)` or `x,y` -> one of the values; plain overrides apply to every trial.

With `storage` (any Optuna storage URL; relative SQLite paths are from the launch directory) and
`study_name` both set, running the same command again loads the study and adds `n_trials` more trials
(`load_if_exists`); job numbers go on from the study's trial numbers. Trials are asked `n_jobs` at a
time and launched together, so a parallel launcher (joblib, Ray, submitit) runs them side by side.
`direction` null follows the app's `objective.mode` (min -> minimize). A job that fails is told to
Optuna as FAIL (the app's `objective.penalty` is returned for a diverged run and counts as a value).

Written instead of hydra-optuna-sweeper 1.3.0 (pins Optuna 2.10.1, whose database storage breaks on
SQLAlchemy 2); the two cannot be installed together: both provide `hydra/sweeper=optuna`.
"""

import functools
import logging
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import TaskFunction
from omegaconf import DictConfig, OmegaConf

from framework.errors import ConfigError
from framework.run.config import absolute_sqlite

log = logging.getLogger(__name__)


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.framework_optuna.OptunaSweeper"
    direction: Optional[str] = None       # minimize | maximize | null (from objective.mode)
    storage: Optional[str] = None         # e.g. sqlite:///optuna.db; null: an in-memory study
    study_name: Optional[str] = None      # with storage: the study to create or continue
    n_trials: int = 20                    # trials this run adds
    n_jobs: int = 2                       # trials asked and launched together
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None})
    params: Optional[dict] = None         # key -> override-grammar search space


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="framework")

if find_spec("hydra_plugins.hydra_optuna_sweeper") is not None:
    log.warning("hydra-optuna-sweeper is installed and may take `hydra/sweeper=optuna` from the framework's "
                "sweeper (Optuna 2.10 cannot keep a study in a database with SQLAlchemy 2): "
                "`pip uninstall hydra-optuna-sweeper`")


@functools.cache
def _optuna():
    """The optuna module; ImportError naming the fix if it is missing or older than 4."""
    try:
        import optuna
    except ImportError:
        optuna = None
    if optuna is None or int(optuna.__version__.split(".")[0]) < 4:
        raise ImportError(f"hydra/sweeper=optuna needs optuna >= 4 (found {optuna and optuna.__version__}): "
                          f"pip install -e '.[sweep]' (and pip uninstall hydra-optuna-sweeper, which pins optuna 2)")
    return optuna


def distribution(override: Override):
    """The Optuna distribution of a sweep override (see the module docstring for the grammar)."""
    d = _optuna().distributions

    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return d.CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        ends = (value.start, value.stop, value.step)
        if any(isinstance(x, float) for x in ends):
            return d.FloatDistribution(value.start, value.stop - value.step, step=value.step)
        return d.IntDistribution(int(value.start), int(value.stop - value.step), step=int(value.step))
    if isinstance(value, IntervalSweep):
        ints = isinstance(value.start, int) and isinstance(value.end, int)
        kind = d.IntDistribution if ints else d.FloatDistribution
        return kind(value.start, value.end, log="log" in value.tags)
    raise ConfigError(f"hydra/sweeper=optuna: cannot search '{override.input_line}'; use interval(a, b), "
                     f"tag(log, interval(a, b)), range(a, b, step) or choice(x, y)")


class OptunaSweeper(Sweeper):
    """Asks Optuna for `n_jobs` trials at a time, launches them as one batch, tells it their returns."""

    def __init__(self, direction, storage, study_name, n_trials, n_jobs, sampler, params):
        if n_trials < 1 or n_jobs < 1:
            raise ConfigError(f"hydra.sweeper.n_trials and n_jobs must be >= 1, got {n_trials} and {n_jobs}")
        if direction not in (None, "minimize", "maximize"):
            raise ConfigError(f"hydra.sweeper.direction must be minimize, maximize or null, got {direction}")
        self.direction, self.storage, self.study_name = direction, storage, study_name
        self.n_trials, self.n_jobs, self.sampler = n_trials, n_jobs, sampler
        self.params = dict(params or {})

    def setup(self, *, hydra_context, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        optuna = _optuna()

        parser = OverridesParser.create()
        given = {o.get_key_element(): o for o in parser.parse_overrides([f"{k}={v}" for k, v in self.params.items()])}
        given.update({o.get_key_element(): o for o in parser.parse_overrides(arguments)})
        space = {k: distribution(o) for k, o in given.items() if o.is_sweep_override()}
        fixed = [o.input_line for o in given.values() if not o.is_sweep_override()]
        if not space:
            raise ConfigError("hydra/sweeper=optuna: nothing to search; give a sweep override such as "
                             "'optimizer.lr=interval(0.001, 0.1)' or hydra.sweeper.params")

        mode = OmegaConf.select(self.config, "objective.mode", default="min")
        direction = self.direction or ("maximize" if mode == "max" else "minimize")
        study = optuna.create_study(
            storage=absolute_sqlite(self.storage, self.config.hydra.runtime.cwd), study_name=self.study_name,
            direction=direction, sampler=self.sampler,  # Hydra has instantiated it
            load_if_exists=True)
        before = len(study.trials)
        log.info("Optuna study %s (%s): %d trials so far, adding %d", study.study_name, direction, before,
                 self.n_trials)
        left = self.n_trials
        while left > 0:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, left))]
            overrides = [[*fixed, *(f"{k}={v}" for k, v in t.params.items())] for t in trials]
            returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            for trial, ret in zip(trials, returns):
                if ret.status.name == "COMPLETED":
                    study.tell(trial, float(ret.return_value))
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
            left -= len(trials)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if done:
            log.info("Best of %d trials: value %.6g with %s", len(done), study.best_value, study.best_params)

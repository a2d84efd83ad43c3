"""`python -m framework.train [overrides]`: one run composed by Hydra (`-m` for a sweep).

In Python (`import framework`): `compose(overrides)` gives the checked config the command line would run,
`train(cfg) -> Result` runs it (a plain function; `main` only wraps it). The module itself is callable, so
`framework.train(cfg)` is `train(cfg)` whether or not `import framework.train` bound the name to the module.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from framework import check_plugins, discovery
from framework.engine.checkpoint import Checkpointer, check_free, restore_checkpoint
from framework.engine.data import Splits, split, standardize, validate
from framework.engine.progress import echo, make_progress, print_metrics
from framework.engine.tasks import output_size
from framework.engine.trainer import Divergence, Interrupted, Trainer
from framework.errors import ConfigError, FrameworkError, UnknownNameError
from framework.inference import TrainedModel, from_trainer
from framework.model import MLP
from framework.registry import KINDS, datasets
from framework.registry import callbacks as callback_registry
from framework.run import schema
from framework.run.config import (
    CONF_DIR,
    FILE_GROUPS,
    GROUPS,
    callback_name,
    check_extras,
    check_override_keys,
    debug_last,
    experiment_presets,
    file_options,
    hydra_config,
    kwargs,
    register_configs,
)
from framework.run.launchers import auto_threads
from framework.run.sweep import write_failed

log = logging.getLogger(__name__)


def load_data(cfg: DictConfig) -> Splits:
    """The configured data set, validated, split and (optionally) standardized."""
    ds = datasets.create(cfg.data.name, **kwargs(cfg.data))
    validate(ds)
    s = cfg.split
    splits = split(ds, s.val_fraction, s.test_fraction, seed=cfg.seed, stratify=s.stratify)
    return standardize(splits) if s.standardize else splits


def make_callbacks(cfg: DictConfig) -> list:
    """The `callbacks` group's entries, each created from the registered callback it names (its `name`,
    else its key) with its other fields as arguments; a null entry is dropped."""
    node = cfg.get("callbacks") or {}
    made = []
    for key, entry in node.items():
        if entry is None:
            continue
        name = callback_name(key, entry)
        try:
            made.append(callback_registry.create(name, **kwargs(entry)))
        except (ValueError, TypeError) as e:
            raise ConfigError(f"callbacks.{key} ({name}): {e}") from None
    return made


def build(cfg: DictConfig, callbacks=()) -> Trainer:
    """Data, model, loss, optimizer and schedule from the config, wired into a Trainer with the `callbacks`
    group's callbacks (`make_callbacks`), then `callbacks`. Every value is checked (`framework.run.schema`),
    every plugin created and every user plugin conformance-checked before the data is loaded, so a bad
    config fails at once (`tracking.*`: by `Tracking`, which uses them)."""
    schema.check(cfg, skip="tracking")
    configured = make_callbacks(cfg)
    loss = create("loss", cfg.loss)
    act, out_act = create("activation", cfg.activation), create("output_activation", cfg.output_activation)
    if loss.expects_logits and out_act.name != "identity":
        raise ConfigError(f"loss '{loss.name}' works on logits, so output_activation must be identity "
                          f"(got '{out_act.name}'); it applies its own sigmoid/softmax")
    optimizer = create("optimizer", cfg.optimizer)
    scheduler, initializer = create("scheduler", cfg.scheduler), create("initializer", cfg.initializer)
    backend = create("backend", resolved_threads(cfg.backend))
    if cfg.plugins.get("check", True):
        check_user_plugins({"activation": [act.name, out_act.name], "loss": [loss.name],
                            "optimizer": [optimizer.name], "initializer": [initializer.name],
                            "scheduler": [scheduler.name],
                            "callback": [type(cb).name for cb in configured]})
    if backend.name == "numpy" and cfg.backend.dtype == "float16":
        log.warning("backend.dtype=float16 on NumPy: it has no float16 matrix kernels, so an epoch takes "
                    "~15x as long as with float32 (digits: 0.2 s vs 0.012 s)")
    t = cfg.trainer
    divergence = Divergence(t.divergence.factor, t.divergence.max_loss)
    splits = load_data(cfg)
    n = len(splits.train)
    if t.batch_size is not None and t.batch_size > n:
        log.warning("trainer.batch_size=%d is larger than the %d training rows: every update uses all of them "
                    "(full-batch gradient descent, as with trainer.batch_size=null)", t.batch_size, n)
    sizes = [splits.train.n_features, *cfg.model.hidden, output_size(splits.train, loss.targets, loss.name)]
    check_fits(sizes, backend)
    model = MLP(sizes, activation=act,
                output_activation=out_act, backend=backend, dtype=backend.dtype, initializer=initializer,
                seed=cfg.seed)
    return Trainer(
        model, loss, optimizer, splits, epochs=t.epochs, batch_size=t.batch_size, scheduler=scheduler,
        metrics=None if t.metrics is None else list(t.metrics), grad_clip=t.grad_clip,
        shuffle=t.shuffle, seed=cfg.seed, flush_every=t.flush_every, callbacks=[*configured, *callbacks],
        divergence=divergence, limit_batches=dict(t.limit_batches), overfit_batches=t.overfit_batches)


COPIES = 4  # arrays of the parameters' size that training holds: parameters, gradients, two optimizer slots (Adam)


def check_fits(sizes: list[int], backend) -> None:
    """ConfigError before allocating when the model's parameters, gradients and optimizer state
    (`COPIES` x params x itemsize bytes) exceed the memory available now (host-memory backends)."""
    n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    need, free = COPIES * n * backend.xp.finfo(backend.dtype).bits // 8, available_memory()
    if backend.capabilities.host_memory and free is not None and need > free:
        dtype = getattr(backend.dtype, "__name__", backend.dtype)
        raise ConfigError(f"model.hidden={sizes[1:-1]}: {n:,} parameters need about {need / 2**30:.1f} GiB "
                          f"({dtype}: parameters, gradients, optimizer state) but {free / 2**30:.1f} GiB of memory "
                          "is available; use a smaller model.hidden")


def available_memory() -> int | None:
    """Bytes of memory available now (Linux: MemAvailable), else the physical memory, else None."""
    import os

    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def create(group: str, node: DictConfig):
    """The plugin `node` configures; a value its constructor rejects (ValueError, TypeError) becomes a
    ConfigError naming the group."""
    try:
        return GROUPS[group].create(node.name, **kwargs(node))
    except FrameworkError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{group}={node.name}: {e}") from None


def resolved_threads(node: DictConfig) -> DictConfig:
    """The backend's node with `threads: auto` replaced by the cores left to each of the launcher's
    parallel jobs (`framework.run.launchers.auto_threads`): backends take a number or null."""
    if node.get("threads") != "auto":
        return node
    node = node.copy()
    node.threads = auto_threads()
    return node


_PASSED: set = set()  # (kind, name, class) whose checks passed in this process: a sweep's jobs check once


def check_user_plugins(used: dict[str, list[str]]) -> None:
    """Run the conformance checks (`python -m framework.check_plugins NAME`) on every used plugin that is
    not built in (once per process and plugin class); ConfigError with the checker's lines if one fails.
    The comparison with a declared reference is left to the checker's command: it would import torch or
    scikit-learn into every job."""
    failed = []
    for kind, names in used.items():
        for name in dict.fromkeys(names):
            key = (kind, name, KINDS[kind].get(name))
            if discovery.builtin(key[2]) or key in _PASSED:
                continue
            messages = check_plugins.check(kind, name, skip=("reference",))
            failed += [f"{kind} '{name}' {message}" for message in messages]
            if not messages:
                _PASSED.add(key)
    if failed:
        names = " ".join(dict.fromkeys(f.split("'")[1] for f in failed))
        raise ConfigError(f"{len(failed)} conformance check(s) failed (python -m framework.check_plugins {names}), "
                          f"so the run did not start; plugins.check=false skips them: " + "; ".join(failed))


def objective(cfg: DictConfig, final: dict) -> float:
    """The configured metric of `final`, for sweepers."""
    key = cfg.objective.metric
    if key not in final:
        raise ConfigError(f"objective.metric '{key}' is not among the final metrics: {sorted(final)}")
    return float(final[key])


@dataclass(frozen=True)
class Result:
    """What `train(cfg)` returns.

    run_id:  the run's id in the MLflow store; None with tracking off (`tracking=none`), offline, or when the
             store did not acknowledge the run within `tracking.timeout_s`
    run_dir: the run's folder (Path): in a Hydra job its output folder, else the tracking run folder
             (`tracking.dir`/<time>-<id>, default ./runs/...), which holds weights.npz and config.yaml;
             None with tracking off outside Hydra (nothing is saved)
    metrics: the final metrics (last epoch's train/ and val/, test/<metric>) and "objective"
    model:   the trained model as `framework.load(run_dir)` gives it (`framework.inference.from_trainer`: built
             from memory, float64 NumPy, raw features in), also when nothing was saved; None for a run
             skipped by `tracking.skip_finished` (load it with `framework.load(run_id)`)
    """

    run_id: str | None
    run_dir: Path | None
    metrics: dict[str, float]
    model: TrainedModel | None


def train(cfg: DictConfig, where: list[str] | None = None) -> Result:
    """One run: build, (resume,) fit, evaluate; returns a `Result`; `where` (a list) gets the lines saying
    where the run went (`Tracking.where`: run id, store, UI address or sync command).
    SIGINT/SIGTERM stop it at the next batch boundary: pending numbers are flushed, a checkpoint is
    written and the run is marked KILLED before `Interrupted` propagates."""
    from framework.tracking import Tracking
    from framework.tracking.places import mask_hydra_record

    if hydra_config():
        mask_hydra_record(hydra_config())  # Hydra wrote the command line, secrets included, into the run folder
    bad = checked(cfg)                   # first, so what is recorded (params, config.hash) is the checked config
    tracking = Tracking(cfg)             # checks cfg.tracking, the store and the run folder before data loads
    done = None if bad else tracking.finished_run()
    if done is not None:
        log.info("skipped: run %s already finished this config (tracking.skip_finished=true)", done["run_id"])
        final = {k: v for k, v in done.items() if k != "run_id"}
        if where is not None:
            where.append(f"run    {done['run_id'][:8]}  ({done['run_id']}, finished before)")
        return Result(done["run_id"], None, {**final, "objective": objective(cfg, final)}, None)
    t = cfg.trainer
    resume, resume_run = tracking.resume_source(None if bad else t.resume)  # a folder, or a tracked run's id
    with tracking.run(resume_run) as tracker:
        if bad is not None:
            raise bad                    # a bad value: a FAILED run that names it
        trainer = build(cfg, [cb for cb in (make_progress(t.progress), tracker) if cb is not None])
        place(trainer.callbacks, run_dir() or (tracker and tracker.log.folder), tracker, resume)
        if resume:
            restore_checkpoint(trainer, resume)
        try:
            with stop_on_signals(trainer):
                final = trainer.fit()
        except Interrupted as e:
            saved = trainer.last_checkpoint
            log.warning("interrupted by %s at batch %d; %s", e, trainer.step,
                        f"checkpoint in {saved}: continue with trainer.resume={saved}" if saved else "no checkpoint")
            raise
    final["objective"] = objective(cfg, final)
    if where is not None:
        where += tracking.where()
    folder = run_dir() or (tracking.folder if tracking.enabled else None)
    return Result(tracking.run_id, folder and Path(folder), final, from_trainer(trainer))


def compose(overrides=()) -> DictConfig:
    """The config `python -m framework.train <overrides>` runs (a DictConfig without `hydra.*`), checked as
    there: `plugins.paths=[...]` folders imported and unknown names or keys refused (`_check_command_line`),
    the plugins' options registered, Hydra's composition (`framework.run.config.compose`), every value
    checked and normalized (`framework.run.schema.check`: `optimizer.lr=1` becomes 1.0). A bad override is
    a ConfigError: the line the command prints after `error: ` (Hydra's own refusals, such as a sweep
    `lr=0.1,0.2`, in one line). Pass the result to `train(cfg)`."""
    from framework.run.config import compose as compose_config

    overrides = list(overrides)
    _check_command_line(overrides)
    register_configs()
    cfg = compose_config(overrides)
    schema.check(cfg)
    return cfg


def place(callbacks: list, folder, tracker, resume) -> None:
    """Tell `callbacks` the run folder (`Callback.set_folder`); a new run refuses a checkpoint folder that
    holds an earlier run's; files written into the tracked run folder become the run's artifacts."""
    for cb in callbacks:
        cb.set_folder(folder and Path(folder))
        if isinstance(cb, Checkpointer) and cb.directory and not resume:
            check_free(cb.directory)
        if tracker is not None:
            root = tracker.log.folder.resolve()
            tracker.artifacts += [str(f.resolve().relative_to(root)) for f in cb.files()
                                  if f.resolve().is_relative_to(root)]


def checked(cfg: DictConfig) -> FrameworkError | None:
    """`schema.check` of everything but `tracking` (which `Tracking` checks): values normalized in place
    (`optimizer.lr=1` becomes 1.0, so it is the same run as `optimizer.lr=1.0`); the error, if any, is
    returned to be raised inside the run."""
    try:
        schema.check(cfg, skip="tracking")
    except FrameworkError as e:
        return e
    return None


def run_dir() -> str | None:
    """Hydra's output folder for this job (None outside a Hydra run)."""
    hc = hydra_config()
    return hc.runtime.output_dir if hc else None


@contextmanager
def stop_on_signals(trainer):
    """Turn SIGINT/SIGTERM into `trainer.request_stop` (a second SIGINT interrupts at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if trainer.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt(name)
        trainer.request_stop(name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _check_command_line(argv: list[str]) -> None:
    """Before Hydra composes: import `plugins.paths=[...]` folders named on the command line (so
    their plugins are options), and reject unknown options of registry groups and experiments with
    the known names and the closest match (sweep lists are checked value by value), unknown fields of
    the chosen plugins (closest key), and launchers/sweepers whose extra is not installed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob
    from hydra.errors import OverrideParseException

    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if "=" in a and not a.startswith("-")])
    except OverrideParseException as e:  # Hydra's grammar: a value with = , ( ) [ ] { } needs quotes
        raise ConfigError(f"an override does not parse ({str(e).splitlines()[0]}); quote values holding "
                          "= , ( ) [ ] { } or spaces: key='value'") from None
    for o in overrides:
        if o.key_or_group == "plugins.paths":
            value = o.value()
            discovery.load_paths(value if isinstance(value, list) else [value])
    for o in overrides:
        group = o.key_or_group
        if (group in GROUPS or group in FILE_GROUPS or group == "experiment") and not isinstance(o.value(), Glob):
            known, kind = _options(group)
            for value in o.sweep_string_iterator() if o.is_sweep_override() else [o.value()]:
                if str(value) not in known:
                    raise UnknownNameError(kind, str(value), known)
    check_override_keys(overrides)
    check_extras(overrides)


def _options(group: str) -> tuple[list[str], str]:
    """(the options, what one is called) of a registry group, a `FILE_GROUPS` group or `experiment`."""
    if group in GROUPS:
        return GROUPS[group].names(), GROUPS[group].kind
    if group in FILE_GROUPS:
        return file_options(group), FILE_GROUPS[group]
    return list(experiment_presets()), "experiment"


class RunFolderCheck(Callback):
    """Before Hydra writes into the run (or sweep) folder: one line and exit 1 if it is not writable or
    its disk is full (else Hydra's own write fails with a traceback). Enabled in conf/config.yaml."""

    def on_run_start(self, config, **kwargs) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")

    @staticmethod
    def _check(folder, key: str) -> None:
        from framework.tracking.places import check_writable

        try:
            check_writable(Path(folder).absolute(), "the run folder", f"give a writable folder with {key}=<folder>")
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> float:
    where: list[str] = []
    try:
        final = train(cfg, where).metrics
    except Exception as e:  # noqa: BLE001 - a sweep outlives its failing jobs
        return failed_job(cfg, e)
    print_metrics(final)
    for line in where:
        echo(line)
    return final["objective"]


def failed_job(cfg: DictConfig, error: Exception) -> float:
    """A single run re-raises (a FrameworkError exits 1 with its message, no traceback); a sweep job
    writes FAILED.json into its folder (the sweep reports them at its end) and returns the penalty."""
    from hydra.types import RunMode

    from framework.tracking.masking import mask_secrets

    hc = hydra_config()
    if not (hc and hc.mode == RunMode.MULTIRUN):
        if isinstance(error, FrameworkError):
            print(f"error: {mask_secrets(str(error))}", file=sys.stderr)
            sys.exit(1)
        raise error
    text = str(error) if isinstance(error, FrameworkError) else traceback.format_exc()
    log.error("job failed: %s", mask_secrets(text))  # a joblib worker's log records are not masked
    write_failed(hc.runtime.output_dir, hc.job.num, list(hc.overrides.task), f"{type(error).__name__}: {error}")
    return penalty(cfg)


def penalty(cfg: DictConfig) -> float:
    """The objective a failed job reports to the sweeper."""
    if cfg.objective.penalty is not None:
        return float(cfg.objective.penalty)
    return 1e12 if cfg.objective.mode == "min" else -1e12


def main() -> None:
    from framework.tracking.masking import mask_log_records

    mask_log_records()
    sys.argv[1:] = debug_last(sys.argv[1:])
    try:
        _check_command_line(sys.argv[1:])
        register_configs()
    except FrameworkError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    from framework.tracking.process import start_early

    start_early(sys.argv[1:])  # its imports overlap Hydra's composition and the data loading
    try:
        _hydra_main()
    except KeyboardInterrupt as e:
        print(f"interrupted ({e}): the run is marked KILLED; see the log above for its checkpoint", file=sys.stderr)
        sys.exit(143 if "SIGTERM" in str(e) else 130)


class _CallableModule(types.ModuleType):
    """This module's type: `framework.train(cfg)` calls `train(cfg)`. (`import framework.train` binds the
    package attribute `framework.train` to the module, so a function of that name could not stay bound.)"""

    def __call__(self, cfg: DictConfig) -> Result:
        return self.train(cfg)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    main()

"""The trainer callback that writes the run log (`framework.tracking.runlog`): the training side of tracking.

At the start the data sets (`DataSets`: digests, source, an input example), the model summary (params
`model.parameters*`) and a first row of system metrics (`framework.tracking.system`; then every
`tracking.system_every` s, checked at each flush, and at the end). Per flush (`trainer.flush_every`
batches, and each epoch end) one block of per-batch rows, per epoch one row of epoch metrics (each: one
write to runlog/points.f64 and one journal line); at the end the final metrics, failure tags, the
artifact files (config.yaml, overrides.yaml, weights.npz; checkpoint/ when there is one) and the data of
the plots.
The journal is flushed to the OS after every record group, so killing the process loses at most the
rows since the last flush. Nothing here imports mlflow or matplotlib.
"""
from __future__ import annotations

import numpy as np
from omegaconf import OmegaConf

from framework.engine.callbacks import BatchRecord, Callback
from framework.engine.weights import export
from framework.tracking.datasets import describe
from framework.tracking.messages import End, Params, Tags
from framework.tracking.runlog import RunLogWriter, now_ms
from framework.tracking.system import SystemSampler

MAX_PARAM_CHARS = 6000  # MLflow's limit; longer values go to the artifact long_params.yaml
LONG_PARAMS = "long_params.yaml"


def split_long_params(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(params with over-long values replaced by a pointer, {key: full value} of those)."""
    long = {k: v for k, v in params.items() if len(v) > MAX_PARAM_CHARS}
    short = {k: f"({len(v)} characters, see {LONG_PARAMS})" if k in long else v for k, v in params.items()}
    return short, long


class RunLogger(Callback):
    """Writes one run's log; `log.close(End(...))` happens in `on_train_end` (or `Tracking` for a run
    that failed before training)."""

    def __init__(self, log: RunLogWriter, cfg, overrides: list[str], every: int, plugin_plots: bool,
                 register: str | None = None, system_every: float | None = None):
        self.log, self.cfg, self.overrides, self.every = log, cfg, overrides, every
        self.plugin_plots, self.register = plugin_plots, register  # register: the MLflow model's registry name
        self.system = SystemSampler(system_every) if system_every else None  # from now: the start sample's span
        self.artifacts: list[str] = []

    @property
    def points(self) -> int:
        return self.log.points

    def on_train_start(self, trainer) -> None:
        model = trainer.model
        self.log.append(Params({"model.sizes": str(model.sizes)}))
        dtype = getattr(model.dtype, "__name__", str(model.dtype))
        self.log.append(Tags({"backend": model.backend.name, "dtype": dtype, "device": str(model.backend.device)}))
        self.log.append(describe(self.cfg.data, trainer.splits))
        self.log.append(Params(model_summary(model.sizes)))
        if self.system is not None and model.backend.name == "cupy":
            self.system.gpu = model.backend.device_id
        self._sample_system(force=True)
        self.log.flush()

    def on_batches(self, trainer, record: BatchRecord) -> None:
        steps, values = record.steps, record.values
        if self.every > 1:
            keep = steps % self.every == 0
            steps, values = steps[keep], values[keep]
        if len(steps):
            self.log.add_points(record.keys, steps, values, now_ms())
        self._sample_system()
        self.log.flush()

    def _sample_system(self, force: bool = False) -> None:
        """A row of system metrics (`framework.tracking.system`) when `tracking.system_every` s have passed."""
        if self.system is not None and (force or self.system.due()):
            step, sample = self.system.count, self.system.sample()
            self.log.add_points(list(sample), np.array([step]), np.array([list(sample.values())]), now_ms())

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        self.log.add_points(list(logs), np.array([epoch]), np.array([list(logs.values())]), now_ms())
        self._sample_system()
        self.log.flush()

    def on_train_end(self, trainer, status: str, logs: dict[str, float]) -> None:
        final = {k: v for k, v in logs.items() if k not in trainer.history}  # test/..., not the last epoch again
        if final:
            self.log.add_points(list(final), np.array([max(trainer.epoch - 1, 0)]),
                                np.array([list(final.values())]), now_ms())
        self._sample_system(force=True)
        if trainer.failure:
            self.log.append(Tags({f"failure.{k}": v for k, v in trainer.failure.items()}))
        self.log.close(End(status, now_ms(), self._artifacts(trainer), self._plots(trainer, status), self.register))

    def _artifacts(self, trainer) -> list[str]:
        folder = self.log.folder
        (folder / "config.yaml").write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
        (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(self.overrides)))
        np.savez(folder / "weights.npz", **export(trainer))  # parameters + input pipeline
        names = [*self.artifacts, "config.yaml", "overrides.yaml", "weights.npz"]
        if trainer.last_checkpoint:
            names.append(str(trainer.last_checkpoint))  # absolute, or relative to the run folder
        return names

    def _plots(self, trainer, status: str) -> dict:
        """What the sync process draws (`framework.tracking.plots`)."""
        spec = {"history": trainer.history, "task": trainer.task, "split": None, "plugins": {}}
        split = next((s for s in ("test", "val") if getattr(trainer.splits, s) is not None), None)
        if status == "FINISHED" and split:
            y_true, scores = trainer.predict(split)
            np.savez(self.log.dir / "predictions.npz", y_true=y_true, scores=scores)
            spec["split"] = split
        if self.plugin_plots:
            spec["plugins"] = plugin_curves(self.cfg)
        return spec


def model_summary(sizes: list[int]) -> dict[str, str]:
    """Params: parameters per layer (`model.parameters.layers.<l>`: W (out, in) plus b (out,)) and in all."""
    pairs = enumerate(zip(sizes, sizes[1:]))
    per = {f"model.parameters.layers.{l}": n_in * n_out + n_out for l, (n_in, n_out) in pairs}
    return {**{k: str(v) for k, v in per.items()}, "model.parameters": str(sum(per.values()))}


def plugin_curves(cfg) -> dict[str, dict]:
    """{"activation_<name>.svg": curves, "loss_<name>.svg": curves} of the run's plugins (skipped,
    with a warning, when a plugin cannot be drawn)."""
    import logging

    from framework.extend.pictures import plugin_curves as curves
    from framework.run.config import kwargs

    out = {}
    for kind, node in (("activation", cfg.activation), ("activation", cfg.output_activation), ("loss", cfg.loss)):
        try:
            out[f"{kind}_{node.name}.svg"] = curves(kind, node.name, **kwargs(node))
        except Exception as e:  # noqa: BLE001 - the run's record matters more than one picture
            logging.getLogger(__name__).warning("no plot of %s '%s': %s: %s", kind, node.name, type(e).__name__, e)
    return out

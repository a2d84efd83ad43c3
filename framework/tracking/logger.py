"""The trainer callback that writes the run log (`framework.tracking.runlog`): the training side of tracking.

Per flush (`trainer.flush_every` batches, and each epoch end) one block of per-batch rows, per epoch
one row of epoch metrics (each: one write to runlog/points.f64 and one journal line) and, with
`tracking.histograms=epoch`, one `Histograms` line (weights and last-batch gradients per parameter);
at the end the final metrics, failure tags, the artifact files (config.yaml, overrides.yaml,
weights.npz, histograms.json; checkpoint/ when there is one) and the data of the plots.
The journal is flushed to the OS after every record group, so killing the process loses at most the
rows since the last flush. Nothing here imports mlflow or matplotlib.
"""
from __future__ import annotations

import json
import math

import numpy as np
from omegaconf import OmegaConf

from framework.engine.callbacks import BatchRecord, Callback
from framework.engine.weights import export
from framework.tracking.messages import End, Histograms, Params, Tags
from framework.tracking.runlog import RunLogWriter, now_ms

MAX_PARAM_CHARS = 6000  # MLflow's limit; longer values go to the artifact long_params.yaml
LONG_PARAMS = "long_params.yaml"
HISTOGRAMS = "histograms.json"  # artifact: {"epochs": [Histograms as a dict, one per epoch]}


def split_long_params(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(params with over-long values replaced by a pointer, {key: full value} of those)."""
    long = {k: v for k, v in params.items() if len(v) > MAX_PARAM_CHARS}
    short = {k: f"({len(v)} characters, see {LONG_PARAMS})" if k in long else v for k, v in params.items()}
    return short, long


class RunLogger(Callback):
    """Writes one run's log; `log.close(End(...))` happens in `on_train_end` (or `Tracking` for a run
    that failed before training)."""

    def __init__(self, log: RunLogWriter, cfg, overrides: list[str], every: int, plugin_plots: bool):
        self.log, self.cfg, self.overrides, self.every = log, cfg, overrides, every
        self.plugin_plots = plugin_plots
        self.artifacts: list[str] = []
        self.histograms = cfg.get("tracking", {}).get("histograms", "epoch") == "epoch"
        self.epoch_histograms: list[Histograms] = []
        self._offsets: dict = {}  # epoch_histograms' cache

    @property
    def points(self) -> int:
        return self.log.points

    def on_train_start(self, trainer) -> None:
        model = trainer.model
        self.log.append(Params({"model.sizes": str(model.sizes)}))
        dtype = getattr(model.dtype, "__name__", str(model.dtype))
        self.log.append(Tags({"backend": model.backend.name, "dtype": dtype, "device": str(model.backend.device)}))
        self.log.flush()

    def on_batches(self, trainer, record: BatchRecord) -> None:
        steps, values = record.steps, record.values
        if self.every > 1:
            keep = steps % self.every == 0
            steps, values = steps[keep], values[keep]
        if len(steps):
            self.log.add_points(record.keys, steps, values, now_ms())
            self.log.flush()

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        self.log.add_points(list(logs), np.array([epoch]), np.array([list(logs.values())]), now_ms())
        if self.histograms:
            record = epoch_histograms(trainer.model, epoch, trainer.step - 1, self._offsets)
            self.epoch_histograms.append(record)
            self.log.append(record)
        self.log.flush()

    def on_train_end(self, trainer, status: str, logs: dict[str, float]) -> None:
        final = {k: v for k, v in logs.items() if k not in trainer.history}  # test/..., not the last epoch again
        if final:
            self.log.add_points(list(final), np.array([max(trainer.epoch - 1, 0)]),
                                np.array([list(final.values())]), now_ms())
        if trainer.failure:
            self.log.append(Tags({f"failure.{k}": v for k, v in trainer.failure.items()}))
        self.log.close(End(status, now_ms(), self._artifacts(trainer), self._plots(trainer, status)))

    def _artifacts(self, trainer) -> list[str]:
        folder = self.log.folder
        (folder / "config.yaml").write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
        (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(self.overrides)))
        np.savez(folder / "weights.npz", **export(trainer))  # parameters + input pipeline
        names = [*self.artifacts, "config.yaml", "overrides.yaml", "weights.npz"]
        if self.epoch_histograms:
            (folder / HISTOGRAMS).write_text(json.dumps({"epochs": [vars(h) for h in self.epoch_histograms]}))
            names.append(HISTOGRAMS)
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


def signed_log_counts(x, lo: int, hi: int, offsets=None, params: int = 1) -> np.ndarray:
    """Counts of host array `x`'s values in the signed power-of-two bins of `Histograms`, shape (params,
    2m + 1), m = hi - lo. One `frexp` pass (|x| in [2^(e-1), 2^e)), no logarithm: k = clip(e, lo, hi) - lo
    (0 for x = 0), counted apart by sign; with `offsets` (x's size: 2 (m + 1) times the parameter index
    of each value) `params` parameters at once (their views of one flat buffer)."""
    m = hi - lo
    x = x.ravel()
    if not np.isfinite(x).all():  # NaN counted nowhere, +-inf in the outermost bins
        finite = ~np.isnan(x)
        x = np.nan_to_num(x[finite], posinf=2.0 ** hi, neginf=-(2.0 ** hi))
        offsets = offsets[finite] if offsets is not None else None
    mantissa, k = np.frexp(x)
    np.clip(k, lo, hi, out=k)
    k -= lo
    k *= mantissa != 0
    k += (mantissa < 0) * np.int32(m + 1)
    if offsets is not None:
        k += offsets
    counts = np.bincount(k, minlength=params * 2 * (m + 1)).reshape(params, 2, m + 1)
    positive, negative = counts[:, 0], counts[:, 1]
    middle = (positive[:, 0] + negative[:, 0])[:, None]
    return np.concatenate([negative[:, :0:-1], middle, positive[:, 1:]], axis=1)


def epoch_histograms(model, epoch: int, step: int, cache: dict | None = None) -> Histograms:
    """The `Histograms` of `model`'s parameters and of its current gradients; over the flat buffer in one
    pass where the arrays are views of one (`cache`: keeps the bin offset of each value between calls)."""
    be, spec, names = model.backend, Histograms(epoch, step, {}, {}), list(model.params)
    width = 2 * (spec.hi - spec.lo) + 1
    for out, arrays in ((spec.weights, model.params), (spec.grads, model.grads)):
        flat = getattr(arrays, "flat", None)
        if flat is not None and cache is not None:
            if "offsets" not in cache:
                sizes = [math.prod(a.shape) for a in arrays.values()]
                cache["offsets"] = np.repeat(np.arange(len(names), dtype=np.int32) * (width + 1), sizes)
            counts = signed_log_counts(np.asarray(be.to_numpy(flat)), spec.lo, spec.hi, cache["offsets"], len(names))
        else:
            counts = [signed_log_counts(np.asarray(be.to_numpy(arrays[n])), spec.lo, spec.hi)[0] for n in names]
        out.update({n: c.tolist() for n, c in zip(names, counts)})
    return spec


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

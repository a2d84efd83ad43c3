"""The trainer callback that writes the run log (`framework.tracking.runlog`): the training side of tracking.

At the start the data sets (`DataSets`: digests, source, an input example), the model summary (params
`model.parameters*`) and a first row of system metrics (`framework.tracking.system`; then every
`tracking.system_every` s, checked at each flush, and at the end). Per flush (`trainer.flush_every`
batches, and each epoch end) one block of per-batch rows, per epoch one row of epoch metrics (each: one
write to runlog/points.f64 and one journal line) and, with `tracking.histograms=epoch`, one `Histograms`
line (weights and last-batch gradients per parameter); at the end the final metrics, failure tags, the
artifact files (config.yaml, overrides.yaml, weights.npz, histograms.json; checkpoint/ when there is one)
and the data of the plots.
The journal is flushed to the OS after every record group, so killing the process loses at most the
rows since the last flush. Nothing here imports mlflow or matplotlib.
"""
from __future__ import annotations

import functools
import json
import math
import shutil
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from framework.engine.callbacks import BatchRecord, Callback
from framework.engine.weights import export
from framework.tracking.datasets import describe
from framework.tracking.masking import mask_secrets
from framework.tracking.messages import End, Histograms, Params, Tags
from framework.tracking.notes import NOTE, job_note
from framework.tracking.runlog import RunLogWriter, now_ms
from framework.tracking.system import SystemSampler

MAX_PARAM_CHARS = 6000  # MLflow's limit; longer values go to the artifact long_params.yaml
LONG_PARAMS = "long_params.yaml"
HISTOGRAMS = "histograms.json"  # artifact: {"lo", "hi", "edges", "epochs": [{"epoch", "step", "weights": {param:
#                                  counts per bin}, "grads": {...}}]} (bins: `Histograms`)


def split_long_params(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(params with over-long values replaced by a pointer, {key: full value} of those)."""
    long = {k: v for k, v in params.items() if len(v) > MAX_PARAM_CHARS}
    short = {k: f"({len(v)} characters, see {LONG_PARAMS})" if k in long else v for k, v in params.items()}
    return short, long


class RunLogger(Callback):
    """Writes one run's log; `log.close(End(...))` happens in `on_train_end` (or `Tracking` for a run
    that failed before training)."""

    def __init__(self, log: RunLogWriter, cfg, overrides: list[str], every: int, plugin_plots: bool,
                 differs: list[str] = (), register: str | None = None, system_every: float | None = None):
        self.log, self.cfg, self.overrides, self.every = log, cfg, overrides, every
        self.differs = list(differs)  # the overrides in the run's description (`notes.differences`)
        self.plugin_plots, self.register = plugin_plots, register  # register: the MLflow model's registry name
        self.system = SystemSampler(system_every) if system_every else None  # from now: the start sample's span
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
        if self.histograms:
            record = epoch_histograms(trainer.model, epoch, trainer.step - 1, self._offsets)
            self.epoch_histograms.append(record)
            self.log.append(record)
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
        self.log.append(Tags({NOTE: job_note(self.differs, logs, status)}))
        self.log.close(End(status, now_ms(), self._artifacts(trainer), self._plots(trainer, status), self.register))

    def _artifacts(self, trainer) -> list[str]:
        folder = self.log.folder
        (folder / "config.yaml").write_text(mask_secrets(OmegaConf.to_yaml(self.cfg, resolve=True)))
        (folder / "overrides.yaml").write_text(mask_secrets(OmegaConf.to_yaml(OmegaConf.create(self.overrides))))
        np.savez(folder / "weights.npz", **export(trainer))  # parameters + input pipeline
        names = [*self.artifacts, "config.yaml", "overrides.yaml", "weights.npz"]
        if self.epoch_histograms:
            epochs = [{"epoch": h.epoch, "step": h.step, "weights": {k: v.tolist() for k, v in h.weights().items()},
                       "grads": {k: v.tolist() for k, v in h.grads().items()}} for h in self.epoch_histograms]
            h = self.epoch_histograms[0]
            (folder / HISTOGRAMS).write_text(json.dumps({"lo": h.lo, "hi": h.hi, "edges": h.edges(), "epochs": epochs}))
            names.append(HISTOGRAMS)
        if trainer.last_checkpoint:
            names.append(self._checkpoint(Path(trainer.last_checkpoint)))
        return names

    def _checkpoint(self, path: Path) -> str:
        """The checkpoint folder relative to the run folder (as every path the run log names); one elsewhere
        (callbacks.model_checkpoint.directory) is copied into the run folder's checkpoint/, so the run holds it."""
        folder = self.log.folder.resolve()
        path = (folder / path).resolve()
        if path.is_relative_to(folder):
            return str(path.relative_to(folder))
        shutil.copytree(path, folder / "checkpoint", dirs_exist_ok=True)
        return "checkpoint"

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


EXPONENT_BITS, BIAS = 8, 127  # float32's


@functools.lru_cache(maxsize=4)
def _folding(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): float32's 512 raw buckets (sign bit and biased exponent) sorted by their bin of
    `Histograms`, and where each of its 2m + 1 bins starts in that order."""
    raw = np.arange(2 ** (EXPONENT_BITS + 1))
    exponent, negative = raw & (2 ** EXPONENT_BITS - 1), raw >> EXPONENT_BITS
    k = np.clip(exponent - BIAS + 1 - lo, 0, hi - lo)  # |x| in [2^(lo+k-1), 2^(lo+k)); 0 and subnormals: k = 0
    k[exponent == 0] = 0
    target = np.where(negative == 1, hi - lo - k, hi - lo + k)
    order = np.argsort(target, kind="stable")
    return order, np.searchsorted(target[order], np.arange(2 * (hi - lo) + 1))


def raw_offsets(sizes: list[int]) -> np.ndarray:
    """The bucket offset of each value of arrays of `sizes` laid end to end (`signed_log_counts`)."""
    return np.repeat(np.arange(len(sizes), dtype=np.int64) << (EXPONENT_BITS + 1), sizes)


def signed_log_counts(x, lo: int, hi: int, offsets=None, params: int = 1) -> np.ndarray:
    """Counts of host array `x`'s values in the signed power-of-two bins of `Histograms`, shape (params,
    2m + 1), m = hi - lo. A value's bucket is its float32's sign bit and exponent (one shift, no logarithm;
    other dtypes are rounded to float32 first, which moves a value only within 2^-24 of a bin edge), the
    buckets folded into the bins afterwards; with `offsets` (`raw_offsets`: x holds `params` arrays end
    to end, e.g. views of one flat buffer) each array's counts at once."""
    x = np.asarray(x, np.float32).ravel()
    if not np.isfinite(x).all():  # NaN counted nowhere, +-inf in the outermost bins
        finite = ~np.isnan(x)
        x = np.nan_to_num(x[finite], posinf=2.0 ** hi, neginf=-(2.0 ** hi))
        offsets = offsets[finite] if offsets is not None else None
    buckets = (x.view(np.uint32) >> np.uint32(31 - EXPONENT_BITS)).astype(np.int64)
    if offsets is not None:
        buckets += offsets
    raw = np.bincount(buckets, minlength=params << (EXPONENT_BITS + 1)).reshape(params, -1)
    order, starts = _folding(lo, hi)
    return np.add.reduceat(raw[:, order], starts, axis=1)


def epoch_histograms(model, epoch: int, step: int, cache: dict | None = None) -> Histograms:
    """The `Histograms` of `model`'s parameters and of its current gradients. Where both are views of
    one flat buffer (and `cache` keeps the work array and each value's bucket offset between calls), one
    pass over the two buffers side by side; else one per array."""
    be, names, lo, hi = model.backend, list(model.params), Histograms.lo, Histograms.hi
    host = [np.asarray(be.to_numpy(getattr(a, "flat", None))) for a in (model.params, model.grads)
            if getattr(a, "flat", None) is not None]
    if len(host) == 2 and cache is not None:
        if "offsets" not in cache:
            cache["buffer"] = np.empty(2 * host[0].size, np.float32)
            cache["offsets"] = raw_offsets([math.prod(a.shape) for a in model.params.values()] * 2)
        counts = signed_log_counts(np.concatenate(host, out=cache["buffer"]), lo, hi, cache["offsets"], 2 * len(names))
    else:
        counts = np.concatenate([signed_log_counts(np.asarray(be.to_numpy(arrays[n])), lo, hi)
                                 for arrays in (model.params, model.grads) for n in names])
    return Histograms.of(epoch, step, names, counts, lo, hi)


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

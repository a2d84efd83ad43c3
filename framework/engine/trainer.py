"""The training loop: data -> model.forward -> loss -> model.backward -> optimizer.step -> callbacks.

One update per mini-batch; an epoch is one pass over all batches (`batch_size=None`: full batch).
Per-batch numbers (loss, lr, gradient norms) are kept per batch - as Python floats on host backends,
in a device buffer elsewhere (one host transfer per flush) - and reach callbacks a block of rows at a
time (`BatchRecord`); epoch numbers are computed at epoch end.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from framework.engine.callbacks import GLOBAL_NORM, LOSS, LR, BatchRecord, Callback, grad_norm_key, record_keys
from framework.engine.data import Splits
from framework.engine.gradients import clip_by_global_norm
from framework.engine.metrics import evaluate
from framework.engine.step import train_step
from framework.engine.tasks import output_size, targets_for
from framework.errors import ConfigError, DivergenceError, ShapeError
from framework.interfaces import Loss, Optimizer, Scheduler
from framework.model import MLP

GATHER_VALUES = 1 << 20  # a shuffled epoch's rows of X are gathered this many values (whole batches) at a time


@dataclass
class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs; optionally restore
    the best weights. `mode`: "min" or "max". A callback the trainer runs itself (given in `callbacks`
    or as `early_stopping`): after every other callback has seen the epoch, before the final metrics are
    computed on the restored weights; its state is the trainer's, so checkpoints hold it."""

    monitor: str = "val/loss"
    patience: int = 10
    mode: str = "min"
    min_delta: float = 0.0
    restore_best: bool = True

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return math.isfinite(value)
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


@dataclass(frozen=True)
class Divergence:
    """When a finite loss counts as diverged (NaN/inf always does): past `factor` times the loss of
    the run's first batch (the model as initialized), or past `max_loss`; None switches either off.
    (The first batch, not the first epoch's mean: a run that explodes within its first epoch, such as
    Adam with lr=1e6 on digits, has a first-epoch mean of ~1e14 already.)"""

    factor: float | None = 1e4
    max_loss: float | None = None

    def __post_init__(self):
        for key in ("factor", "max_loss"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ConfigError(f"trainer.divergence.{key} must be > 0 or null (off), got {value}")


class StopTraining(Exception):
    """Raised by a callback to end training early but cleanly (status FINISHED)."""


class Interrupted(KeyboardInterrupt):
    """Training stopped at a batch boundary on request (SIGINT/SIGTERM); the run is KILLED."""


@dataclass
class EpochPosition:
    """Where the loop is inside the current epoch: the RNG state before its shuffle, batches done,
    batches handed to callbacks, their losses, and the seconds spent so far."""

    rng_state: dict
    batch: int = 0
    flushed: int = 0
    losses: list = field(default_factory=list)
    seconds: float = 0.0


def limited(splits: Splits, batch_size: int | None, limits: dict[str, int | None],
            overfit: int | None) -> Splits:
    """`splits` with each split cut to its first `limits[split]` batches of `batch_size` rows (None: all;
    full batch: one batch is the split); `overfit`: train is its first `overfit` batches and val is
    the same rows (a model that cannot drive their loss near 0 has a bug)."""
    def head(ds, batches):
        if ds is None or batches is None or batch_size is None or batches * batch_size >= len(ds):
            return ds
        return ds.subset(slice(0, batches * batch_size))

    for name, value in [*limits.items(), ("overfit", overfit)]:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"trainer.{'overfit_batches' if name == 'overfit' else 'limit_batches.' + name}"
                              f"={value}: must be an integer >= 1 or null (all batches)")
    unknown = set(limits) - {"train", "val", "test"}
    if unknown:
        raise ConfigError(f"trainer.limit_batches.{sorted(unknown)[0]}: unknown split; the splits are train, val, test")
    train = head(splits.train, overfit or limits.get("train"))
    val = train if overfit else head(splits.val, limits.get("val"))
    return replace(splits, train=train, val=val, test=head(splits.test, limits.get("test")))


class Trainer:
    """Fits `model` on `splits.train`, evaluating `splits.val` each epoch and `splits.test` at the end.

    model (MLP), loss (Loss), optimizer (Optimizer, its `lr` is the base lr), scheduler (Scheduler or
    None), metrics (names or None for the task's defaults), grad_clip (max global norm or None),
    divergence (`Divergence`: when a finite loss counts as diverged; None: only NaN/inf do),
    flush_every (batches between host transfers of per-batch numbers; also at each epoch end),
    limit_batches ({"train"|"val"|"test": batches or None}) and overfit_batches (`limited`).
    Shuffling uses NumPy's generator seeded by `seed`, so batch order is the same on every backend.
    """

    def __init__(self, model: MLP, loss: Loss, optimizer: Optimizer, splits: Splits, *, epochs: int = 10,
                 batch_size: int | None = 32, scheduler: Scheduler | None = None, metrics=None,
                 grad_clip: float | None = None, early_stopping: EarlyStopping | None = None,
                 shuffle: bool = True, seed: int = 0, flush_every: int = 64, eval_batch_size: int = 4096,
                 callbacks: list[Callback] = (), divergence: Divergence | None = Divergence(),
                 limit_batches: dict[str, int | None] | None = None, overfit_batches: int | None = None):
        self.check_settings(epochs, batch_size, flush_every)
        splits = limited(splits, batch_size, limit_batches or {}, overfit_batches)
        self.model, self.loss, self.optimizer, self.splits = model, loss, optimizer, splits
        self.scheduler, self.metric_names, self.grad_clip = scheduler, metrics, grad_clip
        stops = [cb for cb in callbacks if isinstance(cb, EarlyStopping)] + ([early_stopping] if early_stopping else [])
        if len(stops) > 1:
            raise ConfigError("two early stopping callbacks; keep one (callbacks.early_stopping)")
        self.early_stopping, self.shuffle, self.flush_every = (stops or [None])[0], shuffle, flush_every
        self.epochs, self.eval_batch_size = int(epochs), eval_batch_size
        self.callbacks = [cb for cb in callbacks if not isinstance(cb, EarlyStopping)]
        self.divergence = divergence
        self.first_loss: float | None = None  # loss of the run's first batch (divergence reference)
        self.task = splits.train.task
        self.base_lr = optimizer.lr
        self.rng = np.random.default_rng(seed)
        n = len(splits.train)
        self.batch_size = n if batch_size is None else min(int(batch_size), n)
        self.steps_per_epoch = math.ceil(n / self.batch_size)
        self.total_steps = self.steps_per_epoch * self.epochs
        self.epoch, self.step = 0, 0          # next epoch to run, global batch index of the next update
        self.history: dict[str, list[float]] = {}
        self.batch_loss = None                # device 0-d array of the last batch's loss
        self.status = "RUNNING"
        self.failure: dict | None = None      # {"reason", "step", "param"} when the run failed
        self.last_checkpoint = None           # folder of the latest checkpoint (set by Checkpointer)
        self.stop_requested: str | None = None
        self.position: EpochPosition | None = None
        self._best: tuple[float | None, dict | None, int] = (None, None, 0)  # value, weights, epochs since
        self._check_shapes()
        self._device = {name: self._to_device(getattr(splits, name)) for name in ("train", "val", "test")}
        self.record_keys = record_keys(model.params)
        col = {k: j for j, k in enumerate(self.record_keys)}
        self._col_loss, self._col_lr, self._col_global = col[LOSS], col[LR], col[GLOBAL_NORM]
        self._col_norms = slice(col[grad_norm_key(next(iter(model.params)))], self._col_global)
        # each batch of an epoch: (loss, squared gradient norms...) - made once, reused every epoch; on a
        # host backend a list of Python floats per batch (no array calls per batch), elsewhere a device
        # buffer (no device sync per batch); each batch's lr is set from Python, so kept in a list
        xp, steps, host = model.backend.xp, self.steps_per_epoch, model.backend.capabilities.host_memory
        self._rows = [()] * steps if host else xp.zeros((steps, 1 + len(model.params)), dtype=model.dtype)
        self._inspect = self._inspect_host if host else self._inspect_device
        self._lrs = [0.0] * steps
        # rows of X gathered at once in a shuffled epoch: whole batches, <= GATHER_VALUES values (or one batch)
        self._block_rows = self.batch_size * max(1, GATHER_VALUES // (self.batch_size * model.sizes[0]))
        self._block = None  # their work array (made on first use where the backend writes into `out`)
        self._finite = True

    # ---- set-up -------------------------------------------------------------------------------
    @staticmethod
    def check_settings(epochs: int, batch_size: int | None, flush_every: int) -> None:
        """ConfigError for impossible loop settings (callable before any data is loaded)."""
        if epochs < 0:
            raise ConfigError(f"trainer.epochs must be >= 0, got {epochs}")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"trainer.batch_size must be >= 1 or null (full batch), got {batch_size}")
        if flush_every < 1:
            raise ConfigError(f"trainer.flush_every must be >= 1, got {flush_every}")

    def _check_shapes(self) -> None:
        ds, sizes = self.splits.train, self.model.sizes
        if ds.n_features != sizes[0]:
            raise ShapeError(f"the data has {ds.n_features} features (X {ds.X.shape}) but the model's input "
                             f"size is {sizes[0]} (sizes {sizes}); set model sizes[0] = {ds.n_features}")
        expected = output_size(ds, self.loss.targets, self.loss.name)
        if sizes[-1] != expected:
            raise ShapeError(f"the model has {sizes[-1]} outputs (sizes {sizes}) but data '{ds.name}' "
                             f"({self.task}) with loss '{self.loss.name}' needs {expected}")

    def _to_device(self, ds):
        """(X, target) on the device: X in the model dtype; target as the loss wants it."""
        if ds is None:
            return None
        be = self.model.backend
        t = targets_for(ds, self.loss.targets)
        t_dev = be.asarray(t, be.xp.int64) if self.loss.targets == "indices" else be.asarray(t, self.model.dtype)
        return be.asarray(ds.X, self.model.dtype), t_dev

    # ---- the loop -----------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Run the remaining epochs; returns the final metrics (last epoch's, then test/...).
        The backend's resource limits (e.g. BLAS threads) hold while it runs. On an exception the
        callbacks get `on_train_end` with FAILED (KILLED for interrupts) first."""
        with self.model.backend.limits():
            return self._fit()

    def _fit(self) -> dict[str, float]:
        if self.scheduler is not None:  # also on resume: the same run length
            self.scheduler.start(self.total_steps, self.steps_per_epoch)
        for cb in self.callbacks:
            cb.on_train_start(self)
        try:
            while self.epoch < self.epochs:
                self._run_epoch()
                if self._should_stop():
                    break
        except StopTraining:
            pass
        except BaseException as e:
            self.status = "KILLED" if isinstance(e, (KeyboardInterrupt, SystemExit)) else "FAILED"
            if self.failure is None:
                self.failure = {"reason": f"{type(e).__name__}: {e}"}
            self._end(self.status, {})
            raise
        final = self._final_metrics()
        self.status = "FINISHED"
        self._end(self.status, final)
        return final

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop at the next batch boundary with `Interrupted(reason)` (signal-safe)."""
        self.stop_requested = reason

    def _end(self, status: str, logs: dict) -> None:
        for cb in self.callbacks:
            cb.on_train_end(self, status, logs)

    def _run_epoch(self) -> None:
        be = self.model.backend
        if self.position is None:
            self.position = EpochPosition(rng_state=self.rng.bit_generator.state)  # the getter makes a new dict
        else:  # resumed inside an epoch: replay its shuffle
            self.rng.bit_generator.state = copy.deepcopy(self.position.rng_state)
        pos = self.position
        X, T = self._device["train"]
        n, bs, steps = X.shape[0], self.batch_size, self.steps_per_epoch
        order = be.asarray(self.rng.permutation(n), be.xp.int64) if self.shuffle else None
        if order is not None:  # the epoch's targets in batch order in one gather (X: a block at a time, `_gather`)
            T = be.take(T, order)
        model, loss, opt, sched, base_lr = self.model, self.loss, self.optimizer, self.scheduler, self.base_lr
        inspect, lrs, gather, callbacks = self._inspect, self._lrs, self._gather, self.callbacks
        block, first, last = (X, 0, n) if order is None else (None, 0, 0)  # `block`: rows first:last in epoch order
        start = time.perf_counter()
        try:
            for i in range(pos.batch, steps):  # pos.batch == i until the update is done (`_inspect`'s row)
                lo, hi = i * bs, min(i * bs + bs, n)
                if hi > last:
                    block, first, last = gather(X, order, lo)
                Xb, Tb = block[lo - first:hi - first, ...], T[lo:hi, ...]
                lr = base_lr if sched is None else sched.lr(base_lr, self.step)
                opt.lr = lrs[i] = lr
                self.batch_loss = train_step(model, loss, opt, Xb, Tb, before_update=inspect)
                self.step += 1
                pos.batch = i + 1
                for cb in callbacks:
                    cb.on_batch_end(self, self.step - 1)
                if not self._finite or pos.batch - pos.flushed >= self.flush_every:
                    self._flush(pos.batch)
                if self.stop_requested:
                    raise Interrupted(self.stop_requested)
            self._flush(steps)
        except BaseException:
            self._flush(pos.batch)  # keep every finished batch's numbers
            raise
        finally:
            be.synchronize()
            pos.seconds += time.perf_counter() - start
        logs = {"train/loss": math.fsum(pos.losses) / len(pos.losses), "epoch/seconds": pos.seconds,
                "epoch/samples_per_second": n / pos.seconds if pos.seconds > 0 else float("inf")}
        if self.splits.val is not None:
            logs.update({f"val/{k}": v for k, v in self.evaluate("val").items()})
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        epoch, self.epoch, self.position = self.epoch, self.epoch + 1, None
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, logs)

    def _gather(self, X, order, lo: int):
        """(rows, lo, hi): X's rows order[lo:hi], the next `_block_rows` rows of the shuffled epoch (whole
        batches), in one gather: per-batch gathers cost a call each, a gathered copy of the whole
        training set costs its memory. Written into one work array reused by every block and epoch
        where the backend writes into `out`."""
        be = self.model.backend
        hi = min(lo + self._block_rows, X.shape[0])
        if not be.capabilities.writes_out:
            return be.take(X, order[lo:hi, ...]), lo, hi
        if self._block is None:
            self._block = be.xp.empty((min(self._block_rows, X.shape[0]), X.shape[1]), dtype=X.dtype)
        return be.take(X, order[lo:hi, ...], out=self._block[:hi - lo, ...]), lo, hi

    # `train_step`'s before_update, between backward and update: record this batch's loss and squared
    # gradient norms (the global norm and the square roots are computed at the flush, for a block of
    # rows at once), clip, and say whether to update
    def _inspect_host(self, loss) -> bool:
        """Host backends: a NaN/inf loss or gradient norm skips the update (the flush then stops the run)."""
        sq = self.model.backend.host_sq_norms(self.model.grads.values())
        loss = float(loss)
        self._rows[self.position.batch] = (loss, *sq)
        self._finite = finite = math.isfinite(loss) and all(map(math.isfinite, sq))
        if finite and self.grad_clip is not None:
            clip_by_global_norm(self.model.backend.xp, self.model.grads, self.grad_clip, math.sqrt(math.fsum(sq)))
        return finite

    def _inspect_device(self, loss) -> bool:
        """Device backends: into this batch's row of the device buffer, no sync (a NaN/inf stops the run
        at the next flush, after its update)."""
        be, row = self.model.backend, self._rows[self.position.batch, ...]
        if be.capabilities.writes_out:  # straight into the row (a view)
            sq = be.sq_norms(self.model.grads.values(), out=row[1:])
        else:
            sq = row[1:] = be.sq_norms(self.model.grads.values())
        row[0] = loss
        if self.grad_clip is not None:
            xp = be.xp
            clip_by_global_norm(xp, self.model.grads, self.grad_clip, xp.sqrt(xp.sum(sq)))
        return True

    def _flush(self, hi: int) -> None:
        """Move record rows flushed:hi to the host (one transfer), hand them to the callbacks, then
        stop with DivergenceError on a NaN/inf loss or gradient, or a loss past the divergence limit."""
        pos = self.position
        lo = pos.flushed
        if hi <= lo:
            return
        pos.flushed = hi
        be, rows = self.model.backend, self._rows[lo:hi]
        rows = np.array(rows, np.float64) if be.capabilities.host_memory else be.to_numpy(rows).astype(np.float64)
        values = np.empty((hi - lo, len(self.record_keys)))
        values[:, self._col_loss], values[:, self._col_norms] = rows[:, 0], rows[:, 1:]
        values[:, self._col_lr] = self._lrs[lo:hi]
        values[:, self._col_global] = values[:, self._col_norms].sum(axis=1)
        norms = values[:, self._col_norms.start:]
        np.sqrt(norms, out=norms)  # the rows hold squared norms until here
        base = self.epoch * self.steps_per_epoch
        record = BatchRecord(steps=np.arange(base + lo, base + hi), keys=self.record_keys, values=values,
                             epoch=self.epoch)
        losses = record.column(LOSS)
        pos.losses.extend(losses.tolist())
        for cb in self.callbacks:
            cb.on_batches(self, record)
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            self._diverged(record, int(np.argmax(bad)))
        if self.first_loss is None and lo == 0 and self.epoch == 0:
            self.first_loss = float(losses[0])
        limit = self._loss_limit()
        if limit is not None and (losses > limit[0]).any():
            self._diverged(record, int(np.argmax(losses > limit[0])), limit)

    def _loss_limit(self) -> tuple[float, str] | None:
        """(largest loss allowed, the setting that allows it, in words) from `divergence`, or None:
        max_loss, and factor x the loss of the first batch; the lower one. (Checked at every flush.)"""
        d, first = self.divergence, self.first_loss
        limits = []
        if d is not None and d.max_loss is not None:
            limits.append((d.max_loss, f"trainer.divergence.max_loss={d.max_loss:g}"))
        if d is not None and d.factor is not None and first is not None and first > 0:
            limits.append((d.factor * first,
                           f"trainer.divergence.factor={d.factor:g} x the first batch's loss {first:.4g}"))
        return min(limits) if limits else None

    def _diverged(self, record: BatchRecord, row: int, limit: tuple[float, str] | None = None) -> None:
        values = dict(zip(record.keys, record.values[row]))
        step, loss, lr = int(record.steps[row]), values[LOSS], values[LR]
        bad = [p for p in self.model.params if not math.isfinite(values[grad_norm_key(p)])]
        param = None if limit is not None or not bad else bad[0]
        if limit is not None:
            reason = f"loss {loss:.4g} at batch {step} (epoch {self.epoch}) exceeds {limit[1]}"
        else:
            what = "loss" if not math.isfinite(loss) else "gradient norm"
            value = loss if what == "loss" else values[GLOBAL_NORM]
            reason = f"{what} is {value} at batch {step} (epoch {self.epoch})"
        self.failure = {"reason": f"diverged: {reason}", "step": step, "param": param}
        raise DivergenceError(
            f"training diverged: {reason}" + (f"; first non-finite gradient: {param}" if param else "")
            + f" (lr {lr:.3g}). Lower optimizer.lr, set trainer.grad_clip, or check the data"
            + ("; trainer.divergence sets the limit (null: off)." if limit else "."),
            step=step, param=param)

    # ---- evaluation ---------------------------------------------------------------------------
    def _outputs(self, split: str):
        """Model outputs (device) over a whole split, in chunks of `eval_batch_size` rows."""
        xp = self.model.backend.xp
        X, _ = self._device[split]
        n, size = X.shape[0], self.eval_batch_size
        chunks = [self.model.forward(X[i:min(i + size, n), ...]) for i in range(0, n, size)]
        return chunks[0] if len(chunks) == 1 else xp.concat(chunks, axis=0)

    def predict(self, split: str):
        """(y_true, scores) on the host for split "train", "val" or "test"; scores in target space
        (probabilities for classification, values for regression)."""
        be = self.model.backend
        scores = self.loss.predict(be.xp, self._outputs(split))
        return getattr(self.splits, split).y, be.to_numpy(scores).astype(np.float64)

    def evaluate(self, split: str) -> dict[str, float]:
        """{"loss": ..., <metric>: ...} on a split, metrics computed on the host."""
        be = self.model.backend
        if self._device.get(split) is None:
            raise ConfigError(f"no '{split}' split: set data.{split}_fraction > 0")
        out = self._outputs(split)
        loss = float(self.loss.forward(be.xp, out, self._device[split][1]))
        scores = be.to_numpy(self.loss.predict(be.xp, out)).astype(np.float64)
        y = getattr(self.splits, split).y
        return {"loss": loss, **evaluate(self.metric_names, self.task, y, scores)}

    def _should_stop(self) -> bool:
        es = self.early_stopping
        if es is None:
            return False
        if es.monitor not in self.history:
            raise ConfigError(f"early stopping monitors '{es.monitor}' but the epoch logs are {sorted(self.history)}")
        value = self.history[es.monitor][-1]
        best, weights, waited = self._best
        if es.improved(value, best):
            self._best = (value, self.model.state_dict() if es.restore_best else None, 0)
            return False
        self._best = (best, weights, waited + 1)
        if waited + 1 < es.patience:
            return False
        if es.restore_best and weights is not None:
            self.model.load_state_dict(weights)
        return True

    def _final_metrics(self) -> dict[str, float]:
        final = {k: v[-1] for k, v in self.history.items() if k in ("train/loss",) or k.startswith("val/")}
        if self.early_stopping is not None and self._best[0] is not None:
            final[f"best/{self.early_stopping.monitor}"] = self._best[0]
        if self._device["test"] is not None:
            final.update({f"test/{k}": v for k, v in self.evaluate("test").items()})
        return final

    # ---- checkpoint state ---------------------------------------------------------------------
    @property
    def best_weights(self) -> dict | None:
        """Host copy of the weights at the best monitored epoch (early stopping with restore_best)."""
        return self._best[1]

    def state(self) -> dict:
        """Everything needed to continue bit-identically: position, RNG, history, early-stopping state.
        (Weights, best weights and optimizer state are saved alongside as arrays.)"""
        best, _, waited = self._best
        return {"epoch": self.epoch, "step": self.step, "rng": self.rng.bit_generator.state,
                "position": None if self.position is None else asdict(self.position),
                "history": self.history, "best": best, "waited": waited, "first_loss": self.first_loss}

    def load_state(self, state: dict, best_weights: dict | None = None) -> None:
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.rng.bit_generator.state = state["rng"]
        self.position = None if state["position"] is None else EpochPosition(**state["position"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self._best = (state["best"], best_weights, int(state["waited"]))
        self.first_loss = state.get("first_loss")  # absent in checkpoints written before it existed

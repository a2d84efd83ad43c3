"""The training loop: data -> model.forward -> loss -> model.backward -> optimizer.step -> callbacks.

One update per mini-batch; an epoch is one pass over all batches (`batch_size=None`: full batch).
Per-batch numbers (loss, lr, gradient norms) are written into a device buffer and reach callbacks in
one host transfer per flush (`BatchRecord`); epoch numbers are computed at epoch end.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .callbacks import BatchRecord, Callback
from .data import Dataset, Splits, targets_for
from .errors import ConfigError, DivergenceError, ShapeError
from .gradients import clip_by_global_norm, sq_norms
from .interfaces import Loss, Optimizer, Scheduler
from .metrics import evaluate
from .model import MLP


@dataclass
class EarlyStopping:
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs; optionally restore
    the best weights. `mode`: "min" or "max"."""

    monitor: str = "val/loss"
    patience: int = 10
    mode: str = "min"
    min_delta: float = 0.0
    restore_best: bool = True

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return math.isfinite(value)
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


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


def output_size(ds: Dataset, loss: Loss) -> int:
    """Model outputs `loss` needs on data `ds`: one per class for class-index targets (2 for binary),
    else the target columns (1 for binary: the logit or probability of class 1)."""
    if loss.targets == "indices":
        if ds.task == "regression":
            raise ConfigError(f"loss '{loss.name}' needs class targets but data '{ds.name}' is a regression "
                              f"task; use loss=mse, mae or huber")
        return ds.n_classes
    return ds.n_targets


class Trainer:
    """Fits `model` on `splits.train`, evaluating `splits.val` each epoch and `splits.test` at the end.

    model (MLP), loss (Loss), optimizer (Optimizer, its `lr` is the base lr), scheduler (Scheduler or
    None), metrics (names or None for the task's defaults), grad_clip (max global norm or None),
    flush_every (batches between host transfers of per-batch numbers; also at each epoch end).
    Shuffling uses NumPy's generator seeded by `seed`, so batch order is the same on every backend.
    """

    def __init__(self, model: MLP, loss: Loss, optimizer: Optimizer, splits: Splits, *, epochs: int = 10,
                 batch_size: int | None = 32, scheduler: Scheduler | None = None, metrics=None,
                 grad_clip: float | None = None, early_stopping: EarlyStopping | None = None,
                 shuffle: bool = True, seed: int = 0, flush_every: int = 64, eval_batch_size: int = 4096,
                 callbacks: list[Callback] = ()):
        self.check_settings(epochs, batch_size, flush_every)
        self.model, self.loss, self.optimizer, self.splits = model, loss, optimizer, splits
        self.scheduler, self.metric_names, self.grad_clip = scheduler, metrics, grad_clip
        self.early_stopping, self.shuffle, self.flush_every = early_stopping, shuffle, flush_every
        self.epochs, self.eval_batch_size = int(epochs), eval_batch_size
        self.callbacks = list(callbacks)
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
        self._host = model.backend.device == "cpu"
        self._best: tuple[float | None, dict | None, int] = (None, None, 0)  # value, weights, epochs since
        self._check_shapes()
        self._device = {name: self._to_device(getattr(splits, name)) for name in ("train", "val", "test")}
        self.record_keys = (["batch/loss", "batch/lr"] + [f"grad_norm/{k}" for k in model.params]
                            + ["grad_norm/global"])

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
        expected = output_size(ds, self.loss)
        if sizes[-1] != expected:
            raise ShapeError(f"the model has {sizes[-1]} outputs (sizes {sizes}) but data '{ds.name}' "
                             f"({self.task}) with loss '{self.loss.name}' needs {expected}")

    def _to_device(self, ds):
        """(X, target) on the device: X in the model dtype; target as the loss wants it."""
        if ds is None:
            return None
        be = self.model.backend
        t = targets_for(ds, self.loss.targets, self.model.sizes[-1])
        t_dev = be.asarray(t, be.xp.int64) if self.loss.targets == "indices" else be.asarray(t, self.model.dtype)
        return be.asarray(ds.X, self.model.dtype), t_dev

    # ---- the loop -----------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Run the remaining epochs; returns the final metrics (last epoch's, then test/...).
        On an exception the callbacks get `on_train_end` with FAILED (KILLED for interrupts) first."""
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
        be, xp = self.model.backend, self.model.backend.xp
        if self.position is None:
            self.position = EpochPosition(rng_state=copy.deepcopy(self.rng.bit_generator.state))
        else:  # resumed inside an epoch: replay its shuffle
            self.rng.bit_generator.state = copy.deepcopy(self.position.rng_state)
        pos = self.position
        X, T = self._device["train"]
        n, bs = X.shape[0], self.batch_size
        if self.shuffle:
            perm = be.asarray(self.rng.permutation(n), xp.int64)
            X, T = xp.take(X, perm, axis=0), xp.take(T, perm, axis=0)
        rec = xp.zeros((self.steps_per_epoch, len(self.record_keys)), dtype=self.model.dtype)
        lrs = np.zeros(self.steps_per_epoch)
        start = time.perf_counter()
        try:
            for i in range(pos.batch, self.steps_per_epoch):
                rows = slice(i * bs, min((i + 1) * bs, n))
                lrs[i], finite = self._train_step(X[rows, ...], T[rows, ...], rec, i)
                self.step += 1
                pos.batch = i + 1
                for cb in self.callbacks:
                    cb.on_batch_end(self, self.step - 1)
                if not finite or pos.batch - pos.flushed >= self.flush_every:
                    self._flush(rec, lrs, pos.batch)
                if self.stop_requested:
                    raise Interrupted(self.stop_requested)
            self._flush(rec, lrs, self.steps_per_epoch)
        except BaseException:
            self._flush(rec, lrs, pos.batch)  # keep every finished batch's numbers
            raise
        finally:
            be.synchronize()
            pos.seconds += time.perf_counter() - start
        logs = {"train/loss": float(np.mean(pos.losses)), "epoch/seconds": pos.seconds,
                "epoch/samples_per_second": n / pos.seconds if pos.seconds > 0 else float("inf")}
        if self.splits.val is not None:
            logs.update({f"val/{k}": v for k, v in self.evaluate("val").items()})
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        epoch, self.epoch, self.position = self.epoch, self.epoch + 1, None
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, logs)

    def _train_step(self, Xb, Tb, rec, i: int) -> tuple[float, bool]:
        """One update on batch (Xb, Tb); writes loss and gradient norms into row i of `rec`.
        Returns the lr used and whether loss and gradients were finite (checked on host backends
        only: elsewhere that would cost a device sync per batch, so the flush checks them)."""
        model, xp = self.model, self.model.backend.xp
        out = model.forward(Xb)
        self.batch_loss = self.loss.forward(xp, out, Tb)
        model.backward(self.loss.backward(xp, out, Tb), input_grad=False)
        sq = sq_norms(xp, model.grads)
        total = xp.sqrt(xp.sum(sq))
        rec[i, 0] = self.batch_loss
        rec[i, 2:-1] = xp.sqrt(sq)
        rec[i, -1] = total
        finite = not self._host or math.isfinite(float(self.batch_loss) + float(total))
        if self.grad_clip is not None:
            clip_by_global_norm(xp, model.grads, self.grad_clip, total)
        lr = self.base_lr if self.scheduler is None else self.scheduler.lr(
            self.base_lr, self.step, self.steps_per_epoch, self.total_steps)
        self.optimizer.lr = lr
        if finite:
            self.optimizer.step(model.params, model.grads)
        return lr, finite

    def _flush(self, rec, lrs: np.ndarray, hi: int) -> None:
        """Move rows flushed:hi of the per-batch buffer to the host (one transfer), hand them to the
        callbacks, then stop with DivergenceError if any loss or gradient is not finite."""
        pos = self.position
        lo = pos.flushed
        if hi <= lo:
            return
        pos.flushed = hi
        values = self.model.backend.to_numpy(rec[lo:hi, ...]).astype(np.float64)
        values[:, 1] = lrs[lo:hi]
        base = self.epoch * self.steps_per_epoch
        record = BatchRecord(steps=np.arange(base + lo, base + hi), keys=self.record_keys, values=values,
                             epoch=self.epoch)
        pos.losses.extend(values[:, 0].tolist())
        for cb in self.callbacks:
            cb.on_batches(self, record)
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            self._diverged(record, int(np.argmax(bad)))

    def _diverged(self, record: BatchRecord, row: int) -> None:
        values, step = record.values[row], int(record.steps[row])
        norms = dict(zip(self.record_keys[2:-1], values[2:-1]))
        bad = [k.removeprefix("grad_norm/") for k, v in norms.items() if not math.isfinite(v)]
        what = "loss" if not math.isfinite(values[0]) else "gradient norm"
        param = bad[0] if bad else None
        value = values[0] if what == "loss" else values[-1]
        reason = f"{what} is {value} at batch {step} (epoch {self.epoch})"
        self.failure = {"reason": f"diverged: {reason}", "step": step, "param": param}
        raise DivergenceError(
            f"training diverged: {reason}" + (f"; first non-finite gradient: {param}" if param else "")
            + f" (lr {values[1]:.3g}). Lower optimizer.lr, set trainer.grad_clip, or check the data.",
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
                "history": self.history, "best": best, "waited": waited}

    def load_state(self, state: dict, best_weights: dict | None = None) -> None:
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.rng.bit_generator.state = state["rng"]
        self.position = None if state["position"] is None else EpochPosition(**state["position"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self._best = (state["best"], best_weights, int(state["waited"]))

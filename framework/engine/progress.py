"""Progress: a rich progress bar (epoch, batch, latest loss, ETA) on a terminal, one plain line per
epoch otherwise, and a final table of metrics (every metric; the epoch line shows those that fit).
What is printed here also goes into the job's log files (`to_log_files`: Hydra's `<run folder>/train.log`)."""
from __future__ import annotations

import logging
import sys
import time

from framework.engine.callbacks import Callback

WIDTH = 120  # an epoch line fits this many columns


def epoch_line(epoch: int, epochs: int, logs: dict[str, float], width: int = WIDTH) -> str:
    """"epoch 3/30  train/loss 0.2748  val/loss 0.2852  val/accuracy 0.9259 ...  0.012 s" in at most
    `width` columns: the losses, then the val/ metrics in their order as long as they fit (each
    counted at its widest, "key -1.234e+05", so every epoch shows the same keys), then the epoch's
    seconds (samples/s only in the record)."""
    head = f"epoch {epoch + 1}/{epochs}"
    keys = sorted((k for k in logs if not k.startswith("epoch/")),
                  key=lambda k: (k != "train/loss", k != "val/loss", not k.startswith("val/")))
    room = width - len(head) - (len("  1.234e+05 s") if "epoch/seconds" in logs else 0)
    shown = []
    for key in keys:
        room -= len(f"  {key} -1.234e+05")
        if room < 0:
            break
        shown.append(key)
    tail = [f"{logs['epoch/seconds']:.3g} s"] if "epoch/seconds" in logs else []
    return "  ".join([head, *(f"{k} {logs[k]:.4g}" for k in shown), *tail])


def to_log_files(text: str) -> None:
    """`text`, printed on the terminal, also into the log files of the root logger's file handlers (a Hydra
    job's `train.log`), as an INFO record of this module: the terminal keeps its plain lines."""
    record = logging.LogRecord(__name__, logging.INFO, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def echo(text: str, stream=None) -> None:
    """Print `text` (default: on stdout) and write it to the job's log files."""
    print(text, file=stream or sys.stdout, flush=True)
    to_log_files(text)


class PlainProgress(Callback):
    """One line per epoch (for logs, CI, sweeps)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def on_epoch_end(self, trainer, epoch, logs):
        echo(epoch_line(epoch, trainer.epochs, logs), self.stream)


class BarProgress(Callback):
    """A rich bar over all updates. It is redrawn from the training thread at most every `refresh_s`
    seconds, with the loss of the batch just finished: one host read of `trainer.batch_loss` per
    redraw (a device sync only then, never per batch); the epoch line is printed above it."""

    def __init__(self, console=None, refresh_s: float = 0.1):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), console=console,
                                 auto_refresh=False, transient=False)
        self.task = None
        self.refresh_s = refresh_s
        self._last = -float("inf")

    def on_train_start(self, trainer):
        self.progress.start()
        self.task = self.progress.add_task("train", total=trainer.total_steps, completed=trainer.step,
                                           epoch=f"{trainer.epoch + 1}/{trainer.epochs}", loss="-")
        self.progress.refresh()

    def on_batch_end(self, trainer, step):
        now = time.perf_counter()
        if now - self._last >= self.refresh_s:
            self._last = now
            self._show(trainer, trainer.epoch)

    def on_epoch_end(self, trainer, epoch, logs):
        self._show(trainer, epoch)
        console = self.progress.console
        line = epoch_line(epoch, trainer.epochs, logs, min(WIDTH, console.width))
        console.print(line, highlight=False)
        to_log_files(line)

    def _show(self, trainer, epoch: int):
        loss = "-" if trainer.batch_loss is None else f"{float(trainer.batch_loss):.4f}"
        self.progress.update(self.task, completed=trainer.step, loss=loss, epoch=f"{epoch + 1}/{trainer.epochs}")
        self.progress.refresh()

    def on_train_end(self, trainer, status, logs):
        self.progress.stop()


def make_progress(mode: str) -> Callback | None:
    """mode: auto (bar on a TTY, plain otherwise), bar, plain, none."""
    if mode == "none":
        return None
    if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
        return BarProgress()
    return PlainProgress()


def print_metrics(metrics: dict[str, float], title: str = "final metrics") -> None:
    """A two-column table of the final metrics on stdout (and in the job's log files)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
    console = Console(record=True)
    console.print(table)
    to_log_files("\n" + console.export_text())

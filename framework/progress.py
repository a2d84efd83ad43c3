"""Progress: a rich progress bar (epoch, batch, loss, ETA) on a terminal, one plain line per epoch
otherwise, and a final table of metrics."""
from __future__ import annotations

import sys
import time

from .callbacks import Callback


def _format(logs: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in logs.items())


class PlainProgress(Callback):
    """One line per epoch (for logs, CI, sweeps)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def on_epoch_end(self, trainer, epoch, logs):
        print(f"epoch {epoch + 1}/{trainer.epochs}  {_format(logs)}", file=self.stream, flush=True)


class BarProgress(Callback):
    """A rich bar over all updates; the loss shown is read from the device at most 10 times a second."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), transient=False)
        self.task = None
        self._last = 0.0

    def on_train_start(self, trainer):
        self.progress.start()
        self.task = self.progress.add_task("train", total=trainer.total_steps, completed=trainer.step,
                                           epoch=f"{trainer.epoch + 1}/{trainer.epochs}", loss="-")

    def on_batch_end(self, trainer, step):
        now = time.perf_counter()
        if now - self._last > 0.1:
            self._last = now
            self.progress.update(self.task, completed=step + 1, loss=f"{float(trainer.batch_loss):.4f}",
                                 epoch=f"{trainer.epoch + 1}/{trainer.epochs}")

    def on_epoch_end(self, trainer, epoch, logs):
        self.progress.update(self.task, completed=trainer.step, epoch=f"{epoch + 1}/{trainer.epochs}")
        self.progress.console.print(f"epoch {epoch + 1}/{trainer.epochs}  {_format(logs)}", highlight=False)

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
    """A two-column table of the final metrics on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
    Console().print(table)

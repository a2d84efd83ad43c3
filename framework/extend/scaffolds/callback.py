"""Callback 'my_callback': load with plugins.paths=[<dir>] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins my_callback --paths <dir>
Use:    python -m framework.train plugins.paths=[<dir>] +callbacks.my_callback.monitor=val/loss
"""
from pathlib import Path

from framework import Callback
from framework.errors import ConfigError
from framework.registry import callbacks


@callbacks.register("my_callback")
class MyCallback(Callback):
    """TODO: one line on what 'my_callback' does.

    Placeholder (TODO: your behaviour): the epoch with the lowest `monitor` (an epoch key: train/loss,
    val/loss, val/<metric>), written to <run folder>/my_callback.txt when training ends.
    Hooks (override those you need; the rest do nothing): on_train_start(trainer), on_batch_end(trainer,
    step) (after each update: keep it cheap), on_batches(trainer, record) (flushed per-batch rows, host
    arrays), on_epoch_end(trainer, epoch, logs) (epoch 0-based), on_train_end(trainer, status, logs).
    Raising framework.engine.trainer.StopTraining ends training early (FINISHED); trainer.request_stop(reason)
    stops it as KILLED.
    """

    def __init__(self, monitor: str = "val/loss"):  # TODO: your arguments, each with a default
        self.monitor = monitor
        self.path = Path("my_callback.txt")  # the working directory, until the run names its folder
        self.best = None                      # (value, epoch)

    def set_folder(self, folder):
        """The run folder (None without one): where its files go."""
        if folder is not None:
            self.path = folder / "my_callback.txt"

    def files(self):
        """The files it writes; those in the tracked run folder become the run's artifacts."""
        return [self.path]  # TODO: [] if it writes none

    def on_train_start(self, trainer):
        self.best = None

    def on_epoch_end(self, trainer, epoch, logs):
        if self.monitor not in logs:  # a typo in the config: one line naming the keys
            raise ConfigError(f"callbacks.my_callback.monitor: no epoch key {self.monitor!r}; one of {sorted(logs)}")
        value = logs[self.monitor]  # TODO: your per-epoch work
        if self.best is None or value < self.best[0]:
            self.best = (value, epoch + 1)

    def on_train_end(self, trainer, status, logs):
        best = "no epoch ended" if self.best is None else f"{self.monitor} {self.best[0]:.6g} at epoch {self.best[1]}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{status}: {best}\n")  # TODO: your end-of-run work

"""The terminal: the bar shows the latest batch's loss, read once per redraw; epoch lines fit 120 columns."""
import io

import numpy as np
from rich.console import Console

from framework import Callback
from framework.engine.progress import BarProgress, epoch_line
from framework.train import build
from tests.helpers import make_cfg


class Losses(Callback):
    def __init__(self):
        self.losses = []

    def on_batches(self, trainer, record):
        self.losses += record.values[:, 0].tolist()


class Shown(BarProgress):
    """Records (step, loss text) at every redraw."""

    def __init__(self, refresh_s):
        super().__init__(Console(file=io.StringIO(), force_terminal=True, width=120), refresh_s)
        self.shown = []

    def _show(self, trainer, epoch):
        super()._show(trainer, epoch)
        self.shown.append((trainer.step, self.progress.tasks[0].fields["loss"]))


def test_bar_shows_the_loss_of_the_batch_just_finished_and_reads_it_only_per_redraw():
    for refresh_s, redraws in ((0.0, None), (1e9, 4)):  # every batch; only the first batch and each epoch end
        bar, losses = Shown(refresh_s), Losses()
        t = build(make_cfg("trainer.epochs=3", "model.hidden=[8]", "trainer.flush_every=1000"), [losses, bar])
        t.fit()
        assert len(bar.shown) == (redraws or t.step + 3)
        for step, text in bar.shown:
            assert text == f"{losses.losses[step - 1]:.4f}", (step, text)
    assert [step for step, _ in bar.shown] == [1] + [t.steps_per_epoch * e for e in (1, 2, 3)]  # not batch 1's loss
    assert "epoch 3/3  train/loss" in bar.progress.console.file.getvalue()


def test_epoch_line_fits_120_columns_with_the_losses_first_and_every_epoch_shows_the_same_keys():
    logs = {"train/loss": 0.123456, "epoch/seconds": 0.0123, "epoch/samples_per_second": 1.2e5,
            "val/loss": -1.5e-7, **{f"val/metric_{i}": np.pi * 10**i for i in range(12)}}
    lines = [epoch_line(e, 300, {k: v * (e + 1) for k, v in logs.items()}) for e in (8, 98, 298)]
    for line in lines:
        assert len(line) <= 120 and line.startswith("epoch ") and line.endswith(" s")
        assert line.split()[2:6] == ["train/loss", line.split()[3], "val/loss", line.split()[5]]
    assert len({tuple(w for w in line.split() if "/" in w and w[0].isalpha()) for line in lines}) == 1
    assert "samples_per_second" not in lines[0]

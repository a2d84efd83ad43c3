"""Scheduler 'my_scheduler': load with plugins.paths=[<dir>] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins my_scheduler --paths <dir>
Use:    python -m framework.train plugins.paths=[<dir>] scheduler=my_scheduler scheduler.decay=0.5
"""
from framework import Scheduler
from framework.registry import schedulers


@schedulers.register("my_scheduler")
class MyScheduler(Scheduler):
    """TODO: one line on what 'my_scheduler' is, with a citation.

    lr_t = base_lr * factor,  factor = 1 / (1 + decay * epoch)   TODO: your factor (placeholder: inverse time)
    factor(step, epoch, progress) gets the update's index t (0-based), its epoch and t / total_steps in
    [0, 1), and may read self.total_steps, self.steps_per_epoch, self.epochs (set by start() before the
    first update); the base class multiplies by the warm-up ramp min(1, (t + 1) / warmup_steps).
    """

    reference = None  # optional: the same math elsewhere, e.g. "torch.optim.lr_scheduler.StepLR" (checked)

    def __init__(self, decay: float = 0.1, warmup_epochs: float = 0.0):  # TODO: yours; keep warmup_epochs
        super().__init__(warmup_epochs)
        self.decay = float(decay)  # store every argument under its own name

    def factor(self, step, epoch, progress):
        return 1.0 / (1.0 + self.decay * epoch)  # TODO: your factor, a plain float >= 0

"""Learning-rate schedules (multipliers of the optimizer's base lr), each with optional warm-up."""
from __future__ import annotations

import math

from framework import Scheduler
from framework.registry import schedulers


@schedulers.register("constant")
class Constant(Scheduler):
    """factor = 1 (warmup_epochs > 0 gives linear warm-up to the base lr, then constant)."""

    def factor(self, step, epoch, progress):
        return 1.0


@schedulers.register("step")
class Step(Scheduler):
    """factor = gamma ** (epoch // step_size) (torch StepLR)."""

    def __init__(self, step_size: int = 10, gamma: float = 0.1, warmup_epochs: float = 0.0):
        super().__init__(warmup_epochs)
        if step_size < 1:
            raise ValueError(f"step scheduler: step_size must be >= 1 epoch, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def factor(self, step, epoch, progress):
        return self.gamma ** (epoch // self.step_size)


@schedulers.register("exponential")
class Exponential(Scheduler):
    """factor = gamma ** epoch (torch ExponentialLR)."""

    def __init__(self, gamma: float = 0.95, warmup_epochs: float = 0.0):
        super().__init__(warmup_epochs)
        self.gamma = float(gamma)

    def factor(self, step, epoch, progress):
        return self.gamma**epoch


@schedulers.register("cosine")
class Cosine(Scheduler):
    """factor = m + (1 - m) (1 + cos(pi progress)) / 2, m = min_factor; per update, over the whole run."""

    def __init__(self, min_factor: float = 0.0, warmup_epochs: float = 0.0):
        super().__init__(warmup_epochs)
        self.min_factor = float(min_factor)

    def factor(self, step, epoch, progress):
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


@schedulers.register("warmup")
class Warmup(Constant):
    """Linear warm-up over `warmup_epochs`, then constant."""

    def __init__(self, warmup_epochs: float = 1.0):
        super().__init__(warmup_epochs)

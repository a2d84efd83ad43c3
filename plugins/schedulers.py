"""Learning-rate schedules (multipliers of the optimizer's base lr), each with optional warm-up.

Each names the torch.optim.lr_scheduler class that gives the same lr per update (stepped once per
update, on an optimizer whose lr is the base lr); `python -m framework.check_plugins` compares them.
A schedule over the whole run reads the run's length from `start` (`self.total_steps`).
"""
from __future__ import annotations

import math

from framework import Scheduler
from framework.registry import schedulers


@schedulers.register("constant")
class Constant(Scheduler):
    """factor = 1 (warmup_epochs > 0 gives linear warm-up to the base lr, then constant)."""

    reference = "torch.optim.lr_scheduler.ConstantLR"

    def factor(self, step, epoch, progress):
        return 1.0

    def reference_arguments(self):
        return {"factor": 1.0}


@schedulers.register("step")
class Step(Scheduler):
    """factor = gamma ** (epoch // step_size) (torch StepLR stepped per epoch; per update its step_size is
    step_size * steps_per_epoch)."""

    reference = "torch.optim.lr_scheduler.StepLR"

    def __init__(self, step_size: int = 10, gamma: float = 0.1, warmup_epochs: float = 0.0):
        super().__init__(warmup_epochs)
        if step_size < 1:
            raise ValueError(f"step scheduler: step_size must be >= 1 epoch, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def factor(self, step, epoch, progress):
        return self.gamma ** (epoch // self.step_size)

    def reference_arguments(self):
        return {"step_size": self.step_size * self.steps_per_epoch, "gamma": self.gamma}


@schedulers.register("exponential")
class Exponential(Scheduler):
    """factor = gamma ** epoch (torch ExponentialLR stepped per epoch, which per update is StepLR with
    step_size = steps_per_epoch: the reference)."""

    reference = "torch.optim.lr_scheduler.StepLR"

    def __init__(self, gamma: float = 0.95, warmup_epochs: float = 0.0):
        super().__init__(warmup_epochs)
        self.gamma = float(gamma)

    def factor(self, step, epoch, progress):
        return self.gamma**epoch

    def reference_arguments(self):
        return {"step_size": self.steps_per_epoch, "gamma": self.gamma}


@schedulers.register("cosine")
class Cosine(Scheduler):
    """factor = m + (1 - m) (1 + cos(pi progress)) / 2, m = min_factor; per update, over the run after the
    warm-up (`after_warmup`): torch CosineAnnealingLR(T_max = total_steps - warmup_steps, eta_min = m lr),
    after a warm-up SequentialLR([LinearLR, CosineAnnealingLR], milestones=[warmup_steps])."""

    reference = "torch.optim.lr_scheduler.CosineAnnealingLR"
    after_warmup = True

    def __init__(self, min_factor: float = 0.0, warmup_epochs: float = 0.0):
        super().__init__(warmup_epochs)
        self.min_factor = float(min_factor)

    def factor(self, step, epoch, progress):
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    def reference_arguments(self):  # the reference runs at base lr 1: eta_min is the factor
        return {"T_max": self.total_steps - self.warmup_steps, "eta_min": self.min_factor}


@schedulers.register("linear")
class Linear(Scheduler):
    """factor = 1 + (end_factor - 1) t / total_steps: linear from 1 at the first update towards
    `end_factor` (reached after the last; 0: decay to zero) - torch LinearLR(start_factor=1, end_factor,
    total_iters = total_steps); after a warm-up it decays over the rest of the run (`after_warmup`)."""

    reference = "torch.optim.lr_scheduler.LinearLR"
    after_warmup = True

    def __init__(self, end_factor: float = 0.0, warmup_epochs: float = 0.0):
        super().__init__(warmup_epochs)
        if not 0 <= end_factor <= 1:
            raise ValueError(f"linear scheduler: end_factor must be in [0, 1], got {end_factor}")
        self.end_factor = float(end_factor)

    def factor(self, step, epoch, progress):
        return 1 + (self.end_factor - 1) * progress

    def reference_arguments(self):
        return {"start_factor": 1.0, "end_factor": self.end_factor,
                "total_iters": self.total_steps - self.warmup_steps}


@schedulers.register("one_cycle")
class OneCycle(Scheduler):
    """torch OneCycleLR's lr (two phases, three_phase=False) with max_lr = the base lr: from
    1 / div_factor up to 1 over the first pct_start of the run, then down to
    1 / (div_factor * final_div_factor) at the last update; `anneal` "cos" or "linear". The phases end at
    updates pct_start * total_steps - 1 and total_steps - 1, as in torch. Its own warm-up: no warmup_epochs."""

    reference = "torch.optim.lr_scheduler.OneCycleLR"

    def __init__(self, pct_start: float = 0.3, anneal: str = "cos", div_factor: float = 25.0,
                 final_div_factor: float = 1e4):
        if anneal not in ("cos", "linear"):
            raise ValueError(f"one_cycle scheduler: anneal must be 'cos' or 'linear', got {anneal!r}")
        if not 0 < pct_start < 1:
            raise ValueError(f"one_cycle scheduler: pct_start must be in (0, 1), got {pct_start}")
        self.pct_start, self.anneal = float(pct_start), anneal
        self.div_factor, self.final_div_factor = float(div_factor), float(final_div_factor)

    def factor(self, step, epoch, progress):
        initial = 1 / self.div_factor
        up_end, down_end = self.pct_start * self.total_steps - 1, float(self.total_steps - 1)
        if step <= up_end:
            return self._anneal(initial, 1.0, step / up_end if up_end > 0 else 1.0)
        return self._anneal(1.0, initial / self.final_div_factor, (step - up_end) / (down_end - up_end))

    def _anneal(self, start, end, pct):
        if self.anneal == "cos":
            return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def reference_arguments(self):  # the reference runs at base lr 1: max_lr is 1
        return {"max_lr": 1.0, "total_steps": self.total_steps, "pct_start": self.pct_start,
                "anneal_strategy": self.anneal, "div_factor": self.div_factor,
                "final_div_factor": self.final_div_factor, "cycle_momentum": False}


@schedulers.register("warmup")
class Warmup(Constant):
    """Linear warm-up over `warmup_epochs`, then constant."""

    def __init__(self, warmup_epochs: float = 1.0):
        super().__init__(warmup_epochs)

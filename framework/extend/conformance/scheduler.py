"""Schedulers: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import numpy as np

from framework.extend.conformance import common, reference


def _sched_lr(reg, name, base=0.1, spe=7, epochs=10):
    sched, total = reg.create(name), spe * epochs
    sched.start(total, spe)
    lrs = np.array([sched.lr(base, t) for t in range(total)])
    bad = np.flatnonzero(~np.isfinite(lrs) | (lrs < 0))
    assert not len(bad), f"lr at step {bad[0]} of a {epochs}-epoch run is {lrs[bad[0]]}; it must be finite and >= 0"
    return f"lr in [{lrs.min():.3g}, {lrs.max():.3g}] over {total} steps"


def _sched_warmup(reg, name, base=0.1, spe=5, epochs=6):
    if "warmup_epochs" not in reg.defaults(name):
        return "skipped: no warmup_epochs argument"
    plain = reg.create(name, **{**reg.defaults(name), "warmup_epochs": 0.0})
    warm = reg.create(name, **{**reg.defaults(name), "warmup_epochs": 2.0})
    total, steps = spe * epochs, 2 * spe
    after = warm.after_warmup  # the schedule under the ramp from update 0, or over the rest from the ramp's end
    plain.start(total - steps if after else total, spe)
    warm.start(total, spe)
    for t in range(total):
        ramp = min(1.0, (t + 1) / steps)
        want = ramp * plain.lr(base, max(t - steps, 0) if after else t)
        got = warm.lr(base, t)
        assert np.isclose(got, want, rtol=1e-12, atol=0), (
            f"with warmup_epochs=2 ({steps} steps) lr at step {t} is {got:.6g}, "
            f"expected {ramp:.3g} x {want / ramp:.6g}")
    return f"linear over {steps} steps"


TOL = 1e-12  # |lr - torch's lr| at base lr 1, every update of the run


def _sched_reference(reg, name, spe=7, epochs=25):
    return reference.check(reg.create(name), lambda sched, target: _both_warmups(reg, name, target, spe, epochs), TOL)


def _both_warmups(reg, name, target, spe, epochs):
    """`compare` with the defaults and, where the scheduler takes warmup_epochs, with the warm-up on
    (2 epochs) if the defaults leave it off, off if they turn it on."""
    defaults = reg.defaults(name)
    variants = [defaults]
    if "warmup_epochs" in defaults:
        variants.append({**defaults, "warmup_epochs": 0.0 if defaults["warmup_epochs"] else 2.0})
    results = [compare(reg.create(name, **v), target, spe * epochs, spe) for v in variants]
    over = results[0][1]
    if len(variants) > 1:
        over += " with warmup_epochs " + " and ".join(f"{v['warmup_epochs']:g}" for v in variants)
    return max(r[0] for r in results), over


def compare(sched, target, total_steps, steps_per_epoch):
    """The lr of every update of a `total_steps` run at base lr 1 (so lr = the factor) against torch:
    the class `target` made with `reference_arguments()` (called after `start`) on a dummy SGD optimizer
    with lr 1, its `get_last_lr()` before its t-th `step()` being update t's lr. A warm-up of W updates
    composes it as the scheduler says (`Scheduler`): after_warmup, SequentialLR([LinearLR(1 / W, 1,
    W - 1), reference], milestones=[W]); else ChainedScheduler([LinearLR(...), reference])."""
    torch = reference.library(sched)
    sched.start(total_steps, steps_per_epoch)
    ours = np.array([sched.lr(1.0, t) for t in range(total_steps)])
    lrs = torch.optim.lr_scheduler
    with reference.quiet():
        opt = torch.optim.SGD([torch.zeros(1, dtype=torch.float64, requires_grad=True)], lr=1.0)
        w = sched.warmup_steps
        warm = lrs.LinearLR(opt, start_factor=1 / w, end_factor=1.0, total_iters=w - 1) if w > 0 else None
        theirs = target(opt, **sched.reference_arguments())
        if warm is not None:
            theirs = (lrs.SequentialLR(opt, [warm, theirs], milestones=[w]) if sched.after_warmup
                      else lrs.ChainedScheduler([warm, theirs]))
        want = []
        for _ in range(total_steps):
            want.append(theirs.get_last_lr()[0])
            opt.step()
            theirs.step()
    worst = float(np.max(np.abs(ours - np.array(want)), initial=0.0))
    return worst, f"the lr of {total_steps} updates"


CHECKS = {"config": common.config_check, "lr": _sched_lr, "warmup": _sched_warmup, "reference": _sched_reference}

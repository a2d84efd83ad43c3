"""Schedulers: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import numpy as np

from framework.extend.conformance import common


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


CHECKS = {"config": common.config_check, "lr": _sched_lr, "warmup": _sched_warmup}

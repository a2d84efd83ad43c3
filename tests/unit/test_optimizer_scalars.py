"""What a plugin needs and gets without internals: an optimizer's scalar state (`Optimizer.scalars`) in
state_dict and checkpoints, and a scheduler that knows the run's length (`Scheduler.start`), so a NAdam
plugin with a one-cycle schedule resumes bit for bit."""
import numpy as np
import pytest

from framework.engine.callbacks import Callback
from framework.engine.checkpoint import Checkpointer, restore_checkpoint
from framework.engine.data import split
from framework.engine.trainer import Interrupted, Trainer
from framework.model import MLP
from framework.registry import datasets, losses, schedulers
from tests.unit.nadam import NAdam


def _params():
    rng = np.random.default_rng(0)
    return {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=3)}


def test_state_dict_carries_scalars():
    opt, params = NAdam(), _params()
    for _ in range(3):
        opt.step(params, _params())
    state = opt.state_dict()
    assert state["scalars/mu_product"] == opt.scalars["mu_product"] and 0 < state["scalars/mu_product"] < 1
    fresh = NAdam()
    fresh.load_state_dict({k: (np.asarray(v) if k.startswith("scalars/") else v) for k, v in state.items()})
    assert fresh.scalars == opt.scalars and type(fresh.scalars["mu_product"]) is float  # 0-d arrays come back
    assert "scalars" not in repr(fresh) and "mu_product" not in repr(fresh)


def test_scalars_is_a_reserved_slot_name():
    opt = NAdam()
    with pytest.raises(ValueError, match="'scalars' is reserved"):
        opt.slot(np, "scalars", "w", np.zeros(2))


class StopAfter(Callback):
    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, step):
        if step == self.step:
            trainer.request_stop("test")


class Lrs(Callback):
    def __init__(self):
        self.lrs = []

    def on_batch_end(self, trainer, step):
        self.lrs.append(trainer.optimizer.lr)


def _trainer(dtype, callbacks=()):
    splits = split(datasets.create("moons", n=200), seed=0)
    model = MLP([2, 8, 2], activation="tanh", dtype=dtype, seed=0)
    return Trainer(model, losses.create("cross_entropy"), NAdam(lr=0.05), splits, epochs=4, batch_size=32,
                   scheduler=schedulers.create("one_cycle"), callbacks=list(callbacks))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_nadam_with_one_cycle_resumes_bit_identically(tmp_path, dtype):
    straight, lrs = _trainer(dtype), Lrs()
    straight.callbacks.append(lrs)
    straight.fit()
    half = straight.total_steps // 2
    stopped = _trainer(dtype, [StopAfter(half - 1), Checkpointer(tmp_path / "ck")])
    with pytest.raises(Interrupted):
        stopped.fit()
    resumed = _trainer(dtype)
    restore_checkpoint(resumed, tmp_path / "ck")
    assert resumed.step == half and resumed.optimizer.scalars == stopped.optimizer.scalars
    resumed.fit()
    for k, v in straight.model.state_dict().items():
        assert resumed.model.state_dict()[k].tobytes() == v.tobytes(), k
    assert resumed.optimizer.scalars["mu_product"] == straight.optimizer.scalars["mu_product"]
    # the trainer started the schedule with the run's length: the lr of every update is torch's OneCycleLR's
    torch = pytest.importorskip("torch", reason="torch not installed: the lr sequence is not compared with OneCycleLR")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
    ref, want = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=straight.total_steps,
                                                     cycle_momentum=False), []
    for _ in range(straight.total_steps):
        want.append(ref.get_last_lr()[0])
        opt.step()
        ref.step()
    np.testing.assert_allclose(lrs.lrs, want, rtol=1e-12, atol=1e-15)


def test_lr_before_start_says_what_to_do():
    with pytest.raises(RuntimeError, match=r"call start\(total_steps, steps_per_epoch\) before lr"):
        schedulers.create("cosine").lr(0.1, 0)


def test_start_sets_the_run_length_outside_the_config():
    sched = schedulers.create("cosine", warmup_epochs=1.5)
    sched.start(total_steps=23, steps_per_epoch=5)
    assert (sched.total_steps, sched.steps_per_epoch, sched.epochs, sched.warmup_steps) == (23, 5, 5, 8)
    assert repr(sched) == "Cosine(warmup_epochs=1.5, min_factor=0.0)"

"""Trainer callbacks: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import contextlib
import inspect
import io
import tempfile
from pathlib import Path

import numpy as np

from framework.engine.callbacks import Callback
from framework.engine.data import Dataset, Splits
from framework.extend.conformance import common

HOOKS = ("set_folder", "files", "on_train_start", "on_batch_end", "on_batches", "on_epoch_end", "on_train_end")


def _hooks(reg, name):
    """A `framework.Callback` subclass whose overridden hooks take the arguments the trainer passes."""
    cls = reg.get(name)
    assert isinstance(cls, type) and issubclass(cls, Callback), (
        f"{cls!r} is not a subclass of framework.Callback; subclass it and override the hooks you need")
    overridden = [h for h in HOOKS if getattr(cls, h) is not getattr(Callback, h)]
    for hook in overridden:
        own = inspect.signature(getattr(cls, hook))
        params = list(inspect.signature(getattr(Callback, hook)).parameters)
        try:
            own.bind(*params)  # self, trainer, ... positionally, as the trainer calls them
        except TypeError as e:
            raise AssertionError(f"{hook}{own} cannot be called as {hook}({', '.join(params)}): {e}") from None
    return f"overrides {', '.join(overridden) or 'nothing'}"


def _runs(reg, name):
    """Created from its defaults, it sees a 2-epoch fit of a tiny classifier through and leaves it FINISHED
    (files it writes go to a temporary run folder; what it prints is not shown)."""
    from framework.engine.trainer import Trainer
    from framework.model import MLP
    from framework.registry import losses, optimizers

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 3)), np.arange(24) % 2
    data = Dataset(X, y, "classification", 2, "tiny")
    cb = common.named(reg, name)
    assert not isinstance(cb, str), f"cannot be created with its defaults: {cb}"
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):
        cb.set_folder(Path(folder))
        model = MLP([3, 4, 2], activation="tanh", dtype="float64", seed=0)
        trainer = Trainer(model, losses.create("cross_entropy"), optimizers.create("sgd", lr=0.1),
                          Splits(data, data.subset(slice(0, 8)), None), epochs=2, batch_size=8, callbacks=[cb])
        trainer.fit()
        missing = [str(f) for f in cb.files() if not Path(f).is_file()]
    assert trainer.status == "FINISHED", f"status {trainer.status} after 2 epochs"
    assert not missing, f"files() names {missing}, which it did not write"
    return f"{trainer.epoch} epochs, {trainer.step} batches, {len(cb.files())} files"


CHECKS = {"config": common.config_check, "hooks": _hooks, "runs": _runs}

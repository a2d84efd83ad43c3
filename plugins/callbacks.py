"""Built-in trainer callbacks: the `callbacks` config group's entries (conf/callbacks/). The classes live
in the engine, which runs them; registering them here makes them config options like a user's."""
from __future__ import annotations

from framework.engine.checkpoint import Checkpointer
from framework.engine.profile import Profiler
from framework.engine.trainer import EarlyStopping
from framework.registry import callbacks

callbacks.register("early_stopping")(EarlyStopping)
callbacks.register("model_checkpoint")(Checkpointer)
callbacks.register("profiler")(Profiler)

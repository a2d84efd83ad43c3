"""A from-scratch framework for fully-connected networks: hand-derived backprop, registries, Hydra, MLflow.

`compose`, `train` and `Result` (from `framework.train`) import Hydra, so they load on first use:
`import framework` stays light.
"""
from framework.engine.callbacks import BatchRecord, Callback
from framework.engine.data import Dataset, Splits
from framework.engine.step import train_step
from framework.engine.trainer import EarlyStopping, Trainer
from framework.errors import ConfigError, DivergenceError, FrameworkError, ShapeError, UnknownNameError
from framework.inference import load
from framework.interfaces import (
    Activation,
    Backend,
    ElementwiseActivation,
    Initializer,
    Loss,
    Metric,
    Optimizer,
    Scheduler,
)
from framework.model import MLP

__all__ = [
    "Activation", "Backend", "BatchRecord", "Callback", "ConfigError", "Dataset", "DivergenceError", "EarlyStopping",
    "ElementwiseActivation", "FrameworkError", "Initializer", "Loss", "MLP", "Metric", "Optimizer", "Result",
    "Scheduler", "ShapeError", "Splits", "Trainer", "UnknownNameError", "compose", "load", "train", "train_step",
]
_COMMAND = ("train", "compose", "Result")  # names of framework.train: `train` is the (callable) module itself


def __getattr__(name: str):
    if name not in _COMMAND:
        raise AttributeError(f"module 'framework' has no attribute {name!r}")
    import importlib

    command = importlib.import_module("framework.train")  # binds `framework.train` to the module
    return command if name == "train" else getattr(command, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_COMMAND})

"""A from-scratch framework for fully-connected networks: hand-derived backprop, registries, Hydra, MLflow."""
from framework.engine.callbacks import BatchRecord, Callback
from framework.engine.step import train_step
from framework.engine.trainer import Trainer
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
    "Activation", "Backend", "BatchRecord", "Callback", "ConfigError", "DivergenceError",
    "ElementwiseActivation", "FrameworkError", "Initializer", "Loss", "MLP", "Metric", "Optimizer", "Scheduler",
    "ShapeError", "Trainer", "UnknownNameError", "load", "train_step",
]

"""A from-scratch framework for fully-connected networks: hand-derived backprop, registries, Hydra, MLflow."""
from .callbacks import BatchRecord, Callback
from .errors import ConfigError, DivergenceError, FrameworkError, ShapeError, UnknownNameError
from .inference import load
from .interfaces import Activation, Backend, ElementwiseActivation, Initializer, Loss, Metric, Optimizer, Scheduler
from .model import MLP
from .step import train_step
from .trainer import Trainer

__all__ = [
    "Activation", "Backend", "BatchRecord", "Callback", "ConfigError", "DivergenceError",
    "ElementwiseActivation", "FrameworkError", "Initializer", "Loss", "MLP", "Metric", "Optimizer", "Scheduler",
    "ShapeError", "Trainer", "UnknownNameError", "load", "train_step",
]

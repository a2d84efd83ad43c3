"""A from-scratch framework for fully-connected networks: hand-derived backprop, registries, Hydra, MLflow."""
from .callbacks import BatchRecord, Callback
from .errors import ConfigError, DivergenceError, FrameworkError, ShapeError, UnknownNameError
from .inference import load
from .interfaces import Activation, Backend, ElementwiseActivation, Loss, Optimizer, Scheduler
from .model import MLP
from .trainer import Trainer

__all__ = [
    "Activation", "Backend", "BatchRecord", "Callback", "ConfigError", "DivergenceError",
    "ElementwiseActivation", "FrameworkError", "Loss", "MLP", "Optimizer", "Scheduler", "ShapeError", "Trainer",
    "UnknownNameError", "load",
]

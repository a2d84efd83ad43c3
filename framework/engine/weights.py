"""The weights file: what `weights.npz` holds (artifact and checkpoint).

`export(trainer)`: the parameters by name ("layers.0.W", ...) and, under `pipeline/`, the task, the
train-set standardization (x_mean, x_std: (features,)), the feature names and the class labels;
`framework.inference.load` rebuilds a model from it and the run's `config.yaml`.
"""
from __future__ import annotations

import numpy as np

PIPELINE = "pipeline/"
WEIGHTS, CONFIG = "weights.npz", "config.yaml"
# where a folder keeps them: an artifact folder, a Hydra run folder (its checkpoint), a checkpoint folder
LAYOUTS = ((WEIGHTS, CONFIG), (f"checkpoint/{WEIGHTS}", f".hydra/{CONFIG}"), (WEIGHTS, f"../.hydra/{CONFIG}"))


def export(trainer) -> dict[str, np.ndarray]:
    """The model's parameters (host arrays) and the input pipeline of its training data, as arrays."""
    splits, train = trainer.splits, trainer.splits.train
    out = {**trainer.model.state_dict(), f"{PIPELINE}task": np.array(train.task)}
    if splits.x_mean is not None:
        out[f"{PIPELINE}x_mean"], out[f"{PIPELINE}x_std"] = splits.x_mean, splits.x_std
    if train.feature_names:
        out[f"{PIPELINE}features"] = np.array(train.feature_names)
    if train.task != "regression":
        labels = train.classes if train.classes is not None else np.arange(train.n_classes)
        out[f"{PIPELINE}classes"] = np.asarray(labels)
    return out


def parameters(arrays: dict) -> dict:
    """The model parameters of an `export` dict (without the pipeline entries)."""
    return {k: v for k, v in arrays.items() if not k.startswith(PIPELINE)}

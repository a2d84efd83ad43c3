"""Use a trained model on raw features: the weights plus what the input pipeline did
(`framework.engine.weights`). `load(source)` rebuilds the model from a weights file and the run's
`config.yaml`. Loading runs no code the model names: the config's `plugins.paths` are not imported
(a tampered config.yaml must not run files); plugin folders are imported only when the caller names them.

    model = framework.load("outputs/2026-11-29/12-00-00")   # or an MLflow run id (prefix), or an artifact folder
    model = framework.load("runs")                           # a folder holding one run folder
    model = framework.load(run_id, plugins=["my_plugins/"])  # a model whose activation or loss is a user plugin
    model = from_trainer(trainer)                            # a Trainer's model, as `load` gives it once saved
    model.predict(X)          # X (n, features) raw: class labels (n,), or values (n, k) for regression
    model.predict_proba(X)    # (n, classes) probabilities, columns in the order of model.classes
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from framework.engine.weights import CONFIG, LAYOUTS, PIPELINE, WEIGHTS, export, parameters
from framework.errors import ConfigError, ShapeError
from framework.model import MLP
from framework.registry import activations, losses


class TrainedModel:
    """An MLP with its input pipeline: `X` raw (n, features) -> standardized -> forward -> the loss's
    output map (softmax/sigmoid probabilities, or values)."""

    def __init__(self, mlp: MLP, loss, arrays: dict[str, np.ndarray]):
        self.mlp, self.loss = mlp, loss
        pipe = {k[len(PIPELINE):]: v for k, v in arrays.items() if k.startswith(PIPELINE)}
        self.task = str(pipe["task"])
        self.x_mean, self.x_std = pipe.get("x_mean"), pipe.get("x_std")
        self.features = [str(f) for f in pipe["features"]] if "features" in pipe else None
        self.classes = pipe.get("classes")
        self.n_features = mlp.sizes[0]

    def __repr__(self) -> str:
        classes = "" if self.classes is None else f", classes={self.classes.tolist()}"
        return f"TrainedModel(sizes={self.mlp.sizes}, task={self.task!r}{classes})"

    def scores(self, X) -> np.ndarray:
        """(n, outputs) float64 in target space."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ShapeError(f"X has shape {X.shape}; the model takes (n, {self.n_features}) raw features"
                             + (f": {', '.join(self.features)}" if self.features else ""))
        if not np.isfinite(X).all():
            r, c = np.argwhere(~np.isfinite(X))[0]
            raise ConfigError(f"X has a non-finite value {X[r, c]} at row {r}, column {c}")
        if self.x_mean is not None:
            X = (X - self.x_mean) / self.x_std
        be = self.mlp.backend
        return be.to_numpy(self.loss.predict(be.xp, self.mlp.forward(be.asarray(X)))).astype(np.float64)

    def predict_proba(self, X) -> np.ndarray:
        """(n, classes) class probabilities (classification and binary)."""
        if self.task == "regression":
            raise ConfigError("predict_proba: this model does regression; use predict")
        p = self.scores(X)
        return np.hstack([1 - p, p]) if p.shape[1] == 1 else p

    def predict(self, X) -> np.ndarray:
        """Class labels (n,) as `framework.engine.tasks.labels` predicts them, or values (n, k) for regression."""
        return self.scores(X) if self.task == "regression" else self.labels(self.predict_proba(X))

    def labels(self, proba: np.ndarray) -> np.ndarray:
        """Class labels (n,) from `predict_proba`'s (n, classes) probabilities."""
        from framework.engine.tasks import labels

        return self.classes[labels(self.task, proba)]


def from_files(weights: Path, config: Path, plugins=None) -> TrainedModel:
    """The model of a `weights.npz` (an `export`) and the run's resolved `config.yaml`; `plugins`: folders
    (or .py files) of user plugins to import first (never the config's own `plugins.paths`)."""
    from framework.discovery import load_paths

    cfg = read_config(config)
    arrays = read_weights(weights)
    if f"{PIPELINE}task" not in arrays:
        raise ConfigError(f"'{weights}' holds weights only (written before the input pipeline was saved with "
                          "them); retrain the model to predict on raw features")
    load_paths(plugins or [])  # the built-ins, $FRAMEWORK_PLUGIN_PATH, entry points and `plugins`
    missing = [f"{r.kind} '{node.name}'" for r, node in ((activations, cfg.activation),
                                                         (activations, cfg.output_activation), (losses, cfg.loss))
               if node.name not in r]
    if missing:
        paths = (cfg.get("plugins") or {}).get("paths")
        named = f" (the config names plugins.paths={list(paths)})" if paths else ""
        raise ConfigError(f"the model uses {', '.join(dict.fromkeys(missing))}, not registered here{named}; "
                          "loading a model runs no code it names: give the plugin folder with "
                          "`--plugins DIR` (python -m framework.predict) or framework.load(..., plugins=[DIR])")
    check_finite(weights, arrays)
    act, out_act, loss = (_create(r, node) for r, node in ((activations, cfg.activation),
                                                            (activations, cfg.output_activation), (losses, cfg.loss)))
    try:
        return from_arrays(arrays, act, out_act, loss)
    except ValueError as e:
        raise ConfigError(f"'{weights}' is not a valid weights file: {e}") from None


def from_arrays(arrays: dict[str, np.ndarray], activation, output_activation, loss) -> TrainedModel:
    """The model of `export` arrays as `load` builds it: a float64 NumPy MLP (its sizes read off the weights;
    `activation`: one for every hidden layer, or a list) with the arrays' input pipeline."""
    params = parameters(arrays)
    sizes = [params["layers.0.W"].shape[1]] + [params[f"layers.{l}.W"].shape[0] for l in range(len(params) // 2)]
    mlp = MLP(sizes, activation=activation, output_activation=output_activation, dtype="float64")
    mlp.load_state_dict(params)
    return TrainedModel(mlp, loss, arrays)


def from_trainer(trainer) -> TrainedModel:
    """A `Trainer`'s model (as it is now) with its splits' input pipeline, as `load` gives it once a run
    saved it: predicts on raw features (float64, NumPy)."""
    acts = trainer.model.activations
    return from_arrays(export(trainer), acts[:-1], acts[-1], trainer.loss)


def read_config(path: Path):
    """A run's resolved config.yaml (DictConfig) with the activation, output_activation and loss a model
    needs; a file that is not one is a ConfigError saying so."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    try:
        cfg = OmegaConf.load(path)
    except (YAMLError, OmegaConfBaseException, UnicodeDecodeError) as e:
        raise ConfigError(f"'{path}' is not a run's config.yaml ({type(e).__name__}); copy the run's file again") \
            from None
    lacking = [k for k in ("activation", "output_activation", "loss")
               if not isinstance(cfg, DictConfig) or not isinstance(cfg.get(k), DictConfig) or "name" not in cfg[k]]
    if lacking:
        raise ConfigError(f"'{path}' is not a run's config.yaml: it names no {', '.join(lacking)}")
    return cfg


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a weights.npz (no pickle); anything else is a ConfigError saying so."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ConfigError(f"'{path}' is not a valid weights file (a .npz archive of numeric arrays): "
                          f"{type(e).__name__}; retrain, or copy the run's weights.npz again") from None
    if "layers.0.W" not in arrays:
        raise ConfigError(f"'{path}' is not a valid weights file: it holds no layer weights ({', '.join(arrays)})")
    return arrays


def check_finite(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """ConfigError naming the first array of `arrays` with a NaN/inf, and a zero input scale (x_std == 0
    would divide by zero): such a model would predict NaN."""
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ConfigError(f"'{path}' is damaged: {name} holds {np.count_nonzero(~np.isfinite(a))} NaN/inf "
                              "value(s); use a checkpoint from before training diverged, or retrain")
    std = arrays.get(f"{PIPELINE}x_std")
    if std is not None and (std <= 0).any():
        raise ConfigError(f"'{path}' is damaged: {PIPELINE}x_std is {float(std[std <= 0][0])} for feature "
                          f"{int(np.flatnonzero(std <= 0)[0])} (standardization divides by it); retrain")


def _create(registry, node):
    from framework.run.config import kwargs

    return registry.create(node.name, **kwargs(node))


def load(source, uri: str | None = None, plugins=None) -> TrainedModel:
    """The trained model of `source`: a folder (an artifact folder with weights.npz and config.yaml,
    a Hydra run folder, a checkpoint folder, or a folder holding exactly one of those, such as
    `tracking.dir`; with several, a ConfigError lists them) or the id (or id prefix) of a run in the MLflow store
    `uri` (default: `framework.tracking.store_uri`). `plugins`: plugin folders to import (a model whose
    activation or loss is a user plugin needs them); nothing the model's own config names is imported."""
    from framework.tracking.table import RUN_ID

    folder = Path(source).expanduser()
    if not folder.exists() and not RUN_ID.fullmatch(str(source).lower()):
        raise ConfigError(f"'{source}' is neither a folder nor a run id (32 hex digits, or their first few)")
    if not folder.exists():
        with tempfile.TemporaryDirectory() as tmp:
            return from_files(*download(str(source), uri, Path(tmp)), plugins)
    found = model_files(folder)
    if found:
        return from_files(*found, plugins)
    below = sorted(child for child in folder.iterdir() if child.is_dir() and model_files(child))
    if len(below) == 1:
        return from_files(*model_files(below[0]), plugins)
    if below:
        names = ", ".join(child.name for child in below[:MAX_LISTED]) + (
            f" (+{len(below) - MAX_LISTED} more)" if len(below) > MAX_LISTED else "")
        raise ConfigError(f"'{source}' holds {len(below)} runs: {names}; load one by its folder, e.g. "
                          f"framework.load('{below[-1]}')")
    raise ConfigError(f"'{source}' holds no trained model: expected weights.npz and config.yaml (an MLflow "
                      f"run's artifacts), or a Hydra run folder with checkpoint/weights.npz and .hydra/config.yaml, "
                      f"there or in one folder below it")


MAX_LISTED = 10  # run folders a "holds N runs" error names


def model_files(folder: Path) -> tuple[Path, Path] | None:
    """(weights, config) of the first of `LAYOUTS` that `folder` holds, else None."""
    for weights, config in LAYOUTS:
        if (folder / weights).is_file() and (folder / config).is_file():
            return folder / weights, folder / config
    return None


def download(run: str, uri: str | None, folder: Path) -> tuple[Path, Path]:
    """weights.npz and config.yaml of run `run` (an id or a unique id prefix), downloaded into `folder`."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from framework.tracking import store_uri
    from framework.tracking.masking import mask_secrets
    from framework.tracking.store import open_store, sqlite_path
    from framework.tracking.table import resolve_run_id

    db = sqlite_path(store_uri(uri))
    if db is not None and not db.is_file():  # opening it would create an empty store
        raise ConfigError(f"'{run}' is neither a folder nor a run id of a store: there is no store {db} "
                          "(give --uri / uri= of the store that holds the run)")
    client = open_store(store_uri(uri))
    try:
        run_id = resolve_run_id(client, run)
    except ConfigError as e:
        raise ConfigError(f"'{run}' is neither a folder nor a run of {mask_secrets(store_uri(uri))}: {e}") from None
    try:
        return tuple(Path(client.download_artifacts(run_id, name, str(folder))) for name in (WEIGHTS, CONFIG))
    except Exception as e:  # noqa: BLE001 - MlflowException, OSError: the run has no such artifact
        raise ConfigError(f"run {run_id} has no {WEIGHTS} and {CONFIG} artifacts to load ({type(e).__name__}); "
                          "was it FINISHED?") from None

"""Checkpoints: weights, optimizer state, RNG state and loop position as .npz + JSON (never pickle).

A checkpoint is a folder:
    weights.npz     model parameters by name ("layers.0.W", ...) and the input pipeline (`framework.inference.export`)
    optimizer.npz   optimizer state arrays ("<slot>/<param>") and scalars ("scalars/<name>", 0-d float64/int64)
    best.npz        weights of the best epoch, when early stopping restores them (optional)
    state.json      {"format": 1, "optimizer_t": t, "trainer": Trainer.state()}
It is written to a temporary sibling and renamed into place, so a crash never leaves half a checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from framework.engine.callbacks import Callback
from framework.engine.weights import export, parameters
from framework.errors import ConfigError
from framework.interfaces import SCALARS

FORMAT = 1
FILES = ("weights.npz", "optimizer.npz", "state.json")


class CheckpointError(ConfigError):
    """A checkpoint folder is missing, truncated or corrupted."""


def save_checkpoint(trainer, directory) -> Path:
    """Write `trainer`'s full state to `directory` (replacing it atomically); returns the path."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    be = trainer.model.backend
    np.savez(tmp / "weights.npz", **export(trainer))
    opt = trainer.optimizer.state_dict()
    np.savez(tmp / "optimizer.npz", **{k: _host(be, k, v) for k, v in opt.items() if k != "t"})
    if trainer.best_weights is not None:
        np.savez(tmp / "best.npz", **trainer.best_weights)
    state = {"format": FORMAT, "optimizer_t": opt["t"], "trainer": trainer.state()}
    (tmp / "state.json").write_text(json.dumps(state))
    old = directory.with_name(directory.name + ".old")
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _host(be, key: str, value):
    """An optimizer state entry as a NumPy array: a scalar ("scalars/<name>") as a 0-d array of its exact
    value (a Python float is a float64, so it round-trips bit for bit), an array from the device."""
    return np.asarray(value) if key.startswith(f"{SCALARS}/") else be.to_numpy(value)


def check_free(directory) -> None:
    """CheckpointError if `directory` already holds a checkpoint: a new run (one without trainer.resume)
    never overwrites an earlier run's."""
    if any((Path(directory) / f).is_file() for f in FILES):
        raise CheckpointError(f"'{directory}' already holds the checkpoint of an earlier run; continue that run with "
                              f"trainer.resume={directory}, or give this run a new folder (hydra.run.dir=<new folder> "
                              "or callbacks.model_checkpoint.directory=<new folder>)")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"checkpoint file '{path}' is corrupted or truncated ({type(e).__name__}: {e}); "
                              f"use another checkpoint or start without trainer.resume") from None


def load_checkpoint(directory) -> tuple[dict, dict, dict]:
    """(weights, optimizer state, state.json contents) from a checkpoint folder, validated; best
    weights, when saved, are in state["best_weights"]."""
    directory = Path(directory)
    missing = [f for f in FILES if not (directory / f).is_file()]
    if missing:
        raise CheckpointError(f"'{directory}' is not a complete checkpoint: missing {', '.join(missing)}")
    try:
        state = json.loads((directory / "state.json").read_text())
        if state.get("format") != FORMAT:
            raise ValueError(f"format {state.get('format')!r}, expected {FORMAT}")
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint state '{directory / 'state.json'}' is unreadable: {e}") from None
    best = directory / "best.npz"
    state["best_weights"] = _load_npz(best) if best.is_file() else None
    return _load_npz(directory / "weights.npz"), _load_npz(directory / "optimizer.npz"), state


def restore_checkpoint(trainer, directory) -> None:
    """Put the model, optimizer and loop of `trainer` back where the checkpoint left them."""
    weights, opt, state = load_checkpoint(directory)
    be = trainer.model.backend
    try:
        trainer.model.load_state_dict(parameters(weights))
    except ValueError as e:
        raise CheckpointError(f"checkpoint '{directory}' does not fit this model: {e}") from None
    trainer.optimizer.load_state_dict({"t": state["optimizer_t"], **{
        k: v.item() if k.startswith(f"{SCALARS}/") else be.asarray(v, trainer.model.dtype) for k, v in opt.items()}})
    trainer.load_state(state["trainer"], state["best_weights"])


class Checkpointer(Callback):
    """Saves to `directory` (None: <run folder>/checkpoint; no run folder: not at all) every `every_epochs`
    epochs (0: never), when the run is KILLED, and at the end."""

    def __init__(self, directory: str | None = None, every_epochs: int = 0):
        self.directory, self.every_epochs = directory, every_epochs

    def set_folder(self, folder) -> None:
        if self.directory is None and folder is not None:
            self.directory = str(Path(folder) / "checkpoint")

    def on_epoch_end(self, trainer, epoch, logs):
        if self.directory and self.every_epochs and (epoch + 1) % self.every_epochs == 0:
            trainer.last_checkpoint = save_checkpoint(trainer, self.directory)

    def on_train_end(self, trainer, status, logs):
        if self.directory and status in ("KILLED", "FINISHED"):
            trainer.last_checkpoint = save_checkpoint(trainer, self.directory)

"""What a run trained on, as the run log records it (`messages.DataSets`); the training side (no mlflow).

The digest of a split is the sha256 of its full X and y (shape, dtype and every byte), not MLflow's
default (`mlflow.data.from_numpy` hashes the first 10,000 values): two runs on the same rows show the
same digest, one changed value a new one. The arrays are those the model trains on (after
`split.standardize`), so the split's seed and fractions are part of what the digest identifies.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from framework.tracking.messages import DataSets

EXAMPLE_ROWS = 2


def digest(*arrays: np.ndarray) -> str:
    """sha256 hex of the arrays' shapes, dtypes and bytes (C order)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source(data_cfg) -> dict:
    """{"path", "sha256"} of a data file (`data=file`), else {"dataset": registered name, "args": its arguments}."""
    from framework.run.config import kwargs

    args = kwargs(data_cfg)
    if data_cfg.name == "file" and args.get("path") and Path(args["path"]).expanduser().is_file():
        path = Path(args["path"]).expanduser().resolve()
        return {"path": str(path), "sha256": file_sha256(path)}
    return {"dataset": str(data_cfg.name), "args": args}


def describe(data_cfg, splits) -> DataSets:
    """The DataSets record of `splits` (`framework.engine.data.Splits`) loaded as `data_cfg` says."""
    parts = {}
    for name in ("train", "val", "test"):
        ds = getattr(splits, name)
        if ds is not None:
            parts[name] = {"digest": digest(ds.X, ds.y), "features_shape": list(ds.X.shape),
                           "targets_shape": list(ds.y.shape), "targets_dtype": ds.y.dtype.name}
    X = splits.train.X[:EXAMPLE_ROWS]
    if splits.x_mean is not None:
        X = X * splits.x_std + splits.x_mean  # back in raw feature space, where the model's users are
    names = splits.train.feature_names
    return DataSets(splits.train.name, parts, source(data_cfg), list(names) if names else None, X.tolist())

"""Data: the `Dataset` container, seeded stratified splits, train-fitted standardization, loss targets,
and reading CSV files (errors name the file, line and column).

Shapes: `X` is `(n, features)` float64. `y` is int64 class indices `(n,)` for "classification" and
"binary", float64 `(n, k)` (always 2-D) for "regression". Concrete data sets live in `plugins/datasets.py`.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from framework.engine.tasks import TASKS, output_size
from framework.errors import ConfigError

__all__ = ["TASKS", "Dataset", "Splits", "split", "standardize", "validate"]


@dataclass
class Dataset:
    """`X` (n, features) float64; `y` (n,) int64 classes or (n, k) float64 regression values;
    `classes` (n_classes,): the label of each class index as the source names it (None: 0..C-1);
    `test_rows` (m,): indices of the rows the source fixes as its test part (None: `split` draws one)."""

    X: np.ndarray
    y: np.ndarray
    task: str
    n_classes: int | None
    name: str
    feature_names: list[str] | None = None
    classes: np.ndarray | None = None
    test_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.X)

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def n_targets(self) -> int:
        """Model outputs this data set needs with value targets (`framework.engine.tasks.output_size`)."""
        return output_size(self, "values")

    def subset(self, idx) -> Dataset:
        """Rows `idx` (indices or boolean mask) as a new Dataset (with no fixed test rows)."""
        return replace(self, X=self.X[idx], y=self.y[idx], test_rows=None)


@dataclass
class Splits:
    """Train/val/test parts; `x_mean`, `x_std` (features,) are set by `standardize`."""

    train: Dataset
    val: Dataset | None
    test: Dataset | None
    x_mean: np.ndarray | None = None
    x_std: np.ndarray | None = None


def split(ds: Dataset, val_fraction: float = 0.15, test_fraction: float = 0.15,
          seed: int = 0, stratify: bool = True) -> Splits:
    """Seeded split; `ceil(fraction * n)` rows each for test and val, the rest for train.

    A data set with its own test part (`ds.test_rows`, e.g. mnist1d's) keeps it: `test_fraction` is not
    used and val is `ceil(val_fraction * n_train)` rows carved from the source's training rows.
    With `stratify` (classification/binary) every class is spread over the parts in proportion
    (within one row per class). A fraction of 0 gives `None` for that part. Rows keep their order.
    """
    for label, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ConfigError(f"{label} must be in [0, 1); got {f}")
    n = len(ds)
    order = np.random.default_rng(seed).permutation(n)
    if stratify and ds.task != "regression":
        order = order[np.argsort(ds.y[order], kind="stable")]  # grouped by class, random within
    if ds.test_rows is None:
        is_test = _spread(n, test_fraction)
        val_share = val_fraction * n / max(n - int(is_test.sum()), 1)  # val_fraction counts all n rows
    else:
        is_test, val_share = np.isin(order, ds.test_rows), val_fraction
    rest = order[~is_test]
    is_val = _spread(len(rest), val_share)
    train, val, test = np.sort(rest[~is_val]), np.sort(rest[is_val]), np.sort(order[is_test])
    if len(train) == 0:
        raise ConfigError(
            f"data set '{ds.name}' ({n} rows) leaves no training rows with "
            f"val_fraction={val_fraction}, test_fraction={test_fraction}"
        )
    return Splits(ds.subset(train), ds.subset(val) if val_fraction else None,
                  ds.subset(test) if len(test) else None)


def _spread(m: int, fraction: float) -> np.ndarray:
    """Boolean mask of length m with ceil(m * fraction) True entries evenly spaced."""
    marks = np.ceil(np.round(np.arange(m + 1) * fraction, 9))
    return np.diff(marks) > 0


def standardize(splits: Splits) -> Splits:
    """`X <- (X - mean) / std` with mean/std of the train features (std 0 -> 1) applied to every part."""
    mean = splits.train.X.mean(axis=0)
    std = splits.train.X.std(axis=0)
    std[std == 0] = 1.0

    def scale(ds):
        return None if ds is None else replace(ds, X=(ds.X - mean) / std)

    return Splits(scale(splits.train), scale(splits.val), scale(splits.test), mean, std)


def validate(ds: Dataset) -> None:
    """Raise ConfigError naming the first problem: task, shapes, non-numeric or non-finite values, classes."""
    if ds.task not in TASKS:
        raise ConfigError(f"data set '{ds.name}': task must be one of {', '.join(TASKS)}; got {ds.task!r}")
    X, y = np.asarray(ds.X), np.asarray(ds.y)
    if X.ndim != 2:
        raise ConfigError(f"data set '{ds.name}': X must be 2-D (n, features); got shape {X.shape}")
    if len(X) != len(y):
        raise ConfigError(f"data set '{ds.name}': X has shape {X.shape} but y has shape {y.shape}; "
                          "they need the same number of rows")
    for label, a in (("X", X), ("y", y)):
        names = ds.feature_names if label == "X" else None
        if a.dtype.kind not in "biuf":
            raise ConfigError(f"data set '{ds.name}': {label} has non-numeric dtype {a.dtype}"
                              f"{_first_non_numeric(a, names)}")
        bad = np.argwhere(~np.isfinite(a))
        if len(bad):
            raise ConfigError(f"data set '{ds.name}': {label} has a non-finite value "
                              f"{a[tuple(bad[0])]} at {_where(bad[0], names)}")
    rows = ds.test_rows
    if rows is not None and (np.asarray(rows).ndim != 1 or len(rows) == 0 or min(rows) < 0 or max(rows) >= len(X)):
        raise ConfigError(f"data set '{ds.name}': test_rows must be a non-empty list of row indices in "
                          f"0..{len(X) - 1}")
    if ds.task == "regression":
        if y.ndim != 2:
            raise ConfigError(f"data set '{ds.name}': regression y must be 2-D (n, k); got shape {y.shape}")
        return
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ConfigError(f"data set '{ds.name}': {ds.task} y must be integer class indices of shape (n,); "
                          f"got {y.dtype} of shape {y.shape}")
    if ds.task == "binary" and ds.n_classes != 2:
        raise ConfigError(f"data set '{ds.name}': binary needs n_classes=2; got {ds.n_classes}")
    if not isinstance(ds.n_classes, (int, np.integer)) or ds.n_classes < 2:
        raise ConfigError(f"data set '{ds.name}': {ds.task} needs n_classes >= 2; got {ds.n_classes}")
    outside = np.flatnonzero((y < 0) | (y >= ds.n_classes))
    if len(outside):
        raise ConfigError(f"data set '{ds.name}': class index {y[outside[0]]} at row {outside[0]} is outside "
                          f"0..{ds.n_classes - 1}")


def _where(index, names: list[str] | None) -> str:
    """'row r, column c ('name')' for a 2-D index, 'row r' for 1-D."""
    if len(index) < 2:
        return f"row {index[0]}"
    col = f" ({names[index[1]]!r})" if names else ""
    return f"row {index[0]}, column {index[1]}{col}"


def _first_non_numeric(a: np.ndarray, names: list[str] | None) -> str:
    for index in np.ndindex(a.shape):
        try:
            float(a[index])
        except (TypeError, ValueError):
            return f"; first non-numeric value {a[index]!r} at {_where(index, names)}"
    return ""


def read_csv(path, delimiter: str = ",") -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, cells), ...]) of a CSV with a header row (a UTF-8 byte order mark is
    dropped); a repeated column name, or a row whose cell count differs from the header's, is an error
    naming it."""
    p = Path(path)
    if len(delimiter) != 1:
        raise ConfigError(f"data.delimiter must be one character; got {delimiter!r}")
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = [h.strip() for h in next(reader, [])]
            rows = [(reader.line_num, row) for row in reader if row]
    except (UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"data file '{p}' is not a UTF-8 text CSV ({type(e).__name__}: {e})") from None
    twice = [h for i, h in enumerate(header) if h in header[:i]]
    if twice:
        raise ConfigError(f"data file '{p}': the header names column {twice[0]!r} more than once; "
                          "rename the copies so each column has its own name")
    if not rows:
        raise ConfigError(f"data file '{p}' needs a header row of column names and at least one data row")
    for line, row in rows:
        if len(row) != len(header):
            raise ConfigError(f"data file '{p}' line {line} has {len(row)} cells but the header has "
                              f"{len(header)} (delimiter {delimiter!r})")
    return header, rows


def csv_columns(path, header: list[str], rows: list[tuple[int, list[str]]], columns: list[str]) -> np.ndarray:
    """float64 (n, len(columns)) of the named columns of `read_csv`'s result; an unknown column, or
    a cell that is not a finite number, is an error naming it (line and column)."""
    unknown = [c for c in columns if c not in header]
    if unknown:
        raise ConfigError(f"data file '{path}' has no column {', '.join(map(repr, unknown))}; "
                          f"its columns: {', '.join(header)}")
    index = [header.index(c) for c in columns]
    cells = [[row[k] for k in index] for _, row in rows]
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        values = None
    bad = _first_bad_cell(cells, values)
    if bad:
        i, j = bad
        raise ConfigError(f"data file '{path}' line {rows[i][0]}, column '{columns[j]}': "
                          f"value {cells[i][j]!r} is not a finite number")
    return values


def _first_bad_cell(cells: list[list[str]], values: np.ndarray | None) -> tuple[int, int] | None:
    """(row, column) of the first non-numeric, NaN or infinite cell, or None."""
    if values is not None:
        bad = np.argwhere(~np.isfinite(values))
        return tuple(bad[0]) if len(bad) else None
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            try:
                float(cell)
            except ValueError:
                return i, j
    return None

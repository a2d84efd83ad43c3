"""Built-in data sets: offline, deterministic given `seed`.

A loader's keyword arguments are the fields of its Hydra config (`data=moons data.noise=0.3`). Loaders
return raw features; the trainer standardizes them with `framework.engine.data.standardize` (train statistics).
"""
from __future__ import annotations

import functools
import os
import random
import zipfile
from pathlib import Path

import numpy as np

from framework.engine.data import TASKS, Dataset, csv_columns, read_csv, validate
from framework.errors import ConfigError
from framework.registry import datasets

SIGMOID_TERMS = np.array([[1.0, 4.0, 4.0], [-1.5, 3.0, -0.5], [1.0, 6.0, -9.0]])
"""Rows (c, w, b) of the `sigmoid_fit` curve y = sum c * sigmoid(w x + b): steps at x = -1, 0.17, 1.5."""


@datasets.register("views")
def views(n: int = 200, w: float = 1.5, b: float = 10.0, noise: float = 2.0, seed: int = 0) -> Dataset:
    """Next-day views y = w x + b + noise * N(0, 1) from today's views x ~ U(0, 20) (thousands).

    X (n, 1), y (n, 1): the linear regression the seed lecture starts from.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 20.0, (n, 1))
    y = w * x + b + noise * rng.standard_normal((n, 1))
    return Dataset(x, y, "regression", None, "views", ["views_today"])


@datasets.register("sigmoid_fit")
def sigmoid_fit(n: int = 256, seed: int = 0, noise: float = 0.02) -> Dataset:
    """y = sum_i c_i sigmoid(w_i x + b_i) + noise * N(0, 1) (terms in SIGMOID_TERMS), x ~ U(-3, 3) sorted.

    X (n, 1), y (n, 1): a curve that a hidden layer of three sigmoid units fits exactly.
    """
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-3.0, 3.0, n))[:, None]
    c, w, b = SIGMOID_TERMS.T
    y = (c / (1.0 + np.exp(-(x * w + b)))).sum(axis=1, keepdims=True) + noise * rng.standard_normal((n, 1))
    return Dataset(x, y, "regression", None, "sigmoid_fit", ["x"])


@datasets.register("xor")
def xor(n: int = 200, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Corners of the unit square (n / 4 each) plus noise * N(0, 1); y = x1 XOR x2. X (n, 2), binary."""
    rng = np.random.default_rng(seed)
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])[rng.permutation(np.arange(n) % 4)]
    y = (corners[:, 0] != corners[:, 1]).astype(np.int64)
    return Dataset(corners + noise * rng.standard_normal((n, 2)), y, "binary", 2, "xor", ["x1", "x2"])


@datasets.register("moons")
def moons(n: int = 500, noise: float = 0.2, seed: int = 0) -> Dataset:
    """Two interleaving half circles (sklearn.datasets.make_moons). X (n, 2), binary."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    return Dataset(X.astype(np.float64), y.astype(np.int64), "binary", 2, "moons", ["x1", "x2"])


@datasets.register("spirals")
def spirals(n: int = 600, classes: int = 3, noise: float = 0.2, seed: int = 0) -> Dataset:
    """`classes` spiral arms: radius r ~ U(0, 1), angle 4 k + 4 r + noise * N(0, 1) for arm k.

    X = r (sin angle, cos angle) of shape (n, 2); y = k, balanced. Binary when classes == 2.
    """
    if classes < 2:
        raise ConfigError(f"spirals needs classes >= 2; got {classes}")
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % classes
    r = rng.uniform(0.0, 1.0, n)
    angle = 4.0 * (y + r) + noise * rng.standard_normal(n)
    X = r[:, None] * np.stack([np.sin(angle), np.cos(angle)], axis=1)
    return Dataset(X, y, "binary" if classes == 2 else "classification", classes, "spirals", ["x1", "x2"])


def _bunch(bunch, name: str, task: str) -> Dataset:
    """A scikit-learn Bunch (data (n, features), target (n,)) as a Dataset."""
    X = bunch.data.astype(np.float64)
    names = [str(f) for f in bunch.feature_names]
    if task == "regression":
        return Dataset(X, bunch.target.astype(np.float64)[:, None], task, None, name, names)
    labels = np.asarray(bunch.target_names)
    return Dataset(X, bunch.target.astype(np.int64), task, len(labels), name, names, labels)


@datasets.register("digits", reference="sklearn.datasets.load_digits")
def digits() -> Dataset:
    """8x8 handwritten digits: X (1797, 64) pixel intensities 0..16, 10 classes."""
    from sklearn.datasets import load_digits

    return _bunch(load_digits(), "digits", "classification")


@datasets.register("iris", reference="sklearn.datasets.load_iris")
def iris() -> Dataset:
    """Fisher's iris: X (150, 4) sepal/petal lengths and widths in cm, 3 species."""
    from sklearn.datasets import load_iris

    return _bunch(load_iris(), "iris", "classification")


@datasets.register("wine", reference="sklearn.datasets.load_wine")
def wine() -> Dataset:
    """Wine recognition: X (178, 13) chemical measurements, 3 cultivars."""
    from sklearn.datasets import load_wine

    return _bunch(load_wine(), "wine", "classification")


@datasets.register("breast_cancer", reference="sklearn.datasets.load_breast_cancer")
def breast_cancer() -> Dataset:
    """Wisconsin breast cancer: X (569, 30) cell-nucleus features; binary, class 1 = benign, 0 = malignant."""
    from sklearn.datasets import load_breast_cancer

    return _bunch(load_breast_cancer(), "breast_cancer", "binary")


@datasets.register("diabetes", reference="sklearn.datasets.load_diabetes")
def diabetes() -> Dataset:
    """Diabetes progression: X (442, 10) (already centred and scaled by sklearn), y (442, 1) in 25..346."""
    from sklearn.datasets import load_diabetes

    return _bunch(load_diabetes(), "diabetes", "regression")


MNIST1D_TESTS = ("own", "drop", "split")


@datasets.register("mnist1d")
def mnist1d(n: int = 5000, seed: int = 42, test: str = "own") -> Dataset:
    """MNIST-1D (Greydanus 2020) generated locally: X (10 * (n // 10), 40) signals, 10 balanced classes.

    The defaults are the `mnist1d` package's (`get_dataset_args`: 5000 samples, seed 42, 80% train), i.e.
    the paper's split: 4000 training rows, then its 1000 test rows (`x_test`). `test` picks what becomes
    of those test rows: "own" (default) makes them the test split (`split.test_fraction` is not used; val
    is carved from the training rows by `split.val_fraction`); "drop" leaves them out, so a model search
    never touches them (with `split.test_fraction=0`); "split" lets `split.*` split all n rows.
    Generation takes seconds, so the arrays are cached per (n, seed) within the process.
    """
    if n < 10:
        raise ConfigError(f"mnist1d needs n >= 10 (n // 10 samples per class); got {n}")
    if test not in MNIST1D_TESTS:
        raise ConfigError(f"data.test must be one of {', '.join(MNIST1D_TESTS)}; got {test!r}")
    X, y, n_train = _mnist1d_arrays(n, seed)
    rows = slice(0, n_train) if test == "drop" else slice(None)
    test_rows = np.arange(n_train, len(X)) if test == "own" else None
    return Dataset(X[rows].copy(), y[rows].copy(), "classification", 10, "mnist1d",
                   [f"t{i}" for i in range(X.shape[1])], test_rows=test_rows)


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(X, y, n_train): `mnist1d.data.make_dataset` (never its download path), its train part (the first
    n_train rows) and test part concatenated.

    It reseeds the global `numpy.random` and `random` generators; their state is restored afterwards.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = n, seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    X = np.concatenate([data["x"], data["x_test"]]).astype(np.float64)
    return X, np.concatenate([data["y"], data["y_test"]]).astype(np.int64), len(data["x"])


@datasets.register("file")
def file(path: str = "", features: list[str] | None = None, target: str = "", task: str = "regression",
         delimiter: str = ",") -> Dataset:
    """The user's data: a CSV with a header row, or an .npz holding arrays `X` (n, features) and `y`.

    CSV: columns `features` (default: all but the target) form X, column `target` (default: the last)
    forms y. Class labels (classification/binary) must be integers; they become indices 0..C-1 in
    sorted order. Regression y is (n, k), a 1-D y becomes (n, 1).
    """
    if task not in TASKS:
        raise ConfigError(f"data.task must be one of {', '.join(TASKS)}; got {task!r}")
    if not path:
        raise ConfigError("data=file needs data.path=/absolute/path/to/data.csv (or .npz)")
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(
            f"data file '{path}' not found (looked for '{p.absolute()}'). Relative paths resolve against "
            f"the working directory ({os.getcwd()}); use an absolute path."
        )
    try:
        if p.suffix == ".npz":
            X, y, names = _read_npz(p, features, target)
        else:
            X, y, names = _read_csv(p, features, target, delimiter)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read data file '{path}': {e}") from None
    y = y.reshape(len(y), -1) if y.ndim == 1 else y
    validate(Dataset(X, y, "regression", None, p.name, names))  # shapes, numeric, finite
    classes = None
    if task == "regression":
        y, n_classes = y.astype(np.float64), None
    else:
        y, classes = _class_indices(y, task, path)
        n_classes = len(classes)
    ds = Dataset(X.astype(np.float64), y, task, n_classes, p.name, names, classes)
    validate(ds)
    return ds


def _read_csv(p: Path, features, target: str, delimiter: str):
    """(X (n, features) float64, y (n,), feature names); errors name the line and column."""
    header, rows = read_csv(p, delimiter)
    target = target or header[-1]
    features = [features] if isinstance(features, str) else list(features or [])
    features = features or [h for h in header if h != target]
    values = csv_columns(p, header, rows, [*features, target])
    return values[:, :-1], values[:, -1], features


def _read_npz(p: Path, features, target: str):
    """Arrays X and y of an .npz (no pickle), feature names None."""
    if features or target:
        raise ConfigError(f"data file '{p}': data.features and data.target select CSV columns; "
                          "an .npz must hold arrays X and y")
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, zipfile.BadZipFile) as e:  # not an .npz archive, or object arrays (need pickle)
        raise ConfigError(f"cannot read data file '{p}' as .npz of numeric arrays: {e}") from None
    if not {"X", "y"} <= arrays.keys():
        raise ConfigError(f"data file '{p}' holds arrays {sorted(arrays)}; it needs arrays named X and y")
    return arrays["X"], arrays["y"], None


def _class_indices(y: np.ndarray, task: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1) integer-valued labels -> int64 indices (n,) into the sorted distinct labels, and those labels."""
    if y.shape[1] != 1 or np.any(y != np.round(y)):
        raise ConfigError(f"data file '{path}': {task} needs one column of integer class labels")
    classes, indices = np.unique(y[:, 0], return_inverse=True)
    if task == "binary" and len(classes) != 2:
        raise ConfigError(f"data file '{path}': binary needs exactly 2 classes; found {len(classes)}: "
                          f"{classes[:10].tolist()}")
    return indices.ravel().astype(np.int64), classes.astype(np.int64)

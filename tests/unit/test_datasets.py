"""Data sets, splits, standardization, loss targets, validation and the `file` loader."""
from __future__ import annotations

import inspect
import os
import random
from functools import lru_cache

import numpy as np
import pytest

from framework.engine.data import Dataset, split, standardize, validate
from framework.engine.tasks import output_size, targets_for
from framework.errors import ConfigError
from framework.registry import datasets

SMALL = {"mnist1d": {"n": 200}}  # generating 4000 mnist1d samples takes ~2 s
BUILTIN = [name for name in datasets.names() if name != "file"]  # `file` needs a path; tested below
EXPECTED = {  # name: (task, n_classes, n_features, n_rows)
    "views": ("regression", None, 1, 200),
    "sigmoid_fit": ("regression", None, 1, 256),
    "xor": ("binary", 2, 2, 200),
    "moons": ("binary", 2, 2, 500),
    "spirals": ("classification", 3, 2, 600),
    "digits": ("classification", 10, 64, 1797),
    "iris": ("classification", 3, 4, 150),
    "wine": ("classification", 3, 13, 178),
    "breast_cancer": ("binary", 2, 30, 569),
    "diabetes": ("regression", None, 10, 442),
    "mnist1d": ("classification", 10, 40, 200),
}


@lru_cache(maxsize=None)
def load(name: str, **kwargs) -> Dataset:
    return datasets.create(name, **{**SMALL.get(name, {}), **kwargs})


def toy(task: str = "classification", n: int = 100, n_classes: int | None = 4) -> Dataset:
    """Feature 0 is the row id, so subsets can be traced back."""
    X = np.stack([np.arange(n, dtype=float), np.random.default_rng(0).normal(size=n)], axis=1)
    y = np.random.default_rng(1).normal(size=(n, 2)) if task == "regression" else np.arange(n) % n_classes
    return Dataset(X, y, task, n_classes, "toy")


# --- every registered data set ------------------------------------------------------------------

def test_every_builtin_has_expectations():
    assert set(EXPECTED) <= set(BUILTIN)


@pytest.mark.parametrize("name", BUILTIN)
def test_loader_contract(name):
    ds = load(name)
    validate(ds)
    assert ds.X.dtype == np.float64 and ds.X.ndim == 2 and len(ds) == len(ds.y) == len(ds.X)
    if ds.task == "regression":
        assert ds.y.dtype == np.float64 and ds.y.ndim == 2 and ds.n_classes is None
        assert ds.n_targets == ds.y.shape[1]
    else:
        assert ds.y.dtype == np.int64 and ds.y.shape == (len(ds),)
        assert set(np.unique(ds.y)) == set(range(ds.n_classes))  # every class occurs
        assert ds.n_targets == (1 if ds.task == "binary" else ds.n_classes)
    if ds.feature_names is not None:
        assert len(ds.feature_names) == ds.n_features
    for p in inspect.signature(datasets.get(name)).parameters.values():  # Hydra config fields
        assert p.default is not inspect.Parameter.empty and p.annotation is not inspect.Parameter.empty, p


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loader_shapes(name):
    task, n_classes, n_features, n_rows = EXPECTED[name]
    ds = load(name)
    assert (ds.task, ds.n_classes, ds.n_features, len(ds)) == (task, n_classes, n_features, n_rows)


@pytest.mark.parametrize("name", BUILTIN)
def test_loader_deterministic(name):
    a, b = load(name), datasets.create(name, **SMALL.get(name, {}))
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    if "seed" in datasets.defaults(name):
        assert not np.array_equal(load(name, seed=1).X, a.X)


def test_views_is_the_linear_relation():
    ds = datasets.create("views", n=2000, w=1.5, b=10.0, noise=0.5)
    (w, b), *_ = np.linalg.lstsq(np.c_[ds.X, np.ones(len(ds))], ds.y[:, 0], rcond=None)
    assert w == pytest.approx(1.5, abs=0.02) and b == pytest.approx(10.0, abs=0.2)


def test_sigmoid_fit_is_the_sum_of_sigmoids():
    from plugins.datasets import SIGMOID_TERMS

    ds = datasets.create("sigmoid_fit", n=50, noise=0.0)
    expect = sum(c / (1 + np.exp(-(w * ds.X[:, 0] + b))) for c, w, b in SIGMOID_TERMS)
    np.testing.assert_allclose(ds.y[:, 0], expect)
    assert np.all(np.diff(ds.X[:, 0]) >= 0)


def test_xor_labels_and_balance():
    ds = load("xor")
    np.testing.assert_array_equal(ds.y, (ds.X[:, 0] > 0.5) != (ds.X[:, 1] > 0.5))
    assert ds.y.sum() == 100


def test_spirals_two_classes_is_binary():
    ds = datasets.create("spirals", n=100, classes=2)
    assert (ds.task, ds.n_classes, ds.n_targets) == ("binary", 2, 1)
    with pytest.raises(ConfigError, match="classes >= 2"):
        datasets.create("spirals", classes=1)


def test_mnist1d_generation_is_seeded_cached_and_restores_global_rng():
    from plugins.datasets import _mnist1d_arrays

    _mnist1d_arrays.cache_clear()
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    first = datasets.create("mnist1d", n=20, seed=5)
    assert np.random.rand() == expected
    X = first.X.copy()
    first.X[:] = 0.0  # callers get copies of the cached arrays
    np.testing.assert_array_equal(datasets.create("mnist1d", n=20, seed=5).X, X)  # cached
    _mnist1d_arrays.cache_clear()
    np.testing.assert_array_equal(datasets.create("mnist1d", n=20, seed=5).X, X)  # generated again
    with pytest.raises(ConfigError, match="n >= 10"):
        datasets.create("mnist1d", n=5)



def test_mnist1d_test_split_is_the_packages_own():
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    assert (datasets.defaults("mnist1d")["n"], datasets.defaults("mnist1d")["seed"]) == (args.num_samples, args.seed)
    args.num_samples, args.seed = 200, 42
    rng_states = np.random.get_state(), random.getstate()
    try:
        ref = make_dataset(args)  # 160 train, 40 test; it reseeds the global generators: restored after
    finally:
        np.random.set_state(rng_states[0])
        random.setstate(rng_states[1])
    s = split(load("mnist1d", seed=42), val_fraction=0.15, test_fraction=0.3, seed=1)  # test_fraction unused
    np.testing.assert_array_equal(s.test.X, ref["x_test"])
    np.testing.assert_array_equal(s.test.y, ref["y_test"])
    assert (len(s.train), len(s.val)) == (136, 24)  # val: ceil(0.15 * 160) of the package's training rows
    train_rows = {r.tobytes() for r in ref["x"]}
    assert all(r.tobytes() in train_rows for r in np.concatenate([s.train.X, s.val.X]))
    assert split(load("mnist1d", seed=42, test="split"), 0.15, 0.3).test.X.shape == (60, 40)  # all 200 rows
    dropped = split(load("mnist1d", seed=42, test="drop"), 0.15, 0.0)
    assert (len(dropped.train), len(dropped.val)) == (136, 24)
    assert dropped.test is None and not {r.tobytes() for r in ref["x_test"]} & {r.tobytes() for r in dropped.train.X}
    with pytest.raises(ConfigError, match="data.test must be one of own, drop, split; got 'none'"):
        datasets.create("mnist1d", n=20, test="none")

# --- Dataset, split, standardize ------------------------------------------------------------------

def test_dataset_properties_and_subset():
    ds = toy()
    sub = ds.subset([3, 1])
    assert (len(ds), ds.n_features, ds.n_targets) == (100, 2, 4)
    np.testing.assert_array_equal(sub.X[:, 0], [3, 1])
    np.testing.assert_array_equal(sub.y, [3, 1])
    assert (sub.task, sub.n_classes, sub.name) == ("classification", 4, "toy")
    assert toy("regression", n_classes=None).n_targets == 2


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_split_sizes_disjoint_and_ordered(task):
    ds = toy(task, n_classes=None if task == "regression" else 4)
    s = split(ds, val_fraction=0.15, test_fraction=0.2, seed=3)
    assert (len(s.train), len(s.val), len(s.test)) == (65, 15, 20)  # ceil(0.15 n), ceil(0.2 n), rest
    ids = [part.X[:, 0] for part in (s.train, s.val, s.test)]
    np.testing.assert_array_equal(np.sort(np.concatenate(ids)), np.arange(100))  # disjoint, complete
    assert all(np.all(np.diff(i) > 0) for i in ids)  # rows keep their order
    np.testing.assert_array_equal(s.train.y, ds.y[s.train.X[:, 0].astype(int)])


def test_split_is_seeded():
    ds = toy()
    same = split(ds, seed=7), split(ds, seed=7)
    np.testing.assert_array_equal(same[0].test.X, same[1].test.X)
    assert not np.array_equal(split(ds, seed=8).test.X, same[0].test.X)


def test_split_stratifies_every_class():
    y = np.repeat([0, 1, 2], [60, 30, 10])  # imbalanced
    ds = Dataset(np.zeros((100, 1)), y, "classification", 3, "imbalanced")
    for seed in range(5):
        s = split(ds, val_fraction=0.2, test_fraction=0.3, seed=seed)
        for part, fraction in ((s.val, 0.2), (s.test, 0.3)):
            counts = np.bincount(part.y, minlength=3)
            assert np.all(np.abs(counts - fraction * np.array([60, 30, 10])) < 2), counts


def test_split_zero_fraction_and_errors():
    s = split(toy(), val_fraction=0.0, test_fraction=0.0)
    assert s.val is None and s.test is None and len(s.train) == 100
    with pytest.raises(ConfigError, match="val_fraction"):
        split(toy(), val_fraction=1.0)
    with pytest.raises(ConfigError, match="no training rows"):
        split(toy(n=4), val_fraction=0.5, test_fraction=0.5)



def test_split_keeps_a_sources_test_rows():
    ds = toy()
    ds.test_rows = np.arange(80, 100)
    s = split(ds, val_fraction=0.25, test_fraction=0.0, seed=2)
    np.testing.assert_array_equal(s.test.X[:, 0], np.arange(80, 100))
    assert (len(s.train), len(s.val), s.train.test_rows) == (60, 20, None)  # val: ceil(0.25 * 80)
    assert split(ds, val_fraction=0.0).val is None
    ds.test_rows = np.array([100])
    with pytest.raises(ConfigError, match=r"test_rows must be a non-empty list of row indices in 0..99"):
        validate(ds)

def test_standardize_uses_train_statistics():
    ds = toy(n=50)
    ds.X[:, 1] = 3.0  # a constant column: std 0 -> 1
    raw = split(ds, seed=0)
    s = standardize(raw)
    np.testing.assert_allclose(s.train.X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(s.train.X[:, 0].std(), 1.0)
    np.testing.assert_array_equal(s.train.X[:, 1], 0.0)
    mean, std = raw.train.X.mean(axis=0), raw.train.X.std(axis=0)
    np.testing.assert_allclose(s.x_mean, mean)
    np.testing.assert_allclose(s.x_std, [std[0], 1.0])
    np.testing.assert_allclose(s.test.X, (raw.test.X - mean) / [std[0], 1.0])
    assert raw.train.X[0, 1] == 3.0  # the input splits are left alone
    assert standardize(split(ds, val_fraction=0, test_fraction=0)).val is None


# --- targets_for ----------------------------------------------------------------------------------

def test_targets_for_encodings():
    binary = Dataset(np.zeros((3, 1)), np.array([0, 1, 1]), "binary", 2, "b")
    multi = Dataset(np.zeros((2, 1)), np.array([2, 0]), "classification", 3, "c")
    reg = Dataset(np.zeros((2, 1)), np.array([[1.5], [-2.0]]), "regression", None, "r")
    t = targets_for(binary, "indices")
    assert t.dtype == np.int64
    np.testing.assert_array_equal(t, [0, 1, 1])
    t = targets_for(binary, "values")
    assert t.dtype == np.float64
    np.testing.assert_array_equal(t, [[0.0], [1.0], [1.0]])
    np.testing.assert_array_equal(targets_for(multi, "values"), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(targets_for(multi, "indices"), [2, 0])
    np.testing.assert_array_equal(targets_for(reg, "values"), [[1.5], [-2.0]])


def test_output_size_widths_and_errors_naming_the_loss():
    multi = Dataset(np.zeros((2, 1)), np.array([2, 0]), "classification", 3, "c")
    reg = Dataset(np.zeros((2, 2)), np.zeros((2, 2)), "regression", None, "r")
    binary = Dataset(np.zeros((3, 1)), np.array([0, 1, 1]), "binary", 2, "b")
    widths = [output_size(ds, t) for ds in (multi, binary) for t in ("indices", "values")]
    assert widths == [3, 3, 2, 1] and output_size(reg, "values") == 2
    with pytest.raises(ConfigError, match="loss 'nll' needs class targets but data 'r' is a regression"):
        output_size(reg, "indices", "nll")
    with pytest.raises(ConfigError, match="loss 'x' declares targets='logits'.*'indices' or 'values'"):
        output_size(multi, "logits", "x")


# --- validate -------------------------------------------------------------------------------------

def make(X, y, task="classification", n_classes=3, names=None) -> Dataset:
    return Dataset(np.asarray(X), np.asarray(y), task, n_classes, "bad", names)


@pytest.mark.parametrize("ds, message", [
    (make([[0.0, 1.0, 2.0], [0.0, 1.0, np.nan]], [0, 1]), r"non-finite value nan at row 1, column 2"),
    (make([[0.0, np.inf]], [0], names=["a", "b"]), r"row 0, column 1 \('b'\)"),
    (make([[0.0], [1.0]], [[0.0], [np.inf]], "regression", None), r"y has a non-finite value inf at row 1"),
    (make(np.array([[1, "abc"]], dtype=object), [0]), r"non-numeric.*'abc' at row 0, column 1"),
    (make([[0.0], [1.0]], [0, 3]), r"class index 3 at row 1 is outside 0..2"),
    (make([[0.0], [1.0]], [0, -1]), r"class index -1"),
    (make([0.0, 1.0], [0, 1]), r"X must be 2-D .* shape \(2,\)"),
    (make(np.zeros((3, 2)), [0, 1, 2, 0]), r"X has shape \(3, 2\) but y has shape \(4,\)"),
    (make([[0.0]], [0.5]), r"integer class indices"),
    (make([[0.0]], [0], "binary", 3), r"binary needs n_classes=2"),
    (make([[0.0]], [0.5], "regression", None), r"regression y must be 2-D"),
    (make([[0.0]], [0], "ranking"), r"task must be one of"),
])
def test_validate_names_the_problem(ds, message):
    with pytest.raises(ConfigError, match=message):
        validate(ds)


# --- the `file` loader ----------------------------------------------------------------------------

def write(path, text):
    path.write_text(text)
    return str(path)


def test_file_csv(tmp_path):
    path = write(tmp_path / "d.csv", "a,b,label\n1,2,5\n3,4,1\n\n5,6,2\n7,8,5\n")
    ds = datasets.create("file", path=path, target="label", task="classification")
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4], [5, 6], [7, 8]])
    np.testing.assert_array_equal(ds.y, [2, 0, 1, 2])  # labels 1, 2, 5 -> 0, 1, 2
    assert (ds.task, ds.n_classes, ds.feature_names, ds.name) == ("classification", 3, ["a", "b"], "d.csv")
    ds = datasets.create("file", path=path, features="b")  # target defaults to the last column
    np.testing.assert_array_equal(ds.X, [[2], [4], [6], [8]])
    np.testing.assert_array_equal(ds.y, [[5], [1], [2], [5]])
    assert ds.y.dtype == np.float64 and ds.task == "regression"
    path = write(tmp_path / "s.csv", "x;y\n0.5;1\n1.5;0\n")
    ds = datasets.create("file", path=path, task="binary", delimiter=";")
    assert (ds.n_classes, ds.y.tolist(), ds.X.tolist()) == (2, [1, 0], [[0.5], [1.5]])


def test_file_npz(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.arange(6).reshape(3, 2), y=np.array([0.5, 1.0, 2.0]))
    ds = datasets.create("file", path=str(path))
    assert ds.X.dtype == np.float64 and ds.y.shape == (3, 1) and ds.feature_names is None
    np.savez(path, X=np.zeros((3, 2)), y=np.array([1, 0, 1]))
    ds = datasets.create("file", path=str(path), task="binary")
    assert (ds.task, ds.y.tolist()) == ("binary", [1, 0, 1])


@pytest.mark.parametrize("text, kwargs, message", [
    ("a,b\n1,2\n", {"features": ["a", "c"], "target": "b"}, r"no column 'c'; its columns: a, b"),
    ("a,b\n1,2\n", {"target": "z"}, r"no column 'z'; its columns: a, b"),
    ("a,b\n1,2\n3,x\n", {}, r"line 3, column 'b': value 'x' is not a finite number"),
    ("a,b\n1,2\n,4\n", {}, r"line 3, column 'a': value ''"),
    ("a,b\n1,nan\n", {}, r"line 2, column 'b': value 'nan'"),
    ("a,b\n1,2\n-inf,2\n", {}, r"line 3, column 'a': value '-inf'"),
    ("a,b\n1,2\n3\n", {}, r"line 3 has 1 cells but the header has 2"),
    ("a,b\n", {}, r"at least one data row"),
    ("a,b\n1,0.5\n", {"task": "classification"}, r"integer class labels"),
    ("a,b\n1,0\n2,1\n3,2\n", {"task": "binary"}, r"exactly 2 classes; found 3"),
    ("a,b\n1,0\n", {"task": "ranking"}, r"data.task must be one of"),
    ("a,b\n1,0\n", {"delimiter": ";;"}, r"one character"),
])
def test_file_csv_errors(tmp_path, text, kwargs, message):
    path = write(tmp_path / "d.csv", text)
    with pytest.raises(ConfigError, match=message):
        datasets.create("file", path=path, **kwargs)


def test_file_missing_path(tmp_path):
    with pytest.raises(ConfigError, match="data.path="):
        datasets.create("file")
    with pytest.raises(ConfigError) as e:
        datasets.create("file", path="nowhere/d.csv")
    assert "nowhere/d.csv" in str(e.value) and os.getcwd() in str(e.value)
    assert "absolute path" in str(e.value)
    with pytest.raises(ConfigError, match="not found"):
        datasets.create("file", path=str(tmp_path))  # a folder


def test_file_npz_errors(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((2, 2)), target=np.zeros(2))
    with pytest.raises(ConfigError, match=r"holds arrays \['X', 'target'\]; it needs arrays named X and y"):
        datasets.create("file", path=str(path))
    np.savez(path, X=np.array([[1, None]], dtype=object), y=np.zeros(1))
    with pytest.raises(ConfigError, match="numeric arrays"):
        datasets.create("file", path=str(path))
    np.savez(path, X=np.array([[1.0, 2.0], [np.nan, 0.0]]), y=np.zeros(2))
    with pytest.raises(ConfigError, match="row 1, column 0"):
        datasets.create("file", path=str(path))
    np.savez(path, X=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(ConfigError, match=r"X has shape \(3, 2\) but y has shape \(2, 1\)"):
        datasets.create("file", path=str(path))
    with pytest.raises(ConfigError, match="select CSV columns"):
        datasets.create("file", path=str(path), target="y")
    path.write_bytes(b"not an archive")
    with pytest.raises(ConfigError, match="cannot read"):
        datasets.create("file", path=str(path))

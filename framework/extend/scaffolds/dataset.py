"""Data set 'my_dataset': load with plugins.paths=[<dir>] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins my_dataset --paths <dir>
Use:    python -m framework.train plugins.paths=[<dir>] data=my_dataset data.n=1000
"""
import numpy as np

from framework.engine.data import Dataset
from framework.registry import datasets


@datasets.register("my_dataset")  # published data: add reference="sklearn.datasets.load_iris" (say)
def my_dataset(n: int = 400, noise: float = 0.5, seed: int = 0) -> Dataset:
    """TODO: one line on what 'my_dataset' is, with a citation.

    x ~ N(0, I_2);  y = 1[x1 + x2 + noise * N(0, 1) > 0]   TODO: your data (placeholder: a noisy half-plane)
    Returns X (n, features) float64 and, by task: y (n,) int64 classes 0..C-1 ("binary", "classification"),
    or y (n, k) float64 ("regression"). Raw features: the trainer standardizes them. Draw from
    np.random.default_rng(seed) only: the same seed gives the same data.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))  # TODO: your features
    y = (X[:, 0] + X[:, 1] + noise * rng.standard_normal(n) > 0).astype(np.int64)  # TODO: your targets
    return Dataset(X, y, "binary", 2, "my_dataset", ["x1", "x2"])  # TODO: task, classes, feature names

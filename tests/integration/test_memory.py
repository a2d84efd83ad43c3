"""Memory of `Trainer.fit` is flat over epochs: the record buffer, batch buffers, optimizer state and
work arrays are made once; nothing a batch or an epoch allocates survives it. Measured on the trainer
itself with tracemalloc (NumPy reports its array allocations to it) and with the process's peak RSS."""
import json
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np

from framework.engine.data import Dataset, split
from framework.engine.trainer import Trainer
from framework.model import MLP
from framework.registry import losses, optimizers

ROOT = Path(__file__).resolve().parents[2]


def _trainer():
    """500 rows (the last batch of 32 is partial), shuffled, evaluated on a val split every epoch."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 20))
    ds = Dataset(X, np.argmax(X[:, :4], axis=1), "classification", 4, "blobs")
    model = MLP([20, 64, 64, 4], "relu", "identity", dtype="float32", seed=0)
    return Trainer(model, losses.create("cross_entropy"), optimizers.create("adam", lr=1e-3),
                   split(ds, 100 / 600, 0.0), epochs=2, batch_size=32)


def _fit_to(trainer, epochs):
    trainer.epochs = epochs
    trainer.fit()


def test_tracemalloc_sees_numpy_arrays():
    tracemalloc.start()
    try:
        a = np.ones(1_000_000)
        assert tracemalloc.get_traced_memory()[0] >= a.nbytes
    finally:
        tracemalloc.stop()


def test_fit_memory_is_flat_over_epochs():
    t = _trainer()
    tracemalloc.start()
    try:
        _fit_to(t, 2)
        cur2, peak2 = tracemalloc.get_traced_memory()
        _fit_to(t, 20)
        cur20, peak20 = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert t.epoch == 20
    # everything the run keeps (data, model, optimizer state, buffers) exists after epoch 2; the
    # history grows by a few floats per epoch
    assert peak20 <= peak2 * 1.02 + 16384, f"peak grew from {peak2} B after 2 epochs to {peak20} B after 20"
    assert cur20 - cur2 <= 16384, f"memory held grew from {cur2} B after 2 epochs to {cur20} B after 20"


def test_fit_peak_rss_is_flat_over_epochs():
    """In a fresh process (the peak RSS of this one reflects earlier tests)."""
    out = subprocess.run([sys.executable, __file__], check=True, capture_output=True, text=True, cwd=ROOT).stdout
    kib = json.loads(out)
    assert kib["20"] - kib["2"] <= 1024, f"peak RSS grew from {kib['2']} KiB after 2 epochs to {kib['20']} KiB after 20"


if __name__ == "__main__":  # peak RSS (KiB) after 2 and after 20 epochs
    trainer, peaks = _trainer(), {}
    for n in (2, 20):
        _fit_to(trainer, n)
        peaks[str(n)] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(peaks))

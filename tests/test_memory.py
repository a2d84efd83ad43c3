"""Memory of a training loop is flat over epochs: buffers, optimizer state and work arrays are made
once; nothing a batch allocates survives it. Measured with tracemalloc (NumPy reports its array
allocations to it)."""
import tracemalloc

import numpy as np

from framework.gradients import sq_norms
from framework.model import MLP
from framework.registry import losses, optimizers


def _epochs(n_epochs, batch=32, n=500):
    """A hand-written loop on NumPy (the shape of one training step: forward, loss, backward, grad
    norms, update); returns (current, peak) traced bytes after each epoch. The last batch is partial."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 20)).astype(np.float32)
    y = rng.integers(0, 4, n)
    m = MLP([20, 64, 64, 4], "relu", "identity", dtype="float32", seed=0)
    loss, opt = losses.create("cross_entropy"), optimizers.create("adam", lr=1e-3)
    marks = []
    for _ in range(n_epochs):
        order = rng.permutation(n)
        total = 0.0
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            out = m.forward(X[idx])
            total += float(loss.forward(np, out, y[idx]))
            m.backward(loss.backward(np, out, y[idx]), input_grad=False)
            sq_norms(np, m.grads)
            opt.step(m.params, m.grads)
        marks.append(tracemalloc.get_traced_memory())
    return marks


def test_tracemalloc_sees_numpy_arrays():
    tracemalloc.start()
    try:
        a = np.ones(1_000_000)
        assert tracemalloc.get_traced_memory()[0] >= a.nbytes
    finally:
        tracemalloc.stop()


def test_peak_memory_is_flat_over_epochs():
    tracemalloc.start()
    try:
        marks = _epochs(10)
    finally:
        tracemalloc.stop()
    (cur2, peak2), (cur10, peak10) = marks[1], marks[9]
    # everything the run keeps (model, data, optimizer state, buffers) exists after epoch 2
    assert peak10 <= peak2 * 1.02 + 4096, f"peak grew from {peak2} B after 2 epochs to {peak10} B after 10"
    assert abs(cur10 - cur2) <= 4096, f"memory held grew from {cur2} B after 2 epochs to {cur10} B after 10"

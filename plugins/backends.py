"""Array backends: NumPy on the CPU (CuPy and Array-API backends slot in beside it)."""
from __future__ import annotations

import numpy as np

from framework import Backend
from framework.registry import backends


@backends.register("numpy")
class NumpyBackend(Backend):
    """NumPy on the host; float32 by default, float64 on request."""

    xp = np
    device = "cpu"

    def asarray(self, x, dtype=None):
        return np.asarray(x, dtype=self.resolve_dtype(dtype))

    def to_numpy(self, x):
        return np.asarray(x)

    def matmul(self, a, b, out=None):
        return np.matmul(a, b, out=out)

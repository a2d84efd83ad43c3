"""Backend 'my_backend': load with plugins.paths=[<dir>] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins my_backend --paths <dir>
Use:    python -m framework.train plugins.paths=[<dir>] backend=my_backend
"""
import numpy as np

from framework import Backend
from framework.registry import backends
from framework.special import Capabilities


@backends.register("my_backend")
class MyBackend(Backend):
    """TODO: one line on what 'my_backend' is (the array library, its device).

    Data is drawn on the host with NumPy and moved once with `asarray`; results come back with
    `to_numpy`. Parameters, gradients and optimizer state stay on the backend. matmul, take, batch_sum,
    sq_norms, synchronize and limits have defaults computed with `xp` (framework.Backend); override them
    where the library does better (writing into `out=`, a stream to wait for, thread limits).
    """

    reference = None  # optional: the same math elsewhere, e.g. "numpy" (a registered backend) (checked)

    xp = np  # TODO: the library's Array API namespace (placeholder: NumPy)
    device = "cpu"  # TODO: where its arrays live
    capabilities = Capabilities(host_memory=True)  # TODO: what it can do (framework.special.Capabilities)

    def __init__(self, dtype: str = "float32"):  # TODO: your settings; each becomes backend.<arg>
        super().__init__(dtype)

    def asarray(self, x, dtype=None):
        """Host array-like -> an array of the library, of `dtype` (None: the backend's); no copy of an
        array that already is one of that dtype."""
        return np.asarray(x, dtype=self.resolve_dtype(dtype))  # TODO: the library's asarray

    def to_numpy(self, x):
        return np.asarray(x)  # TODO: the library's array -> a NumPy array on the host

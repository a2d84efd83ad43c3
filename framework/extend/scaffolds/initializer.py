"""Initializer 'my_initializer': load with plugins.paths=[<dir>] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins my_initializer --paths <dir>
Use:    python -m framework.train plugins.paths=[<dir>] initializer=my_initializer initializer.gain=2.0
"""
import math

from framework import Initializer
from framework.registry import initializers


@initializers.register("my_initializer")
class MyInitializer(Initializer):
    """TODO: one line on what 'my_initializer' is, with a citation.

    W ~ N(0, gain^2 / fan_in)      TODO: your distribution (placeholder: LeCun's normal times gain)
    Shapes: init(rng, (out, in)) -> a float64 NumPy array (out, in); fan_in = in, fan_out = out. Draw from
    `rng` only (NumPy's seeded Generator): the same seed gives the same weights on every backend.
    """

    reference = None  # optional: the same math elsewhere, e.g. "torch.nn.init.normal_" (checked)

    def __init__(self, gain: float = 1.0):  # TODO: your parameters; each becomes initializer.<arg>
        self.gain = float(gain)  # store every argument under its own name

    def __call__(self, rng, shape):
        fan_out, fan_in = shape
        return rng.normal(0.0, self.gain / math.sqrt(fan_in), shape)  # TODO: your draw

    def variance(self, fan_in, fan_out):
        return self.gain**2 / fan_in  # TODO: the variance of your weights (return None: not checked)

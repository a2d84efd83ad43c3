"""Weight initializers: `init(rng, (out, in)) -> host float64 array`, drawn with NumPy's seeded generator
so every backend starts from the same weights. fan_in = in, fan_out = out."""
from __future__ import annotations

import math

import numpy as np

from framework.interfaces import Initializer
from framework.registry import initializers


@initializers.register("zeros")
class Zeros(Initializer):
    reference = "torch.nn.init.zeros_"

    def __call__(self, rng, shape):
        return np.zeros(shape)

    def variance(self, fan_in, fan_out):
        return 0.0


@initializers.register("normal")
class Normal(Initializer):
    """N(0, std^2)."""

    reference = "torch.nn.init.normal_"

    def __init__(self, std: float = 0.01):
        self.std = float(std)

    def __call__(self, rng, shape):
        return rng.normal(0.0, self.std, shape)

    def reference_arguments(self):
        return {"mean": 0.0, "std": self.std}

    def variance(self, fan_in, fan_out):
        return self.std**2


@initializers.register("uniform")
class Uniform(Initializer):
    """U(-a, a)."""

    reference = "torch.nn.init.uniform_"

    def __init__(self, a: float = 0.05):
        self.a = float(a)

    def __call__(self, rng, shape):
        return rng.uniform(-self.a, self.a, shape)

    def reference_arguments(self):
        return {"a": -self.a, "b": self.a}

    def variance(self, fan_in, fan_out):
        return self.a**2 / 3


class _Scaled(Initializer):
    """Variance-scaling family: var = gain^2 / fan, fan from `mode`; uniform bound = sqrt(3 var)."""

    mode, gain2, dist = "fan_in", 1.0, "normal"
    reference_nonlinearity = None  # torch.nn.init.kaiming_*'s `nonlinearity` (its mode is fan_in, as here)

    def reference_arguments(self):
        return {} if self.reference_nonlinearity is None else {"nonlinearity": self.reference_nonlinearity}

    def variance(self, fan_in, fan_out):
        return self.gain2 / {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]

    def __call__(self, rng, shape):
        fan_out, fan_in = shape
        std = math.sqrt(self.variance(fan_in, fan_out))
        if self.dist == "uniform":
            bound = math.sqrt(3.0) * std
            return rng.uniform(-bound, bound, shape)
        return rng.normal(0.0, std, shape)


@initializers.register("xavier_uniform")
class XavierUniform(_Scaled):
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""

    reference = "torch.nn.init.xavier_uniform_"
    mode, dist = "fan_avg", "uniform"


@initializers.register("xavier_normal")
class XavierNormal(_Scaled):
    """N(0, 2 / (fan_in + fan_out))."""

    reference = "torch.nn.init.xavier_normal_"
    mode = "fan_avg"


@initializers.register("he_uniform")
class HeUniform(_Scaled):
    """U(-a, a), a = sqrt(6 / fan_in) (He et al. 2015, for ReLU)."""

    reference, reference_nonlinearity = "torch.nn.init.kaiming_uniform_", "relu"
    gain2, dist = 2.0, "uniform"


@initializers.register("he_normal")
class HeNormal(_Scaled):
    """N(0, 2 / fan_in)."""

    reference, reference_nonlinearity = "torch.nn.init.kaiming_normal_", "relu"
    gain2 = 2.0


@initializers.register("lecun_normal")
class LecunNormal(_Scaled):
    """N(0, 1 / fan_in) (LeCun 1998; pairs with selu)."""

    reference, reference_nonlinearity = "torch.nn.init.kaiming_normal_", "linear"

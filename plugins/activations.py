"""Built-in activations. Elementwise ones write `derivative` (their in-place backward comes from
`ElementwiseActivation`); softmax writes its full backward. ReLU and tanh also write their in-place
forward (`Activation.forward_inplace`: a over z, so their derivative reads only a)."""
from __future__ import annotations

import math

from framework import Activation, ElementwiseActivation
from framework.registry import activations
from framework.special import direct, erf, into, sigmoid


@activations.register("identity")
class Identity(ElementwiseActivation):
    """f(z) = z; f'(z) = 1."""

    reference = "torch.nn.Identity"

    def forward(self, xp, z):
        return z

    def derivative(self, xp, z, a):
        return xp.ones_like(z)

    def backward(self, xp, z, a, grad_a):
        return grad_a


@activations.register("sigmoid")
class Sigmoid(ElementwiseActivation):
    """sigma(z) = 1 / (1 + e^-z); sigma'(z) = sigma(z) (1 - sigma(z))."""

    reference = "torch.nn.functional.sigmoid"

    def forward(self, xp, z):
        return sigmoid(xp, z)

    def derivative(self, xp, z, a):
        return a * (1 - a)


@activations.register("tanh")
class Tanh(ElementwiseActivation):
    """tanh(z); tanh'(z) = 1 - tanh(z)^2."""

    reference = "torch.nn.functional.tanh"

    def forward(self, xp, z):
        return xp.tanh(z)

    def forward_inplace(self, xp, z):
        return into(xp, z, xp.tanh, z)  # backward reads only a

    def derivative(self, xp, z, a):
        return 1 - a * a


@activations.register("relu")
class ReLU(ElementwiseActivation):
    """max(z, 0); f'(z) = 1 for z > 0 else 0."""

    reference = "torch.nn.functional.relu"
    kinks = (0.0,)

    def forward(self, xp, z):
        return xp.maximum(z, 0.0)  # a Python scalar: Array API 2024.12

    def forward_inplace(self, xp, z):
        return into(xp, z, xp.maximum, z, 0.0)  # backward reads only a

    def derivative(self, xp, z, a):
        return direct(xp).astype(a > 0, a.dtype)  # a > 0 exactly where z > 0 (NumPy's `where` is ~8x slower)


@activations.register("leaky_relu")
class LeakyReLU(ElementwiseActivation):
    """z for z > 0 else alpha z; f'(z) = 1 or alpha."""

    reference = "torch.nn.functional.leaky_relu"
    kinks = (0.0,)

    def __init__(self, alpha: float = 0.01):
        self.alpha = float(alpha)

    def reference_arguments(self):
        return {"negative_slope": self.alpha}

    def forward(self, xp, z):
        return xp.where(z > 0, z, self.alpha * z)

    def derivative(self, xp, z, a):
        return xp.where(z > 0, xp.ones_like(z), xp.full_like(z, self.alpha))


@activations.register("elu")
class ELU(ElementwiseActivation):
    """z for z > 0 else alpha (e^z - 1); f'(z) = 1 or f(z) + alpha."""

    reference = "torch.nn.functional.elu"
    kinks = (0.0,)

    def __init__(self, alpha: float = 1.0):
        self.alpha = float(alpha)

    def forward(self, xp, z):
        neg = self.alpha * xp.expm1(xp.minimum(z, xp.zeros_like(z)))
        return xp.where(z > 0, z, neg)

    def derivative(self, xp, z, a):
        return xp.where(z > 0, xp.ones_like(z), a + self.alpha)


@activations.register("selu")
class SELU(ELU):
    """scale * elu(z, alpha) with the self-normalizing constants of Klambauer et al. (2017)."""

    reference = "torch.nn.functional.selu"

    ALPHA = 1.6732632423543772848170429916717
    SCALE = 1.0507009873554804934193349852946

    def __init__(self):
        super().__init__(alpha=self.ALPHA)

    def forward(self, xp, z):
        return self.SCALE * super().forward(xp, z)

    def derivative(self, xp, z, a):
        # for z <= 0: d/dz [s alpha (e^z - 1)] = s alpha e^z = a + s alpha
        return xp.where(z > 0, xp.full_like(z, self.SCALE), a + self.SCALE * self.ALPHA)


@activations.register("gelu")
class GELU(ElementwiseActivation):
    """z Phi(z). approximate="none": Phi(z) = (1 + erf(z / sqrt 2)) / 2, f'(z) = Phi(z) + z phi(z);
    approximate="tanh": 0.5 z (1 + tanh(u)), u = sqrt(2/pi) (z + 0.044715 z^3)."""

    reference = "torch.nn.functional.gelu"

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, xp, z):
        if self.approximate == "tanh":
            u = math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)
            return 0.5 * z * (1 + xp.tanh(u))
        return 0.5 * z * (1 + erf(xp, z / math.sqrt(2)))

    def derivative(self, xp, z, a):
        if self.approximate == "tanh":
            c = math.sqrt(2 / math.pi)
            t = xp.tanh(c * (z + 0.044715 * z**3))
            return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * c * (1 + 3 * 0.044715 * z * z)
        phi = xp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        return 0.5 * (1 + erf(xp, z / math.sqrt(2))) + z * phi


@activations.register("softplus")
class Softplus(ElementwiseActivation):
    """log(1 + e^(beta z)) / beta, computed as max(z,0) + log1p(e^-|beta z|)/beta; f'(z) = sigma(beta z)."""

    reference = "torch.nn.functional.softplus"

    def __init__(self, beta: float = 1.0):
        self.beta = float(beta)

    def forward(self, xp, z):
        bz = self.beta * z
        return (xp.maximum(bz, xp.zeros_like(bz)) + xp.log1p(xp.exp(-xp.abs(bz)))) / self.beta

    def derivative(self, xp, z, a):
        return sigmoid(xp, self.beta * z)


@activations.register("silu")
class SiLU(ElementwiseActivation):
    """z sigma(beta z) (swish; beta = 1 is SiLU); f'(z) = s + beta z s (1 - s), s = sigma(beta z)."""

    reference = "torch.nn.functional.silu"  # beta = 1 (its default) only: torch has no beta

    def __init__(self, beta: float = 1.0):
        self.beta = float(beta)

    def reference_arguments(self):
        return {}

    def forward(self, xp, z):
        return z * sigmoid(xp, self.beta * z)

    def derivative(self, xp, z, a):
        s = sigmoid(xp, self.beta * z)
        return s + self.beta * z * s * (1 - s)


activations.register("swish")(type("Swish", (SiLU,), {"__doc__": SiLU.__doc__}))


@activations.register("softmax")
class Softmax(Activation):
    """a_i = e^(z_i - max z) / sum_j e^(z_j - max z) over the last axis.
    Backward (vector-Jacobian product): dL/dz = a * (g - sum(g * a, axis=-1))."""

    reference = "torch.nn.functional.softmax"

    def reference_arguments(self):
        return {"dim": -1}

    def forward(self, xp, z):
        d = direct(xp)
        e = xp.exp(z - d.max(z, axis=-1, keepdims=True))
        return e / d.sum(e, axis=-1, keepdims=True)

    def backward(self, xp, z, a, grad_a):
        return a * (grad_a - direct(xp).sum(grad_a * a, axis=-1, keepdims=True))

"""Built-in optimizers; each update matches PyTorch's optimizer of the same name and arguments.

Notation per parameter p with gradient g at step t (1-based), learning rate lr. Weight decay is prepared
by the base class (`Optimizer.updates`: g + wd p, or AdamW's p (1 - lr wd)).

The updates are written with in-place operators on the parameter, its state and work arrays
(`Optimizer.work`, not part of `state_dict`), so a step allocates nothing: `into` writes a result into a
work array where the backend declares `writes_out` (NumPy, CuPy), and every y += alpha x (SGD's
p -= lr g, Adam's moments and its update) is one BLAS pass where the backend declares an `axpy` (NumPy),
two elementwise passes elsewhere (`axpy`). Both are read from the namespace of the parameters
(`framework.flat.namespace`: the backend's for the model's FlatDicts; plain arrays get the standard's
path). Each update is arranged for few passes over the arrays (a small model's step is bound by calls,
a large one's by memory). Only Array-API operations are used, so every backend runs the same code and
gets the same numbers (up to rounding: PyTorch's within 1e-12 in float64).
"""
from __future__ import annotations

import math

from framework import Optimizer
from framework.flat import namespace
from framework.registry import optimizers
from framework.special import axpy, into


@optimizers.register("sgd")
class SGD(Optimizer):
    """buf <- mu buf + g (buf_1 = g); d = g + mu buf (nesterov) or buf (momentum) or g; p <- p - lr d.
    With momentum 0 and no decay: p <- p - lr g (the seed's w <- w - eta dL/dw)."""

    reference = "torch.optim.SGD"
    elementwise = True

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        if nesterov and momentum <= 0:
            raise ValueError("sgd: nesterov=True needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    def step(self, params, grads):
        xp, mu = namespace(params), self.momentum
        for name, p, g, slot in self.updates(params, grads):
            d = g
            if mu:
                buf = slot("momentum")
                buf *= mu                                   # buf starts at 0: buf_1 = g
                buf += g
                d = buf
                if self.nesterov:
                    d = into(xp, self.work(name, "nesterov", p), xp.multiply, buf, mu)
                    d += g                                  # g + mu buf
            axpy(xp, p, -self.lr, d, self.work(name, "lr d", p))  # p -= lr d


@optimizers.register("adam")
class Adam(Optimizer):
    """g <- g + wd p (L2, as torch.optim.Adam); m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
    p <- p - lr m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps)."""

    reference = "torch.optim.Adam"
    elementwise = True

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.weight_decay = float(weight_decay)

    def reference_arguments(self):
        return {"lr": self.lr, "betas": (self.beta1, self.beta2), "eps": self.eps, "weight_decay": self.weight_decay}

    def step(self, params, grads):
        xp, b1, b2 = namespace(params), self.beta1, self.beta2
        groups = self.updates(params, grads)  # t is now this step's
        # lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps) = lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps sqrt(bc2)):
        # the bias corrections folded into two scalars (9 passes per parameter instead of 13)
        root_bc2 = math.sqrt(1 - b2**self.t)
        step_size, eps = self.lr * root_bc2 / (1 - b1**self.t), self.eps * root_bc2
        for name, p, g, slot in groups:
            scratch, update = self.work(name, "scratch", p), self.work(name, "update", p)
            m, v = slot("m"), slot("v")
            m *= b1
            axpy(xp, m, 1 - b1, g, scratch)                                       # m = b1 m + (1 - b1) g
            v *= b2
            axpy(xp, v, 1 - b2, into(xp, scratch, xp.multiply, g, g), scratch)  # v = b2 v + (1 - b2) g^2
            denom = into(xp, scratch, xp.sqrt, v)
            denom += eps
            update = into(xp, update, xp.divide, m, denom)
            axpy(xp, p, -step_size, update, update)                 # p -= step_size m / (sqrt(v) + eps)


@optimizers.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW): p <- p (1 - lr wd) before the Adam step."""

    reference = "torch.optim.AdamW"
    decoupled_decay = True

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(lr, beta1, beta2, eps, weight_decay)


@optimizers.register("rmsprop")
class RMSprop(Optimizer):
    """v <- a v + (1-a) g^2; d = g / (sqrt(v) + eps); buf <- mu buf + d and p <- p - lr buf
    (momentum > 0) or p <- p - lr d (torch.optim.RMSprop, centered=False)."""

    reference = "torch.optim.RMSprop"
    elementwise = True

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        self.alpha, self.eps, self.momentum = float(alpha), float(eps), float(momentum)
        self.weight_decay = float(weight_decay)

    def step(self, params, grads):
        xp = namespace(params)
        for name, p, g, slot in self.updates(params, grads):
            scratch, update = self.work(name, "scratch", p), self.work(name, "update", p)
            v = slot("square_avg")
            v *= self.alpha
            axpy(xp, v, 1 - self.alpha, into(xp, scratch, xp.multiply, g, g), scratch)  # v = a v + (1 - a) g^2
            denom = into(xp, scratch, xp.sqrt, v)
            denom += self.eps
            d = into(xp, scratch, xp.divide, g, denom)  # d = g / (sqrt(v) + eps)
            if self.momentum:
                buf = slot("momentum")
                buf *= self.momentum
                buf += d
                d = buf
            axpy(xp, p, -self.lr, d, update)            # p -= lr d


@optimizers.register("adagrad")
class Adagrad(Optimizer):
    """s <- s + g^2; p <- p - lr g / (sqrt(s) + eps) (torch.optim.Adagrad, lr_decay=0)."""

    reference = "torch.optim.Adagrad"
    elementwise = True

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0):
        super().__init__(lr)
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def step(self, params, grads):
        xp = namespace(params)
        for name, p, g, slot in self.updates(params, grads):
            scratch, update = self.work(name, "scratch", p), self.work(name, "update", p)
            s = slot("sum")
            s += into(xp, scratch, xp.multiply, g, g)   # s = s + g^2
            denom = into(xp, scratch, xp.sqrt, s)
            denom += self.eps
            update = into(xp, update, xp.divide, g, denom)
            axpy(xp, p, -self.lr, update, update)       # p -= lr g / (sqrt(s) + eps)

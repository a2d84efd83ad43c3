"""Built-in optimizers; each update matches PyTorch's optimizer of the same name and arguments.

Notation per parameter p with gradient g at step t (1-based), learning rate lr.
"""
from __future__ import annotations

import math

from framework import Optimizer
from framework.registry import optimizers


@optimizers.register("sgd")
class SGD(Optimizer):
    """g <- g + wd p; buf <- mu buf + g (buf_1 = g); g <- g + mu buf (nesterov) or buf; p <- p - lr g.
    With momentum 0: p <- p - lr g (the seed's w <- w - eta dL/dw)."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        if nesterov and momentum <= 0:
            raise ValueError("sgd: nesterov=True needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    def step(self, params, grads):
        self.t += 1
        for name, p in params.items():
            xp = _xp(p)
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                buf = self.slot(xp, "momentum", name, p)
                if self.t == 1:
                    buf += g
                else:
                    buf *= self.momentum
                    buf += g
                g = g + self.momentum * buf if self.nesterov else buf
            p -= self.lr * g


@optimizers.register("adam")
class Adam(Optimizer):
    """g <- g + wd p (L2, as torch.optim.Adam); m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
    p <- p - lr m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps)."""

    decoupled = False

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps, self.weight_decay = float(beta1), float(beta2), float(eps), float(weight_decay)

    def step(self, params, grads):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr / (1 - b1**self.t)
        root_bc2 = math.sqrt(1 - b2**self.t)
        for name, p in params.items():
            xp = _xp(p)
            g = grads[name]
            if self.weight_decay and self.decoupled:
                p *= 1 - self.lr * self.weight_decay
            elif self.weight_decay:
                g = g + self.weight_decay * p
            m = self.slot(xp, "m", name, p)
            v = self.slot(xp, "v", name, p)
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= step_size * m / (xp.sqrt(v) / root_bc2 + self.eps)


@optimizers.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW): p <- p (1 - lr wd) before the Adam step."""

    decoupled = True

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(lr, beta1, beta2, eps, weight_decay)


@optimizers.register("rmsprop")
class RMSprop(Optimizer):
    """v <- a v + (1-a) g^2; d = g / (sqrt(v) + eps); buf <- mu buf + d and p <- p - lr buf
    (momentum > 0) or p <- p - lr d (torch.optim.RMSprop, centered=False)."""

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        self.alpha, self.eps, self.momentum, self.weight_decay = float(alpha), float(eps), float(momentum), float(weight_decay)

    def step(self, params, grads):
        self.t += 1
        for name, p in params.items():
            xp = _xp(p)
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
            v = self.slot(xp, "square_avg", name, p)
            v *= self.alpha
            v += (1 - self.alpha) * (g * g)
            d = g / (xp.sqrt(v) + self.eps)
            if self.momentum:
                buf = self.slot(xp, "momentum", name, p)
                buf *= self.momentum
                buf += d
                d = buf
            p -= self.lr * d


@optimizers.register("adagrad")
class Adagrad(Optimizer):
    """s <- s + g^2; p <- p - lr g / (sqrt(s) + eps) (torch.optim.Adagrad, lr_decay=0)."""

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0):
        super().__init__(lr)
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def step(self, params, grads):
        self.t += 1
        for name, p in params.items():
            xp = _xp(p)
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
            s = self.slot(xp, "sum", name, p)
            s += g * g
            p -= self.lr * g / (xp.sqrt(s) + self.eps)


def _xp(arr):
    """The array namespace of `arr` (Array API `__array_namespace__`; numpy arrays have it too)."""
    return arr.__array_namespace__()

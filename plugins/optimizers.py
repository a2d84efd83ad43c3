"""Built-in optimizers; each update matches PyTorch's optimizer of the same name and arguments.

Notation per parameter p with gradient g at step t (1-based), learning rate lr.

The updates are written with in-place operators on the parameter, its state and two preallocated work
arrays per parameter (`_work`, not part of `state_dict`), so a step allocates nothing; `into` writes a
result into a work array (NumPy/CuPy: `out=`); every y += alpha x (SGD's p -= lr g, Adam's moments and
its update) is one BLAS pass where the backend declares an `axpy` (NumPy), two elementwise passes
elsewhere (`_axpy`). Each update is arranged for few passes over the arrays (a small model's step is
bound by calls, a large one's by memory). Only Array-API operations are used, so every backend runs
the same code and gets the same numbers (up to rounding: PyTorch's within 1e-12 in float64).
"""
from __future__ import annotations

import math

from framework import Optimizer
from framework.registry import optimizers
from framework.special import axpy_for, into
from framework.special import namespace_of as _xp


@optimizers.register("sgd")
class SGD(Optimizer):
    """g <- g + wd p; buf <- mu buf + g (buf_1 = g); g <- g + mu buf (nesterov) or buf; p <- p - lr g.
    With momentum 0: p <- p - lr g (the seed's w <- w - eta dL/dw)."""

    elementwise = True

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        if nesterov and momentum <= 0:
            raise ValueError("sgd: nesterov=True needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    def step(self, params, grads):
        self.t += 1
        plain, (xp, fast) = not (self.weight_decay or self.momentum), _namespace_and_axpy(params)
        for name, p, g, slot in self.groups(params, grads):
            if not plain:
                a, b = _work(self, xp, name, p)
            if self.weight_decay:
                g = _add_decay(a, g, p, self.weight_decay)
            if self.momentum:
                buf = slot("momentum")
                if self.t > 1:
                    buf *= self.momentum
                buf += g
                if self.nesterov:
                    into(b, xp.multiply, buf, self.momentum)  # g + mu buf
                    b += g
                    g = b
                else:
                    g = buf
            if not fast(p, -self.lr, g):  # p -= lr g in one BLAS pass where the backend has one
                p -= into(_work(self, xp, name, p)[1] if plain else b, xp.multiply, g, self.lr)


@optimizers.register("adam")
class Adam(Optimizer):
    """g <- g + wd p (L2, as torch.optim.Adam); m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
    p <- p - lr m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps)."""

    elementwise = True

    decoupled = False

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps, self.weight_decay = float(beta1), float(beta2), float(eps), float(weight_decay)

    def step(self, params, grads):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps) = lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps sqrt(bc2)):
        # the bias corrections folded into two scalars (9 passes per parameter instead of 13)
        root_bc2 = math.sqrt(1 - b2**self.t)
        step_size, eps = self.lr * root_bc2 / (1 - b1**self.t), self.eps * root_bc2
        xp, fast = _namespace_and_axpy(params)
        for name, p, g, slot in self.groups(params, grads):
            a, b = _work(self, xp, name, p)
            if self.weight_decay and self.decoupled:
                p *= 1 - self.lr * self.weight_decay
            elif self.weight_decay:
                g = _add_decay(a, g, p, self.weight_decay)
            m = slot("m")
            v = slot("v")
            m *= b1
            _axpy(fast, m, 1 - b1, g, b)                # m = b1 m + (1 - b1) g
            v *= b2
            _axpy(fast, v, 1 - b2, into(b, xp.multiply, g, g), b)  # v = b2 v + (1 - b2) g^2
            into(b, xp.sqrt, v)
            b += eps
            _axpy(fast, p, -step_size, into(a, xp.divide, m, b), a)  # p -= step_size m / (sqrt(v) + eps)


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

    elementwise = True

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        self.alpha, self.eps, self.momentum, self.weight_decay = float(alpha), float(eps), float(momentum), float(weight_decay)

    def step(self, params, grads):
        self.t += 1
        xp, fast = _namespace_and_axpy(params)
        for name, p, g, slot in self.groups(params, grads):
            a, b = _work(self, xp, name, p)
            if self.weight_decay:
                g = _add_decay(a, g, p, self.weight_decay)
            v = slot("square_avg")
            v *= self.alpha
            _axpy(fast, v, 1 - self.alpha, into(b, xp.multiply, g, g), b)  # v = a v + (1 - a) g^2
            into(b, xp.sqrt, v)
            b += self.eps
            d = into(b, xp.divide, g, b)                # d = g / (sqrt(v) + eps)
            if self.momentum:
                buf = slot("momentum")
                buf *= self.momentum
                buf += d
                d = buf
            _axpy(fast, p, -self.lr, d, a)


@optimizers.register("adagrad")
class Adagrad(Optimizer):
    """s <- s + g^2; p <- p - lr g / (sqrt(s) + eps) (torch.optim.Adagrad, lr_decay=0)."""

    elementwise = True

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0):
        super().__init__(lr)
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def step(self, params, grads):
        self.t += 1
        xp, fast = _namespace_and_axpy(params)
        for name, p, g, slot in self.groups(params, grads):
            a, b = _work(self, xp, name, p)
            if self.weight_decay:
                g = _add_decay(a, g, p, self.weight_decay)
            s = slot("sum")
            s += into(b, xp.multiply, g, g)             # s = s + g^2
            into(b, xp.sqrt, s)
            b += self.eps
            _axpy(fast, p, -self.lr, into(a, xp.divide, g, b), a)  # p -= lr g / (sqrt(s) + eps)


def _namespace_and_axpy(params):
    """(namespace, declared axpy) of the parameters (all live on one backend): looked up once per step."""
    first = next(iter(params.values()), None)
    return (None if first is None else _xp(first)), axpy_for(first)


def _axpy(fast, y, alpha: float, x, work) -> None:
    """y += alpha x: one BLAS pass by `fast` (the backend's declared axpy, `axpy_for`) where it applies,
    else alpha x into `work` (may be x itself, if x is scratch) and y += work."""
    if not fast(y, alpha, x):
        y += into(work, _xp(y).multiply, x, alpha)


def _add_decay(out, g, p, weight_decay):
    """out = g + wd p (L2 weight decay folded into the gradient); returns out."""
    into(out, _xp(p).multiply, p, weight_decay)
    out += g
    return out


def _work(opt, xp, name, like):
    """Two work arrays shaped like parameter `name`, made once per parameter and reused every step."""
    work = opt.__dict__.setdefault("_work", {})
    pair = work.get(name)
    if pair is None or pair[0].shape != like.shape or pair[0].dtype != like.dtype:
        pair = work[name] = (xp.empty_like(like), xp.empty_like(like))
    return pair

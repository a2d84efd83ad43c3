"""Gradient checking against central finite differences in float64.

For a function F of an array x with analytic gradient G, each element's numeric derivative is
    N_i = (F(x + h e_i) - F(x - h e_i)) / (2 h),
and the element's error is |G_i - N_i| / max(|G_i|, |N_i|, 1e-3 max_j |N_j|, floor): finite
differences carry an absolute noise of about eps |F| / h, so elements far below the array's scale are
judged against a thousandth of its largest gradient (a wrong formula is off by the gradient's own
size and still fails). Activations are checked through
the scalar F(z) = sum(g * f(z)) for a fixed random upstream gradient g, which tests the full
vector-Jacobian product (also for non-elementwise ones like softmax).
Points within `margin` of a plugin's declared `kinks` (non-differentiable points) are moved off them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framework.errors import FrameworkError


class GradcheckError(FrameworkError, AssertionError):
    """Analytic and numeric gradients disagree; carries the `GradcheckResult`."""

    def __init__(self, result: "GradcheckResult"):
        self.result = result
        super().__init__(str(result))


@dataclass
class GradcheckResult:
    """Worst element of a check: `where` names the array and index."""

    what: str
    max_error: float
    where: str
    analytic: float
    numeric: float
    tol: float

    @property
    def passed(self) -> bool:
        return bool(self.max_error < self.tol)

    def raise_if_failed(self) -> "GradcheckResult":
        if not self.passed:
            raise GradcheckError(self)
        return self

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (f"gradcheck {self.what}: {verdict}, max relative error {self.max_error:.2e} "
                f"(tol {self.tol:.0e}) at {self.where}: analytic {self.analytic:.10g}, numeric {self.numeric:.10g}")


def _numeric(f, x: np.ndarray, h: float) -> np.ndarray:
    """Central differences of scalar f at x (float64 host array), one element at a time."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f(x)
        flat[i] = old - h
        down = f(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad


def _compare(what: str, parts: dict[str, tuple[np.ndarray, np.ndarray]], tol: float, floor: float):
    worst = GradcheckResult(what, 0.0, "-", 0.0, 0.0, tol)
    for name, (ana, num) in parts.items():
        ana, num = np.asarray(ana, dtype=np.float64), np.asarray(num, dtype=np.float64)
        if ana.shape != num.shape:
            raise GradcheckError(GradcheckResult(what, np.inf, f"{name}: analytic shape {ana.shape} != {num.shape}",
                                                 np.nan, np.nan, tol))
        scale = max(floor, 1e-3 * float(np.max(np.abs(num), initial=0.0)))
        err = np.abs(ana - num) / np.maximum(np.maximum(np.abs(ana), np.abs(num)), scale)
        err = np.where(np.isfinite(ana) & np.isfinite(num), err, np.inf)
        if err.size and err.max() >= worst.max_error:
            i = np.unravel_index(int(np.argmax(err)), err.shape)
            worst = GradcheckResult(what, float(err[i]), f"{name}[{', '.join(map(str, i))}]",
                                    float(ana[i]), float(num[i]), tol)
    return worst


def _off_kinks(x: np.ndarray, kinks, margin: float) -> np.ndarray:
    for k in kinks:
        near = np.abs(x - k) < margin
        x = np.where(near, k + np.where(x >= k, 1, -1) * 2 * margin, x)
    return x


def check_activation(act, z=None, *, shape=(4, 5), seed=0, h=1e-5, tol=1e-6, floor=1e-7):
    """Check `act.backward` against finite differences of `act.forward` (numpy, float64)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, shape) if z is None else np.array(z, dtype=np.float64)
    z = _off_kinks(z, getattr(act, "kinks", ()), 10 * h)
    g = rng.normal(0, 1, z.shape)
    a = act.forward(np, z)
    analytic = act.backward(np, z, a, g)
    numeric = _numeric(lambda x: float(np.sum(g * act.forward(np, x))), z.copy(), h)
    return _compare(f"activation '{act.name}'", {"z": (analytic, numeric)}, tol, floor)


def check_loss(loss, pred=None, target=None, weight=None, *, shape=(6, 3), seed=0, h=1e-5, tol=1e-6, floor=1e-7):
    """Check `loss.backward` against finite differences of `loss.forward` w.r.t. pred (numpy, float64).
    Default inputs: pred ~ N(0, 1) (probabilities in (0.05, 0.95) for losses on probabilities),
    targets of the loss's kind, positive per-sample weights."""
    rng = np.random.default_rng(seed)
    if pred is None:
        pred, target = sample_loss_inputs(loss, shape, rng)
    pred = np.array(pred, dtype=np.float64)
    if getattr(loss, "kinks", ()) and loss.targets == "values":
        pred = target + _off_kinks(pred - target, loss.kinks, 10 * h)
    analytic = loss.backward(np, pred, target, weight)
    numeric = _numeric(lambda x: float(loss.forward(np, x, target, weight)), pred.copy(), h)
    return _compare(f"loss '{loss.name}'", {"pred": (analytic, numeric)}, tol, floor)


def sample_loss_inputs(loss, shape, rng):
    """(pred, target) float64 host arrays suited to `loss`: class indices or values, probabilities for bce."""
    n, c = shape
    if loss.targets == "indices":
        return rng.normal(0, 1, shape), rng.integers(0, c, n)
    if getattr(loss, "on_probabilities", False):
        return rng.uniform(0.05, 0.95, shape), rng.integers(0, 2, shape).astype(np.float64)
    if loss.expects_logits:
        return rng.normal(0, 1, shape), rng.integers(0, 2, shape).astype(np.float64)
    return rng.normal(0, 1, shape), rng.normal(0, 1, shape)


def check_model(model, X, loss, target, weight=None, *, h=1e-5, tol=1e-6, floor=1e-7):
    """Check `model.backward` for every parameter and the input against finite differences of
    loss(model(X)). The model must use float64; it may live on any backend (host arrays X, target and
    weight are moved there; the differences are taken on host copies, one element at a time)."""
    be = model.backend
    X = be.asarray(X, model.dtype)
    target = be.asarray(target, "int64" if loss.targets == "indices" else model.dtype)
    weight = None if weight is None else be.asarray(weight, model.dtype)
    out = model.forward(X)
    xp = be.xp
    grad_X = model.backward(loss.backward(xp, out, target, weight))
    parts = {}
    for name, p in model.params.items():
        analytic = be.to_numpy(model.grads[name]).copy()
        host = be.to_numpy(p).copy()

        def f(x, name=name):
            model.params[name] = be.asarray(x, model.dtype)
            return float(loss.forward(xp, model.forward(X), target, weight))

        numeric = _numeric(f, host, h)
        model.params[name] = be.asarray(host, model.dtype)
        parts[name] = (analytic, numeric)
    X_host = be.to_numpy(X).copy()
    parts["X"] = (be.to_numpy(grad_X), _numeric(
        lambda x: float(loss.forward(xp, model.forward(be.asarray(x, model.dtype)), target, weight)), X_host, h))
    return _compare(f"model {model.sizes}", parts, tol, floor)

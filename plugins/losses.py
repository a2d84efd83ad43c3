"""Built-in losses; each holds its value and gradient side by side.

Reductions match PyTorch's loss of the same name: mse, mae, huber, bce, bce_with_logits average over
all elements; cross_entropy averages over samples. l1/l2 are the seed's weighted sums over all
elements (unit weights: L2 = n * MSE, L1 = n * MAE). With per-sample `weight` w of shape (batch,),
each sample's terms are multiplied by w_i; "mean" reductions then divide by the same count as without
weights (PyTorch's cross_entropy divides by sum(w) instead - see CrossEntropy).
"""
from __future__ import annotations

import math

from framework import Loss
from framework.registry import losses
from framework.special import direct, into, sigmoid


def _weighted(xp, per_elem, weight):
    """Multiply (batch, ...) terms by per-sample weights (batch,)."""
    if weight is None:
        return per_elem
    return per_elem * direct(xp).reshape(weight, (weight.shape[0],) + (1,) * (per_elem.ndim - 1))


class _Elementwise(Loss):
    """Loss = scale * sum_i w_i * sum_j e(pred_ij, target_ij); subclasses give e, de/dpred and scale."""

    def elem(self, xp, pred, target):
        raise NotImplementedError

    def elem_grad(self, xp, pred, target):
        raise NotImplementedError

    def scale(self, pred) -> float:
        """1 / (number of elements) for a mean, 1 for a sum."""
        return 1.0 / math.prod(pred.shape)  # not pred.size: torch's `size` is a method

    def forward(self, xp, pred, target, weight=None):
        return direct(xp).sum(_weighted(xp, self.elem(xp, pred, target), weight)) * self.scale(pred)

    def backward(self, xp, pred, target, weight=None):
        return _weighted(xp, self.elem_grad(xp, pred, target), weight) * self.scale(pred)


@losses.register("mse")
class MSE(_Elementwise):
    """mean (pred - target)^2; dL/dpred = 2 (pred - target) / n."""

    reference = "torch.nn.functional.mse_loss"

    def elem(self, xp, pred, target):
        d = pred - target
        return d * d

    def elem_grad(self, xp, pred, target):
        return 2 * (pred - target)


@losses.register("mae")
class MAE(_Elementwise):
    """mean |pred - target|; dL/dpred = sign(pred - target) / n (0 at a tie, like PyTorch)."""

    reference = "torch.nn.functional.l1_loss"
    kinks = (0.0,)

    def elem(self, xp, pred, target):
        return xp.abs(pred - target)

    def elem_grad(self, xp, pred, target):
        return xp.sign(pred - target)


@losses.register("l2")
class L2(MSE):
    """The seed's weighted L2 loss: sum_i w_i (pred_i - target_i)^2 (= n * MSE with unit weights)."""

    reference = "torch.nn.functional.mse_loss"

    def scale(self, pred):
        return 1.0

    def reference_arguments(self):
        return {"reduction": "sum"}


@losses.register("l1")
class L1(MAE):
    """The seed's weighted L1 loss: sum_i w_i |pred_i - target_i| (= n * MAE with unit weights)."""

    reference = "torch.nn.functional.l1_loss"

    def scale(self, pred):
        return 1.0

    def reference_arguments(self):
        return {"reduction": "sum"}


@losses.register("huber")
class Huber(_Elementwise):
    """mean of d^2/2 for |d| <= delta else delta (|d| - delta/2), d = pred - target;
    de/dd = clip(d, -delta, delta)."""

    reference = "torch.nn.functional.huber_loss"

    def __init__(self, delta: float = 1.0):
        self.delta = float(delta)
        self.kinks = (-self.delta, self.delta)

    def elem(self, xp, pred, target):
        d = xp.abs(pred - target)
        return xp.where(d <= self.delta, 0.5 * d * d, self.delta * (d - 0.5 * self.delta))

    def elem_grad(self, xp, pred, target):
        return xp.clip(pred - target, -self.delta, self.delta)


@losses.register("bce")
class BCE(_Elementwise):
    """mean -[t log p + (1 - t) log(1 - p)] on probabilities p clipped to [eps, 1 - eps];
    de/dp = (p - t) / (p (1 - p)) inside the clip range, 0 outside (as the clipped value is constant)."""

    reference = "torch.nn.functional.binary_cross_entropy"
    on_probabilities = True

    def __init__(self, eps: float = 1e-7):
        self.eps = float(eps)

    def reference_arguments(self):  # torch clamps log(p) at -100 instead of clipping p
        return {}

    def _clip(self, xp, p):
        return xp.clip(p, self.eps, 1 - self.eps)

    def elem(self, xp, pred, target):
        p = self._clip(xp, pred)
        return -(target * xp.log(p) + (1 - target) * xp.log(1 - p))

    def elem_grad(self, xp, pred, target):
        p = self._clip(xp, pred)
        inside = (pred > self.eps) & (pred < 1 - self.eps)
        return xp.where(inside, (p - target) / (p * (1 - p)), xp.zeros_like(p))


@losses.register("bce_with_logits")
class BCEWithLogits(_Elementwise):
    """mean of max(z, 0) - z t + log(1 + e^-|z|) on logits z (stable); de/dz = sigma(z) - t."""

    reference = "torch.nn.functional.binary_cross_entropy_with_logits"
    expects_logits = True

    def elem(self, xp, pred, target):
        return xp.maximum(pred, xp.zeros_like(pred)) - pred * target + xp.log1p(xp.exp(-xp.abs(pred)))

    def elem_grad(self, xp, pred, target):
        return self.predict(xp, pred) - target

    def predict(self, xp, out):
        return sigmoid(xp, out)


@losses.register("cross_entropy")
class CrossEntropy(Loss):
    """Softmax + negative log-likelihood fused, on logits Z (batch, C) and class indices t (batch,):
    L = sum_i w_i (logsumexp(Z_i) - Z_i,t_i) / sum_i w_i  (PyTorch's weighted mean; w = 1 -> mean);
    dL/dZ_i = w_i (softmax(Z_i) - onehot(t_i)) / sum_i w_i. Stable for logits of any size."""

    reference = "torch.nn.functional.cross_entropy"
    targets = "indices"
    expects_logits = True

    def reference_arguments(self):
        return {"reduction": "weighted_mean"}

    def __init__(self):
        self._constants: dict = {}  # (function, args, dtype, device) -> array (`_constant`)

    def _logsoftmax(self, xp, z):
        d = direct(xp)
        shifted = z - d.max(z, axis=-1, keepdims=True)
        return shifted - xp.log(d.sum(xp.exp(shifted), axis=-1, keepdims=True))

    def _onehot(self, xp, t, like):
        """Rows t (int64 (batch,)) of the identity matrix of like's width and dtype: one `take`."""
        c = like.shape[-1]
        return direct(xp).take(self._constant(xp.eye, (c,), like), t, axis=0)

    def _constant(self, make, args: tuple, like):
        """`make(*args, dtype=, device=)` with like's dtype and device (e.g. `xp.eye`), made once per
        (make, args, dtype, device): every batch of a run has the same shape."""
        device = getattr(like, "device", None)
        key = (make, args, like.dtype, device)
        found = self._constants.get(key)
        if found is None:
            found = self._constants[key] = make(*args, dtype=like.dtype, device=device)
        return found

    def _norm(self, xp, pred, weight):
        return pred.shape[0] if weight is None else direct(xp).sum(weight)

    def _indices(self, xp, target):
        """target as (batch,) int64 (row * C + t below must not overflow a narrow integer type)."""
        if target.ndim != 1:
            target = direct(xp).reshape(target, (-1,))
        return target if target.dtype == xp.int64 else direct(xp).astype(target, xp.int64)

    def _picked(self, xp, logp, t):
        """logp[i, t_i] for every row i (t: int64 (batch,)), by one `take` from the flattened array (as
        the one-hot sum, but without a (batch, C) product and a short-axis reduction)."""
        n, c = logp.shape
        d = direct(xp)
        return d.take(d.reshape(logp, (-1,)), self._constant(xp.arange, (0, n * c, c), t) + t)

    def forward(self, xp, pred, target, weight=None):
        nll = -self._picked(xp, self._logsoftmax(xp, pred), self._indices(xp, target))
        if weight is not None:
            nll = nll * weight
        return direct(xp).sum(nll) / self._norm(xp, pred, weight)

    def backward(self, xp, pred, target, weight=None):
        grad = xp.exp(self._logsoftmax(xp, pred)) - self._onehot(xp, self._indices(xp, target), pred)
        return _weighted(xp, grad, weight) / self._norm(xp, pred, weight)

    def value_and_grad(self, xp, pred, target, weight=None):
        """Both at the cost of one softmax: with S = Z - max(Z), e = exp(S), s = sum(e),
        L_i = log(s_i) - S_i,t_i and dL/dZ_i = (e_i / s_i - onehot(t_i)) (w_i) / norm."""
        d = direct(xp)  # C-level sum/max/take where the backend declares them: this runs every batch
        grad = pred - d.max(pred, axis=-1, keepdims=True)  # S, then e in place, then the gradient
        t = self._indices(xp, target)
        picked = self._picked(xp, grad, t)
        grad = into(xp, grad, xp.exp, grad)
        s = d.sum(grad, axis=-1, keepdims=True)
        nll = xp.log(s[:, 0])
        nll -= picked
        norm = self._norm(xp, pred, weight)
        grad /= s
        grad -= self._onehot(xp, t, pred)
        if weight is not None:
            nll, grad = nll * weight, _weighted(xp, grad, weight)
        grad /= norm
        return d.sum(nll) / norm, grad

    def predict(self, xp, out):
        return xp.exp(self._logsoftmax(xp, out))

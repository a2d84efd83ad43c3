"""Losses: the conformance checks (see `framework.extend.conformance`)."""
from __future__ import annotations

import numpy as np

from framework.extend.conformance import common, reference
from framework.gradcheck import check_loss, sample_loss_inputs


def _loss_inputs(loss, dtype=np.float64, shape=(6, 3), seed=0):
    """(pred, target, weight) in `dtype` (integer targets stay integer)."""
    rng = np.random.default_rng(seed)
    pred, target = sample_loss_inputs(loss, shape, rng)
    target = target if loss.targets == "indices" else target.astype(dtype)
    return pred.astype(dtype), target, rng.uniform(0.2, 2.0, shape[0]).astype(dtype)


def _loss_extreme_inputs(loss, big, dtype):
    """(pred, target, description): |pred - target| = big (values), |logits| = big (logits,
    indices), or probabilities at and next to 0 and 1 (losses on probabilities)."""
    pred, target, _ = _loss_inputs(loss, np.float64, (4, 3))
    sign = np.where(pred >= 0, 1.0, -1.0)
    if loss.on_probabilities:
        pred, what = np.resize([0.0, 1e-12, 1 - 1e-12, 1.0], pred.shape), "p in {0, 1e-12, 1-1e-12, 1}"
    elif loss.expects_logits or loss.targets == "indices":
        pred, what = sign * big, f"logits = +-{big:g}"
    else:
        pred, what = target + sign * big, f"pred = target +- {big:g}"
    target = target if loss.targets == "indices" else target.astype(dtype)
    return pred.astype(dtype), target, f"{np.dtype(dtype)} {what}"


def _loss_gradcheck(reg, name):
    loss = reg.create(name)
    pred, target, weight = _loss_inputs(loss, shape=(7, 3), seed=3)
    return common.worst_error([check_loss(loss, pred, target, w) for w in (None, weight)])


def _loss_extreme(reg, name):
    loss = reg.create(name)
    for big in (1e3, 1e4):
        for dtype in common.FLOATS:
            pred, target, what = _loss_extreme_inputs(loss, big, dtype)
            common.finite(f"forward at {what}", lambda p=pred, t=target: loss.forward(np, p, t))
            common.finite(f"backward at {what}", lambda p=pred, t=target: loss.backward(np, p, t))
    if loss.on_probabilities:  # a common.finite-difference step would leave [0, 1]
        return f"common.finite at {what}"
    pred, target, _ = _loss_extreme_inputs(loss, 1e3, np.float64)
    return common.worst_error([check_loss(loss, pred, target, tol=common.EXTREME_TOL)])


def _loss_weight(reg, name):
    loss = reg.create(name)
    pred, target, _ = _loss_inputs(loss)
    ones, drop0 = np.ones(pred.shape[0]), np.r_[0.0, np.ones(pred.shape[0] - 1)]
    for what, fn in (("forward", loss.forward), ("backward", loss.backward)):
        assert np.allclose(fn(np, pred, target), fn(np, pred, target, ones), rtol=1e-12, atol=0), (
            f"{what} with unit weights differs from no weights")
    grad0 = loss.backward(np, pred, target, drop0)[0]
    assert not np.any(grad0), (f"sample 0 has weight 0 but gradient {np.array2string(grad0, precision=3)}; "
                               "multiply each sample's terms by its weight")
    return "unit weights = none; weight 0 -> zero gradient"


def _loss_dtype_shape(reg, name):
    loss = reg.create(name)
    for dtype in common.FLOATS:
        pred, target, weight = _loss_inputs(loss, dtype)
        for w in (None, weight):
            value = loss.forward(np, pred, target, w)
            assert np.ndim(value) == 0, f"forward returns shape {np.shape(value)}, expected a 0-d array"
            common.expect(value, (), dtype, "forward")
            common.expect(loss.backward(np, pred, target, w), pred.shape, dtype, "backward")
    return "float32, float64"


def _loss_no_mutation(reg, name):
    loss = reg.create(name)
    for dtype in common.FLOATS:
        pred, target, weight = _loss_inputs(loss, dtype)
        before = pred.copy(), target.copy(), weight.copy()
        loss.forward(np, pred, target, weight)
        loss.backward(np, pred, target, weight)
        for what, b, a in zip(("pred", "target", "weight"), before, (pred, target, weight)):
            common.unchanged(what, b, a)
    return "pred, target, weight"


def _loss_fused(reg, name):
    loss = reg.create(name)
    for dtype in common.FLOATS:
        pred, target, weight = _loss_inputs(loss, dtype)
        for w in (None, weight):
            value, grad = loss.value_and_grad(np, pred, target, w)
            tol = dict(rtol=1e-5 if dtype == np.float32 else 1e-12, atol=0)
            assert np.allclose(value, loss.forward(np, pred, target, w), **tol), "value_and_grad value != forward"
            assert np.allclose(grad, loss.backward(np, pred, target, w), **tol), "value_and_grad grad != backward"
            common.expect(grad, pred.shape, dtype, "value_and_grad's grad")
    return "= (forward, backward), float32/64, with and without weights"


def _loss_array_api(reg, name):
    if (xs := common.strict_namespace()) is None:
        return common.NO_STRICT
    loss = reg.create(name)
    host = _loss_inputs(loss)
    pred, target, weight = (xs.asarray(x) for x in host)
    common.agree("forward", xs, loss.forward(xs, pred, target, weight), loss.forward(np, *host))
    common.agree("backward", xs, loss.backward(xs, pred, target, weight), loss.backward(np, *host))
    return "forward, backward"


TOL = 1e-10  # float64; the formulas differ in rounding only
REDUCTIONS = ("mean", "sum", "weighted_mean")


def _loss_reference(reg, name):
    return reference.check(reg.create(name), compare, TOL)


def compare(loss, target):
    """Value and gradient (torch autograd, float64) on the checker's inputs, with and without per-sample
    weights w, and at the extremes (|pred - target|, |logits| = 1e3, 1e4). The reference is called with
    reduction="none" and its terms l reduced here as `reference_arguments()["reduction"]` says: "mean"
    (the default: sum(w l) / number of terms), "sum" (sum(w l)) or "weighted_mean" (sum(w l) / sum(w),
    torch's weighted mean). Losses on probabilities are compared at p = 1e-6 and 1 - 1e-6, not at 0 and
    1: a plugin clips p (eps), torch clamps log(p) at -100, and the two differ there by design."""
    torch = reference.library(loss)
    kwargs = loss.reference_arguments()
    reduction = kwargs.pop("reduction", "mean")
    assert reduction in REDUCTIONS, f"reference_arguments' reduction is {reduction!r}, expected one of {REDUCTIONS}"
    f = reference.as_function(target, {**kwargs, "reduction": "none"})
    pred, tgt, weight = _loss_inputs(loss, shape=(7, 3), seed=3)
    cases = [(pred, tgt, None), (pred, tgt, weight)]
    if loss.on_probabilities:
        cases.append((np.resize([1e-6, 0.3, 1 - 1e-6], pred.shape), tgt, weight))
    else:
        cases += [(*_loss_extreme_inputs(loss, big, np.float64)[:2], weight[:4]) for big in (1e3, 1e4)]
    worst = 0.0
    for p, t, w in cases:
        value, grad = loss.forward(np, p, t, w), loss.backward(np, p, t, w)
        with reference.quiet():
            pt = torch.tensor(p, requires_grad=True)
            terms = f(pt, torch.tensor(t))
            if w is not None:
                terms = terms * torch.tensor(w).reshape((-1,) + (1,) * (terms.ndim - 1))
            per_sample = terms.numel() / len(p)
            count = {"mean": terms.numel(), "sum": 1,
                     "weighted_mean": per_sample * (len(p) if w is None else float(w.sum()))}[reduction]
            total = terms.sum() / count
            total.backward()
        worst = max(worst, reference.rel_error(value, total.item()), reference.rel_error(grad, pt.grad.numpy()))
    return worst, f"values and gradients at {len(cases)} inputs, weighted and extreme"


CHECKS = {"config": common.config_check, "gradcheck": _loss_gradcheck, "extreme": _loss_extreme, "weight": _loss_weight,
             "dtype_shape": _loss_dtype_shape, "no_mutation": _loss_no_mutation, "fused": _loss_fused,
             "array_api": _loss_array_api, "reference": _loss_reference}

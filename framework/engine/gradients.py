"""Gradient norms and clipping, computed on the backend (no host transfer)."""
from __future__ import annotations


def sq_norm(xp, g):
    """sum(g^2) as a 0-d array: one dot product of the flattened array (no g*g temporary; on NumPy a
    BLAS dot)."""
    vecdot = getattr(xp, "vecdot", None)
    if vecdot is None:  # a library without the 2022.12 `vecdot`
        return xp.sum(g * g)
    flat = xp.reshape(g, (-1,))
    return vecdot(flat, flat)


def global_norm(xp, grads: dict):
    """sqrt(sum over all arrays of sum(g^2)) as a 0-d array. (Per-array squared norms in one array,
    e.g. for a record row: `Backend.sq_norms`.)"""
    return xp.sqrt(sum(sq_norm(xp, g) for g in grads.values()))


def clip_by_global_norm(xp, grads: dict, max_norm: float, total=None):
    """Scale all grads in place by max_norm / (total + 1e-6) when total > max_norm (torch's
    clip_grad_norm_ rule); returns the total norm before clipping. `total` may be precomputed: a 0-d
    array (no device sync), or a Python float (then nothing is touched when total <= max_norm)."""
    total = global_norm(xp, grads) if total is None else total
    if isinstance(total, float):
        if total <= max_norm:
            return total
        coef = max_norm / (total + 1e-6)
    else:
        coef = xp.minimum(max_norm / (total + 1e-6), xp.ones_like(total))
    for name in grads:
        grads[name] *= coef
    return total

"""Named arrays that are views of one flat buffer, so an elementwise update (SGD, Adam, ...) runs once
over every parameter instead of once per parameter (a small model's optimizer step is bound by the
number of array calls: Adam makes 9 per array).

    p = flat_zeros(xp, {"W": (3, 2), "b": (3,)}, dtype)   # p.flat: (9,); p["W"] is p.flat[0:6] as (3, 2)
    p["W"] = values                                       # copies into the view: p stays a view of p.flat

A FlatDict keeps the namespace it was made with (`xp`: a backend's, with its capabilities), so an
optimizer handed only the arrays computes as that backend declares (`namespace`).
"""
from __future__ import annotations

import math

from framework.special import ArrayNamespace, namespace_of


class FlatDict(dict):
    """{name: view}: the values are consecutive C-contiguous views of the 1-D array `flat`, in order.
    `layout`: ((name, shape), ...); equal layouts hold equal parts at equal offsets. `xp`: the namespace
    the FlatDict was made with. Copies (copy.deepcopy, pickle) are views of their own copy of `flat`."""

    def __init__(self, flat, views: dict, xp=None):
        super().__init__(views)
        self.flat = flat
        self.layout = tuple((k, tuple(v.shape)) for k, v in views.items())
        self.xp = namespace_of(flat) if xp is None else xp

    def __setitem__(self, name, value):
        """`d[name] = value` COPIES value into the existing view d[name] (shapes must match; a new name is
        a KeyError: the layout is fixed), so every entry stays a view of `flat`. Writing back the view
        itself, as `d[name] *= c` does, is a no-op."""
        view = self[name]
        if value is not view:
            view[...] = value

    def __reduce__(self):  # a namespace a backend handed out pickles by name; a plain module is found again
        return _views, (self.flat, dict(self.layout), self.xp if isinstance(self.xp, ArrayNamespace) else None)


def flat_zeros(xp, shapes: dict, dtype, values: dict | None = None) -> FlatDict:
    """A FlatDict with the given {name: shape}, on the namespace's default device: zeros, with `values`
    ({name: array}, some or all names) copied in; it keeps `xp`."""
    out = _views(xp.zeros(sum(math.prod(s) for s in shapes.values()), dtype=dtype), shapes, xp)
    for name, value in (values or {}).items():
        out[name] = value
    return out


def _views(flat, shapes: dict, xp=None) -> FlatDict:
    """The FlatDict whose consecutive views of the 1-D array `flat` have the given {name: shape}."""
    views, offset, reshape = {}, 0, (xp or namespace_of(flat)).reshape
    for name, shape in shapes.items():
        size = math.prod(shape)
        views[name] = reshape(flat[offset:offset + size], tuple(shape))
        offset += size
    return FlatDict(flat, views, xp)


def flat_pair(params, grads):
    """(params.flat, grads.flat) when both are FlatDicts of the same layout, else None."""
    if isinstance(params, FlatDict) and isinstance(grads, FlatDict) and params.layout == grads.layout:
        return params.flat, grads.flat
    return None


def namespace(arrays: dict):
    """The namespace to compute `arrays`' updates with: a FlatDict's own (its backend's, with its
    capabilities), else the plain namespace of the first array (None for no arrays)."""
    if isinstance(arrays, FlatDict):
        return arrays.xp
    first = next(iter(arrays.values()), None)
    return None if first is None else namespace_of(first)

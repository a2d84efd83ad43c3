"""Named arrays that are views of one flat buffer, so an elementwise update (SGD, Adam, ...) runs once
over every parameter instead of once per parameter (a small model's optimizer step is bound by the
number of array calls: Adam makes 9 per array).

    p = flat_zeros(xp, {"W": (3, 2), "b": (3,)}, dtype)   # p.flat: (9,); p["W"] is p.flat[0:6] as (3, 2)
    p["W"] = values                                       # writes into the view: p stays a view of p.flat
"""
from __future__ import annotations

import math

from framework.special import namespace_of


class FlatDict(dict):
    """{name: view}: the values are consecutive C-contiguous views of the 1-D array `flat`, in order.
    Assigning an entry copies into its view (the same array object stays), so the views always add
    up to `flat`. `layout`: ((name, shape), ...); equal layouts hold equal parts at equal offsets.
    Copies (copy.deepcopy, pickle) are views of their own copy of `flat`."""

    def __init__(self, flat, views: dict):
        super().__init__(views)
        self.flat = flat
        self.layout = tuple((k, tuple(v.shape)) for k, v in views.items())

    def __setitem__(self, name, value):
        view = self[name]  # KeyError for a new name: the layout is fixed
        if value is not view:
            view[...] = value

    def __reduce__(self):
        return _views, (self.flat, dict(self.layout))


def flat_zeros(xp, shapes: dict, dtype, values: dict | None = None) -> FlatDict:
    """A FlatDict with the given {name: shape}, on the namespace's default device: zeros, with `values`
    ({name: array}, some or all names) copied in."""
    out = _views(xp.zeros(sum(math.prod(s) for s in shapes.values()), dtype=dtype), shapes)
    for name, value in (values or {}).items():
        out[name] = value
    return out


def _views(flat, shapes: dict) -> FlatDict:
    """The FlatDict whose consecutive views of the 1-D array `flat` have the given {name: shape}."""
    xp, views, offset = namespace_of(flat), {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        views[name] = xp.reshape(flat[offset:offset + size], tuple(shape))
        offset += size
    return FlatDict(flat, views)


def flat_pair(params, grads):
    """(params.flat, grads.flat) when both are FlatDicts of the same layout, else None."""
    if isinstance(params, FlatDict) and isinstance(grads, FlatDict) and params.layout == grads.layout:
        return params.flat, grads.flat
    return None

"""The `reference` check's shared part: find the plugin's declared reference, compare, print one line.

A plugin names the same computation in another library (`framework.interfaces.Referenced`:
`reference = "torch.optim.NAdam"`); each kind's module says what comparing means for it and with which
tolerance (a `compare(plugin, target) -> (worst relative error, what was compared)`). The line is

    reference torch.optim.NAdam: worst rel. error 2.5e-16 over 20 steps
    reference torch.optim.NAdam: skipped (torch is not installed)
    no reference declared

and a worst error above the kind's tolerance fails the check, as does a reference name that does not
exist in its installed library. The reference library's own warnings (deprecations, torch's scheduler
order notes) are its business, not the plugin's: they are ignored (`quiet`).
"""
from __future__ import annotations

import functools
import warnings
from contextlib import contextmanager
from importlib import import_module
from typing import Callable

import numpy as np

NONE = "no reference declared (set `reference` to compare with one)"


class Missing(Exception):
    """The reference's library is not installed (a skip, not a failure)."""


@contextmanager
def quiet():
    """The reference library's warnings ignored, its floating-point errors its own."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


@contextmanager
def torch_float64(torch):
    """torch's default dtype float64 while the reference runs: its optimizers keep scalar state
    (NAdam's mu_product, step counts) in the default dtype, float32 otherwise."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def resolve(dotted: str):
    """The object named `dotted` ("torch.nn.functional.silu"): the longest importable module prefix,
    then attributes. Missing when its top-level package is not installed; AssertionError naming the
    part that does not exist when it is."""
    parts = dotted.split(".")
    with quiet():
        try:
            import_module(parts[0])
        except ImportError:
            raise Missing(f"{parts[0]} is not installed") from None
        for i in range(len(parts), 0, -1):
            try:
                obj = import_module(".".join(parts[:i]))
                break
            except ImportError:
                continue
    for attr in parts[i:]:
        assert hasattr(obj, attr), f"reference {dotted}: {obj.__name__} has no '{attr}'; fix the reference name"
        obj = getattr(obj, attr)
    return obj


def rel_error(got, want, floor: float | None = None) -> float:
    """max |got - want| / max(|want|, floor) over all entries (0 where both are equal, equal infinities
    or both NaN). `floor` (default 1e-8 max |want|): an entry far below the array's scale is judged
    against that scale, not its own size (a gradient of 1e-22 that one side rounds to 0 next to
    gradients of 1 is not a mismatch)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"the result has shape {got.shape}, the reference's {want.shape}"
    with np.errstate(all="ignore"):
        if floor is None:
            finite = np.abs(want[np.isfinite(want)])
            floor = 1e-8 * float(finite.max(initial=0.0))
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        err = np.where(same, 0.0, np.abs(got - want) / np.maximum(np.abs(want), floor))
    err = np.where(np.isnan(err), np.inf, err)
    return float(err.max(initial=0.0))


def check(plugin, compare: Callable, tol: float) -> str:
    """The reference line of `plugin` (see the module docstring); AssertionError beyond `tol`."""
    ref = getattr(plugin, "reference", None)
    if ref is None:
        return NONE
    try:
        target = resolve(ref)
    except Missing as e:
        return f"reference {ref}: skipped ({e})"
    worst, over = compare(plugin, target)
    assert worst <= tol, f"reference {ref}: worst rel. error {worst:.1e} over {over} exceeds the tolerance {tol:.0e}"
    return f"reference {ref}: worst rel. error {worst:.1e} over {over}"


def as_function(target, kwargs: dict) -> Callable:
    """The reference as a function of its inputs: a class (torch.nn.SiLU) made with the plugin's
    reference arguments, a function (torch.nn.functional.silu) called with them."""
    return target(**kwargs) if isinstance(target, type) else functools.partial(target, **kwargs)


def library(plugin):
    """The top-level module of the plugin's reference (torch for "torch.optim.NAdam"), imported."""
    with quiet():
        return import_module(plugin.reference.split(".")[0])

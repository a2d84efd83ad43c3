"""Conformance checks for every registered plugin of all nine kinds (checker CLI and tests).

A check is a function `(registry, name) -> figure`: it builds the plugin from its config defaults,
raises (AssertionError, GradcheckError, ...) on failure and returns a short figure on success. `run`
executes one with every warning raised as an error and NumPy floating-point errors raised (underflow
ignored), so overflow, 0/0 or log(0) anywhere is a failure. Checks compute with NumPy (gradient checks
in float64) except `array_api`. The checks per kind:

    config        defaults(name) -> create(name, **defaults); instance.name and attributes reproduce them
                  (data sets, backends: the created object's name is the registered name; one that
                  needs settings or hardware this machine lacks is skipped with its message)
    gradcheck     backward vs central differences at ordinary inputs (losses: with and without weights)
    extreme       |z| (or |pred - target|, |logits|) up to 1e4: finite, no warnings, in float32 and float64;
                  gradcheck at |z| <= 1e3 (tol 1e-4: finite differences next to |f| ~ 1e3 carry
                  noise ~ eps |f| / h ~ 1e-8, a wrong formula is off by O(1))
    weight        losses: unit per-sample weights change nothing; weight 0 zeroes that sample's gradient
    dtype_shape   outputs keep the input's shape and dtype, float32 and float64
    no_mutation   inputs (z, a, grad_a; pred, target, weight; grads) are left unchanged
    array_api     with xp = array_api_strict (the Array API standard, nothing more) results equal NumPy's:
                  the plugin uses only xp, so it runs on CuPy and other backends (skipped if not installed)
    decrease      optimizers: 100 steps on f(p) = p^T diag(1, 10) p / 2 lower f
    state_dict    optimizers: load_state_dict(state_dict()) continues exactly like the original
    flat          optimizers declaring `elementwise`: updating all parameters at once as views of one
                  flat buffer (`framework.flat`) equals updating one at a time, also after load_state_dict
    fused         losses: value_and_grad equals (forward, backward)
    inplace       activations: forward_inplace / backward_inplace (on copies the model owns) equal
                  forward / backward, float32 and float64, also when forward_inplace wrote a over z
    seeded        initializers, data sets: the same seed gives the same values, another seed others
    variance      initializers: the sample variance of a (400, 300) draw is within 3% of `variance`
    lr            schedulers: lr over a run is finite and >= 0; warm-up ramps as (t + 1) / warmup_steps
    loads         data sets: defaults load (a loader that needs settings, e.g. a file path, is skipped
                  with its message) and pass `framework.engine.data.validate`: shapes, dtypes, task, finite
    tasks         metrics: a finite float for each task they declare; a perfect prediction scores at
                  least as well as a random one
    reference     the plugin's declared `reference` (`framework.interfaces.Referenced`; `reference.py`), where
                  its library is installed, in float64; prints the worst relative error and fails beyond
                  the kind's tolerance (TOL in each kind's module). Activations, losses: values and
                  gradients (torch autograd) on the inputs above incl. extremes and weights, 1e-10;
                  optimizers: a 20-step trajectory, 1e-10; schedulers: the lr of every update (base lr 1)
                  with and without warm-up, 1e-12; metrics: values on random predictions, 1e-12;
                  initializers: variance and quantiles of a large draw (RNG streams differ), 3%; data
                  sets: the reference loader's rows, exactly; backends: a registered backend ("numpy")
                  training the same float64 MLP, 1e-12. "skipped (torch is not installed)" where the
                  library is missing; "no reference declared" where none is
    hooks         callbacks: a `framework.Callback` subclass whose overridden hooks take the trainer's arguments
    runs          callbacks: created from its defaults, it sees a 2-epoch fit of a tiny classifier through
                  (FINISHED; files it writes go to a temporary run folder and are those `files()` names)
    methods       backends: every Backend method (asarray, to_numpy, resolve_dtype, matmul, take,
                  batch_sum, sq_norms, host_sq_norms, synchronize, limits) against NumPy, and the
                  declared capabilities (`Capabilities`: host_memory, writes_out, the direct forms) hold; a
                  backend that cannot be created here is skipped with its message
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from framework.extend.conformance import (
    activation,
    backend,
    callback,
    dataset,
    initializer,
    loss,
    metric,
    optimizer,
    scheduler,
)
from framework.registry import KINDS, Registry

CHECKS = {kind: module.CHECKS for kind, module in (
    ("activation", activation), ("loss", loss), ("optimizer", optimizer), ("initializer", initializer),
    ("scheduler", scheduler), ("dataset", dataset), ("metric", metric), ("backend", backend),
    ("callback", callback))}


@dataclass(frozen=True)
class Outcome:
    """One check of one plugin: `figure` is the key number on success, the reason on failure."""

    kind: str
    name: str
    check: str
    ok: bool
    figure: str

    def __str__(self) -> str:
        return f"{self.kind:<10} {self.name:<16} {self.check:<12} {'ok' if self.ok else 'FAIL':<4}  {self.figure}"


def run(registry: Registry, name: str, check: str) -> Outcome:
    """Run one check of plugin `name` in `registry`; any exception or warning is a failure."""
    try:
        with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
            warnings.simplefilter("error")
            figure, ok = CHECKS[registry.kind][check](registry, name), True
    except Exception as e:  # noqa: BLE001 - the failure is the result
        figure, ok = _reason(e), False
    return Outcome(registry.kind, name, check, ok, figure)


def cases(names=None, kinds=KINDS) -> list[tuple[str, str, str]]:
    """(kind, name, check) for every check of every plugin of `kinds` (or only those in `names`)."""
    return [(kind, name, check) for kind, reg in kinds.items() for name in reg.names()
            if names is None or name in names for check in CHECKS[kind]]


def _reason(e: Exception) -> str:
    if isinstance(e, AssertionError) and str(e):
        return str(e)
    return f"{type(e).__name__}: {e}"

"""The extension points. Plugin code computes only with `xp`, the backend's array namespace.

Shapes: a batch is `(batch, features)`; activations keep the shape of `z`; losses return a 0-d
array and a gradient of the shape of `pred`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from contextlib import nullcontext
from typing import Any

from framework import special
from framework.flat import FlatDict, flat_pair, flat_zeros, namespace
from framework.registry import argument_names

SCALARS = "scalars"  # Optimizer.state_dict's key prefix of scalar state: a reserved slot name


class Referenced:
    """What every plugin kind shares: an optional `reference` implementation to be compared with.

    `reference`: the dotted name of the same computation in another library, e.g.
    "torch.nn.functional.silu", "torch.optim.NAdam", "torch.optim.lr_scheduler.OneCycleLR",
    "sklearn.metrics.f1_score", "torch.nn.init.kaiming_normal_" (None: no reference). Where that
    library is installed, `python -m framework.check_plugins` compares the plugin with it in float64 and
    prints the worst relative error (`framework.extend.conformance`, check `reference`); a mismatch
    beyond the kind's tolerance fails the check, a missing library prints a skip.

    `reference_arguments()`: the reference's keyword arguments. By default the plugin's own constructor
    arguments under their own names ({arg: self.<arg>}); override it where the names or
    meanings differ, e.g. Adam -> {"lr": lr, "betas": (beta1, beta2), "eps": eps, "weight_decay": wd},
    leaky_relu -> {"negative_slope": alpha}, or return {} where the reference takes none.

    What is compared, per kind (the check runs the plugin's defaults):
        Activation   torch function or module: f(z, **args), values and autograd gradients
        Loss         torch loss: f(pred, target, reduction="none", **args), reduced here by
                     args["reduction"]: "mean" (default), "sum" or "weighted_mean" (sum(w l) / sum(w))
        Optimizer    torch.optim class: cls(params, **args), a 20-step float64 trajectory
        Scheduler    torch.optim.lr_scheduler class: cls(optimizer, **args) on an optimizer whose lr is 1,
                     so an absolute lr argument is relative to 1 (OneCycleLR's max_lr=1.0)
        Metric       sklearn.metrics function: f(y_true, y_pred, **args), y_pred as `uses` says
        Initializer  torch.nn.init function: f(tensor, **args), the moments of a large draw
        Data set     a loader called without arguments (its data/target, or (X, y)): the same rows
        Backend      a registered backend's name ("numpy"): the same float64 MLP training steps
    """

    reference: str | None = None

    def reference_arguments(self) -> dict:
        return {k: getattr(self, k) for k in argument_names(type(self))}


class _ReprByArguments(Referenced):
    """`Name(arg=value, ...)` from the public attributes: every plugin stores each constructor argument
    under its own name (the conformance `config` check holds it), so the repr rebuilds the plugin.
    `_run_state` names the attributes that are not arguments (optimizer steps, a scheduler's run length)."""

    _run_state: tuple[str, ...] = ()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if not k.startswith("_") and k not in self._run_state)
        return f"{type(self).__name__}({args})"


class Activation(_ReprByArguments):
    """`a = f(z)`; `backward` is the vector-Jacobian product `dL/dz` given `dL/da`.

    `kinks`: values of z where f is not differentiable (gradient checks keep away from them).
    `forward_inplace` / `backward_inplace` are optional fast paths the model calls on its own work
    arrays (nobody else holds them); by default they are `forward` / `backward`. An override may
    write a over z (then its backward must read only a: the model hands it z = a) and dL/dz over
    grad_a; the conformance checks hold both to `forward` / `backward`.
    """

    name: str = "?"
    kinks: tuple = ()

    def forward(self, xp, z):
        raise NotImplementedError

    def backward(self, xp, z, a, grad_a):
        raise NotImplementedError

    def forward_inplace(self, xp, z):
        """f(z), free to overwrite z (the model's own buffer)."""
        return self.forward(xp, z)

    def backward_inplace(self, xp, z, a, grad_a):
        """dL/dz, free to overwrite grad_a (the model's own buffer)."""
        return self.backward(xp, z, a, grad_a)


class ElementwiseActivation(Activation):
    """Elementwise f: write `derivative` (f'(z), may reuse `a`); `dL/dz = dL/da * f'(z)`.

    The in-place backward multiplies the model's dL/da buffer by f'(z). The rule for a subclass that
    writes its own `backward` (say, a cheaper product): the in-place path calls that `backward` unless the
    subclass writes its own `backward_inplace` too.
    """

    def derivative(self, xp, z, a):
        raise NotImplementedError

    def backward(self, xp, z, a, grad_a):
        return grad_a * self.derivative(xp, z, a)

    def backward_inplace(self, xp, z, a, grad_a):
        if type(self).backward is not ElementwiseActivation.backward:  # the subclass's own backward
            return self.backward(xp, z, a, grad_a)
        grad_a *= self.derivative(xp, z, a)
        return grad_a


class Loss(_ReprByArguments):
    """Scalar loss of `pred` (batch, out) against `target`, optional per-sample `weight` (batch,).

    `targets` says what the trainer feeds: "values" (same shape as pred; one-hot for multi-class
    classification) or "indices" (integer classes, shape (batch,)). `predict` maps the model output
    to the target space (e.g. logits -> probabilities); identity by default. `expects_logits`: the
    model's output activation should be identity; `on_probabilities`: pred must lie in (0, 1).
    `kinks`: values of pred - target where the loss is not differentiable.
    """

    name: str = "?"
    targets: str = "values"
    expects_logits: bool = False
    on_probabilities: bool = False
    kinks: tuple = ()

    def forward(self, xp, pred, target, weight=None):
        raise NotImplementedError

    def backward(self, xp, pred, target, weight=None):
        raise NotImplementedError

    def value_and_grad(self, xp, pred, target, weight=None):
        """(forward, backward) in one call: what a training step needs. Override it where the two
        share work (cross-entropy's softmax); the conformance checks hold it equal to the pair."""
        return self.forward(xp, pred, target, weight), self.backward(xp, pred, target, weight)

    def predict(self, xp, out):
        return out


class Optimizer(_ReprByArguments):
    """Updates `params` in place from `grads` (dicts of arrays with the same keys and shapes).

    `lr` is a plain attribute that schedulers set before each step; `t` counts steps. Per-parameter
    state lives in `state[slot][param name]` (arrays on the params' backend, made by `slot`); scalar
    state (a running product such as NAdam's mu_product, a step count of one's own) lives in
    `scalars[name]` as plain Python numbers, set in `__init__` or on first use:

        self.scalars["mu_product"] = self.scalars.get("mu_product", 1.0) * mu_t

    So `state_dict`/`load_state_dict` and checkpoints carry everything for every optimizer:
    {"t": t, "<slot>/<param>": array, "scalars/<name>": float}; "scalars" is therefore a reserved slot
    name (`slot("scalars")` raises). Keep no other state on the instance: it would not survive a resume.

    `elementwise = True` declares that each coordinate's update depends only on that coordinate (and
    scalars such as lr and t): then `groups` hands such an optimizer all parameters at once where
    they are views of one flat buffer (`framework.flat.FlatDict`, the MLP's on NumPy and CuPy), and
    its state is flat too, its per-parameter entries views of it. An update that mixes coordinates
    (a per-layer norm, as in LARS or LAMB) leaves it False and always gets one parameter at a time.

    Weight decay is prepared here, once for every optimizer (`updates`): `weight_decay` wd with
    `decoupled_decay` False adds wd p to the gradient (L2, torch's `weight_decay`); True shrinks the
    parameter first, p <- p (1 - lr wd) (AdamW).
    """

    name: str = "?"
    elementwise: bool = False
    weight_decay: float = 0.0
    decoupled_decay: bool = False
    _run_state = ("t", "state", "scalars")

    def __init__(self, lr: float = 0.01):
        self.lr = float(lr)
        self.t = 0
        self.state: dict[str, dict[str, Any]] = {}
        self.scalars: dict[str, float] = {}
        self._work: dict = {}  # (group name, purpose) -> work array (`work`); not state: never saved

    def step(self, params: dict, grads: dict) -> None:
        raise NotImplementedError

    def updates(self, params: dict, grads: dict) -> list:
        """Start step t + 1: `groups` (name, p, g, slot) with the gradient prepared, in one place for every
        optimizer (optax's `add_decayed_weights`): with `weight_decay` wd, g becomes g + wd p (a work
        array; `grads` are never changed), or with `decoupled_decay` every p is first shrunk to
        p (1 - lr wd)."""
        self.t += 1
        groups, wd = self.groups(params, grads), self.weight_decay
        if not wd:
            return groups
        if self.decoupled_decay:
            for _, p, _, _ in groups:
                p *= 1 - self.lr * wd
            return groups
        xp = namespace(params)
        return [(name, p, self._decayed(xp, name, p, g, wd), slot) for name, p, g, slot in groups]

    def _decayed(self, xp, name, p, g, wd):
        """g + wd p, in the work array "decayed gradient"."""
        out = special.into(xp, self.work(name, "decayed gradient", p), xp.multiply, p, wd)
        out += g
        return out

    def work(self, name: str, purpose: str, like):
        """A work array shaped like `like` (group `name`'s parameter) for `purpose`: made at first use,
        reused every step, so a step allocates nothing. Not state: what it holds between steps is
        garbage, and `state_dict` leaves it out."""
        buf = self._work.get((name, purpose))
        if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
            buf = self._work[name, purpose] = special.namespace_of(like).empty_like(like)
        return buf

    def groups(self, params: dict, grads: dict):
        """[(name, p, g, slot)] to update: one per parameter, slot(kind) its `kind` state array; for an
        `elementwise` optimizer on flat params and grads of one layout, a single ("*", params.flat,
        grads.flat, slot) whose slot(kind) is the flat state (`flat_slot`), made once per (params, grads)
        pair: a FlatDict's views never change."""
        known = self.__dict__.get("_flat_group")
        if known is not None and known[0] is params and known[1] is grads:
            return known[2]
        flat = flat_pair(params, grads) if self.elementwise else None
        if flat is not None:
            group = [("*", *flat, functools.partial(self.flat_slot, params=params))]
            self._flat_group = (params, grads, group)
            return group
        xp = namespace(params)
        return [(name, p, grads[name], lambda kind, name=name, p=p: self.slot(xp, kind, name, p))
                for name, p in params.items()]

    def slot(self, xp, kind: str, name: str, like):
        """The `kind` state array of parameter `name`, zeros like `like` on first use."""
        self._slot_name(kind)
        slots = self.state.setdefault(kind, {})
        if name not in slots:
            slots[name] = xp.zeros_like(like)
        return slots[name]

    def flat_slot(self, kind: str, params):
        """The `kind` state of all of `params` (a FlatDict) as one flat array, zeros on first use:
        state[kind] is then a FlatDict of the same layout (state_dict stays per parameter). Per-parameter
        values already there (`load_state_dict`, earlier steps one parameter at a time) are copied in."""
        self._slot_name(kind)
        found = self.state.get(kind)
        if not isinstance(found, FlatDict) or found.layout != params.layout:
            found = self.state[kind] = flat_zeros(params.xp, dict(params.layout), params.flat.dtype, found)
        return found.flat

    def _slot_name(self, kind: str) -> None:
        if kind == SCALARS:
            raise ValueError(f"optimizer {self.name}: '{SCALARS}' is reserved for scalar state (self.scalars); "
                             "give the slot another name")

    def state_dict(self) -> dict[str, Any]:
        """{"t": t, "<slot>/<param>": array, "scalars/<name>": Python number} (the arrays are the live ones)."""
        out: dict[str, Any] = {"t": self.t}
        for kind, slots in self.state.items():
            out.update({f"{kind}/{name}": arr for name, arr in slots.items()})
        out.update({f"{SCALARS}/{name}": value for name, value in self.scalars.items()})
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`; arrays must already be on the params' backend. A scalar may come back
        as a 0-d array (a checkpoint's .npz): it is restored as the Python number it was."""
        self.t = int(state["t"])
        self.state, self.scalars = {}, {}
        for key, arr in state.items():
            if key != "t":
                kind, name = key.split("/", 1)
                if kind == SCALARS:
                    self.scalars[name] = arr.item() if hasattr(arr, "item") else arr
                else:
                    self.state.setdefault(kind, {})[name] = arr


class Scheduler(_ReprByArguments):
    """Learning rate per update: lr_t = base_lr * ramp(t) * factor(...), t the update (0-based).

    The Trainer calls `start(total_steps, steps_per_epoch)` before the first update (and again with the
    same values on resume); from then on `factor` may read `self.total_steps`, `self.steps_per_epoch`,
    `self.epochs` (= ceil(total_steps / steps_per_epoch)) and `self.warmup_steps` (run state, not
    constructor arguments: kept out of the repr and the config). A schedule over the whole run (one-cycle,
    decay to zero) reads them rather than taking the run's length as an argument.

    factor(step, epoch, progress): `step` the update t (0-based), `epoch` = step // steps_per_epoch,
    `progress` = step / total_steps in [0, 1). Warm-up: warmup_epochs (fractions allowed) make
    warmup_steps = round(warmup_epochs * steps_per_epoch), ramp(t) = min(1, (t + 1) / warmup_steps):
    torch's LinearLR(start_factor=1 / W, total_iters=W - 1). By default the schedule runs under the ramp
    from update 0 (lr = ramp * factor: torch's ChainedScheduler(LinearLR, schedule)); with
    `after_warmup = True` it starts when the warm-up ends: factor sees step - W, its epoch and
    (step - W) / (total_steps - W) (factor 1 during the warm-up): torch's SequentialLR(
    [LinearLR, schedule], milestones=[W]), e.g. warm-up + cosine.

    `reference_arguments()` (see `Referenced`) may read the run state too: it is called after `start`.
    By default it leaves out `warmup_epochs` (the checker composes the warm-up as above).
    """

    name: str = "?"
    after_warmup: bool = False
    total_steps: int | None = None
    steps_per_epoch: int | None = None
    epochs: int | None = None
    warmup_steps: int = 0
    _run_state = ("total_steps", "steps_per_epoch", "epochs", "warmup_steps")

    def __init__(self, warmup_epochs: float = 0.0):
        self.warmup_epochs = float(warmup_epochs)

    def start(self, total_steps: int, steps_per_epoch: int) -> None:
        """Learn the run's length: `total_steps` updates, `steps_per_epoch` per epoch."""
        if steps_per_epoch < 1 or total_steps < 0:
            raise ValueError(f"scheduler {self.name}: start needs steps_per_epoch >= 1 and total_steps >= 0, "
                             f"got {steps_per_epoch} and {total_steps}")
        self.total_steps, self.steps_per_epoch = int(total_steps), int(steps_per_epoch)
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.warmup_steps = round(getattr(self, "warmup_epochs", 0.0) * self.steps_per_epoch)

    def factor(self, step: int, epoch: int, progress: float) -> float:
        raise NotImplementedError

    def lr(self, base_lr: float, step: int) -> float:
        """The learning rate of update `step` (0-based), warm-up included."""
        if self.total_steps is None:
            raise RuntimeError(f"scheduler {self.name}: call start(total_steps, steps_per_epoch) before lr()")
        w, spe = self.warmup_steps, self.steps_per_epoch
        ramp = min(1.0, (step + 1) / w) if w > 0 else 1.0
        if self.after_warmup and w > 0:
            step, span = max(step - w, 0), self.total_steps - w
        else:
            span = self.total_steps
        return base_lr * ramp * self.factor(step, step // spe, step / max(span, 1))

    def reference_arguments(self) -> dict:
        return {k: v for k, v in super().reference_arguments().items() if k != "warmup_epochs"}


class Backend(Referenced):
    """An array library: `xp` is its namespace; data is drawn on the host and moved with `asarray`.

    What the library can do beyond the standard is declared, never guessed from names or types: a frozen
    `framework.special.Capabilities` (host memory, writing into `out`, erf, a one-pass axpy, C-level
    direct forms), the class's `capabilities` or what `declare` returns. `__init__` asks once and hands
    `xp` out as a `framework.special.ArrayNamespace` carrying them, so the engine and plugins read the
    capabilities of the backend they were handed (`backend.capabilities`, `xp.capabilities`), never a
    process-wide table. Subclasses set `xp` (the library's module) before calling `Backend.__init__`.
    """

    name: str = "?"
    xp: Any = None
    device: str = "cpu"
    capabilities: special.Capabilities = special.Capabilities()

    def __init__(self, dtype: str = "float32"):
        loose = [k for k in ("host_memory", "writes_out", "erf", "axpy", "direct") if hasattr(type(self), k)]
        if loose:
            raise TypeError(f"backend {type(self).__name__} declares {', '.join(loose)} as attributes, which nothing "
                            "reads: declare `capabilities = Capabilities(...)` (framework.special) or `declare()`")
        declared = self.declare()
        if declared.direct is None:
            declared = dataclasses.replace(declared, direct=special.Direct.of(self.xp))
        self.capabilities = declared
        self.xp = special.ArrayNamespace(self.xp, declared)
        self.dtype = self.resolve_dtype(dtype)

    def declare(self) -> special.Capabilities:
        """This backend's capabilities, asked once by `__init__`: the class's `capabilities`; override
        where they depend on what construction finds (a device's memory, SciPy's BLAS)."""
        return type(self).capabilities

    def resolve_dtype(self, dtype):
        """A dtype name ("float32") -> the library's dtype; None -> the backend's default."""
        if dtype is None:
            return self.dtype
        if not isinstance(dtype, str):
            return dtype
        try:
            return getattr(self.xp, dtype)
        except AttributeError:
            raise ValueError(f"dtype '{dtype}' is not available on backend '{self.name}'") from None

    def asarray(self, x, dtype=None):
        """Host array-like -> device array of `dtype` (default: the backend's float dtype)."""
        raise NotImplementedError

    def to_numpy(self, x):
        """Device array -> host numpy array."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued device work (timing); a no-op on the CPU."""

    def matmul(self, a, b, out=None):
        """`a @ b`, written into `out` where the library supports it (`capabilities.writes_out`)."""
        return self.xp.matmul(a, b)

    def take(self, a, indices, out=None):
        """Rows `indices` (each in -n..n-1) of `a` (`xp.take(a, indices, axis=0)`), into `out` where
        `writes_out`."""
        return self.xp.take(a, indices, axis=0)

    def batch_sum(self, a, out=None):
        """(n, k) -> (k,): the sum over the batch axis (a bias gradient), into `out` where `writes_out`."""
        return self.xp.sum(a, axis=0)

    def sq_norms(self, arrays, out=None):
        """(len(arrays),) array of sum(g^2) per array g (a step's squared gradient norms); written into
        `out` (a view, e.g. a row of the trainer's record) when given: only where `writes_out`."""
        from framework.engine.gradients import sq_norm

        sq = self.xp.stack([sq_norm(self.xp, g) for g in arrays])
        if out is None:
            return sq
        out[...] = sq
        return out

    def host_sq_norms(self, arrays) -> list[float]:
        """[sum(g^2) for g in arrays] as Python floats: what the trainer reads every batch on a
        `host_memory` backend (reading costs no device sync there; no array is made)."""
        return self.to_numpy(self.sq_norms(arrays)).tolist()

    def limits(self):
        """Context manager around `Trainer.fit` that applies the backend's resource settings (e.g. BLAS
        threads); a no-op by default."""
        return nullcontext()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dtype={self.dtype})"


class Initializer(_ReprByArguments):
    """`init(rng, (out, in)) -> host float64 array` of initial weights, drawn with NumPy's seeded
    generator `rng` so every backend starts from the same weights. fan_in = in, fan_out = out."""

    name: str = "?"

    def __call__(self, rng, shape: tuple[int, int]):
        raise NotImplementedError

    def variance(self, fan_in: int, fan_out: int) -> float | None:
        """The variance of the weights the documented formula gives (None: not declared); the
        conformance checks hold a large draw to it."""
        return None


class Metric(Referenced):
    """`metric(y_true, y_pred) -> float` for the tasks in `tasks` (see `framework.engine.tasks`).

    `uses="labels"`: y_pred is predicted classes (n,) int64 (`framework.engine.tasks.labels`).
    `uses="scores"`: y_pred is the scores: (n,) probability of class 1 for binary, (n, C) for
    classification, (n, k) for regression (then y_true is (n, k) too).
    """

    name: str = "?"
    tasks: tuple[str, ...] = ()
    higher_is_better: bool = True
    uses: str = "labels"

    def __call__(self, y_true, y_pred) -> float:
        raise NotImplementedError


"""The conformance checks (`framework.extend.conformance`): every registered plugin passes every check of its
kind (one test per plugin and check, generated from the registries), and each check catches the faults it is
for. The command that runs them: tests/unit/test_check_plugins_cli.py."""
import dataclasses
import warnings

import numpy as np
import pytest

from framework import ElementwiseActivation
from framework.extend import conformance
from framework.registry import (
    KINDS,
    Registry,
    activations,
    backends,
    datasets,
    initializers,
    losses,
    metrics,
    optimizers,
    schedulers,
)
from tests.unit.nadam import NAdam


@pytest.mark.parametrize("kind,name,check", [pytest.param(*c, id="-".join(c)) for c in conformance.cases()
                                             if c[2] != "reference"])  # tests/unit/test_references.py
def test_plugin_conforms(kind, name, check):
    outcome = conformance.run(KINDS[kind], name, check)
    assert outcome.ok, str(outcome)


Tanh, MSE, SGD = activations.get("tanh"), losses.get("mse"), optimizers.get("sgd")


class WrongDerivative(Tanh):
    def derivative(self, xp, z, a):
        return 1 - a  # tanh' = 1 - a^2


class NaiveSoftplus(ElementwiseActivation):
    def forward(self, xp, z):
        return xp.log(1 + xp.exp(z))  # e^z overflows

    def derivative(self, xp, z, a):
        return 1 - xp.exp(-a)


class IntegerDerivative(ElementwiseActivation):
    kinks = (0.0,)

    def forward(self, xp, z):
        return xp.maximum(z, xp.zeros_like(z))

    def derivative(self, xp, z, a):
        return (z > 0).astype(np.int64)  # float32 * int64 -> float64


class MutatesInput(Tanh):
    def forward(self, xp, z):
        return np.tanh(z, out=z)


class NumpyOnly(Tanh):
    def forward(self, xp, z):
        return np.tanh(z)


class Warns(Tanh):
    def forward(self, xp, z):
        warnings.warn("precision lost", RuntimeWarning, stacklevel=2)
        return super().forward(xp, z)


class ForgetsArgument(Tanh):
    def __init__(self, slope: float = 1.0):
        self.k = slope


class RequiredArgument(Tanh):
    def __init__(self, slope):
        self.slope = slope


class IgnoresWeight(MSE):
    def forward(self, xp, pred, target, weight=None):
        return super().forward(xp, pred, target)

    def backward(self, xp, pred, target, weight=None):
        return super().backward(xp, pred, target)


class Ascends(SGD):
    def step(self, params, grads):
        super().step(params, {k: -g for k, g in grads.items()})


class Rebinds(SGD):
    def step(self, params, grads):
        for k in params:
            params[k] = params[k] - self.lr * grads[k]


class MutatesGrads(SGD):
    def step(self, params, grads):
        for g in grads.values():
            g *= 0.5
        super().step(params, grads)


class HiddenState(SGD):
    """Momentum kept outside `state`, so state_dict misses it."""

    def __init__(self, lr: float = 0.01):
        super().__init__(lr)
        self.velocity = {}

    def step(self, params, grads):
        for k, p in params.items():
            v = self.velocity[k] = 0.9 * self.velocity.get(k, 0) + grads[k]
            p -= self.lr * v


class MixesCoordinates(SGD):
    """Declares elementwise (SGD's) but divides each update by the gradient's norm, as LARS does."""

    def step(self, params, grads):
        for _, p, g, _ in self.groups(params, grads):
            p -= self.lr * g / np.sqrt(np.sum(g * g))


class WrongVariance(initializers.get("he_normal")):
    def __call__(self, rng, shape):
        return rng.normal(0.0, (1.0 / shape[1]) ** 0.5, shape)  # variance() says 2 / fan_in


class Unseeded(initializers.get("normal")):
    def __call__(self, rng, shape):
        return np.random.default_rng().normal(0.0, self.std, shape)


class NegativeLr(schedulers.get("cosine")):
    def factor(self, step, epoch, progress):
        return super().factor(step, epoch, progress) - 0.5


class NoWarmup(schedulers.get("constant")):
    def lr(self, base_lr, step):
        return base_lr


class LowerIsBetter(metrics.get("accuracy")):
    higher_is_better = False


class OverwritesZ(ElementwiseActivation):
    """Writes a over z in its fast path, but its derivative reads z."""

    def forward(self, xp, z):
        return xp.tanh(z)

    def forward_inplace(self, xp, z):
        z[...] = xp.tanh(z)
        return z

    def derivative(self, xp, z, a):
        return 1 - xp.tanh(z) ** 2


class ClaimsOut(backends.get("numpy")):
    """Declares NumPy's writes_out but its matmul returns a new array."""

    def matmul(self, a, b, out=None):
        return np.matmul(a, b)


class ClaimsDevice(backends.get("numpy")):
    def declare(self):
        return dataclasses.replace(super().declare(), host_memory=False)


class SumsOneAxis(backends.get("numpy")):
    """Declares np.add.reduce as is for sum: its default axis is 0, the standard's all axes."""

    def declare(self):
        caps = super().declare()
        return dataclasses.replace(caps, direct=caps.direct._replace(sum=np.add.reduce))


class AxpyIgnored(backends.get("numpy")):
    """Declares an axpy that reports success but does nothing."""

    def declare(self):
        return dataclasses.replace(super().declare(), axpy=lambda y, alpha, x: True)


FAULTS = [  # kind, plugin, the check that must fail, a fragment of its message
    ("activation", WrongDerivative, "gradcheck", "gradcheck activation 'bad': FAILED"),
    ("activation", WrongDerivative, "extreme", "analytic"),
    ("activation", NaiveSoftplus, "extreme", "forward at z=[-10000.0"),
    ("activation", IntegerDerivative, "dtype_shape", "backward has dtype float64 for float32 input"),
    ("activation", MutatesInput, "no_mutation", "z (by forward) was modified in place"),
    ("activation", NumpyOnly, "array_api", "forward returned ndarray, not an array of xp"),
    ("activation", Warns, "dtype_shape", "RuntimeWarning: precision lost"),
    ("activation", ForgetsArgument, "config", "attributes {'slope': '<missing>'} do not reproduce"),
    ("activation", RequiredArgument, "config", "constructor arguments ['slope'] have no default"),
    ("activation", OverwritesZ, "inplace", "backward_inplace differs from backward"),
    ("loss", IgnoresWeight, "weight", "sample 0 has weight 0 but gradient"),
    ("optimizer", Ascends, "decrease", "f(p) = p^T diag(1, 10) p / 2 went from 24.5 to"),
    ("optimizer", Rebinds, "dtype_shape", "step replaced params['w']"),
    ("optimizer", MutatesGrads, "no_mutation", "grads['w'] was modified in place"),
    ("optimizer", HiddenState, "state_dict", "after load_state_dict(state_dict()) params['w'] differ"),
    ("optimizer", MixesCoordinates, "flat", "declared elementwise, but updating all parameters at once (flat) differs"),
    ("initializer", WrongVariance, "variance", "sample variance 0.003"),
    ("initializer", Unseeded, "seeded", "two draws from generators seeded alike differ"),
    ("scheduler", NegativeLr, "lr", "it must be finite and >= 0"),
    ("scheduler", NoWarmup, "warmup", "with warmup_epochs=2 (10 steps) lr at step 0 is 0.1"),
    ("metric", LowerIsBetter, "tasks", "but higher_is_better=False"),
    ("backend", ClaimsOut, "methods", "writes_out is declared but matmul left `out` unwritten"),
    ("backend", ClaimsDevice, "methods", "host_memory=False is declared but NumPy can view its arrays"),
    ("backend", SumsOneAxis, "methods", "direct sum(x) gives float32 (4,), the namespace's float32 ()"),
    ("backend", AxpyIgnored, "methods", "the declared axpy(y, -0.5, x) returned True but left y"),
]


class NAdamSignError(NAdam):
    def mu(self, t):
        return self.beta1 * (1 + 0.5 * 0.96 ** (t * self.momentum_decay))  # 1 - 0.5 ...


class ProgressOneCycle(schedulers.get("one_cycle")):
    """The user's one-cycle before `start`: laid over `progress` alone, without torch's phase ends at
    updates pct_start T - 1 and T - 1, so its last lr is far above torch's final one."""

    def factor(self, step, epoch, progress):
        initial = 1 / self.div_factor
        if progress <= self.pct_start:
            return self._anneal(initial, 1.0, progress / self.pct_start)
        return self._anneal(1.0, initial / self.final_div_factor, (progress - self.pct_start) / (1 - self.pct_start))


class SummedMSE(MSE):
    def scale(self, pred):
        return 1.0  # torch's mse_loss averages


class F1OfMeans(metrics.get("f1_macro")):
    """2 P R / (P + R) of the macro precision and recall: not the mean of the per-class F1."""

    def __call__(self, y_true, y_pred):
        p, r = metrics.create("precision_macro")(y_true, y_pred), metrics.create("recall_macro")(y_true, y_pred)
        return 2 * p * r / (p + r)


def reversed_digits():
    ds = datasets.create("digits")
    return dataclasses.replace(ds, X=ds.X[::-1], y=ds.y[::-1])


class Float32Matmul(backends.get("numpy")):
    reference = "numpy"

    def matmul(self, a, b, out=None):
        product = np.matmul(a.astype(np.float32), b.astype(np.float32))
        if out is None:
            return product.astype(a.dtype)
        out[...] = product
        return out


REFERENCE_FAULTS = [  # kind, plugin, a fragment of the reference check's message
    ("activation", WrongDerivative, "reference torch.nn.functional.tanh: worst rel. error"),
    ("loss", SummedMSE, "reference torch.nn.functional.mse_loss: worst rel. error"),
    ("optimizer", NAdamSignError, "reference torch.optim.NAdam: worst rel. error"),
    ("scheduler", ProgressOneCycle, "reference torch.optim.lr_scheduler.OneCycleLR: worst rel. error"),
    ("metric", F1OfMeans, "reference sklearn.metrics.f1_score: worst rel. error"),
    ("initializer", WrongVariance, "reference torch.nn.init.kaiming_normal_: worst rel. error 5.0e-01"),
    ("dataset", reversed_digits, "reference sklearn.datasets.load_digits: worst rel. error"),
    ("backend", Float32Matmul, "reference numpy: worst rel. error"),
]


@pytest.mark.parametrize("kind,plugin,message", REFERENCE_FAULTS,
                         ids=[f"{p.__name__}-{k}" for k, p, _ in REFERENCE_FAULTS])
def test_reference_check_catches_faults(kind, plugin, message):
    library = message.split()[1].split(".")[0].rstrip(":")
    if library != "numpy":
        pytest.importorskip(library, reason=f"{library} not installed: the reference check prints a skip")
    registry = Registry(kind, group=KINDS[kind].group)
    registry.register("bad", reference="sklearn.datasets.load_digits" if kind == "dataset" else None)(plugin)
    outcome = conformance.run(registry, "bad", "reference")
    assert not outcome.ok and message in outcome.figure and "exceeds the tolerance" in outcome.figure, outcome.figure


@pytest.mark.parametrize("kind,cls,check,message", FAULTS, ids=[f"{c.__name__}-{k}" for _, c, k, _ in FAULTS])
def test_checks_catch_faults(kind, cls, check, message):
    registry = Registry(kind, group=KINDS[kind].group)
    registry.register("bad")(cls)
    outcome = conformance.run(registry, "bad", check)
    assert not outcome.ok and message in outcome.figure, outcome.figure


def test_every_kind_is_under_contract():
    counts = {kind: sum(1 for k, _, _ in conformance.cases() if k == kind) for kind in KINDS}
    assert set(conformance.CHECKS) == set(KINDS) and all(counts.values()), counts

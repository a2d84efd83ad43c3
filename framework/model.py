"""The multi-layer perceptron: forward as matrix products, backward by the chain rule.

Layer l holds W_l (out, in) and b_l (out,). On a batch X (batch, in):
    forward:  Z_l = A_{l-1} @ W_l.T + b_l,   A_l = f_l(Z_l),   A_0 = X
    backward: dZ_l = f_l.backward(Z_l, A_l, dA_l)
              dW_l = dZ_l.T @ A_{l-1},  db_l = sum_batch dZ_l,  dA_{l-1} = dZ_l @ W_l
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from framework.errors import ConfigError, ShapeError
from framework.flat import flat_zeros
from framework.interfaces import Activation, Backend
from framework.registry import activations, backends, initializers


def _activation(spec) -> Activation:
    return activations.create(spec) if isinstance(spec, str) else spec


def _zeros(xp, shapes: dict, dtype) -> dict:
    return {k: xp.zeros(s, dtype=dtype) for k, s in shapes.items()}


class MLP:
    """Fully-connected network `sizes[0] -> ... -> sizes[-1]`.

    activation: hidden-layer activation (name or instance), or a list with one per hidden layer.
    backend: registered name or a `Backend` instance; dtype: "float32" (default) or "float64".
    Weights come from `initializer` with NumPy's generator seeded by `seed` (same on every backend);
    biases start at zero.
    `params` and `grads` map names ("layers.0.W", ...) to arrays; where the backend writes into `out`
    they are `framework.flat.FlatDict`s, views of one flat buffer each (`params.flat`, `grads.flat`).
    """

    def __init__(self, sizes: Sequence[int], activation="relu", output_activation="identity",
                 backend="numpy", dtype: str = "float32", initializer="xavier_uniform", seed: int = 0):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ConfigError(f"model sizes must be >= 2 positive layer widths (input ... output), got {sizes}")
        n_hidden = len(sizes) - 2
        acts = list(activation) if isinstance(activation, (list, tuple)) else [activation] * n_hidden
        if len(acts) != n_hidden:
            raise ConfigError(f"{len(acts)} activations given for {n_hidden} hidden layers (sizes={sizes})")
        self.sizes = sizes
        self.activations = [_activation(a) for a in acts] + [_activation(output_activation)]
        self.backend: Backend = backends.create(backend, dtype=dtype) if isinstance(backend, str) else backend
        self.dtype = self.backend.resolve_dtype(dtype)
        self.seed = seed
        init = initializers.create(initializer) if isinstance(initializer, str) else initializer
        rng = np.random.default_rng(seed)
        shapes = {}
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes[f"layers.{l}.W"], shapes[f"layers.{l}.b"] = (n_out, n_in), (n_out,)
        # where the backend writes into `out`, parameters and gradients are views of one flat buffer
        # each (`FlatDict`): an elementwise optimizer then updates all of them in one pass per operation
        zeros = flat_zeros if self.backend.capabilities.writes_out else _zeros
        self.params: dict = zeros(self.backend.xp, shapes, self.dtype)
        self.grads: dict = zeros(self.backend.xp, shapes, self.dtype)
        for name, shape in shapes.items():
            if name.endswith(".W"):  # biases start at zero
                self.params[name][...] = self.backend.asarray(init(rng, shape), self.dtype)
        self._layers = [(f"layers.{l}.W", f"layers.{l}.b", f) for l, f in enumerate(self.activations)]
        self._cache: list = []
        self._work: dict = {}  # (kind, batch size) -> work arrays (`_buffers`)

    @property
    def num_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def num_params(self) -> int:
        return sum(int(np.prod(p.shape)) for p in self.params.values())

    def _buffers(self, kind: str, n: int) -> list:
        """Preallocated work arrays for batch size n, reused by every batch of that size, made when first
        used (evaluation batches never make dA): kind "Z": Z[l] (n, sizes[l + 1]) of the hidden layers
        (None for the output layer: the caller keeps the output); "dA": dA[l], the gradient of hidden
        layer l's output. All None where the backend's matmul cannot write into `out`."""
        bufs = self._work.get((kind, n))
        if bufs is None:
            xp, hidden, keep = self.backend.xp, self.sizes[1:-1], self.backend.capabilities.writes_out
            bufs = [xp.zeros((n, m), dtype=self.dtype) if keep else None for m in hidden]
            bufs = self._work[kind, n] = bufs + ([None] if kind == "Z" else [])
        return bufs

    def forward(self, X):
        """X (batch, sizes[0]) -> output (batch, sizes[-1]); caches (A_{l-1}, Z_l, A_l) for backward.

        Hidden layers' Z_l live in preallocated buffers and their activations may overwrite them
        (`Activation.forward_inplace`); the output is a fresh array (the caller keeps it).
        """
        be = self.backend
        X = be.asarray(X, self.dtype)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ShapeError(
                f"model input must be (batch, {self.sizes[0]}), got {tuple(X.shape)}: "
                f"the data has {X.shape[-1] if X.ndim else 0} features but model sizes are {self.sizes}"
            )
        xp, params, matmul = be.xp, self.params, be.matmul
        A, cache = X, self._cache
        cache.clear()
        for (kW, kb, f), buf in zip(self._layers, self._buffers("Z", X.shape[0])):
            Z = matmul(A, params[kW].T, out=buf)
            Z += params[kb]
            A_next = f.forward_inplace(xp, Z)
            cache.append((A, Z, A_next))
            A = A_next
        return A

    def backward(self, grad_out, *, input_grad: bool = True):
        """grad_out = dL/dA_L (batch, sizes[-1]) -> fills `grads`, returns dL/dX (batch, sizes[0]).

        `input_grad=False` skips the product dL/dX = dZ_1 @ W_1 (a training step does not need it; it
        costs a third of the first layer's backward work) and returns None. grad_out is not modified;
        the hidden layers' dA_l are the model's own buffers, which `Activation.backward_inplace` may
        overwrite.
        """
        cache = self._cache
        if not cache:
            raise RuntimeError("MLP.backward called before forward")
        be, xp, params, grads = self.backend, self.backend.xp, self.params, self.grads
        matmul, batch_sum, writes_out = be.matmul, be.batch_sum, be.capabilities.writes_out
        out = cache[-1][2]
        if tuple(grad_out.shape) != tuple(out.shape):
            raise ShapeError(f"grad_out has shape {tuple(grad_out.shape)} but the output is {tuple(out.shape)}")
        dA_bufs = self._buffers("dA", out.shape[0])
        last = len(cache) - 1
        dA = grad_out
        for l in range(last, -1, -1):
            A_prev, Z, A = cache[l]
            kW, kb, f = self._layers[l]
            # grad_out is the caller's (never overwritten); the hidden layers' dA are the model's buffers
            dZ = f.backward(xp, Z, A, dA) if l == last else f.backward_inplace(xp, Z, A, dA)
            if writes_out:  # into the gradient buffers (views of one flat buffer), which stay
                matmul(dZ.T, A_prev, out=grads[kW])
                batch_sum(dZ, out=grads[kb])
            else:
                grads[kW], grads[kb] = matmul(dZ.T, A_prev), batch_sum(dZ)
            if l or input_grad:
                dA = matmul(dZ, params[kW], out=dA_bufs[l - 1] if l else None)
        return dA if input_grad else None

    def state_dict(self) -> dict[str, np.ndarray]:
        """Host copies of the parameters."""
        return {k: self.backend.to_numpy(v).copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict) -> None:
        """Copy host arrays into the parameters (same names and shapes)."""
        missing = set(self.params) ^ set(state)
        if missing:
            raise ShapeError(f"parameter names differ: {sorted(missing)}")
        for k, v in state.items():
            if tuple(v.shape) != tuple(self.params[k].shape):
                raise ShapeError(f"{k}: checkpoint shape {tuple(v.shape)} != model shape {tuple(self.params[k].shape)}")
            self.params[k][...] = self.backend.asarray(v, self.dtype)  # in place: never alias `state`

    def __repr__(self) -> str:
        acts = [a.name for a in self.activations]
        dtype = getattr(self.dtype, "__name__", self.dtype)
        return f"MLP(sizes={self.sizes}, activations={acts}, backend={self.backend.name}, dtype={dtype})"

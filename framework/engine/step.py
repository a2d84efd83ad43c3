"""One training step: forward -> loss -> backward -> update. `Trainer`, the speed benchmark and the
tests all run this function, so what is timed and tested is what users run."""
from __future__ import annotations

from typing import Callable

from framework.interfaces import Loss, Optimizer


def train_step(model, loss: Loss, optimizer: Optimizer, X, T, weight=None,
               before_update: Callable | None = None):
    """One update of `model` on batch X (batch, in) with targets T; returns the loss (0-d device array).

        out = model.forward(X);  L, dL/dout = loss.value_and_grad(out, T, weight)
        model.backward(dL/dout)  (fills model.grads; no dL/dX: a step does not need it)
        optimizer.step(model.params, model.grads)  unless before_update(L) returns False

    `before_update(L)` sees the gradients before the update (the trainer records gradient norms,
    clips, and skips a non-finite update there). X and T must already be on the model's backend.
    """
    xp = model.backend.xp
    out = model.forward(X)
    value, grad = loss.value_and_grad(xp, out, T, weight)
    model.backward(grad, input_grad=False)
    if before_update is None or before_update(value):
        optimizer.step(model.params, model.grads)
    return value

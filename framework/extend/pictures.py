"""One picture per plugin: f and f' of an activation, a loss and its gradient over the prediction.

    plot_plugin("activation", "silu", "silu.svg", beta=2.0)   # -> Path("silu.svg")

Curves come from the plugin's own forward/backward (NumPy, float64); the dotted numeric slope of the
curve lies on the dashed derivative unless the derivative is wrong. `plugin_curves` (NumPy only) and
`curves_svg` (the project's SVG renderer, `framework.tracking.report.svg`) split the work, so a
training process can hand the curves to the process that draws and uploads them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from framework.interfaces import ElementwiseActivation
from framework.registry import activations, losses

KINDS = ("activation", "loss")


def plot_plugin(kind: str, name: str, path, **config) -> Path:
    """Write the SVG picture of plugin `name` of `kind` ("activation" or "loss") built with `config` to `path`."""
    return draw_curves(plugin_curves(kind, name, **config), path)


def plugin_curves(kind: str, name: str, **config) -> dict:
    """What the picture shows, as plain data (JSON-ready): {"x", "value", "grad", "labels", "title"}.
    Cheap (NumPy only), so a training process computes it and another process can draw it."""
    registry = {"activation": activations, "loss": losses}.get(kind)
    if registry is None:
        raise ValueError(f"no plot for kind {kind!r}; plots exist for {', '.join(KINDS)}")
    plugin = registry.create(name, **config)
    x, value, grad, labels = (_activation_curves if kind == "activation" else _loss_curves)(plugin)
    args = ", ".join(f"{k}={v!r}" for k, v in (registry.defaults(name) | config).items())
    return {"x": np.asarray(x, float).tolist(), "value": np.asarray(value, float).tolist(),
            "grad": np.asarray(grad, float).tolist(), "labels": list(labels),
            "title": f"{kind} '{name}'" + (f" ({args})" if args else "")}


def curves_svg(curves: dict) -> str:
    """The SVG picture of `plugin_curves`' output: f ("-"), its derivative ("--"), f's numeric slope (":"),
    y = 0 in grey."""
    from framework.tracking.report.svg import Axes

    x, value, grad = (np.asarray(curves[k], float) for k in ("x", "value", "grad"))
    labels = curves["labels"]
    series = [(labels[1], x, value, "-"), (labels[2], x, grad, "--"),
              ("numeric slope of " + labels[1], x, np.gradient(value, x), ":")]
    return Axes(series, curves["title"], labels[0], "", hline=0.0).svg()


def draw_curves(curves: dict, path) -> Path:
    """`curves_svg` of `plugin_curves`' output written to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(curves_svg(curves), encoding="utf-8")
    return path


def _activation_curves(act):
    """f and f' along z in [-5, 5], as unit 0 of rows (z, 0) (for elementwise f, exactly f and f')."""
    z = np.linspace(-5, 5, 401)
    rows = np.stack([z, np.zeros_like(z)], axis=1)
    a = act.forward(np, rows)
    unit0 = np.stack([np.ones_like(z), np.zeros_like(z)], axis=1)
    label = "z" if isinstance(act, ElementwiseActivation) else "z_0 of the row (z_0, 0); unit 0 shown"
    return z, a[:, 0], act.backward(np, rows, a, unit0)[:, 0], (label, "f(z)", "f'(z)")


def _loss_curves(loss):
    """L and dL/dpred over one prediction, the target fixed at 1 (probabilities, logits) or 0 (values);
    for class indices, over logit 0 of the row (logit 0, 0) with target class 0."""
    indices = loss.targets == "indices"
    if loss.on_probabilities:
        x, t = np.linspace(0.01, 0.99, 197), 1.0
    else:
        x, t = np.linspace(-4, 4, 401), float(loss.expects_logits)
    target = np.zeros(1, dtype=np.int64) if indices else np.full((1, 1), t)
    preds = [np.array([[v, 0.0]] if indices else [[v]]) for v in x]
    values = [float(loss.forward(np, p, target)) for p in preds]
    grads = [float(loss.backward(np, p, target)[0, 0]) for p in preds]
    label = "logit 0 of the row (logit 0, 0), target class 0" if indices else f"pred (target {t:g})"
    return x, values, grads, (label, "L(pred)", "dL/dpred")

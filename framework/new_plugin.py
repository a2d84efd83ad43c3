"""Scaffold: `python -m framework.new_plugin {activation,loss,optimizer} NAME [--dir DIR]` writes DIR/NAME.py.

The file registers NAME, documents formula, derivative (update rule) and shapes, and implements a
placeholder (scaled identity; half squared error; SGD with momentum) that passes
`python -m framework.check_plugins` as generated. Every line to replace is marked TODO.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from framework.registry import activations, losses, optimizers

ACTIVATION = '''"""Activation '{name}': load with plugins.paths=[{dir}] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins {name} --paths {dir}
Use:    python -m framework.train plugins.paths=[{dir}] activation={name} activation.scale=2.0
"""
from framework import ElementwiseActivation
from framework.registry import activations


@activations.register("{name}")
class {cls}(ElementwiseActivation):
    """TODO: one line on what '{name}' is, with a reference.

    f(z)  = scale * z        TODO: your formula (this placeholder is a scaled identity)
    f'(z) = scale            TODO: its derivative, derived by hand
    Shapes: z, a = f(z), grad_a and the result: any shape, e.g. (batch, units); the dtype of z.
    """

    def __init__(self, scale: float = 1.0):  # TODO: your parameters; each becomes activation.<arg>
        self.scale = float(scale)  # store every argument under its own name

    def forward(self, xp, z):
        return self.scale * z  # TODO: f(z), with xp functions only (xp.exp, xp.where, ...)

    def derivative(self, xp, z, a):
        return xp.full_like(z, self.scale)  # TODO: f'(z); may reuse a = f(z)
'''

LOSS = '''"""Loss '{name}': load with plugins.paths=[{dir}] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins {name} --paths {dir}
Use:    python -m framework.train plugins.paths=[{dir}] loss={name}
"""
from framework import Loss
from framework.registry import losses


@losses.register("{name}")
class {cls}(Loss):
    """TODO: one line on what '{name}' is, with a reference.

    L     = sum_i w_i sum_j e(pred_ij, target_ij) / n,  n = pred.size,  w_i = 1 without weights
    e     = (pred - target)^2 / 2      TODO: your per-element loss (placeholder: half squared error)
    de/dp = pred - target              TODO: its derivative, derived by hand
    Shapes: pred, target (batch, out); weight (batch,) or None; forward -> 0-d array,
    backward -> dL/dpred (batch, out); the dtype of pred.
    """

    def forward(self, xp, pred, target, weight=None):
        d = pred - target
        return xp.sum(_per_sample(xp, weight) * (d * d / 2)) / pred.size  # TODO: your e

    def backward(self, xp, pred, target, weight=None):
        return _per_sample(xp, weight) * (pred - target) / pred.size  # TODO: your de/dp


def _per_sample(xp, weight):
    """Weights (batch,) as a column (batch, 1) that scales each sample's row; 1 without weights."""
    return 1 if weight is None else xp.reshape(weight, (-1, 1))
'''

OPTIMIZER = '''"""Optimizer '{name}': load with plugins.paths=[{dir}] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins {name} --paths {dir}
Use:    python -m framework.train plugins.paths=[{dir}] optimizer={name} optimizer.lr=0.01
"""
from framework import Optimizer
from framework.registry import optimizers


@optimizers.register("{name}")
class {cls}(Optimizer):
    """TODO: one line on what '{name}' is, with a reference.

    v <- momentum v + g;  p <- p - lr v      TODO: your update rule (placeholder: SGD with momentum)
    Shapes: params and grads map names to arrays of one shape and dtype each; update p in place (the
    trainer holds these arrays), never g. State comes from slot(kind), so state_dict() saves it and
    a resumed run continues exactly. Weight decay: g arrives as g + weight_decay p (decoupled_decay =
    True: p shrinks by 1 - lr weight_decay first instead).
    """

    elementwise = True  # TODO: False if a coordinate's update uses others (a norm over a parameter)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):  # TODO: yours
        super().__init__(lr)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)  # each under its own name

    def step(self, params, grads):
        # array functions (sqrt, sign, ...): xp = framework.flat.namespace(params), the backend's namespace
        for name, p, g, slot in self.updates(params, grads):  # t += 1; all parameters at once where elementwise
            v = slot("velocity")                    # TODO: your state (zeros at the first step)
            v *= self.momentum                      # TODO: your update, in place
            v += g
            p -= self.lr * v
'''

TEMPLATES = {"activation": (ACTIVATION, activations), "loss": (LOSS, losses), "optimizer": (OPTIMIZER, optimizers)}


def write_plugin(kind: str, name: str, folder=".") -> Path:
    """Write `folder`/`name`.py from the `kind` template; refuses taken names and existing files."""
    template, registry = TEMPLATES[kind]
    if not (name.isidentifier() and name == name.lower()):
        raise ValueError(f"plugin name {name!r} must be lowercase letters, digits and '_' (e.g. my_{kind})")
    if name in registry:
        raise ValueError(f"{kind} '{name}' is already registered; pick another name")
    folder = Path(folder).resolve()
    path = folder / f"{name}.py"
    if path.exists():
        raise FileExistsError(f"{path} exists; pick another name or folder")
    cls = "".join(part.capitalize() for part in name.split("_"))
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(template.format(name=name, cls=cls, dir=folder))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m framework.new_plugin", description=__doc__.split("\n\n")[1])
    parser.add_argument("kind", choices=sorted(TEMPLATES))
    parser.add_argument("name", help="registered name = Hydra option, e.g. my_act")
    parser.add_argument("--dir", default=".", help="folder to write NAME.py into (default: .)")
    args = parser.parse_args(argv)
    try:
        path = write_plugin(args.kind, args.name, args.dir)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    print(f"wrote {path}\ncheck it: python -m framework.check_plugins {args.name} --paths {path.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Optimizer 'my_optimizer': load with plugins.paths=[<dir>] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins my_optimizer --paths <dir>
Use:    python -m framework.train plugins.paths=[<dir>] optimizer=my_optimizer optimizer.lr=0.01
"""
from framework import Optimizer
from framework.registry import optimizers


@optimizers.register("my_optimizer")
class MyOptimizer(Optimizer):
    """TODO: one line on what 'my_optimizer' is, with a citation.

    v <- momentum v + g;  p <- p - lr v      TODO: your update rule (placeholder: SGD with momentum)
    Shapes: params and grads map names to arrays of one shape and dtype each; update p in place (the
    trainer holds these arrays), never g. State comes from slot(kind) (arrays) and self.scalars (plain
    numbers), so state_dict() saves it and a resumed run continues exactly. Weight decay: g arrives as
    g + weight_decay p (decoupled_decay = True: p shrinks by 1 - lr weight_decay first instead).
    """

    reference = None  # optional: the same math elsewhere, e.g. "torch.optim.SGD" (checked)

    elementwise = True  # TODO: False if a coordinate's update uses others (a norm over a parameter)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):  # TODO: yours
        super().__init__(lr)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)  # each under its own name

    def step(self, params, grads):
        # array functions (sqrt, sign, ...): xp = framework.flat.namespace(params), the backend's namespace
        for _name, p, g, slot in self.updates(params, grads):  # t += 1; all parameters at once where elementwise
            v = slot("velocity")                    # TODO: your state (zeros at the first step)
            v *= self.momentum                      # TODO: your update, in place
            v += g
            p -= self.lr * v

"""Activation 'my_activation': load with plugins.paths=[<dir>] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins my_activation --paths <dir>
Use:    python -m framework.train plugins.paths=[<dir>] activation=my_activation activation.scale=2.0
"""
from framework import ElementwiseActivation
from framework.registry import activations


@activations.register("my_activation")
class MyActivation(ElementwiseActivation):
    """TODO: one line on what 'my_activation' is, with a citation.

    f(z)  = scale * z        TODO: your formula (this placeholder is a scaled identity)
    f'(z) = scale            TODO: its derivative, derived by hand
    Shapes: z, a = f(z), grad_a and the result: any shape, e.g. (batch, units); the dtype of z.
    """

    reference = None  # optional: the same math elsewhere, e.g. "torch.nn.functional.silu" (checked)

    def __init__(self, scale: float = 1.0):  # TODO: your parameters; each becomes activation.<arg>
        self.scale = float(scale)  # store every argument under its own name

    def forward(self, xp, z):
        return self.scale * z  # TODO: f(z), with xp functions only (xp.exp, xp.where, ...)

    def derivative(self, xp, z, a):
        return xp.full_like(z, self.scale)  # TODO: f'(z); may reuse a = f(z)

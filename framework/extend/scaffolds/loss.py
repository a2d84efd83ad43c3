"""Loss 'my_loss': load with plugins.paths=[<dir>] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins my_loss --paths <dir>
Use:    python -m framework.train plugins.paths=[<dir>] loss=my_loss
"""
from framework import Loss
from framework.registry import losses


@losses.register("my_loss")
class MyLoss(Loss):
    """TODO: one line on what 'my_loss' is, with a citation.

    L     = sum_i w_i sum_j e(pred_ij, target_ij) / n,  n = pred.size,  w_i = 1 without weights
    e     = (pred - target)^2 / 2      TODO: your per-element loss (placeholder: half squared error)
    de/dp = pred - target              TODO: its derivative, derived by hand
    Shapes: pred, target (batch, out); weight (batch,) or None; forward -> 0-d array,
    backward -> dL/dpred (batch, out); the dtype of pred.
    """

    reference = None  # optional: the same math elsewhere, e.g. "torch.nn.functional.mse_loss" (checked)

    def forward(self, xp, pred, target, weight=None):
        d = pred - target
        return xp.sum(_per_sample(xp, weight) * (d * d / 2)) / pred.size  # TODO: your e

    def backward(self, xp, pred, target, weight=None):
        return _per_sample(xp, weight) * (pred - target) / pred.size  # TODO: your de/dp


def _per_sample(xp, weight):
    """Weights (batch,) as a column (batch, 1) that scales each sample's row; 1 without weights."""
    return 1 if weight is None else xp.reshape(weight, (-1, 1))

"""Metric 'my_metric': load with plugins.paths=[<dir>] (or $FRAMEWORK_PLUGIN_PATH).

Check:  python -m framework.check_plugins my_metric --paths <dir>
Use:    python -m framework.train plugins.paths=[<dir>] "trainer.metrics=[accuracy,my_metric]"
"""
import numpy as np

from framework import Metric
from framework.registry import metrics


@metrics.register("my_metric")
class MyMetric(Metric):
    """TODO: one line on what 'my_metric' is, with a citation.

    value = mean(y_pred == y_true)   TODO: your formula (placeholder: accuracy)
    Shapes: y_true (n,) int64 classes; y_pred by `uses`: "labels" the predicted classes (n,) int64,
    "scores" the probabilities (n, C) (binary: (n,) P(class 1); regression: (n, k) like y_true).
    """

    tasks = ("classification", "binary")  # TODO: the tasks it applies to ("regression" too)
    uses = "labels"                       # TODO: or "scores"
    higher_is_better = True               # TODO: False for an error
    reference = None  # optional: the same math elsewhere, e.g. "sklearn.metrics.accuracy_score" (checked)

    def __call__(self, y_true, y_pred):
        return float(np.mean(y_true == y_pred))  # TODO: your value, a float (NumPy arrays in)

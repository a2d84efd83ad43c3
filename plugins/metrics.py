"""Built-in metrics in numpy: accuracy; precision, recall, F1 (macro, micro, positive class); ROC AUC;
MSE, MAE, R2.

Per class: precision = tp / (tp + fp), recall = tp / (tp + fn), F1 = 2 tp / (2 tp + fp + fn); a zero
denominator gives 0.0 (sklearn's zero_division=0). Macro averages over the classes present in y_true or
y_pred (as sklearn does); micro pools the counts first.
"""
from __future__ import annotations

import numpy as np

from framework.engine.metrics import Metric, confusion_matrix
from framework.registry import metrics

LABEL_TASKS = ("classification", "binary")


@metrics.register("accuracy")
class Accuracy(Metric):
    """mean(y_pred == y_true)."""

    tasks = LABEL_TASKS
    reference = "sklearn.metrics.accuracy_score"

    def __call__(self, y_true, y_pred):
        return np.mean(y_true == y_pred)


class PrecisionRecallF1(Metric):
    """`measure` (precision, recall, f1) averaged by `average`: macro, micro, or binary (class 1 only)."""

    tasks = LABEL_TASKS
    measure = "f1"
    average = "macro"

    reference = "sklearn.metrics.f1_score"  # each subclass names its measure's

    def reference_arguments(self):
        return {"average": self.average, "zero_division": 0}

    def __call__(self, y_true, y_pred):
        n_classes = 2 if self.average == "binary" else int(max(y_true.max(), y_pred.max())) + 1
        cm = confusion_matrix(y_true, y_pred, n_classes)
        tp = np.diag(cm)
        fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
        if self.average == "binary":
            tp, fp, fn = tp[1:], fp[1:], fn[1:]
        elif self.average == "micro":
            tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
        else:
            present = cm.sum(axis=0) + cm.sum(axis=1) > 0
            tp, fp, fn = tp[present], fp[present], fn[present]
        num, den = {
            "precision": (tp, tp + fp),
            "recall": (tp, tp + fn),
            "f1": (2 * tp, 2 * tp + fp + fn),
        }[self.measure]
        return np.mean(np.divide(num, den, out=np.zeros(len(num)), where=den > 0))


# precision_macro ... f1_micro (classification and binary), and precision / recall / f1 of the positive
# class (binary): one class each, as a third-party plugin would register them.
for _measure in ("precision", "recall", "f1"):
    _own = {"measure": _measure, "reference": f"sklearn.metrics.{_measure}_score"}
    for _average in ("macro", "micro"):
        metrics.register(f"{_measure}_{_average}")(type(
            f"{_measure.title()}{_average.title()}", (PrecisionRecallF1,), {**_own, "average": _average}))
    metrics.register(_measure)(type(
        _measure.title(), (PrecisionRecallF1,), {**_own, "tasks": ("binary",), "average": "binary"}))


@metrics.register("roc_auc")
class RocAuc(Metric):
    """P(score of a random positive > score of a random negative), ties counting 1/2 (Mann-Whitney U).

    AUC = (sum of the positives' ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg), tied scores sharing
    their average rank. NaN when y_true holds one class only.
    """

    tasks = ("binary",)
    uses = "scores"
    reference = "sklearn.metrics.roc_auc_score"

    def __call__(self, y_true, y_pred):
        pos = y_true == 1
        n_pos, n_neg = pos.sum(), (~pos).sum()
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        _, group, counts = np.unique(y_pred, return_inverse=True, return_counts=True)
        ranks = (np.cumsum(counts) - (counts - 1) / 2)[group.ravel()]  # 1-based average rank per tie group
        return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


class Regression(Metric):
    tasks = ("regression",)
    uses = "scores"
    higher_is_better = False


@metrics.register("mse")
class MSE(Regression):
    """mean((y_pred - y_true)^2) over all entries."""

    reference = "sklearn.metrics.mean_squared_error"

    def __call__(self, y_true, y_pred):
        return np.mean((y_pred - y_true) ** 2)


@metrics.register("mae")
class MAE(Regression):
    """mean(|y_pred - y_true|) over all entries."""

    reference = "sklearn.metrics.mean_absolute_error"

    def __call__(self, y_true, y_pred):
        return np.mean(np.abs(y_pred - y_true))


@metrics.register("r2")
class R2(Regression):
    """1 - sum((y - y_pred)^2) / sum((y - mean(y))^2) per output column, averaged over columns.

    A constant column scores 1.0 if predicted exactly, else 0.0 (as sklearn does).
    """

    reference = "sklearn.metrics.r2_score"

    higher_is_better = True

    def __call__(self, y_true, y_pred):
        ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
        ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
        ratio = np.divide(ss_res, ss_tot, out=np.where(ss_res == 0, 0.0, 1.0), where=ss_tot > 0)
        return np.mean(1 - ratio)

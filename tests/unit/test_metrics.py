"""Metrics against hand-computed cases and against sklearn.metrics on random data."""
from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm

from framework.engine.data import TASKS
from framework.engine.metrics import confusion_matrix, default_metrics, evaluate
from framework.errors import ConfigError, ShapeError, UnknownNameError
from framework.registry import metrics

# Multi-class hand case. Confusion matrix (rows true, cols predicted):
#   [[1, 1, 0],      tp = [1, 2, 1], fp = [1, 1, 0], fn = [1, 0, 1]
#    [0, 2, 0],      precision = [1/2, 2/3, 1],  recall = [1/2, 1, 1/2]
#    [1, 0, 1]]      F1 = 2tp / (2tp + fp + fn) = [1/2, 4/5, 2/3]
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0])
HAND_MULTI = {
    "accuracy": 4 / 6,
    "precision_macro": (1 / 2 + 2 / 3 + 1) / 3,
    "recall_macro": (1 / 2 + 1 + 1 / 2) / 3,
    "f1_macro": (1 / 2 + 4 / 5 + 2 / 3) / 3,
    "precision_micro": 4 / 6,  # sum tp / sum (tp + fp)
    "recall_micro": 4 / 6,
    "f1_micro": 4 / 6,
}

# Binary hand case: p >= 0.5 predicts [1, 0, 1, 0, 1]: tp = 2, fp = 1, fn = 1, tn = 1.
# AUC: positives {0.9, 0.4, 0.7} beat negatives {0.6, 0.2} in 2 + 1 + 2 of 6 pairs.
B_TRUE = np.array([1, 1, 0, 0, 1])
B_PROB = np.array([0.9, 0.4, 0.6, 0.2, 0.7])
HAND_BINARY = {"accuracy": 3 / 5, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "roc_auc": 5 / 6}

# Regression hand case: errors 0, 1, 2; ss_res = 5, ss_tot = 2 (mean 2).
R_TRUE = np.array([[1.0], [2.0], [3.0]])
R_PRED = np.array([[1.0], [3.0], [5.0]])
HAND_REGRESSION = {"mse": 5 / 3, "mae": 1.0, "r2": 1 - 5 / 2}


def test_confusion_matrix_hand_case():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(confusion_matrix([1], [1], 3), [[0, 0, 0], [0, 1, 0], [0, 0, 0]])
    with pytest.raises(ConfigError, match="y_pred has classes outside 0..2"):
        confusion_matrix([0], [3], 3)
    with pytest.raises(ShapeError):
        confusion_matrix([0, 1], [0], 3)


@pytest.mark.parametrize("name", sorted(HAND_MULTI))
def test_multiclass_hand_case(name):
    assert metrics.create(name)(Y_TRUE, Y_PRED) == pytest.approx(HAND_MULTI[name])


@pytest.mark.parametrize("name", sorted(HAND_BINARY))
def test_binary_hand_case(name):
    metric = metrics.create(name)
    y_pred = B_PROB if metric.uses == "scores" else (B_PROB >= 0.5).astype(np.int64)
    assert metric(B_TRUE, y_pred) == pytest.approx(HAND_BINARY[name])


@pytest.mark.parametrize("name", sorted(HAND_REGRESSION))
def test_regression_hand_case(name):
    assert metrics.create(name)(R_TRUE, R_PRED) == pytest.approx(HAND_REGRESSION[name])


def test_zero_division_gives_zero():
    y_true, y_pred = np.array([0, 0, 1]), np.array([0, 0, 0])  # class 1 never predicted
    assert metrics.create("precision")(y_true, y_pred) == 0.0
    assert metrics.create("recall")(y_true, y_pred) == 0.0
    assert metrics.create("f1")(y_true, y_pred) == 0.0
    assert metrics.create("precision_macro")(y_true, y_pred) == pytest.approx((2 / 3 + 0) / 2)
    assert metrics.create("precision")(np.array([0, 0]), np.array([0, 0])) == 0.0  # tp + fp = 0


def test_macro_averages_over_present_classes():
    assert metrics.create("f1_macro")(np.array([0, 2]), np.array([0, 2])) == 1.0  # class 1 absent


def test_roc_auc_ties():
    # positives {0.5, 0.8} vs negatives {0.5, 0.2}: the 0.5/0.5 tie counts 1/2 -> (0.5 + 1 + 1 + 1) / 4
    auc = metrics.create("roc_auc")
    assert auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.2, 0.8])) == pytest.approx(0.875)
    assert auc(np.array([0, 1, 1, 0]), np.full(4, 0.3)) == pytest.approx(0.5)
    assert auc(np.array([1, 0]), np.array([0.0, 1.0])) == 0.0
    assert np.isnan(auc(np.array([1, 1]), np.array([0.2, 0.4])))  # one class: undefined


def test_r2_multi_output_and_constant_columns():
    y = np.array([[1.0, 5.0, 5.0], [3.0, 5.0, 5.0]])
    pred = np.array([[1.0, 5.0, 4.0], [3.0, 5.0, 5.0]])  # column 2 is constant but mispredicted
    assert metrics.create("r2")(y, pred) == pytest.approx((1.0 + 1.0 + 0.0) / 3)


def test_metric_declarations():
    for name in metrics.names():
        metric = metrics.get(name)
        assert metric.tasks and set(metric.tasks) <= set(TASKS), name
        assert metric.uses in ("labels", "scores"), name
        assert metric.higher_is_better == (name not in ("mse", "mae")), name
    for task in TASKS:
        assert all(task in metrics.get(n).tasks for n in default_metrics(task))


# --- evaluate -------------------------------------------------------------------------------------

def test_evaluate_hand_cases_from_scores():
    scores = np.eye(3)[Y_PRED] * 0.8 + 0.2 / 3  # probabilities whose argmax is Y_PRED
    assert evaluate(list(HAND_MULTI), "classification", Y_TRUE, scores) == pytest.approx(HAND_MULTI)
    assert evaluate(list(HAND_BINARY), "binary", B_TRUE, B_PROB[:, None]) == pytest.approx(HAND_BINARY)
    two = np.stack([1 - B_PROB, B_PROB], axis=1)
    assert evaluate(list(HAND_BINARY), "binary", B_TRUE, two) == pytest.approx(HAND_BINARY)
    assert evaluate(None, "regression", R_TRUE[:, 0], R_PRED) == pytest.approx(HAND_REGRESSION)


def test_evaluate_defaults():
    assert default_metrics("classification") == ["accuracy", "f1_macro", "precision_macro", "recall_macro"]
    assert default_metrics("binary") == ["accuracy", "f1", "roc_auc"]
    assert default_metrics("regression") == ["mse", "mae", "r2"]
    assert list(evaluate(None, "binary", B_TRUE, B_PROB)) == ["accuracy", "f1", "roc_auc"]
    with pytest.raises(ConfigError, match="unknown task"):
        default_metrics("ranking")


def test_evaluate_errors():
    with pytest.raises(ConfigError, match="metric 'mse' does not apply to task 'classification'.*accuracy"):
        evaluate(["mse"], "classification", Y_TRUE, np.eye(3)[Y_PRED])
    with pytest.raises(ConfigError, match="'roc_auc' does not apply to task 'classification'"):
        evaluate(["roc_auc"], "classification", Y_TRUE, np.eye(3)[Y_PRED])
    with pytest.raises(UnknownNameError, match="Did you mean 'accuracy'"):
        evaluate(["acuracy"], "binary", B_TRUE, B_PROB)
    with pytest.raises(ShapeError, match=r"\(2, 1\).*\(3, 1\)"):
        evaluate(None, "regression", R_TRUE, R_PRED[:2])
    with pytest.raises(ShapeError):
        evaluate(None, "regression", R_TRUE, np.zeros((3, 2)))


# --- cross-check against sklearn.metrics ----------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_classification_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, n_classes = (15, 6) if seed % 2 else (300, 4)  # small n: some classes absent from y_true or y_pred
    y_true, y_pred = rng.integers(0, n_classes, n), rng.integers(0, n_classes, n)
    expect = {"accuracy": skm.accuracy_score(y_true, y_pred)}
    for average in ("macro", "micro"):
        for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
            expect[f"{name}_{average}"] = fn(y_true, y_pred, average=average, zero_division=0)
    got = {name: metrics.create(name)(y_true, y_pred) for name in expect}
    assert got == pytest.approx(expect)


@pytest.mark.parametrize("seed", range(4))
def test_binary_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, 200)
    prob = np.round(np.clip(0.3 * y_true + rng.uniform(0, 0.7, 200), 0, 1), 1)  # rounding makes ties
    y_pred = (prob >= 0.5).astype(np.int64)
    expect = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, zero_division=0),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0),
        "f1": skm.f1_score(y_true, y_pred, zero_division=0),
        "f1_macro": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "roc_auc": skm.roc_auc_score(y_true, prob),
    }
    assert evaluate(list(expect), "binary", y_true, prob[:, None]) == pytest.approx(expect)


@pytest.mark.parametrize("k", [1, 3])
def test_regression_matches_sklearn(k):
    rng = np.random.default_rng(k)
    y_true, y_pred = rng.normal(size=(50, k)), rng.normal(size=(50, k))
    expect = {
        "mse": skm.mean_squared_error(y_true, y_pred),
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "r2": skm.r2_score(y_true, y_pred),
    }
    assert evaluate(None, "regression", y_true, y_pred) == pytest.approx(expect)

"""Model-quality metrics against scikit-learn, their standard deviations against the formulas and a
brute-force bootstrap, suggested constraints that stay silent on healthy windows and fire on a degraded
model, and SageMaker's own model-quality files (load, round trip, checks)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    fbeta_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_curve,
    precision_recall_fscore_support,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from modelwatch.tasks.baselines import parse_document
from modelwatch.tasks.quality import (
    MetricConstraint,
    ModelQualityConstraints,
    ModelQualityStatistics,
    ModelQualityViolations,
    camel_case,
    check,
    compute_metrics,
    java_double,
    suggest_constraints,
)
from modelwatch.tasks.store import json_dumps
from tests.sagemaker_samples import sample

BETAS = {"f0_5": 0.5, "f1": 1.0, "f2": 2.0}


# ---- data drawn from a fixed "population"; `degrade` flips/replaces that share of the labels ----

def binary_data(n: int, seed: int, degrade: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(int)
    scores = 1 / (1 + np.exp(-rng.normal(-1.2 + 2.2 * labels, 1.0)))
    flip = rng.random(n) < degrade
    return np.where(flip, 1 - labels, labels), scores


def multiclass_data(n: int, seed: int, degrade: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
    predicted = np.where(rng.random(n) < 0.75, labels, rng.integers(0, 4, n))
    replace = rng.random(n) < degrade
    return np.where(replace, rng.integers(0, 4, n), labels), predicted


def regression_data(n: int, seed: int, degrade: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    truth = 2 * x + rng.normal(size=n)
    replace = rng.random(n) < degrade
    # A degraded model: for that share of rows the label no longer follows the prediction.
    return np.where(replace, rng.permutation(truth), truth), 2 * x


def statistics_of(kind: str, data: tuple[np.ndarray, np.ndarray], **options) -> ModelQualityStatistics:
    truth, second = data
    if kind == "BinaryClassification":
        return compute_metrics(kind, truth, None, second, **options)
    return compute_metrics(kind, truth, second, **options)


DRAW: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "BinaryClassification": binary_data,
    "MulticlassClassification": multiclass_data,
    "Regression": regression_data,
}


def values(statistics: ModelQualityStatistics) -> dict[str, float]:
    return {name: m.value for name, m in statistics.metrics.scalar_metrics().items()}


def sds(statistics: ModelQualityStatistics) -> dict[str, float]:
    return {name: m.standard_deviation for name, m in statistics.metrics.scalar_metrics().items()}


# ---- metric values against scikit-learn ----

def sklearn_binary(truth: np.ndarray, predicted: np.ndarray, scores: np.ndarray | None) -> dict[str, float]:
    expected = {
        "accuracy": accuracy_score(truth, predicted),
        "precision": precision_score(truth, predicted, zero_division=0),
        "recall": recall_score(truth, predicted, zero_division=0),
        "true_positive_rate": recall_score(truth, predicted, zero_division=0),
        "false_negative_rate": 1 - recall_score(truth, predicted, zero_division=0),
        "true_negative_rate": recall_score(truth, predicted, pos_label=0, zero_division=0),
        "false_positive_rate": 1 - recall_score(truth, predicted, pos_label=0, zero_division=0),
    }
    for name, beta in BETAS.items():
        expected[name] = fbeta_score(truth, predicted, beta=beta, zero_division=0)
    # The best constant classifier always predicts the majority label.
    constant = np.full(len(truth), int(truth.mean() >= 0.5))
    expected["accuracy_best_constant_classifier"] = accuracy_score(truth, constant)
    expected["precision_best_constant_classifier"] = precision_score(truth, constant, zero_division=0)
    expected["recall_best_constant_classifier"] = recall_score(truth, constant, zero_division=0)
    for name, beta in BETAS.items():
        expected[f"{name}_best_constant_classifier"] = fbeta_score(truth, constant, beta=beta,
                                                                   zero_division=0)
    if scores is not None:
        expected["auc"] = roc_auc_score(truth, scores)
        expected["pr_auc"] = average_precision_score(truth, scores)
    return expected


@pytest.mark.parametrize("prevalence", [0.3, 0.7])
def test_binary_metrics_match_sklearn(prevalence: float) -> None:
    rng = np.random.default_rng(3)
    truth = (rng.random(5000) < prevalence).astype(int)
    scores = 1 / (1 + np.exp(-rng.normal(-1 + 2 * truth, 1.2)))
    ours = compute_metrics("BinaryClassification", truth, None, scores)
    group = ours.binary_classification_metrics
    expected = sklearn_binary(truth, (scores >= 0.5).astype(int), scores)
    assert set(values(ours)) == set(expected)
    for name, value in expected.items():
        assert values(ours)[name] == pytest.approx(value, abs=1e-12), name
    (tn, fp), (fn, tp) = confusion_matrix(truth, scores >= 0.5, labels=[0, 1])
    assert group.confusion_matrix == {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    assert ours.dataset.item_count == 5000 and ours.version == 0.0
    # PR AUC is the step-wise area under sklearn's precision-recall curve.
    precision, recall, _ = precision_recall_curve(truth, scores)
    assert group.pr_auc.value == pytest.approx(-np.sum(np.diff(recall) * precision[:-1]), abs=1e-12)


def test_binary_threshold_and_given_predictions() -> None:
    truth, scores = binary_data(3000, seed=4)
    ours = compute_metrics("BinaryClassification", truth, None, scores, threshold=0.3)
    expected = sklearn_binary(truth, (scores >= 0.3).astype(int), scores)
    for name, value in expected.items():
        assert values(ours)[name] == pytest.approx(value, abs=1e-12), name
    # Given labels decide the point metrics; scores still give auc and the curves.
    predicted = (scores >= 0.7).astype(int)
    ours = compute_metrics("BinaryClassification", truth, predicted, scores)
    for name, value in sklearn_binary(truth, predicted, scores).items():
        assert values(ours)[name] == pytest.approx(value, abs=1e-12), name
    without_scores = compute_metrics("BinaryClassification", truth, predicted)
    assert without_scores.binary_classification_metrics.auc is None
    assert without_scores.binary_classification_metrics.receiver_operating_characteristic_curve is None
    assert values(without_scores)["f1"] == values(ours)["f1"]


def test_binary_labels_of_any_kind() -> None:
    truth, scores = binary_data(2000, seed=5)
    reference = values(compute_metrics("binary", truth, None, scores))
    as_text = np.where(truth == 1, "yes", "no")
    by_name = compute_metrics("BinaryClassification", as_text, None, scores, positive_label="yes")
    assert values(by_name) == reference
    assert set(by_name.binary_classification_metrics.confusion_matrix) == {"yes", "no"}
    as_float = compute_metrics("binary_classification", truth.astype(float), None, scores)
    assert values(as_float) == reference
    assert set(as_float.binary_classification_metrics.confusion_matrix) == {"0", "1"}
    as_bool = compute_metrics("BinaryClassification", truth.astype(bool), (scores >= 0.5), scores)
    assert values(as_bool) == reference
    # Rows without a label are not labelled records: left out and not counted.
    with_missing = pd.Series(truth, dtype="Float64")
    with_missing[:100] = pd.NA
    partial = compute_metrics("BinaryClassification", with_missing, None, scores)
    assert partial.dataset.item_count == 1900
    assert values(partial)["accuracy"] == pytest.approx(
        accuracy_score(truth[100:], scores[100:] >= 0.5), abs=1e-12)
    with pytest.raises(ValueError, match="more than two"):
        compute_metrics("BinaryClassification", np.r_[truth, 2], None, np.r_[scores, 0.1])
    with pytest.raises(ValueError, match="problem type"):
        compute_metrics("ranking", truth, truth)


def test_curves_match_sklearn() -> None:
    truth, scores = binary_data(4000, seed=6)
    coarse = np.round(scores * 50) / 50  # at most 51 distinct scores: no thinning, ties included
    group = compute_metrics("BinaryClassification", truth, None, coarse).binary_classification_metrics
    fpr, tpr, _ = roc_curve(truth, coarse, drop_intermediate=False)
    roc = group.receiver_operating_characteristic_curve
    np.testing.assert_allclose(roc.false_positive_rates, fpr, atol=1e-12)
    np.testing.assert_allclose(roc.true_positive_rates, tpr, atol=1e-12)
    precision, recall, _ = precision_recall_curve(truth, coarse)
    pr = group.precision_recall_curve
    np.testing.assert_allclose(pr.recalls, recall[::-1], atol=1e-12)
    np.testing.assert_allclose(pr.precisions, precision[::-1], atol=1e-12)
    assert group.auc.value == pytest.approx(roc_auc_score(truth, coarse), abs=1e-12)


def test_curves_are_thinned_keeping_their_shape() -> None:
    truth, scores = binary_data(200_000, seed=7)
    group = compute_metrics("BinaryClassification", truth, None, scores).binary_classification_metrics
    roc = group.receiver_operating_characteristic_curve
    fpr, tpr = np.array(roc.false_positive_rates), np.array(roc.true_positive_rates)
    assert 50 <= len(fpr) <= 100 and len(tpr) == len(fpr)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(group.auc.value, abs=0.002)
    pr = group.precision_recall_curve
    recalls = np.array(pr.recalls)
    assert 50 <= len(recalls) <= 100 and recalls[0] == 0.0 and recalls[-1] == 1.0
    assert np.all(np.diff(recalls) >= 0)
    assert pr.precisions[-1] == pytest.approx(truth.mean())


@pytest.mark.parametrize("as_text", [False, True])
def test_multiclass_metrics_match_sklearn(as_text: bool) -> None:
    truth, predicted = multiclass_data(5000, seed=8)
    if as_text:
        names = np.array(["ant", "bee", "cat", "dog"])
        truth, predicted = names[truth], names[predicted]
    ours = compute_metrics("MulticlassClassification", truth, predicted)
    labels = sorted(set(truth) | set(predicted))
    majority = pd.Series(truth).value_counts().idxmax()
    constant = np.full(len(truth), majority)
    expected = {}
    for suffix, guess in (("", predicted), ("_best_constant_classifier", constant)):
        expected["accuracy" + suffix] = accuracy_score(truth, guess)
        expected["weighted_recall" + suffix] = recall_score(truth, guess, labels=labels, average="weighted",
                                                            zero_division=0)
        expected["weighted_precision" + suffix] = precision_score(truth, guess, labels=labels,
                                                                  average="weighted", zero_division=0)
        for name, beta in BETAS.items():
            expected[f"weighted_{name}{suffix}"] = fbeta_score(truth, guess, beta=beta, labels=labels,
                                                               average="weighted", zero_division=0)
    assert set(values(ours)) == set(expected)
    for name, value in expected.items():
        assert values(ours)[name] == pytest.approx(value, abs=1e-12), name
    matrix = confusion_matrix(truth, predicted, labels=labels)
    keys = [str(label) for label in labels]
    assert ours.multiclass_classification_metrics.confusion_matrix == {
        actual: {p: int(matrix[i, j]) for j, p in enumerate(keys)} for i, actual in enumerate(keys)}


def test_regression_metrics_match_sklearn() -> None:
    truth, predicted = regression_data(5000, seed=9)
    ours = values(compute_metrics("Regression", truth, predicted))
    assert ours == pytest.approx({
        "mae": mean_absolute_error(truth, predicted),
        "mse": mean_squared_error(truth, predicted),
        "rmse": math.sqrt(mean_squared_error(truth, predicted)),
        "r2": r2_score(truth, predicted),
    }, abs=1e-12)


# ---- standard deviations ----

def test_analytic_standard_deviations() -> None:
    truth, scores = binary_data(4000, seed=10)
    predicted = scores >= 0.5
    ours = compute_metrics("BinaryClassification", truth, None, scores)
    values_, sds_ = values(ours), sds(ours)
    tp = int(np.sum(predicted & (truth == 1)))
    positives, negatives, predicted_positive = int(truth.sum()), int((truth == 0).sum()), int(predicted.sum())
    for name, denominator in (("accuracy", 4000), ("precision", predicted_positive), ("recall", positives),
                              ("true_positive_rate", positives), ("false_negative_rate", positives),
                              ("true_negative_rate", negatives), ("false_positive_rate", negatives),
                              ("accuracy_best_constant_classifier", 4000)):
        p = values_[name]
        assert sds_[name] == pytest.approx(math.sqrt(p * (1 - p) / denominator), rel=1e-12), name
    assert values_["precision"] == tp / predicted_positive
    # The majority is negative: the constant classifier's recall and precision are exactly 0.
    assert sds_["recall_best_constant_classifier"] == 0 and sds_["precision_best_constant_classifier"] == 0

    truth, predicted = regression_data(3000, seed=11)
    ours = sds(compute_metrics("Regression", truth, predicted))
    error = predicted - truth
    assert ours["mae"] == pytest.approx(np.std(np.abs(error), ddof=1) / math.sqrt(3000), rel=1e-12)
    assert ours["mse"] == pytest.approx(np.std(error ** 2, ddof=1) / math.sqrt(3000), rel=1e-12)

    truth, predicted = multiclass_data(3000, seed=12)
    multi = compute_metrics("MulticlassClassification", truth, predicted)
    accuracy = values(multi)["accuracy"]
    assert sds(multi)["accuracy"] == pytest.approx(math.sqrt(accuracy * (1 - accuracy) / 3000), rel=1e-12)
    assert sds(multi)["weighted_recall"] == sds(multi)["accuracy"]


def brute_force_sds(data: tuple[np.ndarray, ...], metrics: Callable[..., dict[str, float]],
                    resamples: int = 200, seed: int = 99) -> dict[str, float]:
    """The textbook bootstrap: resample rows with replacement, recompute with scikit-learn, one loop."""
    rng = np.random.default_rng(seed)
    n = len(data[0])
    found: dict[str, list[float]] = {}
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        for name, value in metrics(*(column[rows] for column in data)).items():
            found.setdefault(name, []).append(value)
    return {name: float(np.std(v, ddof=1)) for name, v in found.items()}


def sklearn_binary_resample(truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    # One confusion matrix per resample keeps the loop fast; the formulas are checked against
    # sklearn's own functions in test_binary_metrics_match_sklearn.
    (tn, fp), (fn, tp) = confusion_matrix(truth, scores >= 0.5, labels=[0, 1])
    n, positives = tn + fp + fn + tp, tp + fn
    found = {"accuracy": (tp + tn) / n, "precision": tp / (tp + fp), "recall": tp / positives,
             "true_negative_rate": tn / (tn + fp), "false_positive_rate": fp / (tn + fp),
             "auc": roc_auc_score(truth, scores), "pr_auc": average_precision_score(truth, scores),
             "accuracy_best_constant_classifier": (n - positives) / n,
             "f1_best_constant_classifier": 0.0}
    for name, beta in BETAS.items():
        found[name] = (1 + beta**2) * tp / ((1 + beta**2) * tp + beta**2 * fn + fp)
    return found


def test_binary_sds_match_a_brute_force_bootstrap() -> None:
    truth, scores = binary_data(3000, seed=13)
    ours = sds(compute_metrics("BinaryClassification", truth, None, scores, bootstrap=400))
    for name, expected in brute_force_sds((truth, scores), sklearn_binary_resample, resamples=300).items():
        assert ours[name] == pytest.approx(expected, rel=0.2, abs=1e-12), name


def test_subsampled_auc_sd_is_scaled_to_the_full_size() -> None:
    truth, scores = binary_data(20_000, seed=14)
    ours = sds(compute_metrics("BinaryClassification", truth, None, scores, bootstrap_sample=2_000))
    expected = brute_force_sds((truth, scores), lambda t, s: {
        "auc": roc_auc_score(t, s), "pr_auc": average_precision_score(t, s)}, resamples=100)
    assert ours["auc"] == pytest.approx(expected["auc"], rel=0.3)
    assert ours["pr_auc"] == pytest.approx(expected["pr_auc"], rel=0.3)


def test_multiclass_and_regression_sds_match_a_brute_force_bootstrap() -> None:
    truth, predicted = multiclass_data(3000, seed=15)
    ours = sds(compute_metrics("MulticlassClassification", truth, predicted))

    def multiclass(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
        precision, _, f1, _ = precision_recall_fscore_support(t, p, beta=1, average="weighted",
                                                              zero_division=0)
        f2 = fbeta_score(t, p, beta=2, average="weighted", zero_division=0)
        return {"accuracy": accuracy_score(t, p), "weighted_precision": precision, "weighted_f1": f1,
                "weighted_f2": f2}

    for name, expected in brute_force_sds((truth, predicted), multiclass).items():
        assert ours[name] == pytest.approx(expected, rel=0.2), name

    truth, predicted = regression_data(30_000, seed=16)
    ours = sds(compute_metrics("Regression", truth, predicted, bootstrap_sample=5_000))

    def regression(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
        mse = mean_squared_error(t, p)
        return {"mae": mean_absolute_error(t, p), "mse": mse, "rmse": math.sqrt(mse), "r2": r2_score(t, p)}

    for name, expected in brute_force_sds((truth, predicted), regression).items():
        assert ours[name] == pytest.approx(expected, rel=0.25), name


def test_bootstrap_is_seeded_and_optional() -> None:
    truth, scores = binary_data(2000, seed=17)
    first = compute_metrics("BinaryClassification", truth, None, scores, seed=1)
    assert first == compute_metrics("BinaryClassification", truth, None, scores, seed=1)
    assert sds(first)["f1"] != sds(compute_metrics("BinaryClassification", truth, None, scores, seed=2))["f1"]
    bare = sds(compute_metrics("BinaryClassification", truth, None, scores, bootstrap=0))
    assert math.isnan(bare["f1"]) and math.isnan(bare["auc"])
    assert bare["accuracy"] == sds(first)["accuracy"]  # analytic either way


# ---- suggested constraints and checks ----

@pytest.fixture(scope="module", params=list(DRAW))
def baseline(request) -> tuple[str, ModelQualityStatistics]:
    kind = request.param
    return kind, statistics_of(kind, DRAW[kind](20_000, seed=12345))


@pytest.mark.parametrize("window_size", [500, 1000, 5000])
def test_healthy_windows_pass_and_degraded_windows_fail(baseline, window_size: int) -> None:
    # At the default 3 sd about 2% of healthy binary windows trip one of their 12 metrics (see
    # test_false_alarms_are_rare; seed 1 at 500 rows does), so fixed seeds are checked at 4 sd.
    kind, statistics = baseline
    constraints = suggest_constraints(statistics, window_size=window_size, n_sd=4.0)
    assert constraints.problem_type == kind
    for seed in range(5):
        window = statistics_of(kind, DRAW[kind](window_size, seed))
        result = check(constraints, window)
        assert result.violations == [], (seed, [v.description for v in result.violations])
        assert result.status == "Completed" and result.item_count == window_size
    degraded = check(constraints, statistics_of(kind, DRAW[kind](window_size, seed=100, degrade=0.2)))
    assert degraded.status == "CompletedWithViolations"
    headline = {"BinaryClassification": "accuracy", "MulticlassClassification": "accuracy",
                "Regression": "mse"}[kind]
    assert headline in {v.metric_name for v in degraded.violations}


@pytest.mark.parametrize(("n_sd", "most"), [(3.0, 0.05), (4.0, 0.01)])
def test_false_alarms_are_rare(baseline, n_sd: float, most: float) -> None:
    """Healthy windows seldom violate any metric: ~0.13% per metric at 3 sd (~2% of binary windows
    with 12 metrics), ~0.3% of windows at 4 sd."""
    kind, statistics = baseline
    constraints = suggest_constraints(statistics, window_size=1000, n_sd=n_sd)
    windows = [statistics_of(kind, DRAW[kind](1000, seed), bootstrap=0) for seed in range(1000, 1300)]
    alarms = sum(bool(check(constraints, window).violations) for window in windows)
    assert alarms <= most * len(windows)


def test_suggested_constraints_shape() -> None:
    truth, scores = binary_data(20_000, seed=18)
    statistics = compute_metrics("BinaryClassification", truth, None, scores)
    constraints = suggest_constraints(statistics, window_size=1000)
    group = constraints.binary_classification_constraints
    assert list(group) == ["recall", "precision", "accuracy", "true_positive_rate", "true_negative_rate",
                           "false_positive_rate", "false_negative_rate", "auc", "pr_auc", "f0_5", "f1", "f2"]
    metric = statistics.binary_classification_metrics.accuracy
    expected = metric.value - 4 * metric.standard_deviation * math.sqrt(20_000 / 1000 + 1)
    assert group["accuracy"] == MetricConstraint(threshold=expected, comparison_operator="LessThanThreshold")
    assert group["false_positive_rate"].comparison_operator == "GreaterThanThreshold"
    assert group["false_positive_rate"].threshold > statistics.binary_classification_metrics \
        .false_positive_rate.value
    # Larger windows are less noisy: tighter thresholds.
    tight = suggest_constraints(statistics, window_size=10_000).binary_classification_constraints
    assert group["auc"].threshold < tight["auc"].threshold
    # Without a standard deviation the margin falls back to min_margin (relative for error metrics).
    bare = ModelQualityStatistics.model_validate(
        {"regression_metrics": {"mae": {"value": 2.0, "standard_deviation": "NaN"},
                                "r2": {"value": 0.5, "standard_deviation": "NaN"}}})
    suggested = suggest_constraints(bare, min_margin=0.1).regression_constraints
    assert suggested["mae"].threshold == pytest.approx(2.2)
    assert suggested["r2"].threshold == pytest.approx(0.4)
    assert json.loads(json_dumps(constraints))["version"] == 0.0


def test_small_windows_are_no_data() -> None:
    truth, scores = binary_data(20_000, seed=19)
    constraints = suggest_constraints(compute_metrics("BinaryClassification", truth, None, scores))
    small = statistics_of("BinaryClassification", binary_data(150, seed=1, degrade=0.5))
    result = check(constraints, small)
    assert (result.no_data, result.status, result.item_count, result.violations) == (True, "NoData", 150, [])
    assert check(constraints, small, min_records=100).violations
    empty = compute_metrics("BinaryClassification", np.array([], dtype=int), None, np.array([]))
    assert empty.dataset.item_count == 0 and check(constraints, empty).status == "NoData"
    # The outcome fields stay out of the file: it keeps SageMaker's shape.
    assert json.loads(json_dumps(result)) == {"violations": []}


def test_operators_and_skipped_metrics() -> None:
    statistics = ModelQualityStatistics.model_validate({
        "dataset": {"item_count": 1000},
        "binary_classification_metrics": {
            "accuracy": {"value": 0.8, "standard_deviation": 0.01},
            "false_positive_rate": {"value": 0.1, "standard_deviation": 0.01},
        }})

    def fires(op: str, threshold: float) -> bool:
        constraints = ModelQualityConstraints(binary_classification_constraints={
            "accuracy": MetricConstraint(threshold=threshold, comparison_operator=op)})
        return bool(check(constraints, statistics).violations)

    assert fires("LessThanThreshold", 0.9) and not fires("LessThanThreshold", 0.8)
    assert fires("LessThanOrEqualToThreshold", 0.8) and not fires("LessThanOrEqualToThreshold", 0.7)
    assert fires("GreaterThanThreshold", 0.7) and not fires("GreaterThanThreshold", 0.8)
    assert fires("GreaterThanOrEqualToThreshold", 0.8) and not fires("GreaterThanOrEqualToThreshold", 0.9)
    constraints = ModelQualityConstraints.model_validate({"binary_classification_constraints": {
        "auc": {"threshold": 0.9, "comparison_operator": "LessThanThreshold"},
        "false_positive_rate": {"threshold": 5.09e-4, "comparison_operator": "GreaterThanThreshold"}}})
    result = check(constraints, statistics)
    assert result.skipped == ["auc"]
    assert [v.model_dump() for v in result.violations] == [{
        "constraint_check_type": "GreaterThanThreshold",
        "description": "Metric falsePositiveRate with 0.1 +/- 0.01 was GreaterThanThreshold '5.09E-4'",
        "metric_name": "falsePositiveRate"}]
    regression = ModelQualityConstraints(regression_constraints={})
    with pytest.raises(ValueError, match="Regression"):
        check(regression, statistics)


def test_java_double_and_camel_case() -> None:
    cases = {0.0: "0.0", 1.0: "1.0", 0.25: "0.25", 5.09e-4: "5.09E-4", 0.001: "0.001", 1e7: "1.0E7",
             123456789.0: "1.23456789E8", -2.5e-5: "-2.5E-5", 9999999.0: "9999999.0", math.nan: "NaN",
             0.0031164575525145627: "0.0031164575525145627"}
    for value, text in cases.items():
        assert java_double(value) == text
    assert camel_case("true_positive_rate") == "truePositiveRate"
    assert camel_case("auc") == "auc" and camel_case("f1") == "f1"
    assert camel_case("weighted_f1") == "weightedF1" and camel_case("f0_5") == "f0_5"


# ---- SageMaker's own files ----

STATISTICS = ["model_monitor_model_quality_binary_classification.json",
              "model_monitor_model_quality_regression.json", "mq_statistics_pipeline.json"]
CONSTRAINTS = ["mq_constraints_good.json", "mq_constraints_bad.json"]


@pytest.mark.parametrize("name", STATISTICS)
def test_sagemaker_statistics_load_and_round_trip(name: str) -> None:
    raw = json.loads(sample(name).read_text())
    statistics = parse_document(ModelQualityStatistics, raw, name)
    assert statistics.problem_type is not None
    assert json.loads(json_dumps(statistics)) == raw
    # Constraints suggested from SageMaker's statistics pass those same statistics.
    constraints = suggest_constraints(statistics)
    assert constraints.constraints
    assert check(constraints, statistics, min_records=0).violations == []


@pytest.mark.parametrize("name", CONSTRAINTS)
def test_sagemaker_constraints_load_and_round_trip(name: str) -> None:
    raw = json.loads(sample(name).read_text())
    constraints = parse_document(ModelQualityConstraints, raw, name)
    assert constraints.problem_type == "Regression"
    assert json.loads(json_dumps(constraints)) == raw


def test_sagemaker_violations_load_and_round_trip() -> None:
    raw = json.loads(sample("mq_constraint_violations_churn.json").read_text())
    violations = parse_document(ModelQualityViolations, raw, "churn")
    assert len(violations.violations) == 10
    assert json.loads(json_dumps(violations)) == raw


def test_sagemaker_good_and_bad_constraints_against_their_statistics() -> None:
    statistics = parse_document(ModelQualityStatistics, sample("mq_statistics_pipeline.json").read_text(),
                                "statistics")
    good = parse_document(ModelQualityConstraints, sample("mq_constraints_good.json").read_text(), "g")
    bad = parse_document(ModelQualityConstraints, sample("mq_constraints_bad.json").read_text(), "b")
    # 100 records: below the default minimum, so no verdict either way.
    assert check(bad, statistics).status == "NoData"
    assert check(good, statistics, min_records=100).status == "Completed"
    result = check(bad, statistics, min_records=100)
    assert json.loads(json_dumps(result)) == {"violations": [{
        "constraint_check_type": "GreaterThanThreshold",
        "description": "Metric mse with 0.33364933609800973 +/- NaN was GreaterThanThreshold "
                       "'0.03364933609800973'",
        "metric_name": "mse"}]}


def test_sagemaker_churn_violations_are_reproduced() -> None:
    """Statistics and constraints rebuilt from the real violations give back the same file, word for word."""
    raw = json.loads(sample("mq_constraint_violations_churn.json").read_text())
    pattern = re.compile(r"Metric (\w+) with (\S+) \+/- (\S+) was (\w+) '(\S+)'")
    metrics, constraints = {}, {}
    for violation in raw["violations"]:
        camel, value, sd, op, threshold = pattern.fullmatch(violation["description"]).groups()
        snake = re.sub(r"([A-Z])", lambda m: "_" + m[1].lower(), camel)
        metrics[snake] = {"value": float(value), "standard_deviation": float(sd)}
        constraints[snake] = {"threshold": float(threshold), "comparison_operator": op}
    statistics = ModelQualityStatistics.model_validate(
        {"version": 0.0, "dataset": {"item_count": 10_000}, "binary_classification_metrics": metrics})
    rebuilt = check(ModelQualityConstraints.model_validate(
        {"version": 0.0, "binary_classification_constraints": constraints}), statistics)
    assert json.loads(json_dumps(rebuilt)) == raw


def test_sagemaker_binary_example_is_reproduced() -> None:
    """The developer guide's example: its confusion matrix, as rows, gives its listed point metrics."""
    raw = json.loads(sample("model_monitor_model_quality_binary_classification.json").read_text())
    listed = raw["binary_classification_metrics"]
    truth, predicted = [], []
    for actual, row in listed["confusion_matrix"].items():
        for guess, count in row.items():
            truth += [int(actual)] * count
            predicted += [int(guess)] * count
    ours = compute_metrics("BinaryClassification", truth, predicted)
    assert ours.binary_classification_metrics.confusion_matrix == listed["confusion_matrix"]
    for name in ("accuracy", "precision", "recall", "f0_5", "f1", "f2", "true_positive_rate",
                 "true_negative_rate", "false_positive_rate", "false_negative_rate"):
        assert values(ours)[name] == pytest.approx(listed[name]["value"], abs=1e-12), name
    # This hand-made example's constant classifier predicts the minority (positive) class; ours the
    # majority, as in the real churn baseline.
    assert values(ours)["accuracy_best_constant_classifier"] == 0.75

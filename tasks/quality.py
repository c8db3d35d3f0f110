"""Model-quality metrics, suggested constraints and constraint checks, in SageMaker Model Monitor's shapes.

Documents (see section 5 of shared/interop/sagemaker-formats.md):

* statistics.json -- `version`, `dataset.item_count` and one group per problem type:
  `binary_classification_metrics`, `multiclass_classification_metrics` or `regression_metrics`; every
  scalar metric is `{"value": v, "standard_deviation": sd}` (SageMaker writes an unknown sd as the string
  "NaN": write documents with `modelwatch.tasks.store.json_dumps`, which does the same).
* constraints.json -- `version` and `<group>_constraints`: metric name -> `{threshold, comparison_operator}`.
  The operator names the *violating* condition: `LessThanThreshold` fires when value < threshold.
* constraint_violations.json -- `{"violations": [{constraint_check_type, description, metric_name}]}` with
  the operator as check type, camelCase metric names and SageMaker's description text, numbers printed
  the way Java prints doubles.

Keys written by `compute_metrics`:

* binary: confusion_matrix ({actual: {predicted: count}}), accuracy, precision, recall, true_positive_rate,
  true_negative_rate, false_positive_rate, false_negative_rate, f0_5, f1, f2, the best-constant-classifier
  references accuracy/precision/recall/f0_5/f1/f2_best_constant_classifier, and when scores are given
  auc, receiver_operating_characteristic_curve, precision_recall_curve and `pr_auc` (ours: average
  precision, the step-wise area under the PR curve, as sklearn's average_precision_score).
* multiclass: confusion_matrix, accuracy, weighted_recall, weighted_precision, weighted_f0_5,
  weighted_f1, weighted_f2 and their *_best_constant_classifier references (weights = class support,
  as sklearn's average="weighted").
* regression: mae, mse, rmse, r2.

Standard deviations are the standard error of the metric at the evaluated data set's size. (SageMaker
documents the spread over 5 random 80% samples instead: noisy, and about half the standard error.)

* analytic: every metric that is a proportion of counts, sqrt(p(1-p)/d) with d its denominator --
  accuracy (d = n), precision (d = predicted positives), recall/true_positive_rate/false_negative_rate
  (d = positives), true_negative_rate/false_positive_rate (d = negatives), the constant classifier's
  accuracy/precision/recall, multiclass accuracy and weighted_recall (equal to accuracy) and the
  constant classifier's; mae and mse: sample standard deviation of |e| or e^2 over sqrt(n).
* bootstrap (`bootstrap` resamples, default 200, seeded): F-scores, weighted precision and F-scores,
  the constant classifier's F-scores -- resampling rows with replacement is exactly a multinomial draw of
  the confusion-matrix cells, so each resample costs O(cells), not O(n); auc, pr_auc, rmse and r2 --
  resampled rows (an index matrix turned into per-row counts) of a random subsample of at most
  `bootstrap_sample` rows (default 20,000); the subsample's sd is scaled by sqrt(m/n) to the full size.
  With `bootstrap=0` these sds are NaN.

Best constant classifier: always predicting the majority class of the labels (ties: the positive
class). This matches the real churn baseline (recall 0, precision 0, accuracy 173/201); the developer
guide's hand-made example instead always predicts the positive class -- SageMaker's rule is undocumented.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from modelwatch.tasks.documents import Check, DatasetInfo, Document

ProblemType = Literal["BinaryClassification", "MulticlassClassification", "Regression"]
ComparisonOperator = Literal[
    "GreaterThanThreshold", "LessThanThreshold",
    "GreaterThanOrEqualToThreshold", "LessThanOrEqualToThreshold",
]

GROUP_KEYS: dict[str, str] = {
    "BinaryClassification": "binary_classification_metrics",
    "MulticlassClassification": "multiclass_classification_metrics",
    "Regression": "regression_metrics",
}
CONSTRAINT_KEYS: dict[str, str] = {
    "BinaryClassification": "binary_classification_constraints",
    "MulticlassClassification": "multiclass_classification_constraints",
    "Regression": "regression_constraints",
}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanOrEqualToThreshold": operator.le,
}
# Which side of the threshold passes, for each violating operator.
PASSING_SIDE: dict[str, Literal["at least", "at most", "above", "below"]] = {
    "GreaterThanThreshold": "at most", "LessThanThreshold": "at least",
    "GreaterThanOrEqualToThreshold": "below", "LessThanOrEqualToThreshold": "above",
}

# The metrics suggest_constraints bounds: SageMaker's observed suggested sets, plus our pr_auc.
SUGGESTED: dict[str, tuple[str, ...]] = {
    "BinaryClassification": (
        "recall", "precision", "accuracy", "true_positive_rate", "true_negative_rate",
        "false_positive_rate", "false_negative_rate", "auc", "pr_auc", "f0_5", "f1", "f2",
    ),
    "MulticlassClassification": (
        "accuracy", "weighted_recall", "weighted_precision", "weighted_f0_5", "weighted_f1", "weighted_f2",
    ),
    "Regression": ("mae", "mse", "rmse", "r2"),
}
LOWER_IS_BETTER = frozenset({"false_positive_rate", "false_negative_rate", "mae", "mse", "rmse"})
# Error metrics carry the target's units, so their minimum margin is relative to the baseline value.
RELATIVE_MARGIN = frozenset({"mae", "mse", "rmse"})

BETAS: tuple[tuple[str, float], ...] = (("f0_5", 0.5), ("f1", 1.0), ("f2", 2.0))
BOOTSTRAP = 200
BOOTSTRAP_SAMPLE = 20_000
MAX_CURVE_POINTS = 100
MIN_RECORDS = 200
WINDOW_SIZE = 1_000


# ---- documents ---------------------------------------------------------------------------------

class MetricValue(Document):
    value: float
    standard_deviation: float = math.nan


class RocCurve(Document):
    false_positive_rates: list[float]
    true_positive_rates: list[float]


class PrecisionRecallCurve(Document):
    precisions: list[float]
    recalls: list[float]


class MetricGroup(Document):
    """One problem type's metrics; unknown metrics in a SageMaker file stay as extra keys."""

    def metric(self, name: str) -> MetricValue | None:
        if name in type(self).model_fields:
            found = getattr(self, name)
        else:
            found = (self.model_extra or {}).get(name)
        if isinstance(found, MetricValue):
            return found
        if isinstance(found, dict) and "value" in found:
            return MetricValue.model_validate(found)
        return None

    def scalar_metrics(self) -> dict[str, MetricValue]:
        names = list(type(self).model_fields) + list(self.model_extra or {})
        found = {name: self.metric(name) for name in names}
        return {name: value for name, value in found.items() if value is not None}


class BinaryClassificationMetrics(MetricGroup):
    confusion_matrix: dict[str, dict[str, int]] | None = None
    recall: MetricValue | None = None
    precision: MetricValue | None = None
    accuracy: MetricValue | None = None
    recall_best_constant_classifier: MetricValue | None = None
    precision_best_constant_classifier: MetricValue | None = None
    accuracy_best_constant_classifier: MetricValue | None = None
    true_positive_rate: MetricValue | None = None
    true_negative_rate: MetricValue | None = None
    false_positive_rate: MetricValue | None = None
    false_negative_rate: MetricValue | None = None
    receiver_operating_characteristic_curve: RocCurve | None = None
    precision_recall_curve: PrecisionRecallCurve | None = None
    auc: MetricValue | None = None
    pr_auc: MetricValue | None = None  # ours
    f0_5: MetricValue | None = None
    f1: MetricValue | None = None
    f2: MetricValue | None = None
    f0_5_best_constant_classifier: MetricValue | None = None
    f1_best_constant_classifier: MetricValue | None = None
    f2_best_constant_classifier: MetricValue | None = None


class MulticlassClassificationMetrics(MetricGroup):
    confusion_matrix: dict[str, dict[str, int]] | None = None
    accuracy: MetricValue | None = None
    weighted_recall: MetricValue | None = None
    weighted_precision: MetricValue | None = None
    weighted_f0_5: MetricValue | None = None
    weighted_f1: MetricValue | None = None
    weighted_f2: MetricValue | None = None
    accuracy_best_constant_classifier: MetricValue | None = None
    weighted_recall_best_constant_classifier: MetricValue | None = None
    weighted_precision_best_constant_classifier: MetricValue | None = None
    weighted_f0_5_best_constant_classifier: MetricValue | None = None
    weighted_f1_best_constant_classifier: MetricValue | None = None
    weighted_f2_best_constant_classifier: MetricValue | None = None


class RegressionMetrics(MetricGroup):
    mae: MetricValue | None = None
    mse: MetricValue | None = None
    rmse: MetricValue | None = None
    r2: MetricValue | None = None


class ModelQualityStatistics(Document):
    # None, not 0.0, by default: a SageMaker file without the key must round-trip without it.
    version: float | None = None
    dataset: DatasetInfo | None = None
    binary_classification_metrics: BinaryClassificationMetrics | None = None
    multiclass_classification_metrics: MulticlassClassificationMetrics | None = None
    regression_metrics: RegressionMetrics | None = None

    @property
    def problem_type(self) -> ProblemType | None:
        return next((p for p, key in GROUP_KEYS.items() if getattr(self, key) is not None), None)  # type: ignore

    @property
    def metrics(self) -> MetricGroup | None:
        problem = self.problem_type
        return getattr(self, GROUP_KEYS[problem]) if problem else None

    @property
    def item_count(self) -> int | None:
        """Rows evaluated: dataset.item_count, else the confusion matrix's total."""
        if self.dataset is not None:
            return self.dataset.item_count
        matrix = getattr(self.metrics, "confusion_matrix", None)
        return sum(sum(row.values()) for row in matrix.values()) if matrix else None


class MetricConstraint(Document):
    threshold: float
    comparison_operator: ComparisonOperator


class ModelQualityConstraints(Document):
    version: float | None = None
    binary_classification_constraints: dict[str, MetricConstraint] | None = None
    multiclass_classification_constraints: dict[str, MetricConstraint] | None = None
    regression_constraints: dict[str, MetricConstraint] | None = None

    @property
    def problem_type(self) -> ProblemType | None:
        return next((p for p, key in CONSTRAINT_KEYS.items() if getattr(self, key) is not None),  # type: ignore
                    None)

    @property
    def constraints(self) -> dict[str, MetricConstraint]:
        problem = self.problem_type
        return getattr(self, CONSTRAINT_KEYS[problem]) if problem else {}


class ModelQualityViolation(Document):
    constraint_check_type: str
    description: str
    metric_name: str


class ModelQualityViolations(Document):
    violations: list[ModelQualityViolation] = Field(default_factory=list)
    # The outcome of `check` beyond the file's content; excluded so the file keeps SageMaker's shape.
    item_count: int | None = Field(default=None, exclude=True)
    no_data: bool = Field(default=False, exclude=True)
    skipped: list[str] = Field(default_factory=list, exclude=True)
    # Every constraint checked, passed or not (the report's table); its failed ones are `violations`.
    checks: list[Check] = Field(default_factory=list, exclude=True)

    @property
    def status(self) -> Literal["Completed", "CompletedWithViolations", "NoData"]:
        if self.no_data:
            return "NoData"
        return "CompletedWithViolations" if self.violations else "Completed"


# ---- metrics -----------------------------------------------------------------------------------

def compute_metrics(
    problem_type: str,
    y_true: Any,
    y_pred: Any = None,
    y_score: Any = None,
    *,
    threshold: float = 0.5,
    positive_label: Any = 1,
    bootstrap: int = BOOTSTRAP,
    bootstrap_sample: int = BOOTSTRAP_SAMPLE,
    max_curve_points: int = MAX_CURVE_POINTS,
    seed: int = 0,
) -> ModelQualityStatistics:
    """Model-quality statistics of predictions against labels.

    Rows with a missing label, prediction or score are left out (item_count counts the rest).
    Binary: y_pred holds labels; when it is None, a score >= `threshold` predicts `positive_label`.
    Scores, when given, add auc, pr_auc and the curves (thinned to at most `max_curve_points`).
    """
    problem = normalise_problem_type(problem_type)
    if problem != "BinaryClassification" and y_score is not None:
        raise ValueError(f"y_score applies to BinaryClassification only, not {problem}")
    if y_pred is None and (problem != "BinaryClassification" or y_score is None):
        alternative = " or y_score" if problem == "BinaryClassification" else ""
        raise ValueError(f"{problem} needs y_pred{alternative}")
    rng = np.random.default_rng(seed)
    truth, pred, score = (pd.Series(v).reset_index(drop=True) if v is not None else None
                          for v in (y_true, y_pred, y_score))
    columns = [c for c in (truth, pred, score) if c is not None]
    if len({len(c) for c in columns}) > 1:
        raise ValueError(f"y_true, y_pred and y_score differ in length: {[len(c) for c in columns]}")
    present = np.ones(len(truth), dtype=bool)
    for column in columns:
        present &= column.notna().to_numpy()
    if problem == "Regression":
        # Infinite values have no error to average: treated as missing.
        present &= np.isfinite(truth.to_numpy(dtype=float)) & np.isfinite(pred.to_numpy(dtype=float))
    n = int(present.sum())
    options = {"bootstrap": bootstrap, "bootstrap_sample": bootstrap_sample, "rng": rng}
    statistics = ModelQualityStatistics(version=0.0, dataset=DatasetInfo(item_count=n))
    truth = truth[present]
    pred = pred[present] if pred is not None else None
    if problem == "Regression":
        statistics.regression_metrics = _regression(
            truth.to_numpy(dtype=float), pred.to_numpy(dtype=float), **options)  # type: ignore[union-attr]
    elif problem == "MulticlassClassification":
        statistics.multiclass_classification_metrics = _multiclass(_labels(truth), _labels(pred), **options)
    else:
        statistics.binary_classification_metrics = _binary(
            _labels(truth), _labels(pred) if pred is not None else None,
            score[present].to_numpy(dtype=float) if score is not None else None,
            threshold=threshold, positive_label=positive_label, max_curve_points=max_curve_points, **options,
        )
    return statistics


def normalise_problem_type(problem_type: str) -> ProblemType:
    """SageMaker's names, case and separators aside; "binary"/"multiclass" also accepted."""
    key = re.sub(r"[^a-z]", "", str(problem_type).lower())
    found = {"binaryclassification": "BinaryClassification", "binary": "BinaryClassification",
             "multiclassclassification": "MulticlassClassification", "multiclass": "MulticlassClassification",
             "regression": "Regression"}.get(key)
    if found is None:
        raise ValueError(f"problem type {problem_type!r}: expected BinaryClassification, "
                         "MulticlassClassification or Regression")
    return found  # type: ignore[return-value]


def _labels(values: pd.Series) -> np.ndarray:
    # Whole-number floats (a CSV label column read with missing values) name the same class as ints,
    # so 1.0 and 1 share the confusion-matrix key "1".
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.int64)
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=float)
        if len(numbers) and np.all(numbers == np.round(numbers)):
            return numbers.astype(np.int64)
        return numbers
    return values.astype(str).to_numpy()


def _key(label: Any) -> str:
    if isinstance(label, bool | np.bool_):
        return str(int(label))
    if isinstance(label, float | np.floating) and float(label).is_integer():
        return str(int(label))
    return str(label)


def _matches(values: np.ndarray, label: Any) -> np.ndarray:
    if values.dtype.kind in "iuf":
        if isinstance(label, bool | np.bool_ | int | float | np.integer | np.floating):
            return values == label
        try:
            return values == float(label)
        except ValueError:
            return np.zeros(len(values), dtype=bool)
    return values == _key(label)


def _div(numerator: Any, denominator: Any) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)


def _binomial_sd(value: float, denominator: float) -> float:
    return math.sqrt(value * (1 - value) / denominator) if denominator > 0 else 0.0


def _sd(samples: np.ndarray | None, scale: float = 1.0) -> float:
    if samples is None:
        return math.nan
    finite = samples[np.isfinite(samples)]
    return float(np.std(finite, ddof=1) * scale) if len(finite) > 1 else math.nan


def _metric(value: Any, sd: float) -> MetricValue:
    return MetricValue(value=float(value), standard_deviation=float(sd))


def _binary_from_counts(tp: Any, fp: Any, fn: Any, tn: Any) -> dict[str, np.ndarray]:
    """Every confusion-count metric; array arguments give one value per bootstrap resample."""
    tp, fp, fn, tn = (np.asarray(c, dtype=float) for c in (tp, fp, fn, tn))
    metrics = {
        "accuracy": _div(tp + tn, tp + fp + fn + tn),
        "precision": _div(tp, tp + fp),
        "recall": _div(tp, tp + fn),
        "true_positive_rate": _div(tp, tp + fn),
        "true_negative_rate": _div(tn, tn + fp),
        "false_positive_rate": _div(fp, fp + tn),
        "false_negative_rate": _div(fn, fn + tp),
    }
    for name, beta in BETAS:
        b2 = beta * beta
        metrics[name] = _div((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)
    return metrics


def _binary(
    truth: np.ndarray,
    pred: np.ndarray | None,
    score: np.ndarray | None,
    *,
    threshold: float,
    positive_label: Any,
    max_curve_points: int,
    bootstrap: int,
    bootstrap_sample: int,
    rng: np.random.Generator,
) -> BinaryClassificationMetrics:
    positive = _matches(truth, positive_label)
    predicted = _matches(pred, positive_label) if pred is not None else score >= threshold  # type: ignore
    pos_key = _key(positive_label)
    # pd.unique hashes: np.unique would sort a million label strings.
    seen = {_key(v) for v in pd.unique(truth[~positive])}
    if pred is not None:
        seen |= {_key(v) for v in pd.unique(pred[~predicted])}
    if len(seen) > 1:
        shown = ", ".join(sorted(seen | {pos_key})[:5])
        raise ValueError(f"{len(seen) + 1} labels ({shown}, ...): more than two, so use "
                         f"MulticlassClassification or check positive_label={positive_label!r}")
    neg_key = seen.pop() if seen else ("0" if pos_key == "1" else "not " + pos_key)
    n = len(truth)
    tn, fp, fn, tp = np.bincount(positive * 2 + predicted, minlength=4).astype(float)
    group = BinaryClassificationMetrics(confusion_matrix={
        neg_key: {neg_key: int(tn), pos_key: int(fp)},
        pos_key: {neg_key: int(fn), pos_key: int(tp)},
    })
    if n == 0:
        return group
    positives, negatives = tp + fn, fp + tn
    values = _binary_from_counts(tp, fp, fn, tn)
    # The constant classifier is chosen on these labels and kept fixed across bootstrap resamples.
    constant_positive = positives >= negatives
    constant = _constant_binary(positives, negatives, constant_positive)
    resampled: dict[str, np.ndarray] = {}
    if bootstrap > 0:
        cells = rng.multinomial(n, np.array([tp, fp, fn, tn]) / n, size=bootstrap).T
        resampled = _binary_from_counts(*cells)
        b_constant = _constant_binary(cells[0] + cells[2], cells[1] + cells[3], constant_positive)
        resampled.update({f"{name}_best_constant_classifier": v for name, v in b_constant.items()})
    denominators = {
        "accuracy": n, "precision": tp + fp, "recall": positives, "true_positive_rate": positives,
        "false_negative_rate": positives, "true_negative_rate": negatives, "false_positive_rate": negatives,
    }
    for name, value in values.items():
        sd = _binomial_sd(float(value), denominators[name]) if name in denominators \
            else _sd(resampled.get(name))
        setattr(group, name, _metric(value, sd))
    constant_denominators = {"accuracy": n, "precision": n if constant_positive else 0, "recall": positives}
    for name in ("accuracy", "precision", "recall", "f0_5", "f1", "f2"):
        key = f"{name}_best_constant_classifier"
        sd = _binomial_sd(float(constant[name]), constant_denominators[name]) \
            if name in constant_denominators else _sd(resampled.get(key))
        setattr(group, key, _metric(constant[name], sd))
    if score is not None:
        _add_ranking_metrics(group, score, positive, max_curve_points, bootstrap, bootstrap_sample, rng)
    return group


def _constant_binary(positives: Any, negatives: Any, constant_positive: bool) -> dict[str, np.ndarray]:
    zero = np.zeros_like(np.asarray(positives, dtype=float))
    if constant_positive:
        return _binary_from_counts(positives, negatives, zero, zero)
    return _binary_from_counts(zero, zero, positives, negatives)


def _ranking(score: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, from the highest down."""
    # Ties are summed as one group below, so their order within the sort does not matter.
    order = np.argsort(-score)
    ordered = score[order]
    ends = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
    tps = np.cumsum(positive[order])[ends].astype(float)
    return tps, (ends + 1) - tps


def _add_ranking_metrics(group: BinaryClassificationMetrics, score: np.ndarray, positive: np.ndarray,
                         max_curve_points: int, bootstrap: int, bootstrap_sample: int,
                         rng: np.random.Generator) -> None:
    tps, fps = _ranking(score, positive)
    positives, negatives = tps[-1], fps[-1]
    # Curves start at the threshold above every score: nothing predicted positive.
    tpr = np.r_[0.0, _div(tps, positives)]
    fpr = np.r_[0.0, _div(fps, negatives)]
    recall = tpr
    precision = np.r_[1.0, _div(tps, tps + fps)]
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2) if positives and negatives else math.nan
        pr_auc = float(np.sum(np.diff(recall) * precision[1:])) if positives else math.nan
    auc_samples = ap_samples = None
    scale = 1.0
    if bootstrap > 0 and len(score) > 1:
        auc_samples, ap_samples, scale = _ranking_bootstrap(score, positive, bootstrap, bootstrap_sample, rng)
    group.auc = _metric(auc, _sd(auc_samples, scale))
    group.pr_auc = _metric(pr_auc, _sd(ap_samples, scale))
    x, y = _thin(fpr, tpr, max_curve_points)
    group.receiver_operating_characteristic_curve = RocCurve(false_positive_rates=x, true_positive_rates=y)
    x, y = _thin(recall, precision, max_curve_points)
    group.precision_recall_curve = PrecisionRecallCurve(precisions=y, recalls=x)


def _resample_counts(rows: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, rows): how often each row is drawn in each bootstrap resample."""
    index = rng.integers(0, rows, size=(resamples, rows))
    index += (np.arange(resamples) * rows)[:, None]
    return np.bincount(index.ravel(), minlength=resamples * rows).reshape(resamples, rows)


def _subsample(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray | slice, float]:
    """Rows to bootstrap and the factor that scales their sd to n rows (sd ~ 1/sqrt(rows))."""
    if n <= size:
        return slice(None), 1.0
    return rng.choice(n, size, replace=False), math.sqrt(size / n)


def _ranking_bootstrap(score: np.ndarray, positive: np.ndarray, resamples: int, sample: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    rows, scale = _subsample(len(score), sample, rng)
    score, positive = score[rows], positive[rows]
    order = np.argsort(-score)
    ordered, positive = score[order], positive[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1]
    counts = _resample_counts(len(ordered), resamples, rng)
    # Per resample and distinct score: positives and negatives drawn, then the same sums as _ranking.
    pos_w = np.add.reduceat(counts * positive, starts, axis=1).astype(float)
    neg_w = np.add.reduceat(counts * ~positive, starts, axis=1).astype(float)
    tps, fps = np.cumsum(pos_w, axis=1), np.cumsum(neg_w, axis=1)
    positives, negatives = tps[:, -1], fps[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (neg_w * (tps - pos_w + tps)).sum(axis=1) / 2 / (positives * negatives)
        ap = (pos_w * tps / np.maximum(tps + fps, 1)).sum(axis=1) / positives
    return auc, ap, scale


def _thin(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[list[float], list[float]]:
    """At most max_points of a curve, evenly spaced along its length (keeps its shape, both ends)."""
    if len(x) > max_points >= 2:
        length = np.r_[0.0, np.cumsum(np.hypot(np.diff(x), np.diff(y)))]
        keep = np.searchsorted(length, np.linspace(0.0, length[-1], max_points))
        keep[0], keep[-1] = 0, len(x) - 1
        keep = np.unique(np.minimum(keep, len(x) - 1))
        x, y = x[keep], y[keep]
    return [float(v) for v in x], [float(v) for v in y]


def _multiclass_from_counts(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of confusion matrices shaped (..., actual, predicted); weights are class supports."""
    matrix = np.asarray(matrix, dtype=float)
    n = matrix.sum(axis=(-2, -1))
    hits = np.diagonal(matrix, axis1=-2, axis2=-1)
    support = matrix.sum(axis=-1)
    predicted = matrix.sum(axis=-2)
    weights = _div(support, n[..., None])
    metrics = {
        "accuracy": _div(hits.sum(axis=-1), n),
        "weighted_recall": (weights * _div(hits, support)).sum(axis=-1),
        "weighted_precision": (weights * _div(hits, predicted)).sum(axis=-1),
    }
    for name, beta in BETAS:
        b2 = beta * beta
        per_class = _div((1 + b2) * hits, (1 + b2) * hits + b2 * (support - hits) + (predicted - hits))
        metrics[f"weighted_{name}"] = (weights * per_class).sum(axis=-1)
    return metrics


def _constant_matrix(matrix: np.ndarray, majority: int) -> np.ndarray:
    constant = np.zeros_like(matrix)
    constant[..., majority] = matrix.sum(axis=-1)
    return constant


def _multiclass(truth: np.ndarray, pred: np.ndarray, *, bootstrap: int, bootstrap_sample: int,
                rng: np.random.Generator) -> MulticlassClassificationMetrics:
    if truth.dtype.kind != pred.dtype.kind and (truth.dtype.kind in "OU" or pred.dtype.kind in "OU"):
        truth, pred = truth.astype(str), pred.astype(str)
    codes, labels = pd.factorize(np.r_[truth, pred], sort=True)
    labels = np.asarray(labels)
    k, n = len(labels), len(truth)
    matrix = np.bincount(codes[:n] * k + codes[n:], minlength=k * k).reshape(k, k)
    keys = [_key(label) for label in labels]
    group = MulticlassClassificationMetrics(confusion_matrix={
        actual: {p: int(matrix[i, j]) for j, p in enumerate(keys)} for i, actual in enumerate(keys)
    })
    if n == 0:
        return group
    majority = int(np.argmax(matrix.sum(axis=1)))
    values = _multiclass_from_counts(matrix)
    constant = _multiclass_from_counts(_constant_matrix(matrix, majority))
    resampled: dict[str, np.ndarray] = {}
    if bootstrap > 0:
        cells = rng.multinomial(n, matrix.ravel() / n, size=bootstrap).reshape(bootstrap, k, k)
        resampled = _multiclass_from_counts(cells)
        b_constant = _multiclass_from_counts(_constant_matrix(cells, majority))
        resampled.update({f"{name}_best_constant_classifier": v for name, v in b_constant.items()})
    for suffix, metrics in (("", values), ("_best_constant_classifier", constant)):
        for name, value in metrics.items():
            key = name + suffix
            # weighted_recall is the accuracy (sum of hits / n), so both have the binomial sd.
            sd = _binomial_sd(float(metrics["accuracy"]), n) if name in ("accuracy", "weighted_recall") \
                else _sd(resampled.get(key))
            setattr(group, key, _metric(value, sd))
    return group


def _regression(truth: np.ndarray, pred: np.ndarray, *, bootstrap: int, bootstrap_sample: int,
                rng: np.random.Generator) -> RegressionMetrics:
    n = len(truth)
    if n == 0:
        return RegressionMetrics()
    error = pred - truth
    absolute, squared = np.abs(error), error * error
    mse = float(squared.mean())
    total = float(np.sum((truth - truth.mean()) ** 2))
    root_n = math.sqrt(n)
    rmse_samples = r2_samples = None
    scale = 1.0
    if bootstrap > 0 and n > 1:
        rows, scale = _subsample(n, bootstrap_sample, rng)
        sub_squared, sub_truth = squared[rows], truth[rows]
        sub_truth = sub_truth - sub_truth.mean()  # centred: sums of squares without cancellation
        counts = _resample_counts(len(sub_truth), bootstrap, rng).astype(float)
        size = len(sub_truth)
        sse = counts @ sub_squared
        sums = counts @ sub_truth
        sst = counts @ (sub_truth * sub_truth) - sums * sums / size
        rmse_samples = np.sqrt(sse / size)
        r2_samples = _r2(sse, sst)
    return RegressionMetrics(
        mae=_metric(absolute.mean(), float(np.std(absolute, ddof=1)) / root_n if n > 1 else math.nan),
        mse=_metric(mse, float(np.std(squared, ddof=1)) / root_n if n > 1 else math.nan),
        rmse=_metric(math.sqrt(mse), _sd(rmse_samples, scale)),
        r2=_metric(_r2(np.array(mse * n), np.array(total)), _sd(r2_samples, scale)),
    )


def _r2(sse: np.ndarray, sst: np.ndarray) -> np.ndarray:
    # sklearn's convention for constant labels: 1 when predicted exactly, else 0.
    return np.where(sst > 0, 1 - _div(sse, sst), np.where(sse == 0, 1.0, 0.0))


# ---- constraints -------------------------------------------------------------------------------

def suggest_constraints(
    statistics: ModelQualityStatistics,
    *,
    n_sd: float = 4.0,  # 3 sd let ~2% of healthy binary windows (12 metrics) raise a violation
    min_margin: float = 0.01,
    window_size: int = WINDOW_SIZE,
    metrics: Iterable[str] | None = None,
) -> ModelQualityConstraints:
    """Thresholds that a window of `window_size` rows drawn like the baseline does not cross.

    SageMaker suggests the baseline value itself, which about half of all healthy windows violate.
    Here the margin below (higher-is-better metrics, LessThanThreshold) or above (mse, mae, rmse, fpr,
    fnr: GreaterThanThreshold) the baseline value is n_sd standard deviations of the difference
    between a window's metric and the baseline's: sqrt(sd_window^2 + sd^2) with
    sd_window = sd * sqrt(item_count / window_size), since every sd here shrinks as 1/sqrt(rows).
    The margin is at least `min_margin`: absolute for the unitless metrics (rates, F-scores, AUC, R2),
    relative to the baseline value for mae, mse and rmse, which carry the target's units. Without an sd
    (SageMaker's "NaN") the margin is `min_margin`; without an item count the sd is taken as the window's.
    `metrics` overrides SageMaker's suggested set (the metric must be in the statistics).
    """
    problem = statistics.problem_type
    group = statistics.metrics
    if problem is None or group is None:
        raise ValueError("statistics hold no binary_classification_metrics, "
                         "multiclass_classification_metrics or regression_metrics")
    rows = statistics.item_count
    growth = rows / window_size if rows else 1.0
    suggested: dict[str, MetricConstraint] = {}
    for name in metrics if metrics is not None else SUGGESTED[problem]:
        found = group.metric(name)
        if found is None or not math.isfinite(found.value):
            continue
        sd = found.standard_deviation
        spread = n_sd * sd * math.sqrt(growth + 1.0) if math.isfinite(sd) else 0.0
        floor = min_margin * (abs(found.value) if name in RELATIVE_MARGIN else 1.0)
        margin = max(spread, floor)
        if name in LOWER_IS_BETTER:
            suggested[name] = MetricConstraint(threshold=found.value + margin,
                                               comparison_operator="GreaterThanThreshold")
        else:
            suggested[name] = MetricConstraint(threshold=found.value - margin,
                                               comparison_operator="LessThanThreshold")
    constraints = ModelQualityConstraints(version=0.0)
    setattr(constraints, CONSTRAINT_KEYS[problem], suggested)
    return constraints


def check(
    constraints: ModelQualityConstraints,
    statistics: ModelQualityStatistics,
    *,
    min_records: int = MIN_RECORDS,
) -> ModelQualityViolations:
    """Violations of a window's statistics against constraints, in constraint order.

    A window with fewer than `min_records` labelled records gets no violations and `no_data=True`
    (status "NoData"): its metrics are too noisy to judge. Constraints on metrics the statistics lack
    or hold as NaN (e.g. auc without scores) are listed in `skipped`.
    """
    count = statistics.item_count
    if count is not None and count < min_records:
        return ModelQualityViolations(item_count=count, no_data=True)
    problem = constraints.problem_type
    if problem is None:
        return ModelQualityViolations(item_count=count)
    if statistics.problem_type != problem:
        raise ValueError(f"constraints are for {problem} but the statistics for {statistics.problem_type}")
    group = statistics.metrics
    assert group is not None
    result = ModelQualityViolations(item_count=count)
    for name, constraint in constraints.constraints.items():
        found = group.metric(name)
        if found is None or not math.isfinite(found.value):
            result.skipped.append(name)
            continue
        op = constraint.comparison_operator
        metric_name = camel_case(name)
        passed = not OPERATORS[op](found.value, constraint.threshold)
        description = (f"Metric {metric_name} with {java_double(found.value)} +/- "
                       f"{java_double(found.standard_deviation)} was {op} "
                       f"'{java_double(constraint.threshold)}'")
        result.checks.append(Check(subject=name, check=op, value=found.value,
                                   threshold=constraint.threshold, passes=PASSING_SIDE[op],
                                   passed=passed, description="" if passed else description))
        if not passed:
            result.violations.append(ModelQualityViolation(
                constraint_check_type=op, description=description, metric_name=metric_name))
    return result


def camel_case(name: str) -> str:
    """true_positive_rate -> truePositiveRate, as violations name metrics.

    An underscore before a digit stays (f0_5, weighted_f0_5 -> weightedF0_5): SageMaker's spelling of
    these is unobserved, and dropping it would read as "f05".
    """
    head, *rest = name.split("_")
    return head + "".join(("_" + part) if part[:1].isdigit() else part[:1].upper() + part[1:]
                          for part in rest)


def java_double(value: float) -> str:
    """Java's Double.toString: plain between 1e-3 and 1e7 ("1.0", "0.25"), else "5.09E-4"."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, magnitude = ("-" if value < 0 else ""), abs(value)
    if 1e-3 <= magnitude < 1e7:
        return sign + repr(magnitude)  # Python's repr is plain here too, with the same shortest digits
    digits, exponent = _shortest_digits(magnitude)
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent + len(digits) - 1}"


def _shortest_digits(value: float) -> tuple[str, int]:
    _, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent = int(exponent) + len(digit_tuple) - len(digits)
    return digits or "0", exponent

"""Clarify's post-training bias metrics per facet (analysis.json), bias-drift constraints and their check:
the functional core of the bias-drift monitor (section 6 of shared/interop/sagemaker-formats.md).

Per facet entry, group d is the facet's members and group a everyone else. The per-group confusion counts
come from fairlearn's MetricFrame. MetricFrame turns y_true/y_pred into Python lists and stacks each group
row by row, which takes about 20 s at 1,000,000 rows. So the rows are first reduced to the 8 distinct
(group, label, prediction) cells with their counts, and MetricFrame gets those counts as sample_weight. The
counts are exact, and the call takes milliseconds whatever the frame's size.

Constraints (ours, `BiasConstraints`) bound each metric of each facet entry:

* from a baseline analysis (`suggest_bias_constraints`): a range centred on the metric's fair value f (1 for
  DI, 0 otherwise) that allows the baseline's distance from f plus `tolerance`:
  [f - (|b - f| + tolerance), f + (|b - f| + tolerance)]. DI is a ratio, so its range is built the same way
  on log(DI): [min(b, 1/b) / (1 + tolerance), max(b, 1/b) * (1 + tolerance)]. A DI of 0.8 is as unfair as
  1.25 (the four-fifths rule). An additive range would treat them differently, and its lower end drops
  below 0 once b < tolerance, so a DI falling to 0 would go unnoticed. An infinite baseline leaves that
  side unbounded; the other side is fair -/+ tolerance. Where a metric moves by more than `tolerance` by
  chance alone in a window of the expected size (`metric_noise`: 4 sd over bootstrap windows; TE, a ratio
  of small counts, typically does), that movement replaces the tolerance. Absolute user bounds
  (`parse_bounds`) replace the baseline range of their metric, and apply even where the baseline value
  is null.
* from a SageMaker baseline analysis.json (`constraints_from_analysis`): SageMaker's rule, a value is
  allowed iff |current - f| <= |baseline - f|. Violations quote the baseline value, as SageMaker does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame
from pydantic import BeforeValidator, Field, PlainSerializer, model_serializer
from sklearn.neighbors import KNeighborsClassifier

from modelwatch.tasks.documents import Document
from modelwatch.tasks.errors import UserError

DESCRIPTIONS: dict[str, str] = {
    "AD": "Accuracy Difference (AD)",
    "CDDPL": "Conditional Demographic Disparity in Predicted Labels (CDDPL)",
    "DAR": "Difference in Acceptance Rates (DAR)",
    "DCA": "Difference in Conditional Acceptance (DCA)",
    "DCR": "Difference in Conditional Rejection (DCR)",
    "DI": "Disparate Impact (DI)",
    "DPPL": "Difference in Positive Proportions in Predicted Labels (DPPL)",
    "DRR": "Difference in Rejection Rates (DRR)",
    "FT": "Flip Test (FT)",
    "GE": "Generalized Entropy (GE)",
    "RD": "Recall Difference (RD)",
    "SD": "Specificity Difference (SD)",
    "TE": "Treatment Equality (TE)",
}
POST_TRAINING_METRICS: tuple[str, ...] = tuple(sorted(DESCRIPTIONS))
FAIR_VALUES: dict[str, float] = {"DI": 1.0}  # every other metric: 0
ALIASES: dict[str, str] = {"DCACC": "DCA"}  # the name for DCA
GROUP_VARIABLE_ERROR = "Group variable is empty or not provided"
NO_FEATURES_ERROR = "Flip test needs numeric features: none given (besides the facet, label and prediction)"
MIN_MEMBERS = 30
FLIP_TEST_ROWS = 20_000
MAX_FACET_VALUES = 50
TRUE_WORDS = {"true": "1", "false": "0"}

RangeSource = Literal["baseline", "absolute", "sagemaker"]
Bounds = dict[str, tuple[float | None, float | None]]


# ---- numbers in documents: inf is written as "Infinity" (smclarify's report.inf_as_str) ----

def _float_in(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value.strip())  # "Infinity", "-Infinity", "NaN"
        except ValueError:
            raise ValueError(f"expected a number or 'Infinity', got {value!r}") from None
    return value


def _float_out(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


JsonFloat = Annotated[float, BeforeValidator(_float_in), PlainSerializer(_float_out)]


def format_number(value: float) -> str:
    """A metric value as SageMaker's violation descriptions print it (Python repr; inf as "Infinity")."""
    shown = _float_out(float(value))
    return shown if isinstance(shown, str) else repr(shown)


# ---- documents ---------------------------------------------------------------------------------

class FacetSpec(Document):
    """A facet: a column, and which of its values make group d (values=None: each value in turn)."""

    name: str
    values: list[str] | None = None
    threshold: float | None = None


class BiasMetric(Document):
    name: str
    description: str
    value: JsonFloat | None = None
    error: str | None = None

    @model_serializer(mode="wrap")
    def _keep_null_value(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        # Clarify writes "value": null beside an error; dump() drops None, so put it back.
        data = handler(self)
        if "value" not in data:
            data = {"name": data.pop("name"), "description": data.pop("description"), "value": None, **data}
        return data


class FacetResult(Document):
    value_or_threshold: str
    metrics: list[BiasMetric]
    # Ours: the sizes of group d (the facet's members) and group a, and the rows the flip test used
    # per group when it sampled them.
    members: int | None = None
    non_members: int | None = None
    flip_test_sampled: dict[str, int] | None = None

    def metric(self, name: str) -> BiasMetric | None:
        return next((m for m in self.metrics if m.name == name), None)


class BiasMetricsSection(Document):
    label: str
    facets: dict[str, list[FacetResult]]
    label_value_or_threshold: str


class BiasAnalysis(Document):
    version: str = "1.0"
    post_training_bias_metrics: BiasMetricsSection | None = None
    pre_training_bias_metrics: BiasMetricsSection | None = None


class MetricRange(Document):
    """Allowed values lower <= value <= upper (None: unbounded side).

    source "baseline": centred on the fair value from the baseline value and the tolerance; "absolute": a
    user's bound; "sagemaker": SageMaker's rule, |value - fair| <= |baseline - fair|.
    """

    lower: JsonFloat | None = None
    upper: JsonFloat | None = None
    source: RangeSource = "baseline"
    baseline: JsonFloat | None = None


class FacetRanges(Document):
    value_or_threshold: str
    metrics: dict[str, MetricRange]


class BiasConstraints(Document):
    version: str = "1.0"
    label: str
    label_value_or_threshold: str
    tolerance: float
    facets: dict[str, list[FacetRanges]]


class BiasViolation(Document):
    facet: str
    facet_value: str
    metric_name: str
    constraint_check_type: str = "bias_drift_check"
    description: str


class BiasViolations(Document):
    version: str = "1.0"
    violations: list[BiasViolation] = Field(default_factory=list)
    # What check_bias could not compare (facets, values or metrics missing from the current analysis);
    # excluded so the file keeps SageMaker's shape.
    notes: list[str] = Field(default_factory=list, exclude=True)

    @property
    def status(self) -> Literal["Completed", "CompletedWithViolations"]:
        return "CompletedWithViolations" if self.violations else "Completed"


# ---- parsing user text -------------------------------------------------------------------------

def parse_facet(text: str) -> FacetSpec:
    """"Sex" (each value its own group), "Sex=0" / "Sex=0,1" (those values are group d), "Age>40"."""
    stripped = (text or "").strip()
    expected = "expected COLUMN, COLUMN=VALUE[,VALUE...] or COLUMN>NUMBER (e.g. Sex, Sex=0, Age>40)"
    cut = min((i for i in (stripped.find("="), stripped.find(">")) if i >= 0), default=-1)
    if cut < 0:
        if not stripped:
            raise UserError(f"facet {text!r} is empty: {expected}")
        return FacetSpec(name=stripped)
    name, sign, rest = stripped[:cut].strip(), stripped[cut], stripped[cut + 1:].strip()
    if not name:
        raise UserError(f"facet {text!r} names no column: {expected}")
    if sign == ">":
        threshold = _finite_number(rest)
        if threshold is None:
            raise UserError(f"facet {text!r}: threshold {rest!r} is not a number; {expected}")
        return FacetSpec(name=name, threshold=threshold)
    values = [v.strip() for v in rest.split(",")]
    if not all(values):
        raise UserError(f"facet {text!r} has an empty value: {expected}")
    return FacetSpec(name=name, values=values)


def parse_label_values(text: str | None) -> list[str] | float | None:
    """The positive label: "1", "1,yes" (any of these values) or ">0.5" (above a threshold)."""
    if text is None:
        return None
    stripped = text.strip()
    expected = "expected VALUE[,VALUE...] or >NUMBER (e.g. 1, yes,y or >0.5)"
    if stripped.startswith(">"):
        threshold = _finite_number(stripped[1:].strip())
        if threshold is None:
            raise UserError(f"label values {text!r}: threshold is not a number; {expected}")
        return threshold
    values = [v.strip() for v in stripped.split(",")]
    if not all(values):
        raise UserError(f"label values {text!r} have an empty value: {expected}")
    return values


def parse_bounds(texts: list[str]) -> Bounds:
    """Absolute bounds "DI=0.8:1.25", "DPPL=:0.1", "DPPL=-0.1:" -> {metric: (lower, upper)}."""
    bounds: Bounds = {}
    expected = "expected METRIC=LOWER:UPPER with either side optional (e.g. DI=0.8:1.25, DPPL=:0.1)"
    for text in texts:
        name, eq, rest = text.partition("=")
        lower_text, colon, upper_text = rest.partition(":")
        if not eq or not colon:
            raise UserError(f"bound {text!r}: {expected}")
        metric = _metric_name(name, f"bound {text!r}")
        lower, upper = (_optional_number(side, text, expected) for side in (lower_text, upper_text))
        if lower is None and upper is None:
            raise UserError(f"bound {text!r} has neither a lower nor an upper value: {expected}")
        if lower is not None and upper is not None and lower > upper:
            raise UserError(f"bound {text!r}: lower {lower} is above upper {upper}")
        if metric in bounds:
            raise UserError(f"bound {text!r}: {metric} is bounded twice")
        bounds[metric] = (lower, upper)
    return bounds


def _metric_name(name: str, where: str) -> str:
    key = name.strip().upper()
    key = ALIASES.get(key, key)
    if key not in DESCRIPTIONS:
        raise UserError(f"{where}: unknown metric {name.strip()!r}; expected one of "
                        f"{', '.join(POST_TRAINING_METRICS)} (or DCAcc for DCA)")
    return key


def _optional_number(text: str, whole: str, expected: str) -> float | None:
    if not text.strip():
        return None
    number = _finite_number(text.strip())
    if number is None:
        raise UserError(f"bound {whole!r}: {text.strip()!r} is not a number; {expected}")
    return number


def _finite_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# ---- value normalisation: "1", 1, 1.0 and True name the same value -----------------------------

def _normalise(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    if text.lower() in TRUE_WORDS:
        return TRUE_WORDS[text.lower()]
    try:
        number = float(text)
    except ValueError:
        return text
    return _normalise(number) if math.isfinite(number) else text


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _as_floats(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=float, na_value=np.nan)


def _keys(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Per row, the index of its normalised value in the returned list (-1 where missing)."""
    codes, uniques = pd.factorize(series)
    keys = sorted({_normalise(u) for u in uniques}, key=_sort_key)
    position = {key: i for i, key in enumerate(keys)}
    lookup = np.array([position[_normalise(u)] for u in uniques] + [-1], dtype=np.int64)
    return lookup[codes], keys


def _sort_key(key: str) -> tuple[int, float, str]:
    number = _finite_number(key)
    return (0, number, key) if number is not None else (1, 0.0, key)


def _is_in(series: pd.Series, wanted: Iterable[str]) -> np.ndarray:
    """Rows whose normalised value is one of `wanted` (missing values never are)."""
    wanted = {_normalise(w) for w in wanted}
    if _is_numeric(series):
        numbers = [n for n in (_finite_number(w) for w in wanted) if n is not None]
        return np.isin(_as_floats(series), numbers)
    codes, keys = _keys(series)
    hit = np.array([key in wanted for key in keys] + [False])
    return hit[codes]


def _numeric(series: pd.Series, what: str) -> np.ndarray:
    if _is_numeric(series):
        return _as_floats(series)
    numbers = pd.to_numeric(series, errors="coerce")
    bad = numbers.isna() & series.notna()
    if bad.any():
        example = series[bad].iloc[0]
        raise UserError(f"{what} column {series.name!r} has non-numeric values (e.g. {example!r}); "
                        "a threshold needs numbers")
    return _as_floats(numbers)


def _interval(threshold: float, numbers: np.ndarray) -> str:
    """Clarify's text for a threshold group: "(threshold, max]"."""
    finite = numbers[np.isfinite(numbers)]
    top = float(finite.max()) if len(finite) else threshold
    return f"({_normalise(threshold)}, {_normalise(top)}]"


def _positive(series: pd.Series, rule: list[str] | float, what: str) -> np.ndarray:
    if isinstance(rule, list):
        return _is_in(series, rule)
    return _numeric(series, what) > rule


def _probabilities(series: pd.Series) -> np.ndarray | None:
    """The column as floats if it holds probabilities: numbers in [0, 1], not all 0 or 1."""
    if pd.api.types.is_bool_dtype(series):
        return None
    if pd.api.types.is_numeric_dtype(series):
        numbers = _as_floats(series)
    elif series.dtype == object or pd.api.types.is_string_dtype(series):
        converted = pd.to_numeric(series, errors="coerce")
        if (converted.isna() & series.notna()).any():
            return None
        numbers = _as_floats(converted)
    else:
        return None
    present = numbers[~np.isnan(numbers)]
    if not len(present) or present.min() < 0 or present.max() > 1:
        return None
    return numbers if np.any((present != 0) & (present != 1)) else None


# ---- metrics -----------------------------------------------------------------------------------

def divide(numerator: float, denominator: float) -> float:
    """smclarify's division: 0/0 is 0, x/0 is +-inf."""
    if denominator == 0:
        return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / denominator


def difference(first: float, second: float) -> float:
    """first - second, 0 when both are the same infinity (smclarify's rule for two infinite rates)."""
    if math.isinf(first) and first == second:
        return 0.0
    return first - second


def _tp(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray) -> float:
    return float(sample_weight[y_true & y_pred].sum())


def _fp(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray) -> float:
    return float(sample_weight[~y_true & y_pred].sum())


def _fn(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray) -> float:
    return float(sample_weight[y_true & ~y_pred].sum())


def _tn(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray) -> float:
    return float(sample_weight[~y_true & ~y_pred].sum())


COUNTERS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "tp": _tp, "fp": _fp, "fn": _fn, "tn": _tn,
}
_CELLS = np.arange(8)  # cell = 4 * member + 2 * label + prediction


def confusion_by_group(member: np.ndarray, label: np.ndarray,
                       predicted: np.ndarray) -> dict[str, dict[str, int]]:
    """{"a": {tp, fp, fn, tn}, "d": {...}} through fairlearn's MetricFrame, weighted per distinct cell."""
    counts = np.bincount(member.astype(np.int64) * 4 + label * 2 + predicted, minlength=8)
    frame = MetricFrame(
        metrics=COUNTERS,
        y_true=((_CELLS >> 1) & 1).astype(bool),
        y_pred=(_CELLS & 1).astype(bool),
        sensitive_features=np.where(_CELLS >= 4, "d", "a"),
        sample_params={name: {"sample_weight": counts} for name in COUNTERS},
    )
    by_group = frame.by_group
    return {group: {name: int(by_group.loc[group, name]) for name in COUNTERS} for group in ("a", "d")}


def metrics_from_counts(a: dict[str, int], d: dict[str, int]) -> dict[str, float]:
    """The confusion-count metrics of §6.1 (all but CDDPL, FT and GE) from each group's counts."""
    def rates(c: dict[str, int]) -> dict[str, float]:
        n = c["tp"] + c["fp"] + c["fn"] + c["tn"]
        labels_pos, labels_neg = c["tp"] + c["fn"], c["fp"] + c["tn"]
        pred_pos, pred_neg = c["tp"] + c["fp"], c["fn"] + c["tn"]
        return {
            "positive_prediction": divide(pred_pos, n),
            "conditional_acceptance": divide(labels_pos, pred_pos),
            "conditional_rejection": divide(labels_neg, pred_neg),
            "recall": divide(c["tp"], labels_pos),
            "specificity": divide(c["tn"], labels_neg),
            "precision": divide(c["tp"], pred_pos),
            "rejection_rate": divide(c["tn"], pred_neg),
            "accuracy": divide(c["tp"] + c["tn"], n),
            "treatment": divide(c["fn"], c["fp"]),
        }

    ra, rd = rates(a), rates(d)
    return {
        "AD": difference(ra["accuracy"], rd["accuracy"]),
        "DAR": difference(ra["precision"], rd["precision"]),
        "DCA": difference(ra["conditional_acceptance"], rd["conditional_acceptance"]),
        "DCR": difference(rd["conditional_rejection"], ra["conditional_rejection"]),
        "DI": divide(rd["positive_prediction"], ra["positive_prediction"]),
        "DPPL": difference(ra["positive_prediction"], rd["positive_prediction"]),
        "DRR": difference(rd["rejection_rate"], ra["rejection_rate"]),
        "RD": difference(ra["recall"], rd["recall"]),
        "SD": difference(rd["specificity"], ra["specificity"]),
        "TE": difference(rd["treatment"], ra["treatment"]),
    }


def generalized_entropy(label: np.ndarray, predicted: np.ndarray) -> float:
    """GE with alpha = 2 over b_i = predicted_i - label_i + 1, from the counts of b = 0, 1, 2."""
    counts = np.bincount(predicted.astype(np.int64) - label + 1, minlength=3).astype(float)
    n = counts.sum()
    if n == 0:
        return 0.0
    mean = (counts[1] + 2 * counts[2]) / n
    squares = counts[1] + 4 * counts[2]
    return divide(divide(squares, mean * mean) - n, 2 * n)


def conditional_demographic_disparity(member: np.ndarray, predicted: np.ndarray, groups: np.ndarray) -> float:
    """CDDPL: sum_g n_g DD_g / sum_g n_g; DD_g = d's share of the rejected minus of the accepted in g."""
    size = int(groups.max()) + 1 if len(groups) else 0

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(groups[mask], minlength=size).astype(float)

    def share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
        # part <= whole, so divide() can only meet 0/0 here: 0.
        return np.divide(part, whole, out=np.zeros_like(part), where=whole > 0)

    n = count(np.ones(len(groups), dtype=bool))
    disparity = (share(count(~predicted & member), count(~predicted))
                 - share(count(predicted & member), count(predicted)))
    return divide(float(np.dot(n, disparity)), float(n.sum()))


def flip_test(features: np.ndarray, member: np.ndarray, predicted: np.ndarray, *, max_rows: int,
              rng: np.random.Generator) -> tuple[float, dict[str, int] | None]:
    """Clarify's flip test: kNN fitted on group a's features -> predictions, applied to group d.

    FT = (#(d predicted 1, kNN 0) - #(d predicted 0, kNN 1)) / n_d; k = 5, or 1 with at most 9 rows in a.
    Groups larger than max_rows are sampled (seeded); the second value then gives the rows used per group.
    """
    rows = {"a": np.flatnonzero(~member), "d": np.flatnonzero(member)}
    sampled = any(len(r) > max_rows for r in rows.values())
    if sampled:
        rows = {g: np.sort(rng.choice(r, max_rows, replace=False)) if len(r) > max_rows else r
                for g, r in rows.items()}
    a, d = rows["a"], rows["d"]
    if len(a) == 0 or len(d) == 0:
        raise ValueError("flip test needs rows with complete features in both groups")
    knn = KNeighborsClassifier(n_neighbors=5 if len(a) > 9 else 1, weights="uniform", p=2, metric="minkowski")
    knn.fit(features[a], predicted[a])
    flipped = knn.predict(features[d]).astype(bool)
    original = predicted[d]
    value = divide(int(np.count_nonzero(original & ~flipped)) - int(np.count_nonzero(~original & flipped)),
                   len(d))
    return value, ({g: len(r) for g, r in rows.items()} if sampled else None)


# ---- compute_bias ------------------------------------------------------------------------------

def compute_bias(
    frame: pd.DataFrame,
    *,
    label: str,
    predicted: str,
    facets: list[FacetSpec],
    label_values: list[str] | float | None = None,
    probability_threshold: float = 0.5,
    group: str | None = None,
    features: list[str] | None = None,
    min_members: int = MIN_MEMBERS,
    flip_test_rows: int = FLIP_TEST_ROWS,
    seed: int = 0,
) -> BiasAnalysis:
    """Clarify's post-training bias metrics of each facet entry, as an analysis.json document.

    Rows missing the label or the prediction are left out. For each facet, rows missing its value are also
    left out. GE uses every remaining row, so it has the same value for every facet. The positive label is
    a value of `label_values` or above its threshold, or 1/"1"/True when None. The same rule applies to
    `predicted`, unless that column holds probabilities: then >= `probability_threshold` predicts positive.
    A facet entry whose group d or a has fewer than `min_members` rows gets null metrics with an error.
    """
    if not facets:
        raise UserError("no facet given: expected at least one (e.g. Sex, Sex=0, Age>40)")
    if flip_test_rows < 1:
        raise UserError(f"flip_test_rows {flip_test_rows}: expected at least 1")
    _require_columns(frame, [label, predicted, *(f.name for f in facets), *([group] if group else []),
                             *(features or [])])
    rule: list[str] | float = ["1"] if label_values is None else label_values
    present = (frame[label].notna() & frame[predicted].notna()).to_numpy()
    truth = _positive(frame[label], rule, "label") & present
    scores = _probabilities(frame[predicted])
    guess = (scores >= probability_threshold if scores is not None
             else _positive(frame[predicted], rule, "prediction")) & present
    label_text = (",".join(_normalise(v) for v in rule) if isinstance(rule, list)
                  else _interval(rule, _numeric(frame[label], "label")[present]))
    context = _Context(
        frame=frame, label=label, predicted=predicted, truth=truth.astype(np.int64),
        guess=guess, ge=generalized_entropy(truth[present].astype(np.int64), guess[present]),
        groups=_group_codes(frame, group), features=features or [], min_members=min_members,
        flip_test_rows=flip_test_rows, seed=seed,
    )
    section = BiasMetricsSection(label=label, facets={}, label_value_or_threshold=label_text)
    for spec in facets:
        section.facets[spec.name] = [context.facet_result(spec, value, member, rows)
                                     for value, member, rows in _facet_entries(frame, spec, present)]
    return BiasAnalysis(post_training_bias_metrics=section)


def _require_columns(frame: pd.DataFrame, names: list[str]) -> None:
    missing = [n for n in dict.fromkeys(names) if n not in frame.columns]
    if missing:
        shown = ", ".join(map(str, list(frame.columns)[:20]))
        raise UserError(f"column(s) {', '.join(map(repr, missing))} not in the data; its columns: {shown}")


def _group_codes(frame: pd.DataFrame, group: str | None) -> np.ndarray | None:
    """Per row, a code of its group variable value (missing values are a group of their own)."""
    if group is None or frame[group].isna().all():
        return None
    codes, _ = pd.factorize(frame[group], use_na_sentinel=False)
    return codes.astype(np.int64)


def _facet_entries(frame: pd.DataFrame, spec: FacetSpec,
                   present: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(value_or_threshold, group d, rows used) for each entry of one facet."""
    column = frame[spec.name]
    rows = present & column.notna().to_numpy()
    if spec.threshold is not None and spec.values:
        raise UserError(f"facet {spec.name!r} has both values and a threshold: expected one of them")
    if spec.threshold is not None:
        numbers = _numeric(column, "facet")
        return [(_interval(spec.threshold, numbers[rows]), numbers > spec.threshold, rows)]
    if spec.values:
        return [(",".join(_normalise(v) for v in spec.values), _is_in(column, spec.values), rows)]
    codes, keys = _keys(column[rows] if not rows.all() else column)
    if len(keys) > MAX_FACET_VALUES:
        raise UserError(f"facet {spec.name!r} has {len(keys)} distinct values (at most {MAX_FACET_VALUES} "
                        f"can each be a group): give values ({spec.name}=v1,v2) or a threshold "
                        f"({spec.name}>number)")
    full = np.full(len(frame), -1, dtype=np.int64)
    full[rows] = codes
    return [(key, full == i, rows) for i, key in enumerate(keys)]


class _Context:
    """What every facet entry shares: the labels, predictions, GE, group codes and options."""

    def __init__(self, *, frame: pd.DataFrame, label: str, predicted: str, truth: np.ndarray,
                 guess: np.ndarray, ge: float, groups: np.ndarray | None,
                 features: list[str], min_members: int, flip_test_rows: int, seed: int) -> None:
        self.frame, self.label, self.predicted = frame, label, predicted
        self.truth, self.guess, self.ge, self.groups = truth, guess, ge, groups
        self.features, self.min_members = features, min_members
        self.flip_test_rows, self.seed = flip_test_rows, seed
        self._matrices: dict[tuple[str, ...], np.ndarray] = {}

    def facet_result(self, spec: FacetSpec, value: str, member: np.ndarray, rows: np.ndarray) -> FacetResult:
        everything = bool(rows.all())
        member_rows = member if everything else member[rows]
        n_d = int(np.count_nonzero(member_rows))
        n_a = len(member_rows) - n_d
        result = FacetResult(value_or_threshold=value, metrics=[], members=n_d, non_members=n_a)
        small = _too_few(n_d, n_a, self.min_members)
        if small:
            result.metrics = [_metric(name, None, small) for name in POST_TRAINING_METRICS]
            return result

        def pick(values: np.ndarray) -> np.ndarray:
            return values if everything else values[rows]

        truth, guess = pick(self.truth), pick(self.guess)
        values: dict[str, float | None] = dict(metrics_from_counts(**confusion_by_group(member_rows, truth,
                                                                                        guess)))
        values["GE"] = self.ge
        errors: dict[str, str] = {}
        if self.groups is None:
            values["CDDPL"], errors["CDDPL"] = None, GROUP_VARIABLE_ERROR
        else:
            values["CDDPL"] = conditional_demographic_disparity(member_rows, guess, pick(self.groups))
        values["FT"], error, result.flip_test_sampled = self._flip_test(spec, member, rows)
        if error:
            errors["FT"] = error
        result.metrics = [_metric(name, values[name], errors.get(name)) for name in POST_TRAINING_METRICS]
        return result

    def _flip_test(self, spec: FacetSpec, member: np.ndarray,
                   rows: np.ndarray) -> tuple[float | None, str | None, dict[str, int] | None]:
        excluded = {spec.name, self.label, self.predicted}
        names = [f for f in dict.fromkeys(self.features)
                 if f not in excluded and _is_numeric(self.frame[f])]
        if not names:
            return None, NO_FEATURES_ERROR, None
        key = tuple(names)
        if key not in self._matrices:
            self._matrices[key] = self.frame[names].to_numpy(dtype=float, na_value=np.nan)
        matrix = self._matrices[key]
        complete = rows & np.isfinite(matrix).all(axis=1)
        used = np.flatnonzero(complete)
        try:
            value, sampled = flip_test(matrix[used], member[used], self.guess[used],
                                       max_rows=self.flip_test_rows, rng=np.random.default_rng(self.seed))
        except ValueError as error:
            return None, str(error), None
        return value, None, sampled


def _too_few(n_d: int, n_a: int, needed: int) -> str | None:
    if n_d < needed:
        return f"facet group has {n_d} members; at least {needed} are needed"
    if n_a < needed:
        return f"the rest of the rows (group a) has {n_a} members; at least {needed} are needed"
    return None


def _metric(name: str, value: float | None, error: str | None) -> BiasMetric:
    return BiasMetric(name=name, description=DESCRIPTIONS[name],
                      value=None if error else value, error=error)


def facets_too_small(current: BiasAnalysis) -> list[str]:
    """Notes for the execution: facet entries whose metrics are null because a group was too small."""
    notes: list[str] = []
    section = current.post_training_bias_metrics
    for facet, entries in (section.facets.items() if section else []):
        for entry in entries:
            errors = {m.error for m in entry.metrics if m.value is None and m.error}
            for error in sorted(errors):
                found = re.search(r"has (\d+) members; at least (\d+) are needed", error)
                if found:
                    whose = "members" if error.startswith("facet group") else "rows outside the facet group"
                    notes.append(f"{_entry_name(facet, entry.value_or_threshold)}: {found[1]} {whose} "
                                 f"(at least {found[2]} needed)")
    return notes


def _entry_name(facet: str, value: str) -> str:
    return f"{facet} in {value}" if value.startswith("(") else f"{facet}={value}"


# ---- constraints -------------------------------------------------------------------------------

NOISE_SDS = 4.0  # a window drawn like the baseline stays inside 4 sd of each metric
NOISE_DRAWS = 40
NOISE_WINDOW_ROWS = 1000


def metric_noise(frame: pd.DataFrame, *, window_rows: int = NOISE_WINDOW_ROWS, draws: int = NOISE_DRAWS,
                 seed: int = 0, **settings: Any) -> dict[tuple[str, str, str], float]:
    """How far each metric moves by chance alone in a window of `window_rows` drawn like `frame`:
    NOISE_SDS standard deviations over `draws` bootstrap windows, per (facet, value, metric); for DI a
    factor minus one (its ranges are on the log scale). Ratio metrics such as TE move by far more
    than a fixed tolerance on small windows; this keeps them from raising false alarms."""
    rng = np.random.default_rng(seed)
    samples: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(draws):
        rows = frame.iloc[rng.integers(0, len(frame), size=window_rows)].reset_index(drop=True)
        section = compute_bias(rows, seed=seed, **settings).post_training_bias_metrics
        for facet, entries in (section.facets if section else {}).items():
            for entry in entries:
                for metric in entry.metrics:
                    value = metric.value
                    if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
                        continue
                    if metric.name == "DI":
                        if value <= 0:  # type: ignore[operator]
                            continue
                        value = math.log(value)  # type: ignore[arg-type]
                    samples.setdefault((facet, entry.value_or_threshold, metric.name), []).append(value)
    noise: dict[tuple[str, str, str], float] = {}
    for key, values in samples.items():
        if len(values) < 2:
            continue
        spread = NOISE_SDS * float(np.std(values, ddof=1))
        noise[key] = math.expm1(spread) if key[2] == "DI" else spread
    return noise


def suggest_bias_constraints(baseline: BiasAnalysis, tolerance: float = 0.1,
                             bounds: Bounds | None = None,
                             noise: dict[tuple[str, str, str], float] | None = None) -> BiasConstraints:
    """Ranges around the fair value wide enough for the baseline's value plus `tolerance`, or plus the
    metric's chance movement (metric_noise) where that is larger (module doc)."""
    if not math.isfinite(tolerance) or tolerance < 0:
        raise UserError(f"tolerance {tolerance}: expected a number >= 0")
    absolute = {_metric_name(name, "bounds"): pair for name, pair in (bounds or {}).items()}
    section = _post_training(baseline, "baseline analysis")
    facets: dict[str, list[FacetRanges]] = {}
    for facet, entries in section.facets.items():
        facets[facet] = []
        for entry in entries:
            ranges: dict[str, MetricRange] = {}
            for metric in entry.metrics:
                if metric.name not in absolute and _is_number(metric.value):
                    allowed = max(tolerance, (noise or {}).get(
                        (facet, entry.value_or_threshold, metric.name), 0.0))
                    ranges[metric.name] = baseline_range(metric.name, metric.value, allowed)  # type: ignore
            for name, (lower, upper) in absolute.items():
                ranges[name] = MetricRange(lower=lower, upper=upper, source="absolute")
            facets[facet].append(FacetRanges(value_or_threshold=entry.value_or_threshold,
                                             metrics=dict(sorted(ranges.items()))))
    return BiasConstraints(label=section.label, label_value_or_threshold=section.label_value_or_threshold,
                           tolerance=tolerance, facets=facets)


def baseline_range(name: str, value: float, tolerance: float) -> MetricRange:
    """The allowed range of one metric from its baseline value (DI: on the log scale)."""
    if name == "DI":
        factor = 1 + tolerance
        if value <= 0:
            return MetricRange(lower=None, upper=factor, baseline=value)
        if math.isinf(value):
            return MetricRange(lower=1 / factor, upper=None, baseline=value)
        widest = max(value, 1 / value) * factor
        return MetricRange(lower=1 / widest, upper=widest, baseline=value)
    fair = FAIR_VALUES.get(name, 0.0)
    if math.isinf(value):
        return MetricRange(lower=fair - tolerance if value > 0 else None,
                           upper=fair + tolerance if value < 0 else None, baseline=value)
    width = abs(value - fair) + tolerance
    return MetricRange(lower=fair - width, upper=fair + width, baseline=value)


def constraints_from_analysis(analysis: BiasAnalysis) -> BiasConstraints:
    """A SageMaker baseline analysis.json as constraints: |current - fair| <= |baseline - fair|."""
    section = _post_training(analysis, "baseline analysis")
    facets: dict[str, list[FacetRanges]] = {}
    for facet, entries in section.facets.items():
        facets[facet] = []
        for entry in entries:
            ranges: dict[str, MetricRange] = {}
            for metric in entry.metrics:
                if not _is_number(metric.value):
                    continue
                fair = FAIR_VALUES.get(metric.name, 0.0)
                width = abs(metric.value - fair)  # type: ignore[operator]
                ranges[metric.name] = MetricRange(
                    lower=fair - width if math.isfinite(width) else None,
                    upper=fair + width if math.isfinite(width) else None,
                    source="sagemaker", baseline=metric.value)
            facets[facet].append(FacetRanges(value_or_threshold=entry.value_or_threshold, metrics=ranges))
    return BiasConstraints(label=section.label, label_value_or_threshold=section.label_value_or_threshold,
                           tolerance=0.0, facets=facets)


def _post_training(analysis: BiasAnalysis, what: str) -> BiasMetricsSection:
    if analysis.post_training_bias_metrics is None:
        raise UserError(f"{what} has no post_training_bias_metrics: expected a Clarify analysis.json with "
                        "post-training bias metrics")
    return analysis.post_training_bias_metrics


def _is_number(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


# ---- check -------------------------------------------------------------------------------------

def check_bias(constraints: BiasConstraints, current: BiasAnalysis) -> BiasViolations:
    """A violation for each current metric outside its range; null current values are skipped.

    Facets, facet values and metrics of the constraints that the current analysis lacks become notes.
    Threshold facets match on their threshold alone ("(40, 88]" and "(40, 93]" are the same group).
    """
    result = BiasViolations()
    section = current.post_training_bias_metrics
    if section is None:
        result.notes.append("the current analysis has no post_training_bias_metrics: nothing checked")
        return result
    if (section.label, _value_key(section.label_value_or_threshold)) != \
            (constraints.label, _value_key(constraints.label_value_or_threshold)):
        result.notes.append(
            f"the current label {section.label}={section.label_value_or_threshold} differs from the "
            f"constraints' {constraints.label}={constraints.label_value_or_threshold}")
    for facet, facet_ranges in constraints.facets.items():
        entries = {_value_key(e.value_or_threshold): e for e in section.facets.get(facet, [])}
        if facet not in section.facets:
            result.notes.append(f"facet {facet} is in the constraints but not in the current analysis")
            continue
        for ranges in facet_ranges:
            entry = entries.get(_value_key(ranges.value_or_threshold))
            name = _entry_name(facet, ranges.value_or_threshold)
            if entry is None:
                result.notes.append(f"{name} is in the constraints but not in the current analysis")
                continue
            _check_entry(facet, entry, ranges, name, result)
    return result


def _check_entry(facet: str, entry: FacetResult, ranges: FacetRanges, name: str,
                 result: BiasViolations) -> None:
    for metric_name, allowed in ranges.metrics.items():
        metric = entry.metric(metric_name)
        if metric is None:
            result.notes.append(f"{name}: metric {metric_name} is not in the current analysis")
            continue
        if not _is_number(metric.value) or _allows(metric_name, allowed, metric.value):  # type: ignore
            continue
        result.violations.append(BiasViolation(
            facet=facet, facet_value=entry.value_or_threshold, metric_name=metric_name,
            description=f"Metric value {format_number(metric.value)} doesn't meet the baseline "  # type: ignore
                        f"constraint requirement {_requirement(allowed)}"))


def _allows(name: str, allowed: MetricRange, value: float) -> bool:
    if allowed.source == "sagemaker" and allowed.baseline is not None:
        fair = FAIR_VALUES.get(name, 0.0)
        return abs(value - fair) <= abs(allowed.baseline - fair)
    above = allowed.lower is None or value >= allowed.lower
    return above and (allowed.upper is None or value <= allowed.upper)


def _requirement(allowed: MetricRange) -> str:
    if allowed.source == "sagemaker" and allowed.baseline is not None:
        return format_number(allowed.baseline)
    left = "(-Infinity" if allowed.lower is None else f"[{format_number(allowed.lower)}"
    right = "Infinity)" if allowed.upper is None else f"{format_number(allowed.upper)}]"
    return f"{left}, {right}"


def _value_key(value: str) -> str:
    """A facet entry's identity: a threshold interval "(t, max]" is known by t alone."""
    found = re.fullmatch(r"\((.+), (.+)\]", value.strip())
    return f"({_normalise(found[1])}," if found else value.strip()

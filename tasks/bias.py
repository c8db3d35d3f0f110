"""Clarify's post-training bias metrics per facet (`compute_bias` -> analysis.json): the functional core of
the bias-drift monitor (section 6 of shared/interop/sagemaker-formats.md), with its documents in
tasks/bias_documents.py and its constraints and check in tasks/bias_constraints.py.

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
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame
from sklearn.neighbors import KNeighborsClassifier

from modelwatch.tasks.bias_documents import (
    DESCRIPTIONS,
    FLIP_TEST_ROWS,
    GROUP_VARIABLE_ERROR,
    MAX_FACET_VALUES,
    MIN_MEMBERS,
    NO_FEATURES_ERROR,
    POST_TRAINING_METRICS,
    TRUE_WORDS,
    BiasAnalysis,
    BiasMetric,
    BiasMetricsSection,
    FacetResult,
    FacetSpec,
    finite_number,
)
from modelwatch.tasks.errors import UserError

# ---- value normalisation: "1", 1, 1.0 and True name the same value -----------------------------

def normalise_value(value: Any) -> str:
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
    return normalise_value(number) if math.isfinite(number) else text


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _as_floats(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=float, na_value=np.nan)


def _keys(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Per row, the index of its normalised value in the returned list (-1 where missing)."""
    codes, uniques = pd.factorize(series)
    keys = sorted({normalise_value(u) for u in uniques}, key=_sort_key)
    position = {key: i for i, key in enumerate(keys)}
    lookup = np.array([position[normalise_value(u)] for u in uniques] + [-1], dtype=np.int64)
    return lookup[codes], keys


def _sort_key(key: str) -> tuple[int, float, str]:
    number = finite_number(key)
    return (0, number, key) if number is not None else (1, 0.0, key)


def _is_in(series: pd.Series, wanted: Iterable[str]) -> np.ndarray:
    """Rows whose normalised value is one of `wanted` (missing values never are)."""
    wanted = {normalise_value(w) for w in wanted}
    if _is_numeric(series):
        numbers = [n for n in (finite_number(w) for w in wanted) if n is not None]
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
    return f"({normalise_value(threshold)}, {normalise_value(top)}]"


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
    label_text = (",".join(normalise_value(v) for v in rule) if isinstance(rule, list)
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
        return [(",".join(normalise_value(v) for v in spec.values), _is_in(column, spec.values), rows)]
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
                    notes.append(f"{entry_name(facet, entry.value_or_threshold)}: {found[1]} {whose} "
                                 f"(at least {found[2]} needed)")
    return notes


def entry_name(facet: str, value: str) -> str:
    return f"{facet} in {value}" if value.startswith("(") else f"{facet}={value}"



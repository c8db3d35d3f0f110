"""Bias-drift constraints and their check: ranges suggested from a baseline analysis (widened to a
metric's chance movement in a window), SageMaker's rule for a SageMaker baseline, absolute bounds, and
the violations of a window's analysis. See tasks/bias.py for how the ranges are built."""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from modelwatch.tasks.bias import compute_bias, entry_name, normalise_value
from modelwatch.tasks.bias_documents import (
    FAIR_VALUES,
    BiasAnalysis,
    BiasConstraints,
    BiasMetricsSection,
    BiasViolation,
    BiasViolations,
    Bounds,
    FacetRanges,
    FacetResult,
    MetricRange,
    canonical_metric,
    format_number,
)
from modelwatch.tasks.documents import Check
from modelwatch.tasks.errors import UserError

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
    absolute = {canonical_metric(name, "bounds"): pair for name, pair in (bounds or {}).items()}

    def entry_ranges(facet: str, entry: FacetResult) -> dict[str, MetricRange]:
        ranges: dict[str, MetricRange] = {}
        for metric in entry.metrics:
            if metric.name not in absolute and _is_number(metric.value):
                allowed = max(tolerance, (noise or {}).get(
                    (facet, entry.value_or_threshold, metric.name), 0.0))
                ranges[metric.name] = baseline_range(metric.name, metric.value, allowed)  # type: ignore
        for name, (lower, upper) in absolute.items():
            ranges[name] = MetricRange(lower=lower, upper=upper, source="absolute")
        return dict(sorted(ranges.items()))

    return _constraints(baseline, entry_ranges, tolerance)


def _constraints(analysis: BiasAnalysis,
                 entry_ranges: Callable[[str, FacetResult], dict[str, MetricRange]],
                 tolerance: float) -> BiasConstraints:
    """Constraints with the ranges `entry_ranges(facet, entry)` gives each facet entry."""
    section = _post_training(analysis, "baseline analysis")
    facets = {facet: [FacetRanges(value_or_threshold=entry.value_or_threshold,
                                  metrics=entry_ranges(facet, entry)) for entry in entries]
              for facet, entries in section.facets.items()}
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

    def entry_ranges(_facet: str, entry: FacetResult) -> dict[str, MetricRange]:
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
        return ranges

    return _constraints(analysis, entry_ranges, 0.0)


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
            name = entry_name(facet, ranges.value_or_threshold)
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
        if not _is_number(metric.value):
            continue
        value = float(metric.value)  # type: ignore[arg-type]
        passed = _allows(metric_name, allowed, value)
        description = (f"Metric value {format_number(value)} doesn't meet the baseline constraint "
                       f"requirement {_requirement(allowed)}")
        lower, upper = _bounds(metric_name, allowed)
        result.checks.append(Check(subject=name, check=metric_name, value=value, threshold=lower,
                                   upper=upper, passes="within", passed=passed,
                                   description="" if passed else description))
        if not passed:
            result.violations.append(BiasViolation(
                facet=facet, facet_value=entry.value_or_threshold, metric_name=metric_name,
                description=description))


def _allows(name: str, allowed: MetricRange, value: float) -> bool:
    if allowed.source == "sagemaker" and allowed.baseline is not None:
        fair = FAIR_VALUES.get(name, 0.0)
        return abs(value - fair) <= abs(allowed.baseline - fair)
    above = allowed.lower is None or value >= allowed.lower
    return above and (allowed.upper is None or value <= allowed.upper)


def _bounds(name: str, allowed: MetricRange) -> tuple[float | None, float | None]:
    """The allowed range as (lower, upper); SageMaker's rule is the range around the fair value."""
    if allowed.source == "sagemaker" and allowed.baseline is not None:
        fair = FAIR_VALUES.get(name, 0.0)
        width = abs(allowed.baseline - fair)
        return fair - width, fair + width
    return allowed.lower, allowed.upper


def _requirement(allowed: MetricRange) -> str:
    if allowed.source == "sagemaker" and allowed.baseline is not None:
        return format_number(allowed.baseline)
    left = "(-Infinity" if allowed.lower is None else f"[{format_number(allowed.lower)}"
    right = "Infinity)" if allowed.upper is None else f"{format_number(allowed.upper)}]"
    return f"{left}, {right}"


def _value_key(value: str) -> str:
    """A facet entry's identity: a threshold interval "(t, max]" is known by t alone."""
    found = re.fullmatch(r"\((.+), (.+)\]", value.strip())
    return f"({normalise_value(found[1])}," if found else value.strip()

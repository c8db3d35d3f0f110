"""Suggest data-quality constraints from baseline statistics, and check a window's profile against them.

Checks follow SageMaker's names (data_type_check, completeness_check, missing_column_check,
extra_column_check, categorical_values_check, baseline_drift_check) plus malformed_records_check for a
window whose share of unparseable capture lines is too high. Thresholds allow for sampling noise so a
window drawn from the baseline's distribution raises nothing, whatever its size.
"""

from __future__ import annotations

import math
from typing import Any

from modelwatch.tasks.documents import (
    Check,
    Constraints,
    ConstraintViolations,
    DistributionConstraints,
    FeatureConstraints,
    MonitoringConfig,
    NumConstraints,
    Statistics,
    StringConstraints,
)
from modelwatch.tasks.drift import DriftMethod, drift_method
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.profile import ColumnProfile, DatasetProfile, column_from_statistics

MAX_DOMAIN = 100  # a String feature with more distinct values gets no domain constraint
COMPLETENESS_Z = 3.0  # standard errors of slack before completeness_check fires
MAX_MALFORMED_SHARE = 0.05


def suggest_constraints(
    statistics: Statistics,
    *,
    comparison_threshold: float = 0.1,
    comparison_method: str = "Robust",
    categorical_drift_method: str = "LInfinity",
    max_domain: int = MAX_DOMAIN,
) -> Constraints:
    """SageMaker-shaped constraints suggested from baseline statistics."""
    drift_method(comparison_method, "numerical")
    drift_method(categorical_drift_method, "categorical")
    features = []
    for feature in statistics.features:
        common = feature.common
        rows = (common.num_present + common.num_missing) if common else 0
        constraint = FeatureConstraints(
            name=feature.name, inferred_type=feature.inferred_type,
            completeness=(common.num_present / rows) if rows else 1.0,
        )
        if feature.numerical_statistics is not None:
            constraint.num_constraints = NumConstraints(
                is_non_negative=feature.numerical_statistics.min >= 0
            )
        elif feature.string_statistics is not None:
            buckets = ((feature.string_statistics.distribution or {}).get("categorical") or {}).get(
                "buckets") or []
            if 0 < feature.string_statistics.distinct_count <= max_domain:
                constraint.string_constraints = StringConstraints(
                    domains=[str(b["value"]) for b in buckets]
                )
        features.append(constraint)
    return Constraints(
        features=features,
        monitoring_config=MonitoringConfig(
            distribution_constraints=DistributionConstraints(
                comparison_threshold=comparison_threshold,
                comparison_method=comparison_method,
                categorical_comparison_threshold=comparison_threshold,
                categorical_drift_method=categorical_drift_method,
            )
        ),
    )


def _setting(feature: FeatureConstraints, config: MonitoringConfig, key: str) -> Any:
    overrides = feature.overrides()
    if key in overrides:
        return overrides[key]
    if hasattr(config, key):
        return getattr(config, key)
    return getattr(config.distribution_constraints, key)


def _pct(share: float) -> str:
    return f"{share * 100:.4g}%"


def _type_share(expected: str, current: ColumnProfile, numbers_are_strings: bool) -> float | None:
    """Share of present values of the expected type. Integral values count as Fractional; numbers
    count as String only when the baseline's String feature held numbers too (codes like "01")."""
    if current.present == 0 or expected == "Unknown":
        return None
    if expected == "Integral":
        matching = current.integral
    elif expected == "Fractional":
        matching = current.integral + current.fractional
    elif numbers_are_strings:
        matching = current.present
    else:
        matching = current.string
    return matching / current.present


def _numbers_are_strings(feature: FeatureConstraints, base_stats: Any) -> bool:
    """Did the baseline's values of this String feature include numbers?"""
    if base_stats is not None and base_stats.type_counts:
        counts = base_stats.type_counts
        return bool(counts.get("Integral") or counts.get("Fractional"))
    values: list[str] = []
    if base_stats is not None and base_stats.string_statistics is not None:
        buckets = ((base_stats.string_statistics.distribution or {}).get("categorical") or {}).get(
            "buckets") or []
        values = [str(b.get("value")) for b in buckets]
    if feature.string_constraints and feature.string_constraints.domains:
        values += feature.string_constraints.domains
    return any(_is_number(value) for value in values)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_data_quality(
    constraints: Constraints,
    baseline: Statistics | None,
    current: DatasetProfile,
    *,
    records_read: int,
    records_malformed: int,
    max_malformed_share: float = MAX_MALFORMED_SHARE,
    completeness_z: float = COMPLETENESS_Z,
    ignore_columns: frozenset[str] | set[str] = frozenset(),
) -> ConstraintViolations:
    """Violations of a window's profile against constraints (and baseline statistics for drift): the
    failed checks of `evaluate_data_quality`."""
    checks = evaluate_data_quality(
        constraints, baseline, current, records_read=records_read,
        records_malformed=records_malformed, max_malformed_share=max_malformed_share,
        completeness_z=completeness_z, ignore_columns=ignore_columns)
    return violations_of(checks)


def violations_of(checks: list[Check]) -> ConstraintViolations:
    """The failed checks, as constraint_violations.json lists them."""
    return ConstraintViolations(violations=[c.violation() for c in checks if not c.passed])


def evaluate_data_quality(
    constraints: Constraints,
    baseline: Statistics | None,
    current: DatasetProfile,
    *,
    records_read: int,
    records_malformed: int,
    max_malformed_share: float = MAX_MALFORMED_SHARE,
    completeness_z: float = COMPLETENESS_Z,
    ignore_columns: frozenset[str] | set[str] = frozenset(),
) -> list[Check]:
    """Every check a window's profile gets against the constraints, passed or failed, in the order
    the violations are listed: value, threshold and verdict each (what the report shows)."""
    checks: list[Check] = []
    config = constraints.monitoring_config
    if records_read:
        share = records_malformed / records_read
        checks.append(Check(
            subject="", check="malformed_records_check", value=share,
            threshold=max_malformed_share, passes="at most", passed=share <= max_malformed_share,
            description=(
                f"Malformed records requirement is not met. Expected at most "
                f"{_pct(max_malformed_share)} malformed capture records. Observed: "
                f"{records_malformed} of {records_read} ({_pct(share)}) "
                "could not be parsed; see quarantine.jsonl."
            ),
        ))
    if config.evaluate_constraints == "Disabled" or current.item_count == 0:
        return checks
    known = {f.name for f in constraints.features}
    for feature in constraints.features:
        if _setting(feature, config, "evaluate_constraints") == "Disabled":
            continue
        column = current.columns.get(feature.name)
        present = 0 if column is None else current.item_count - column.absent
        if present <= 0:
            checks.append(Check(
                subject=feature.name, check="missing_column_check", value=0.0, threshold=0.0,
                passes="above", passed=False,
                description=(
                    f"Missing column requirement is not met. Baseline column '{feature.name}' "
                    f"was absent from all {current.item_count} records of the window."
                ),
            ))
            continue
        base_stats = baseline.feature(feature.name) if baseline else None
        checks.extend(_check_feature(feature, config, column, base_stats, baseline,
                                     completeness_z))
    for name in sorted(set(current.columns) - known - set(ignore_columns)):
        column = current.columns[name]
        rows = current.item_count - column.absent
        if rows <= 0:
            continue
        checks.append(Check(
            subject=name, check="extra_column_check", value=rows / current.item_count,
            threshold=0.0, passes="at most", passed=False,
            description=(
                f"Extra column requirement is not met. Column '{name}' is not in the baseline; "
                f"it was present in {rows} of {current.item_count} records."
            ),
        ))
    return checks


def _check_feature(feature: FeatureConstraints, config: MonitoringConfig, column: ColumnProfile,
                   base_stats: Any, baseline: Statistics | None,
                   completeness_z: float) -> list[Check]:
    out: list[Check] = []
    expected = feature.inferred_type
    share = _type_share(expected, column, _numbers_are_strings(feature, base_stats))
    threshold = float(_setting(feature, config, "datatype_check_threshold"))
    if share is not None:
        out.append(Check(
            subject=feature.name, check="data_type_check", value=share, threshold=threshold,
            passes="at least", passed=share >= threshold,
            description=(
                f"Data type match requirement is not met. Expected data type: {expected}, "
                f"Expected match: {threshold * 100}%. Observed: Only {share * 100}% of data is "
                f"{expected}."
            ),
        ))
    if feature.completeness is not None and column.rows:
        observed = column.present / column.rows
        required = float(feature.completeness)
        # Allow for sampling noise of both the window and (when known) the baseline.
        inverse_n = 1.0 / column.rows
        if baseline is not None and baseline.dataset.item_count:
            inverse_n += 1.0 / baseline.dataset.item_count
        slack = completeness_z * math.sqrt(max(required * (1 - required), 0.0) * inverse_n)
        out.append(Check(
            subject=feature.name, check="completeness_check", value=observed,
            threshold=required - slack, passes="at least", passed=observed >= required - slack,
            description=(
                f"Completeness requirement is not met. Expected completeness: "
                f"{_pct(required)} (sampling allowance {_pct(slack)}). Observed: "
                f"{_pct(observed)} of {column.rows} values present."
            ),
        ))
    domains = feature.string_constraints.domains if feature.string_constraints else None
    if domains and column.present:
        counts = column.counts or {}
        domain = set(domains)
        outside = {v: c for v, c in counts.items() if v not in domain}
        in_domain = column.present - sum(outside.values()) - column.overflow
        share_in = in_domain / column.present
        content = float(_setting(feature, config, "domain_content_threshold"))
        top = sorted(outside.items(), key=lambda kv: -kv[1])[:5]
        shown = ", ".join(f"'{v}' ({_pct(c / column.present)})" for v, c in top)
        out.append(Check(
            subject=feature.name, check="categorical_values_check", value=share_in,
            threshold=content, passes="at least", passed=share_in >= content,
            description=(
                f"Categorical values requirement is not met. Expected: at least "
                f"{_pct(content)} of values in the baseline domain. Observed: "
                f"{_pct(share_in)}; values outside it: {shown or 'unlisted'}."
            ),
        ))
    drift = _drift(feature, config, column, base_stats)
    if drift is not None:
        out.append(drift)
    return out


def _drift(feature: FeatureConstraints, config: MonitoringConfig, column: ColumnProfile,
           base_stats: Any) -> Check | None:
    dist = config.distribution_constraints
    if base_stats is None or not dist.enabled:
        return None
    if str(_setting(feature, config, "perform_comparison")) == "Disabled":
        return None
    base = column_from_statistics(base_stats)
    method = method_of(feature, config, base)
    if method is None or (method.kind == "numerical" and not column.sketch.levels) or \
            (method.kind == "categorical" and not column.counts):
        return None
    if method.kind == "numerical":
        threshold = float(_setting(feature, config, "comparison_threshold"))
    else:
        threshold = float(feature.overrides().get("categorical_comparison_threshold",
                                                  dist.categorical_threshold))
    robust = str(_setting(feature, config, "comparison_method")) != "Simple"
    result = method(base, column, robust=robust, threshold=threshold)
    return Check(
        subject=feature.name, check="baseline_drift_check",
        value=result.value if math.isfinite(result.value) else None, threshold=threshold,
        passes="at most" if method.higher_is_drift else "at least", passed=not result.drifted,
        description=(
            f"Baseline drift distance requirement is not met. {result.describe()} "
            f"(baseline {base.present} values, window {column.present} values)."
        ),
    )


def method_of(feature: FeatureConstraints, config: MonitoringConfig,
              base: ColumnProfile) -> DriftMethod | None:
    """The drift method a feature is compared with (its override, else the file's setting), or None
    when its type or its baseline profile gives nothing to compare."""
    if feature.inferred_type in ("Integral", "Fractional") and base.sketch.levels:
        return drift_method(str(_setting(feature, config, "comparison_method")), "numerical")
    if feature.inferred_type == "String" and base.counts:
        return drift_method(str(_setting(feature, config, "categorical_drift_method")),
                            "categorical")
    return None


def check_drift_methods(constraints: Constraints) -> None:
    """Every drift method the constraints name is registered (a UserError listing the registered
    ones otherwise): found when the baseline loads, not midway through an execution."""
    config = constraints.monitoring_config
    for feature in constraints.features:
        kind = {"Integral": "numerical", "Fractional": "numerical", "String": "categorical"}.get(
            feature.inferred_type)
        if kind is not None:
            setting = "comparison_method" if kind == "numerical" else "categorical_drift_method"
            try:
                drift_method(str(_setting(feature, config, setting)), kind)
            except UserError as problem:
                raise UserError(f"feature {feature.name!r}: {problem}") from None


def drift_scores(constraints: Constraints, baseline: Statistics | None,
                 current: DatasetProfile) -> dict[str, float]:
    """Per-feature drift distances for reports and metric trends. Features compared by a test (a
    p-value, which is not on a distance's scale) are left out."""
    scores: dict[str, float] = {}
    if baseline is None:
        return scores
    config = constraints.monitoring_config
    robust = config.distribution_constraints.comparison_method != "Simple"
    for feature in constraints.features:
        column, stats = current.columns.get(feature.name), baseline.feature(feature.name)
        if column is None or stats is None:
            continue
        base = column_from_statistics(stats)
        method = method_of(feature, config, base)
        if method is None or method.measures != "distance":
            continue
        scores[feature.name] = float(method.compute(base, column, robust))
    return scores

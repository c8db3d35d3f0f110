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
    DriftSpec,
    FeatureConstraints,
    MonitoringConfig,
    NumConstraints,
    Statistics,
    StringConstraints,
)
from modelwatch.tasks.drift import DRIFT_METHODS, SAGEMAKER_METHODS, DriftMethod, drift_method
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.profile import ColumnProfile, DatasetProfile, column_from_statistics

MAX_DOMAIN = 100  # a String feature with more distinct values gets no domain constraint
# One-sided z on the arcsine scale before completeness_check fires: undrifted windows fail it at most
# once in a thousand (tests/test_drift_defaults.py simulates missing shares 0.1 % to 50 %).
COMPLETENESS_Z = 3.5
MAX_MALFORMED_SHARE = 0.05
# Per-window false-alarm rate the domain check's allowance for unseen rare values is set to.
DOMAIN_ALPHA = 1e-4
# modelwatch's drift methods per feature kind; each feature of a suggested baseline names them.
DEFAULT_DRIFT_METHODS: dict[str, tuple[str, ...]] = {
    "numerical": ("KSDistance", "Wasserstein"), "categorical": ("ShareDistance",)}


def suggest_constraints(
    statistics: Statistics,
    *,
    comparison_threshold: float = 0.1,
    comparison_method: str | None = None,
    categorical_drift_method: str | None = None,
    max_domain: int = MAX_DOMAIN,
) -> Constraints:
    """SageMaker-shaped constraints suggested from baseline statistics.

    Parameters
    ----------
    statistics : Statistics
        The baseline's statistics.json.
    comparison_threshold : float, default 0.1
        The file-level thresholds SageMaker's methods use.
    comparison_method, categorical_drift_method : str, optional
        A registered drift method for numerical or categorical features. A SageMaker method
        (Robust, Simple; LInfinity, ChiSquared) is written as the file-level setting, as SageMaker
        does; any other is written per feature in ``drift_methods`` with its default threshold.
        Default: KSDistance and Wasserstein for numerical features, ShareDistance for categorical
        ones (per feature; the file-level settings stay SageMaker's Robust and LInfinity).
    max_domain : int, default 100
        String features with more distinct values get no domain (no categorical_values_check).

    Examples
    --------
    >>> constraints = suggest_constraints(statistics)  # doctest: +SKIP
    >>> constraints.features[0].drift_methods[0].method  # doctest: +SKIP
    'KSDistance'
    """
    chosen = {"numerical": _chosen(comparison_method, "numerical"),
              "categorical": _chosen(categorical_drift_method, "categorical")}
    sagemaker_default = {"numerical": "Robust", "categorical": "LInfinity"}
    file_level = {kind: names[0] if names[0] in SAGEMAKER_METHODS else sagemaker_default[kind]
                  for kind, names in chosen.items()}
    features = []
    for feature in statistics.features:
        common = feature.common
        rows = (common.num_present + common.num_missing) if common else 0
        constraint = FeatureConstraints(
            name=feature.name, inferred_type=feature.inferred_type,
            completeness=(common.num_present / rows) if rows else 1.0,
        )
        kind = _KIND.get(feature.inferred_type)
        if kind is not None and chosen[kind][0] not in SAGEMAKER_METHODS:
            constraint.drift_methods = [
                DriftSpec(method=name, threshold=DRIFT_METHODS[name].default_threshold)
                for name in chosen[kind]]
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
                present = feature.string_statistics.common.num_present
                counts = [float(b["count"]) for b in buckets]
                constraint.monitoring_config_overrides = {
                    "domain_content_threshold": domain_content_threshold(counts, present)}
        features.append(constraint)
    return Constraints(
        features=features,
        monitoring_config=MonitoringConfig(
            distribution_constraints=DistributionConstraints(
                comparison_threshold=comparison_threshold,
                comparison_method=file_level["numerical"],
                categorical_comparison_threshold=comparison_threshold,
                categorical_drift_method=file_level["categorical"],
            )
        ),
    )


_KIND = {"Integral": "numerical", "Fractional": "numerical", "String": "categorical"}


def _chosen(name: str | None, kind: str) -> tuple[str, ...]:
    if name is None:
        return DEFAULT_DRIFT_METHODS[kind]
    drift_method(name, kind)
    return (name,)


def domain_content_threshold(counts: list[float], present: int) -> float:
    """The share of values a window must have inside the baseline domain: 1 minus an upper bound on
    the mass of values the baseline did not see.

    Good-Turing: the values seen once estimate the unseen mass (singletons / present); the bound adds
    two of its standard errors and one value, so a long tail of codes the training set happened to
    miss is tolerated while a new value on 1 % of rows still fails (unless the baseline itself was
    that ragged: 1 % of its rows seen once).
    """
    if present <= 0:
        return 1.0
    singletons = sum(1 for c in counts if round(c) == 1)
    unseen = (singletons + 1 + 2 * math.sqrt(singletons + 1)) / present
    return max(0.0, 1.0 - unseen)


def poisson_upper(mean: float, alpha: float = DOMAIN_ALPHA) -> int:
    """The smallest k with P(Poisson(mean) > k) <= alpha."""
    if mean <= 0:
        return 0
    if mean > 200:  # normal approximation with a margin for the remaining skew
        return math.ceil(mean + 4.0 * math.sqrt(mean) + 1)
    k, term = 0, math.exp(-mean)
    cumulative = term
    while 1 - cumulative > alpha:
        k += 1
        term *= mean / k
        cumulative += term
    return k


def completeness_floor(completeness: float, window_rows: int, baseline_rows: int | None,
                       z: float = COMPLETENESS_Z) -> float:
    """The lowest completeness an undrifted window of `window_rows` shows (one-sided z on the
    arcsine scale, where a share's noise is 1/(4n) whatever the share, so rare missing values are
    not under-allowed as a normal approximation would), allowing for the baseline's own noise when
    its row count is known."""
    if window_rows <= 0:
        return completeness
    inverse = 1 / window_rows + (1 / baseline_rows if baseline_rows else 0.0)
    missing = min(max(1.0 - completeness, 0.0), 1.0)
    angle = math.asin(math.sqrt(missing)) + z / 2 * math.sqrt(inverse)
    return 1.0 - math.sin(min(angle, math.pi / 2)) ** 2


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
        baseline_rows = baseline.dataset.item_count if baseline is not None else None
        floor = completeness_floor(required, column.rows, baseline_rows, completeness_z)
        out.append(Check(
            subject=feature.name, check="completeness_check", value=observed,
            threshold=floor, passes="at least", passed=observed >= floor,
            description=(
                f"Completeness requirement is not met. Expected completeness: "
                f"{_pct(required)} (sampling allowance {_pct(required - floor)}). Observed: "
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
        # Below 1.0 the threshold is an expected unseen mass: the window may show as many values
        # outside the domain as a Poisson count of that mean reaches (alpha 1e-4).
        allowed = poisson_upper((1.0 - content) * column.present) if content < 1.0 else 0
        floor = min(content, 1.0 - allowed / column.present)
        top = sorted(outside.items(), key=lambda kv: -kv[1])[:5]
        shown = ", ".join(f"'{v}' ({_pct(c / column.present)})" for v, c in top)
        out.append(Check(
            subject=feature.name, check="categorical_values_check", value=share_in,
            threshold=floor, passes="at least", passed=share_in >= floor,
            description=(
                f"Categorical values requirement is not met. Expected: at least "
                f"{_pct(floor)} of values in the baseline domain. Observed: "
                f"{_pct(share_in)}; values outside it: {shown or 'unlisted'}."
            ),
        ))
    out.extend(_drift(feature, config, column, base_stats))
    return out


def _drift(feature: FeatureConstraints, config: MonitoringConfig, column: ColumnProfile,
           base_stats: Any) -> list[Check]:
    """One baseline_drift_check per drift method of the feature."""
    dist = config.distribution_constraints
    if base_stats is None or not dist.enabled:
        return []
    if str(_setting(feature, config, "perform_comparison")) == "Disabled":
        return []
    base = column_from_statistics(base_stats)
    robust = str(_setting(feature, config, "comparison_method")) != "Simple"
    out = []
    for method, threshold in methods_of(feature, config, base):
        if (method.kind == "numerical" and not column.sketch.levels) or \
                (method.kind == "categorical" and not column.counts):
            continue
        result = method(base, column, robust=robust, threshold=threshold)
        out.append(Check(
            subject=feature.name, check="baseline_drift_check",
            value=result.value if math.isfinite(result.value) else None,
            threshold=result.threshold,
            passes="at most" if method.higher_is_drift else "at least", passed=not result.drifted,
            description=(
                f"Baseline drift distance requirement is not met. {result.describe()} "
                f"(baseline {base.present} values, window {column.present} values)."
            ),
        ))
    return out


def methods_of(feature: FeatureConstraints, config: MonitoringConfig,
               base: ColumnProfile) -> list[tuple[DriftMethod, float]]:
    """The drift methods a feature is compared with, each with its configured threshold: its own
    ``drift_methods``, else its override or the file's SageMaker setting; none when its type or its
    baseline profile gives nothing to compare."""
    kind = _KIND.get(feature.inferred_type)
    if kind is None or not (base.sketch.levels if kind == "numerical" else base.counts):
        return []
    if feature.drift_methods:
        out = []
        for spec in feature.drift_methods:
            method = drift_method(spec.method, kind, f"feature {feature.name!r}: drift method")
            out.append((method, method.default_threshold if spec.threshold is None
                        else float(spec.threshold)))
        return out
    if kind == "numerical":
        return [(drift_method(str(_setting(feature, config, "comparison_method")), kind),
                 float(_setting(feature, config, "comparison_threshold")))]
    threshold = feature.overrides().get("categorical_comparison_threshold",
                                        config.distribution_constraints.categorical_threshold)
    return [(drift_method(str(_setting(feature, config, "categorical_drift_method")), kind),
             float(threshold))]


def check_drift_methods(constraints: Constraints) -> None:
    """Every drift method the constraints name is registered for its feature's kind (a UserError
    listing the registered ones otherwise): found when the baseline loads, not midway through an
    execution. The file's own settings are checked even where every feature names its methods."""
    config = constraints.monitoring_config
    dist = config.distribution_constraints
    drift_method(dist.comparison_method, "numerical")
    drift_method(dist.categorical_drift_method, "categorical")
    for feature in constraints.features:
        kind = _KIND.get(feature.inferred_type)
        if kind is None:
            continue
        if feature.drift_methods:
            for spec in feature.drift_methods:
                drift_method(spec.method, kind, f"feature {feature.name!r}: drift method")
            continue
        setting = "comparison_method" if kind == "numerical" else "categorical_drift_method"
        try:
            drift_method(str(_setting(feature, config, setting)), kind)
        except UserError as problem:
            raise UserError(f"feature {feature.name!r}: {problem}") from None


def drift_scores(constraints: Constraints, baseline: Statistics | None,
                 current: DatasetProfile) -> dict[str, float]:
    """Per-feature drift distances for reports and metric trends: each feature's first method that
    measures a distance (KSDistance for suggested baselines, on the file threshold's scale). Features
    compared only by a test (a p-value) are left out."""
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
        method = next((m for m, _ in methods_of(feature, config, base)
                       if m.measures == "distance"), None)
        if method is None:
            continue
        scores[feature.name] = float(method.compute(base, column, robust))
    return scores

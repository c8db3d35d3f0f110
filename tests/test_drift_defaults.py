"""The drift defaults against the misses and false alarms an independent benchmark found (issue 12),
the new methods' numbers against scipy and numpy on raw samples, and SageMaker's constraints files
keeping their meaning."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from modelwatch.tasks.constraints import (
    check_data_quality,
    check_drift_methods,
    evaluate_data_quality,
    methods_of,
    suggest_constraints,
)
from modelwatch.tasks.documents import Constraints, Statistics
from modelwatch.tasks.drift import DRIFT_METHODS, numeric_linf, robust_correction, wasserstein
from modelwatch.tasks.profile import column_from_statistics, profile_columns, to_statistics
from tests.sagemaker_samples import sample

REGIONS = np.array(["a", "b", "c", "d", "e"], dtype=object)
REGION_SHARES = [0.26, 0.30, 0.20, 0.14, 0.10]
CODES = np.array([f"P{i:02d}" for i in range(50)] + [f"R{i:02d}" for i in range(30)], dtype=object)
_ZIPF = 1 / np.arange(1, 51) ** 1.1
CODE_SHARES = np.concatenate([_ZIPF / _ZIPF.sum() * (1 - 30e-5), np.full(30, 1e-5)])


def draw(n: int, seed: int, *, spread: float = 1.0, log_spread: float = 1.0,
         region_to_a: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, n, p=REGION_SHARES)
    if region_to_a:
        others = np.flatnonzero(region != "a")
        region[rng.choice(others, int(round(region_to_a / 0.74 * others.size)), replace=False)] = "a"
    return {
        "score": 600 + rng.normal(0, 50, n) * spread,
        "income": np.exp(10.5 + rng.normal(0, 0.8, n) * log_spread),
        "region": region,
        "product": rng.choice(CODES, n, p=CODE_SHARES),
    }


def profile(columns: dict[str, np.ndarray], n: int):
    arrays = {k: pa.array(v.tolist(), pa.string()) if v.dtype == object else pa.array(v)
              for k, v in columns.items()}
    return profile_columns(arrays, n)


@pytest.fixture(scope="module")
def baseline() -> tuple[Statistics, Constraints]:
    statistics = to_statistics(profile(draw(100_000, seed=1), 100_000))
    return statistics, suggest_constraints(statistics)


def flagged(baseline, columns: dict[str, np.ndarray], n: int) -> set[tuple[str, str]]:
    statistics, constraints = baseline
    result = check_data_quality(constraints, statistics, profile(columns, n), records_read=n,
                                records_malformed=0)
    return {(v.feature_name, v.constraint_check_type) for v in result.violations}


@pytest.mark.parametrize("n", [1_000, 10_000, 100_000, 1_000_000])
def test_a_normal_feature_widened_by_half_is_caught_at_every_size(baseline, n: int) -> None:
    # N(mu, s) against N(mu, 1.5 s): the CDFs differ by at most 0.095, under L-infinity's 0.1.
    assert flagged(baseline, draw(n, seed=n + 1, spread=1.5), n) == {
        ("score", "baseline_drift_check")}


@pytest.mark.parametrize("factor", [1.5, 0.67])
def test_a_lognormal_spread_change_is_caught_at_1000_rows(baseline, factor: float) -> None:
    for seed in (2, 3, 4):
        assert flagged(baseline, draw(1_000, seed=seed, log_spread=factor), 1_000) == {
            ("income", "baseline_drift_check")}


def test_a_share_moving_15_points_is_caught_at_1000_rows(baseline) -> None:
    for seed in (5, 6, 7):
        assert flagged(baseline, draw(1_000, seed=seed, region_to_a=0.15), 1_000) == {
            ("region", "baseline_drift_check")}


def test_a_share_moving_1_point_is_not_drift_even_at_1000000_rows(baseline) -> None:
    assert flagged(baseline, draw(1_000_000, seed=8, region_to_a=0.01), 1_000_000) == set()


@pytest.mark.parametrize("n", [100_000, 1_000_000])
def test_rare_codes_the_training_set_missed_raise_nothing(baseline, n: int) -> None:
    statistics, constraints = baseline
    domain = set(next(f for f in constraints.features if f.name == "product").string_constraints
                 .domains)
    assert set(CODES) - domain, "the training draw should miss some rare codes"
    for seed in (9, 10, 11):
        assert flagged(baseline, draw(n, seed=seed + n), n) == set()


def test_a_new_code_on_one_percent_of_rows_is_still_caught(baseline) -> None:
    for n in (1_000, 1_000_000):
        columns = draw(n, seed=12)
        columns["product"][np.random.default_rng(0).random(n) < 0.01] = "NEW"
        assert flagged(baseline, columns, n) == {("product", "categorical_values_check")}


def test_completeness_false_alarms_stay_under_one_in_a_thousand() -> None:
    """An unchanged column with a missing share p: baselines and windows drawn binomially, the
    threshold of each baseline read off the check itself."""
    rng = np.random.default_rng(0)
    for p, baseline_rows, window_rows in [(0.02, 100_000, 10_000), (0.02, 10_000, 10_000),
                                          (0.02, 100_000, 1_000), (0.001, 100_000, 1_000),
                                          (0.2, 10_000, 100), (0.5, 1_000, 100_000)]:
        alarms = trials = 0
        for _ in range(100):
            missing = int(rng.binomial(baseline_rows, p))
            statistics = Statistics.model_validate({
                "dataset": {"item_count": baseline_rows},
                "features": [{"name": "u", "inferred_type": "Fractional", "numerical_statistics": {
                    "common": {"num_present": baseline_rows - missing, "num_missing": missing},
                    "mean": 0, "sum": 0, "std_dev": 1, "min": 0, "max": 1}}]})
            constraints = suggest_constraints(statistics)
            window = profile({"u": np.zeros(window_rows)}, window_rows)
            column = window.columns["u"]
            column.present, column.missing = window_rows, 0
            check = next(c for c in evaluate_data_quality(
                constraints, statistics, window, records_read=window_rows, records_malformed=0)
                if c.check == "completeness_check")
            present = window_rows - rng.binomial(window_rows, p, 2_000)
            alarms += int((present / window_rows < check.threshold).sum())
            trials += present.size
        assert alarms / trials <= 0.001, (p, baseline_rows, window_rows, alarms / trials)


def test_missing_values_rising_from_2_to_15_percent_are_caught() -> None:
    statistics = Statistics.model_validate({
        "dataset": {"item_count": 100_000},
        "features": [{"name": "u", "inferred_type": "Fractional", "numerical_statistics": {
            "common": {"num_present": 98_000, "num_missing": 2_000},
            "mean": 0, "sum": 0, "std_dev": 1, "min": 0, "max": 1}}]})
    for n in (1_000, 1_000_000):
        values = np.zeros(n)
        values[: int(0.15 * n)] = np.nan
        result = check_data_quality(suggest_constraints(statistics), statistics,
                                    profile({"u": values}, n), records_read=n, records_malformed=0)
        assert [v.constraint_check_type for v in result.violations] == ["completeness_check"]


def _profiles(a: np.ndarray, b: np.ndarray):
    """Both samples' column profiles, the baseline as statistics.json carries it."""
    base = to_statistics(profile({"x": a}, a.size)).feature("x")
    return column_from_statistics(base), profile({"x": b}, b.size).columns["x"]


def test_wasserstein_and_ks_match_scipy_on_raw_samples() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 2, 1_500), rng.normal(0.3, 3, 1_800)  # within one sketch level: exact
    base, current = _profiles(a, b)
    assert wasserstein(base, current) == pytest.approx(
        stats.wasserstein_distance(a, b) / np.std(a), rel=1e-9)
    assert numeric_linf(base, current, False) == pytest.approx(stats.ks_2samp(a, b).statistic,
                                                               rel=1e-12)


def test_share_distance_names_the_category_that_moved() -> None:
    a = np.array(["x"] * 600 + ["y"] * 400, dtype=object)
    b = np.array(["x"] * 380 + ["y"] * 620, dtype=object)
    base, current = _profiles(a, b)
    result = DRIFT_METHODS["ShareDistance"](base, current, robust=False, threshold=0.1)
    assert result.drifted and result.value == pytest.approx(0.22)
    assert "'x' 60% -> 38%" in result.detail or "'y' 40% -> 62%" in result.detail
    # Small samples: the threshold widens to the noise of two shares, 4.4 standard errors.
    small_a, small_b = a[::20], b[::20]
    base, current = _profiles(small_a, small_b)
    result = DRIFT_METHODS["ShareDistance"](base, current, robust=False, threshold=0.1)
    pooled = (30 + 19) / 100
    assert result.threshold == pytest.approx(4.4 * math.sqrt(pooled * (1 - pooled) * (2 / 50)))
    assert not result.drifted


def test_every_method_is_registered_with_its_types_direction_and_threshold() -> None:
    for name in ("Robust", "Simple", "KSDistance", "Wasserstein", "LInfinity", "ShareDistance",
                 "ChiSquared"):
        method = DRIFT_METHODS[name]
        assert method.feature_types in (("Integral", "Fractional"), ("String",))
        assert method.default_threshold > 0 and method.description
    assert DRIFT_METHODS["ChiSquared"].higher_is_drift is False


@pytest.mark.parametrize("name", ["dq_constraints_churn_baseline.json", "dq_constraints_good.json",
                                  "dq_constraints_bad.json"])
def test_sagemaker_constraints_keep_their_meaning(name: str) -> None:
    constraints = Constraints.model_validate(json.loads(sample(name).read_text()))
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 1_500), rng.normal(0.25, 1, 1_200)
    base, current = _profiles(a, b)
    numeric = next(f for f in constraints.features if f.inferred_type in ("Integral", "Fractional"))
    [(method, threshold)] = methods_of(numeric, constraints.monitoring_config, base)
    dist = constraints.monitoring_config.distribution_constraints
    assert method.name == dist.comparison_method and threshold == dist.comparison_threshold
    # Robust: the KS statistic less Deequ's 1.8 * sqrt((n + m) / nm), against the threshold as is.
    expected = max(0.0, stats.ks_2samp(a, b).statistic - 1.8 * math.sqrt((1_500 + 1_200) /
                                                                         (1_500 * 1_200)))
    result = method(base, current, robust=True, threshold=threshold)
    assert result.value == pytest.approx(expected, rel=1e-9)
    assert result.threshold == threshold and result.drifted == (expected > threshold)
    assert robust_correction(1_500, 1_200) == pytest.approx(1.8 * math.sqrt(2_700 / 1_800_000))
    # Categorical: LInfinity, the largest share difference less the same correction.
    text = next((f for f in constraints.features if f.inferred_type == "String"), None)
    if text is not None:
        x = np.array(["p"] * 700 + ["q"] * 800, dtype=object)
        y = np.array(["p"] * 700 + ["q"] * 500, dtype=object)
        base, current = _profiles(x, y)
        [(method, threshold)] = methods_of(text, constraints.monitoring_config, base)
        assert method.name == dist.categorical_drift_method == "LInfinity"
        result = method(base, current, robust=True, threshold=threshold)
        assert result.value == pytest.approx(abs(700 / 1_500 - 700 / 1_200)
                                             - robust_correction(1_500, 1_200))


def test_a_users_own_drift_method_plugs_in_by_registering(baseline) -> None:
    import modelwatch
    from modelwatch.tasks.documents import DriftSpec

    method = modelwatch.DriftMethod(
        "MeanShift", "numerical", lambda a, b, _: abs(a.mean - b.mean) / a.std_dev,
        default_threshold=0.25, description="mean moved, in baseline standard deviations")
    modelwatch.register_drift_method(method)
    try:
        assert modelwatch.drift_methods()["MeanShift"] is method
        statistics, constraints = baseline
        mine = constraints.model_copy(deep=True)
        score = next(f for f in mine.features if f.name == "score")
        score.drift_methods = [DriftSpec(method="MeanShift", threshold=0.2)]
        columns = draw(10_000, seed=13)
        columns["score"] = columns["score"] + 0.3 * 50
        result = check_data_quality(mine, statistics, profile(columns, 10_000),
                                    records_read=10_000, records_malformed=0)
        [violation] = result.violations
        assert violation.feature_name == "score" and "MeanShift distance 0.2" in \
            violation.description
        base = statistics.feature("score").numerical_statistics
        expected = abs(columns["score"].mean() - base.mean) / base.std_dev
        assert f"{expected:.4g}" in violation.description
        score.drift_methods = [DriftSpec(method="Mystery")]
        with pytest.raises(modelwatch.UserError, match="'Mystery' is not a registered numerical"):
            check_drift_methods(mine)
    finally:
        DRIFT_METHODS.pop("MeanShift")

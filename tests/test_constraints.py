"""Suggested constraints and the data-quality checks: silent on undrifted windows of any size, and
a violation for each kind of injected change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelwatch.tasks.constraints import check_data_quality, suggest_constraints
from modelwatch.tasks.drift import DRIFT_METHODS, robust_correction
from modelwatch.tasks.profile import profile_columns, profile_table, to_statistics


def draw(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    utilization = rng.beta(2, 5, n)
    utilization[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": rng.lognormal(10.5, 0.6, n),
        "score": rng.normal(600, 50, n),
        "utilization": utilization,
        "region": rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1]),
    })


@pytest.fixture(scope="module")
def baseline():
    frame = draw(20_000, seed=1)
    statistics = to_statistics(profile_table(pa.Table.from_pandas(frame)))
    return statistics, suggest_constraints(statistics)


def check(baseline, frame: pd.DataFrame, as_text: bool = False, **kwargs):
    statistics, constraints = baseline
    if as_text:
        columns = {c: pa.array([None if pd.isna(v) else str(v) for v in frame[c]], pa.string())
                   for c in frame.columns}
    else:
        columns = {c: pa.array(frame[c]) for c in frame.columns}
    profile = profile_columns(columns, len(frame))
    result = check_data_quality(constraints, statistics, profile,
                                records_read=kwargs.pop("records_read", len(frame)),
                                records_malformed=kwargs.pop("records_malformed", 0), **kwargs)
    return {(v.feature_name, v.constraint_check_type) for v in result.violations}


def test_suggested_constraints(baseline) -> None:
    _, constraints = baseline
    by_name = {f.name: f for f in constraints.features}
    assert by_name["age"].inferred_type == "Integral"
    assert by_name["income"].num_constraints.is_non_negative is True
    assert by_name["score"].inferred_type == "Fractional"
    assert by_name["utilization"].completeness == pytest.approx(0.95, abs=0.01)
    assert sorted(by_name["region"].string_constraints.domains) == ["east", "north", "south",
                                                                    "west"]
    dist = constraints.monitoring_config.distribution_constraints
    assert (dist.comparison_threshold, dist.comparison_method, dist.categorical_drift_method) == \
        (0.1, "Robust", "LInfinity")


@pytest.mark.parametrize("n", [1_000, 10_000, 100_000, 1_000_000])
def test_undrifted_windows_raise_nothing(baseline, n: int) -> None:
    for seed in (11, 12, 13):
        assert check(baseline, draw(n, seed=seed + n)) == set()


def test_undrifted_text_window_raises_nothing(baseline) -> None:
    # As capture parsing delivers them: every value a string.
    assert check(baseline, draw(5_000, seed=99), as_text=True) == set()


def test_shifted_mean(baseline) -> None:
    frame = draw(5_000, seed=2)
    frame["income"] *= 1.3
    assert check(baseline, frame) == {("income", "baseline_drift_check")}


def test_scaled_spread(baseline) -> None:
    frame = draw(5_000, seed=3)
    frame["score"] = 600 + (frame["score"] - 600) * 2.0
    assert check(baseline, frame) == {("score", "baseline_drift_check")}


def test_new_category(baseline) -> None:
    frame = draw(5_000, seed=4)
    frame.loc[frame.sample(frac=0.2, random_state=1).index, "region"] = "central"
    assert check(baseline, frame) == {("region", "categorical_values_check"),
                                      ("region", "baseline_drift_check")}


def test_one_unseen_value_is_tolerated_a_new_value_on_one_percent_is_not(baseline) -> None:
    frame = draw(5_000, seed=5)
    frame.loc[0, "region"] = "atlantis"
    assert check(baseline, frame) == set()
    frame.loc[frame.sample(frac=0.01, random_state=4).index, "region"] = "atlantis"
    assert check(baseline, frame) == {("region", "categorical_values_check")}


def test_a_sagemaker_domain_threshold_of_one_keeps_its_meaning(baseline) -> None:
    statistics, constraints = baseline
    strict = constraints.model_copy(deep=True)
    for feature in strict.features:
        feature.monitoring_config_overrides = None
    frame = draw(5_000, seed=5)
    frame.loc[0, "region"] = "atlantis"
    assert check((statistics, strict), frame) == {("region", "categorical_values_check")}


def test_rising_missing_share(baseline) -> None:
    frame = draw(5_000, seed=6)
    frame.loc[frame.sample(frac=0.2, random_state=2).index, "utilization"] = np.nan
    assert check(baseline, frame) == {("utilization", "completeness_check")}


def test_changed_type_to_strings(baseline) -> None:
    frame = draw(5_000, seed=7).astype({"age": object})
    frame.loc[frame.sample(frac=0.05, random_state=3).index, "age"] = "unknown"
    assert ("age", "data_type_check") in check(baseline, frame, as_text=True)


def test_integral_turning_fractional(baseline) -> None:
    frame = draw(5_000, seed=8)
    frame["age"] = frame["age"] + 0.5
    assert ("age", "data_type_check") in check(baseline, frame)


def test_dropped_and_added_columns(baseline) -> None:
    frame = draw(5_000, seed=9).drop(columns=["score"])
    frame["segment"] = "retail"
    assert check(baseline, frame) == {("score", "missing_column_check"),
                                      ("segment", "extra_column_check")}


def test_malformed_share(baseline) -> None:
    frame = draw(1_000, seed=10)
    assert check(baseline, frame, records_read=1_040, records_malformed=40) == set()
    assert check(baseline, frame, records_read=1_100, records_malformed=100) == {
        ("", "malformed_records_check")}
    assert check(baseline, frame, records_read=1_100, records_malformed=100,
                 max_malformed_share=0.2) == set()


def test_numeric_distance_is_the_ks_statistic() -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30_000), rng.normal(0.3, 1.2, size=20_000)
    pa_a = profile_columns({"x": pa.array(a)}, a.size).columns["x"]
    pa_b = profile_columns({"x": pa.array(b)}, b.size).columns["x"]
    ks = stats.ks_2samp(a, b).statistic
    simple = DRIFT_METHODS["Simple"].compute(pa_a, pa_b, False)
    assert simple == pytest.approx(ks, abs=0.01)
    robust = DRIFT_METHODS["Robust"].compute(pa_a, pa_b, True)
    assert robust == pytest.approx(simple - robust_correction(a.size, b.size), abs=1e-12)


def test_categorical_distances_against_hand_computation() -> None:
    a = pa.array(["x"] * 60 + ["y"] * 40)
    b = pa.array(["x"] * 30 + ["y"] * 50 + ["z"] * 20)
    pa_a = profile_columns({"c": a}, 100).columns["c"]
    pa_b = profile_columns({"c": b}, 100).columns["c"]
    assert DRIFT_METHODS["LInfinity"].compute(pa_a, pa_b, False) == pytest.approx(0.3)
    from scipy import stats

    expected = stats.chisquare([30, 50], np.array([0.6, 0.4]) * 80).pvalue
    assert DRIFT_METHODS["ChiSquared"].compute(pa_a, pa_b, False) == pytest.approx(expected)

"""Profiles and statistics.json against numpy and pandas computed here, for whole and merged data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelwatch.tasks.capture import read_dataset
from modelwatch.tasks.profile import (
    column_from_statistics,
    feature_statistics,
    merge_profiles,
    profile_column,
    profile_columns,
    profile_table,
    to_statistics,
)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    n = 50_000
    income = rng.lognormal(10, 0.5, n)
    income[rng.random(n) < 0.03] = np.nan
    return pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": income,
        "score": rng.normal(-2.0, 3.0, n),
        "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
    })


def numeric_expectations(values: np.ndarray) -> dict[str, float]:
    present = values[~np.isnan(values)]
    return {
        "num_present": present.size, "num_missing": values.size - present.size,
        "mean": present.mean(), "sum": present.sum(), "std_dev": present.std(ddof=0),
        "min": present.min(), "max": present.max(),
    }


def check_numeric(feature, values: np.ndarray) -> None:
    expected = numeric_expectations(values.astype(float))
    stats = feature.numerical_statistics
    assert stats.common.num_present == expected["num_present"]
    assert stats.common.num_missing == expected["num_missing"]
    for key in ("mean", "sum", "std_dev", "min", "max"):
        assert getattr(stats, key) == pytest.approx(expected[key], rel=1e-9), key
    buckets = stats.distribution["kll"]["buckets"]
    assert sum(b["count"] for b in buckets) == pytest.approx(expected["num_present"])


def test_statistics_match_numpy(frame: pd.DataFrame) -> None:
    stats = to_statistics(profile_table(pa.Table.from_pandas(frame)))
    assert stats.dataset.item_count == len(frame)
    assert stats.feature("age").inferred_type == "Integral"
    assert stats.feature("income").inferred_type == "Fractional"
    for name in ("age", "income", "score"):
        check_numeric(stats.feature(name), frame[name].to_numpy())
    region = stats.feature("region")
    assert region.inferred_type == "String"
    assert region.string_statistics.distinct_count == frame["region"].nunique()
    buckets = {b["value"]: b["count"] for b in
               region.string_statistics.distribution["categorical"]["buckets"]}
    assert buckets == frame["region"].value_counts().to_dict()


def test_merged_partitions_equal_the_whole(frame: pd.DataFrame) -> None:
    whole = to_statistics(profile_table(pa.Table.from_pandas(frame)))
    chunks = [frame.iloc[i : i + 7200] for i in range(0, len(frame), 7200)]
    parts = [profile_table(pa.Table.from_pandas(chunk)) for chunk in chunks]
    merged = to_statistics(merge_profiles(parts))
    for name in ("age", "income", "score"):
        a, b = whole.feature(name).numerical_statistics, merged.feature(name).numerical_statistics
        assert a.common == b.common
        for key in ("mean", "sum", "std_dev", "min", "max"):
            assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-9)
    assert whole.feature("region").string_statistics.distribution == \
        merged.feature("region").string_statistics.distribution


def test_string_columns_are_typed_per_value() -> None:
    values = pa.array(["1", "2", "3.5", None, "abc", "", " 7 ", "1e3"], pa.string())
    column = profile_columns({"x": values}, len(values)).columns["x"]
    # "" is a present empty string here (capture parsing maps it to missing before profiling).
    assert column.missing == 1
    # Whole numbers are Integral however written ("1e3" is 1000).
    assert (column.integral, column.fractional, column.string) == (4, 1, 2)
    assert column.inferred_type == "String"
    np.testing.assert_allclose(sorted(column.sketch.levels[0]), [1, 2, 3.5, 7, 1000])
    assert column.counts["abc"] == 1


def test_csv_dataset_statistics_match_pandas(tmp_path) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=1000), "b": rng.integers(0, 5, 1000)})
    frame.loc[::10, "a"] = np.nan
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    stats = to_statistics(profile_table(read_dataset(str(path))))
    check_numeric(stats.feature("a"), frame["a"].to_numpy())
    check_numeric(stats.feature("b"), frame["b"].to_numpy())


def test_headerless_csv_gets_sagemaker_names(tmp_path) -> None:
    path = tmp_path / "no_header.csv"
    path.write_text("1,2.5,x\n3,4.5,y\n")
    table = read_dataset(str(path))
    assert table.column_names == ["_c0", "_c1", "_c2"]
    assert table.num_rows == 2


def test_profile_round_trips_through_statistics(frame: pd.DataFrame) -> None:
    stats = to_statistics(profile_table(pa.Table.from_pandas(frame)))
    rebuilt = column_from_statistics(stats.feature("score"))
    values = frame["score"].to_numpy()
    assert rebuilt.present == values.size
    assert rebuilt.std_dev == pytest.approx(values.std())
    assert rebuilt.sketch.weight == values.size


def test_extreme_values_keep_the_moments_finite_and_exact() -> None:
    """Values near the float limit: the mean and standard deviation are what exact (rational)
    arithmetic gives; non-finite values are counted apart; partitions merge to the same figures."""
    import statistics
    import warnings

    values = [1e308, 1e308, 1.0, -3e307, 1.7e308, 2.5, float("inf"), float("-inf")]
    finite = [v for v in values if np.isfinite(v)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow along the way
        whole = profile_column("x", pa.array(values))
        parts = [profile_column("x", pa.array(values[:3]), seed=1),
                 profile_column("x", pa.array(values[3:]), seed=2)]
        merged = parts[0]
        merged.merge(parts[1])
    for column in (whole, merged):
        assert column.n == len(finite) and column.non_finite == 2
        assert column.mean == pytest.approx(statistics.mean(finite), rel=1e-12)
        assert column.std_dev == pytest.approx(statistics.pstdev(finite), rel=1e-12)
    feature = feature_statistics(whole)
    assert feature.numerical_statistics.num_non_finite == 2
    assert np.isfinite(feature.numerical_statistics.mean)
    assert np.isfinite(feature.numerical_statistics.std_dev)


def test_distinct_count_beyond_the_kept_categories_is_estimated_not_capped() -> None:
    from modelwatch.tasks.profile import MAX_CATEGORIES

    values = [f"code-{i}" for i in range(50_000)]
    parts = [profile_column("c", pa.array(values[i::3] + values[:100]), categorical=True, seed=i)
             for i in range(3)]
    column = parts[0]
    for part in parts[1:]:
        column.merge(part)
    statistics = feature_statistics(column).string_statistics
    assert statistics.distinct_count == pytest.approx(50_000, rel=0.05)
    assert statistics.distinct_count_estimated is True
    small = profile_column("c", pa.array(values[:MAX_CATEGORIES // 2]), categorical=True)
    assert feature_statistics(small).string_statistics.distinct_count == MAX_CATEGORIES // 2


def test_an_all_null_column_is_unknown_not_string() -> None:
    statistics = to_statistics(profile_columns({"empty": pa.nulls(20, pa.string())}, 20))
    assert statistics.features[0].inferred_type == "Unknown"

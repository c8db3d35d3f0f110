"""The quantile sketch against numpy: ranks, quantiles, buckets, merging and the kll document."""

from __future__ import annotations

import numpy as np
import pytest

from modelwatch.tasks.sketch import QuantileSketch


def sketch_of(values: np.ndarray, parts: int = 1, seed: int = 0) -> QuantileSketch:
    sketch = QuantileSketch(seed=seed)
    for part in np.array_split(values, parts):
        sketch.update(part)
    return sketch


def true_cdf(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(values), points, side="right") / values.size


@pytest.mark.parametrize("n", [10, 1_000, 100_000, 1_000_000])
def test_weight_is_exact_and_cdf_is_close(n: int) -> None:
    values = np.random.default_rng(n).lognormal(size=n)
    sketch = sketch_of(values, parts=7)
    assert sketch.weight == n
    points = np.quantile(values, np.linspace(0.01, 0.99, 50))
    assert np.abs(sketch.cdf(points) - true_cdf(values, points)).max() < 0.01


def test_small_inputs_are_kept_exactly() -> None:
    values = np.random.default_rng(1).normal(size=500)
    sketch = sketch_of(values)
    assert len(sketch.levels) == 1
    np.testing.assert_array_equal(np.sort(sketch.levels[0]), np.sort(values))
    q = np.array([0.1, 0.5, 0.9])
    expected = np.quantile(values, q, method="inverted_cdf")
    np.testing.assert_allclose(sketch.quantile(q), expected)


def test_merge_equals_one_sketch_in_distribution() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=300_000), rng.normal(loc=1.0, size=200_000)
    merged = sketch_of(a, 3, seed=1)
    merged.merge(sketch_of(b, 2, seed=2))
    both = np.concatenate([a, b])
    assert merged.weight == both.size
    points = np.linspace(-2, 3, 41)
    assert np.abs(merged.cdf(points) - true_cdf(both, points)).max() < 0.01
    assert all(level.size <= merged.k for level in merged.levels)


def test_buckets_match_numpy_histogram() -> None:
    values = np.random.default_rng(3).uniform(0, 10, size=200_000)
    sketch = sketch_of(values, parts=5)
    lo, hi = float(values.min()), float(values.max())
    buckets = sketch.buckets(lo, hi)
    expected, edges = np.histogram(values, bins=10, range=(lo, hi))
    assert [b["lower_bound"] for b in buckets] == pytest.approx(edges[:-1].tolist())
    assert buckets[-1]["upper_bound"] == pytest.approx(hi)
    counts = np.array([b["count"] for b in buckets])
    assert counts.sum() == pytest.approx(values.size)
    assert np.abs(counts - expected).max() < 0.01 * values.size


def test_exact_buckets_for_small_data_like_sagemaker_sample() -> None:
    # 24 ones, 21 twos, 55 threes: the shape of dq_statistics_kll.json's first feature.
    values = np.array([1.0] * 24 + [2.0] * 21 + [3.0] * 55)
    buckets = sketch_of(values).buckets(1.0, 3.0)
    counts = [b["count"] for b in buckets]
    assert counts == [24.0, 0, 0, 0, 0, 21.0, 0, 0, 0, 55.0]


def test_kll_document_round_trip() -> None:
    values = np.random.default_rng(4).normal(size=50_000)
    sketch = sketch_of(values, parts=4)
    document = sketch.to_kll(float(values.min()), float(values.max()))
    assert document["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
    again = QuantileSketch.from_kll(document)
    assert again.weight == sketch.weight
    points = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(again.cdf(points), sketch.cdf(points))

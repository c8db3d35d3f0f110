"""Drift distances between two column profiles, registered by the name constraints.json uses.

Each method is a small pure function of (baseline, current) profiles, so drift needs sketches and
counts, never raw reference rows. Distances (not p-values) are the defaults: on undrifted data they do
not grow with the sample size. ChiSquared is offered for SageMaker compatibility; it is a p-value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from modelwatch.tasks.errors import UserError
from modelwatch.tasks.profile import ColumnProfile

ROBUST_C_ALPHA = 1.8  # Deequ's constant for the Robust correction (alpha ~ 0.003)


@dataclass(frozen=True)
class DriftResult:
    method: str
    value: float  # the distance, or the p-value for tests
    drifted: bool
    threshold: float

    def describe(self) -> str:
        if DRIFT_METHODS[self.method].measures == "p-value":
            return (f"{self.method} p-value {self.value:.4g} is below the threshold "
                    f"{self.threshold:g}")
        return f"{self.method} distance {self.value:.4g} exceeds the threshold {self.threshold:g}"


@dataclass(frozen=True)
class DriftMethod:
    """A drift measure of one feature kind. `measures` says what its value is: a distance (drift
    when above the threshold) or a test's p-value (drift when below); only distances are comparable
    across features, so only they make a headline number."""

    name: str
    kind: Literal["numerical", "categorical"]
    compute: Callable[[ColumnProfile, ColumnProfile, bool], float]
    measures: Literal["distance", "p-value"] = "distance"

    @property
    def higher_is_drift(self) -> bool:
        return self.measures == "distance"

    def __call__(self, baseline: ColumnProfile, current: ColumnProfile, *, robust: bool,
                 threshold: float) -> DriftResult:
        value = float(self.compute(baseline, current, robust))
        drifted = value > threshold if self.higher_is_drift else value < threshold
        return DriftResult(self.name, value, bool(drifted and np.isfinite(value)), threshold)


DRIFT_METHODS: dict[str, DriftMethod] = {}
_SETTING = {"numerical": "comparison_method", "categorical": "categorical_drift_method"}


def register(method: DriftMethod) -> DriftMethod:
    DRIFT_METHODS[method.name] = method
    return method


def method_names(kind: str) -> list[str]:
    """The registered methods of a feature kind, in registration order."""
    return [m.name for m in DRIFT_METHODS.values() if m.kind == kind]


def drift_method(name: str, kind: str) -> DriftMethod:
    """The registered method called `name` for a feature kind; any other name is a UserError that
    lists the registered ones (SageMaker's names: comparison_method for numerical features,
    categorical_drift_method for categorical ones)."""
    method = DRIFT_METHODS.get(name)
    if method is None or method.kind != kind:
        raise UserError(f"{_SETTING[kind]} {name!r} is not a registered {kind} drift method: "
                        f"expected {' or '.join(method_names(kind))}")
    return method


def robust_correction(n: float, m: float) -> float:
    """The sampling-noise allowance Deequ subtracts from an L-infinity distance."""
    return ROBUST_C_ALPHA * float(np.sqrt((n + m) / (n * m))) if n and m else 0.0


def numeric_linf(baseline: ColumnProfile, current: ColumnProfile, robust: bool) -> float:
    """Largest gap between the two empirical CDFs, read off the quantile sketches (KS statistic)."""
    items_a, _ = baseline.sketch.items_and_weights()
    items_b, _ = current.sketch.items_and_weights()
    if items_a.size == 0 or items_b.size == 0:
        return float("nan")
    points = np.union1d(items_a, items_b)
    distance = float(np.abs(baseline.sketch.cdf(points) - current.sketch.cdf(points)).max())
    if robust:
        distance = max(0.0, distance - robust_correction(baseline.sketch.weight,
                                                         current.sketch.weight))
    return distance


def categorical_linf(baseline: ColumnProfile, current: ColumnProfile, robust: bool) -> float:
    """Largest difference in a category's share over the union of categories."""
    counts_a, counts_b = baseline.counts or {}, current.counts or {}
    total_a = sum(counts_a.values()) + baseline.overflow
    total_b = sum(counts_b.values()) + current.overflow
    if not total_a or not total_b:
        return float("nan")
    keys = set(counts_a) | set(counts_b)
    distance = max(abs(counts_a.get(k, 0) / total_a - counts_b.get(k, 0) / total_b) for k in keys)
    if robust:
        distance = max(0.0, distance - robust_correction(total_a, total_b))
    return distance


def categorical_chi_squared(baseline: ColumnProfile, current: ColumnProfile, _: bool) -> float:
    """p-value of Pearson's goodness-of-fit of current counts against baseline shares.

    Categories are those of the baseline (a new category is the domain check's business); small
    expected counts are folded together as Deequ does, until each expects at least 5.
    """
    counts_a, counts_b = baseline.counts or {}, current.counts or {}
    keys = sorted(counts_a, key=lambda k: counts_a[k])
    observed = np.array([counts_b.get(k, 0) for k in keys], dtype=float)
    shares = np.array([counts_a[k] for k in keys], dtype=float)
    if observed.sum() == 0 or shares.sum() == 0:
        return float("nan")
    expected = shares / shares.sum() * observed.sum()
    while expected.size > 2 and expected[0] < 5:
        expected = np.concatenate([[expected[0] + expected[1]], expected[2:]])
        observed = np.concatenate([[observed[0] + observed[1]], observed[2:]])
    if expected.size < 2:
        return float("nan")
    # scipy costs ~1.5 s to import; only this non-default method needs it.
    from scipy import stats as scipy_stats

    return float(scipy_stats.chisquare(observed, expected).pvalue)


register(DriftMethod("Robust", "numerical", lambda a, b, _: numeric_linf(a, b, True)))
register(DriftMethod("Simple", "numerical", lambda a, b, _: numeric_linf(a, b, False)))
register(DriftMethod("LInfinity", "categorical", categorical_linf))
register(DriftMethod("ChiSquared", "categorical", categorical_chi_squared, measures="p-value"))

"""Drift measures between two column profiles, registered by the name constraints.json uses.

Each method is a pure function of (baseline, current) profiles, so drift needs sketches and counts,
never raw reference rows. SageMaker's methods keep SageMaker's meaning (Robust, Simple, LInfinity,
ChiSquared); modelwatch's defaults (KSDistance, Wasserstein, ShareDistance) are effect sizes with a
threshold that stays put on large samples and widens only as far as sampling noise needs on small
ones: on undrifted data they raise nothing at any size, and a material change is caught at every size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from modelwatch.tasks.errors import UserError
from modelwatch.tasks.profile import ColumnProfile

ROBUST_C_ALPHA = 1.8  # Deequ's constant for the Robust correction (alpha ~ 0.003)
# Two-sample KS critical constant at alpha = 1e-4: sqrt(ln(2 / alpha) / 2).
KS_C_ALPHA = math.sqrt(math.log(2 / 1e-4) / 2)
# Rank error allowed for two KLL sketches (k = 2048 keeps each within ~0.2 % of rank).
SKETCH_RANK_ERROR = 0.005
# sqrt(n) * W1 / J on undrifted samples (J = integral of sqrt(F(1 - F))): mean 0.80, sd 0.28, 1e-4
# quantile 2.55 for normal, lognormal and exponential data (20,000 simulated windows each).
WASSERSTEIN_C = 3.0
# Standard errors a category's share may move by chance (two-sided 1e-5 per category).
SHARE_Z = 4.4

Kind = Literal["numerical", "categorical"]
FEATURE_TYPES: dict[str, tuple[str, ...]] = {"numerical": ("Integral", "Fractional"),
                                             "categorical": ("String",)}


@dataclass(frozen=True)
class DriftResult:
    """One method's verdict on one feature: its value, the threshold it was held to on this pair of
    samples (the configured one, or wider where sampling noise needs it) and what moved."""

    method: str
    value: float  # the distance, or the p-value for tests
    drifted: bool
    threshold: float
    detail: str = ""

    def describe(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        if DRIFT_METHODS[self.method].measures == "p-value":
            verb = "is below" if self.drifted else "is at least"
            return f"{self.method} p-value {self.value:.4g} {verb} the threshold {self.threshold:.4g}"
        verb = "exceeds" if self.drifted else "is within"
        return f"{self.method} distance {self.value:.4g}{detail} {verb} the threshold " \
               f"{self.threshold:.4g}"


Compute = Callable[[ColumnProfile, ColumnProfile, bool], float]
Noise = Callable[[ColumnProfile, ColumnProfile], float]
Evaluate = Callable[[ColumnProfile, ColumnProfile, float], DriftResult]


@dataclass(frozen=True)
class DriftMethod:
    """A registered drift measure.

    Parameters
    ----------
    name : str
        The name constraints.json uses (``comparison_method``, ``categorical_drift_method`` or a
        feature's ``drift_methods`` entry).
    kind : {"numerical", "categorical"}
        Which features it compares: Integral and Fractional, or String.
    compute : callable
        ``compute(baseline, current, robust) -> float``, the method's value.
    measures : {"distance", "p-value"}
        A distance drifts when above the threshold; a test's p-value when below. Only distances are
        comparable across features, so only they make a headline number.
    default_threshold : float
        The threshold suggested baselines write for it.
    description : str
        One line for users: what it measures and when it alarms.
    noise : callable, optional
        ``noise(baseline, current) -> float``: the largest value undrifted samples of these sizes
        reach (at the method's false-alarm rate); the threshold is widened to it. None: none.
    evaluate : callable, optional
        ``evaluate(baseline, current, threshold) -> DriftResult`` for a method whose verdict is not
        a single value against a single threshold (ShareDistance decides per category).

    Examples
    --------
    >>> from modelwatch import DriftMethod, register_drift_method
    >>> register_drift_method(DriftMethod("MeanShift", "numerical",
    ...                      lambda a, b, _: abs(a.mean - b.mean) / a.std_dev,
    ...                      default_threshold=0.25, description="mean moved, in baseline sd"))
    """

    name: str
    kind: Kind
    compute: Compute
    measures: Literal["distance", "p-value"] = "distance"
    default_threshold: float = 0.1
    description: str = ""
    noise: Noise | None = None
    evaluate: Evaluate | None = None

    @property
    def higher_is_drift(self) -> bool:
        return self.measures == "distance"

    @property
    def feature_types(self) -> tuple[str, ...]:
        return FEATURE_TYPES[self.kind]

    def __call__(self, baseline: ColumnProfile, current: ColumnProfile, *, robust: bool,
                 threshold: float) -> DriftResult:
        if self.evaluate is not None:
            return self.evaluate(baseline, current, threshold)
        value = float(self.compute(baseline, current, robust))
        if self.noise is not None:
            threshold = max(threshold, float(self.noise(baseline, current)))
        drifted = value > threshold if self.higher_is_drift else value < threshold
        return DriftResult(self.name, value, bool(drifted and np.isfinite(value)), threshold)


DRIFT_METHODS: dict[str, DriftMethod] = {}
_SETTING = {"numerical": "comparison_method", "categorical": "categorical_drift_method"}
SAGEMAKER_METHODS = frozenset({"Robust", "Simple", "LInfinity", "ChiSquared"})


def register_drift_method(method: DriftMethod) -> DriftMethod:
    """Make a drift method available by its name to constraints files (a feature's
    ``drift_methods``, or the file's settings) and to baseline options.

    Parameters
    ----------
    method : DriftMethod
        Replaces a registered method of the same name.

    Returns
    -------
    DriftMethod
        The method, so the call can decorate a module-level definition.
    """
    DRIFT_METHODS[method.name] = method
    return method


def drift_methods() -> dict[str, DriftMethod]:
    """The registered drift methods by name, in registration order."""
    return dict(DRIFT_METHODS)


def method_names(kind: str) -> list[str]:
    """The registered methods of a feature kind, in registration order."""
    return [m.name for m in DRIFT_METHODS.values() if m.kind == kind]


def drift_method(name: str, kind: str, setting: str | None = None) -> DriftMethod:
    """The registered method called `name` for a feature kind; any other name is a UserError that
    lists the registered ones (SageMaker's names: comparison_method for numerical features,
    categorical_drift_method for categorical ones)."""
    method = DRIFT_METHODS.get(name)
    if method is None or method.kind != kind:
        raise UserError(f"{setting or _SETTING[kind]} {name!r} is not a registered {kind} drift "
                        f"method: expected {' or '.join(method_names(kind))}")
    return method


def effective_size(n: float, m: float) -> float:
    """n*m/(n+m): the one-sample size whose noise equals that of comparing samples of n and m."""
    return n * m / (n + m) if n > 0 and m > 0 else 0.0


def robust_correction(n: float, m: float) -> float:
    """The sampling-noise allowance Deequ subtracts from an L-infinity distance."""
    return ROBUST_C_ALPHA * float(np.sqrt((n + m) / (n * m))) if n and m else 0.0


def _cdf_gaps(baseline: ColumnProfile, current: ColumnProfile
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The union of both sketches' items and each sketch's CDF there (None when one is empty)."""
    items_a, _ = baseline.sketch.items_and_weights()
    items_b, _ = current.sketch.items_and_weights()
    if items_a.size == 0 or items_b.size == 0:
        return None
    points = np.union1d(items_a, items_b)
    return points, baseline.sketch.cdf(points), current.sketch.cdf(points)


def numeric_linf(baseline: ColumnProfile, current: ColumnProfile, robust: bool) -> float:
    """Largest gap between the two empirical CDFs, read off the quantile sketches (KS statistic)."""
    gaps = _cdf_gaps(baseline, current)
    if gaps is None:
        return float("nan")
    _, cdf_a, cdf_b = gaps
    distance = float(np.abs(cdf_a - cdf_b).max())
    if robust:
        distance = max(0.0, distance - robust_correction(baseline.sketch.weight,
                                                         current.sketch.weight))
    return distance


def ks_noise(baseline: ColumnProfile, current: ColumnProfile) -> float:
    """The KS distance two undrifted samples of these sizes exceed with probability 1e-4, plus the
    sketches' rank error."""
    n, m = baseline.sketch.weight, current.sketch.weight
    size = effective_size(n, m)
    return KS_C_ALPHA / math.sqrt(size) + SKETCH_RANK_ERROR if size else float("inf")


def wasserstein(baseline: ColumnProfile, current: ColumnProfile, _: bool = False) -> float:
    """Earth mover's distance between the two distributions, in baseline standard deviations.

    A pure shift of d standard deviations scores d whatever the distribution's shape; a spread
    change scores what the L-infinity distance misses (a normal widened x1.5: 0.40, where its CDFs
    differ by at most 0.095)."""
    gaps = _cdf_gaps(baseline, current)
    sd = baseline.std_dev
    if gaps is None or not sd > 0 or not math.isfinite(sd):
        return float("nan")
    points, cdf_a, cdf_b = gaps
    return float(np.sum(np.abs(cdf_a - cdf_b)[:-1] * np.diff(points)) / sd)


def wasserstein_noise(baseline: ColumnProfile, current: ColumnProfile) -> float:
    """The normalised W1 undrifted samples of these sizes reach: WASSERSTEIN_C * J / sd / sqrt(size),
    J = integral of sqrt(F(1 - F)) over the baseline (the scale of the empirical process)."""
    items, _ = baseline.sketch.items_and_weights()
    size = effective_size(baseline.sketch.weight, current.sketch.weight)
    sd = baseline.std_dev
    if items.size < 2 or not size or not sd > 0:
        return float("inf")
    points = np.unique(items)
    cdf = baseline.sketch.cdf(points)[:-1]
    spread = float(np.sum(np.sqrt(cdf * (1 - cdf)) * np.diff(points)))
    return WASSERSTEIN_C * spread / sd / math.sqrt(size)


def _shares(profile: ColumnProfile) -> tuple[dict[str, int], int]:
    counts = dict(profile.counts or {})
    return counts, sum(counts.values()) + profile.overflow


def categorical_linf(baseline: ColumnProfile, current: ColumnProfile, robust: bool) -> float:
    """Largest difference in a category's share over the union of categories."""
    (counts_a, total_a), (counts_b, total_b) = _shares(baseline), _shares(current)
    if not total_a or not total_b:
        return float("nan")
    keys = set(counts_a) | set(counts_b)
    distance = max(abs(counts_a.get(k, 0) / total_a - counts_b.get(k, 0) / total_b) for k in keys)
    if robust:
        distance = max(0.0, distance - robust_correction(total_a, total_b))
    return distance


def share_distance(baseline: ColumnProfile, current: ColumnProfile,
                   threshold: float) -> DriftResult:
    """Each category's share against the threshold, widened for that category to SHARE_Z standard
    errors of a difference of two shares where sampling noise needs more; the verdict names the
    category that moved most for its threshold."""
    (counts_a, total_a), (counts_b, total_b) = _shares(baseline), _shares(current)
    if not total_a or not total_b:
        return DriftResult("ShareDistance", float("nan"), False, threshold)
    inverse = 1 / total_a + 1 / total_b
    worst: tuple[float, float, float, str, float, float] | None = None
    for key in set(counts_a) | set(counts_b):
        p_a, p_b = counts_a.get(key, 0) / total_a, counts_b.get(key, 0) / total_b
        pooled = (counts_a.get(key, 0) + counts_b.get(key, 0)) / (total_a + total_b)
        limit = max(threshold, SHARE_Z * math.sqrt(pooled * (1 - pooled) * inverse))
        gap = abs(p_a - p_b)
        if worst is None or gap / limit > worst[0]:
            worst = (gap / limit, gap, limit, key, p_a, p_b)
    assert worst is not None
    _, gap, limit, key, p_a, p_b = worst
    return DriftResult("ShareDistance", gap, gap > limit, limit,
                       detail=f"{key!r} {p_a * 100:.3g}% -> {p_b * 100:.3g}%")


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


register_drift_method(DriftMethod(
    "Robust", "numerical", lambda a, b, _: numeric_linf(a, b, True),
    description="SageMaker's default: KS distance minus 1.8*sqrt((n+m)/(nm)), above the threshold"))
register_drift_method(DriftMethod(
    "Simple", "numerical", lambda a, b, _: numeric_linf(a, b, False),
    description="SageMaker's KS distance (largest CDF gap), above the threshold"))
register_drift_method(DriftMethod(
    "KSDistance", "numerical", lambda a, b, _: numeric_linf(a, b, False), noise=ks_noise,
    description="largest CDF gap above the threshold, or above what sampling noise reaches "
                "(alpha 1e-4) when that is higher"))
register_drift_method(DriftMethod(
    "Wasserstein", "numerical", wasserstein, noise=wasserstein_noise, default_threshold=0.15,
    description="earth mover's distance in baseline standard deviations (sees spread changes) "
                "above the threshold, or above what sampling noise reaches when that is higher"))
register_drift_method(DriftMethod(
    "LInfinity", "categorical", categorical_linf,
    description="SageMaker's largest share difference of a category (minus the Robust "
                "correction unless comparison_method is Simple), above the threshold"))
register_drift_method(DriftMethod(
    "ShareDistance", "categorical", lambda a, b, _: categorical_linf(a, b, False),
    evaluate=share_distance,
    description="a category's share moved by more than the threshold, or by more than 4.4 "
                "standard errors when that is more"))
register_drift_method(DriftMethod(
    "ChiSquared", "categorical", categorical_chi_squared, measures="p-value",
    default_threshold=0.05, description="Pearson's chi-square p-value below the threshold"))

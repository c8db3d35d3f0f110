"""Production variants (A/B tests) from merged records: model quality per variant, and two variants'
metric compared on one window with a confidence interval and a test of the difference.

The comparison uses the metric's bootstrap standard deviation that model-quality statistics carry
(SageMaker's ``standard_deviation``): the variants are independent samples, so the difference's
standard error is the root of the sum of their variances, and the interval and the two-sided p-value
come from the normal distribution. The interval excludes zero exactly when p < 1 - confidence, so the
verdict and the interval never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist
from typing import Any

from pydantic import Field

from modelwatch.tasks.documents import Document, VariantOutcome
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.merged import MergedBatch, merged_metrics, read_merged_files

COMPARE_BOOTSTRAP = 1000  # resamples behind each variant's standard deviation in a comparison
UNKNOWN_VARIANT = "-"


def headline(statistics: Any) -> tuple[str | None, float | None]:
    """The model-quality headline: accuracy for classification, rmse for regression."""
    group = statistics.metrics if statistics is not None else None
    if group is None:
        return None, None
    name = "accuracy" if group.metric("accuracy") is not None else "rmse"
    found = group.metric(name)
    return name, (found.value if found is not None else None)


@dataclass
class VariantQuality:
    """One variant's model-quality statistics, their check against the constraints, and the
    labelled rows left out of them by reason."""

    statistics: Any
    violations: Any
    left_out: dict[str, int]

    def outcome(self) -> VariantOutcome:
        name, value = headline(self.statistics)
        return VariantOutcome(records=self.statistics.item_count or 0,
                              status=self.violations.status, metric_name=name, metric=value,
                              violation_count=len(self.violations.violations),
                              violations=[v.metric_name for v in self.violations.violations])

    def document(self) -> dict[str, Any]:
        return {"statistics": self.statistics.dump(), "violations": self.violations.dump(),
                "left_out": self.left_out}


def quality_by_variant(batch: MergedBatch, problem_type: str, threshold: float, constraints: Any,
                       min_records: int, bootstrap: int | None = None) -> dict[str, VariantQuality]:
    """Model quality of each production variant of a window, checked against the model's
    constraints; empty when the records come from fewer than two variants (the execution's own
    numbers are then the variant's). A variant with fewer than `min_records` labelled rows is
    NoData on its own, like a window."""
    from modelwatch.tasks.quality import check

    parts = batch.by_variant()
    if len(parts) < 2:
        return {}
    found = {}
    for variant, part in parts.items():
        statistics, left_out = merged_metrics(part, problem_type, threshold, bootstrap)
        found[variant] = VariantQuality(statistics, check(constraints, statistics,
                                                          min_records=min_records), left_out)
    return found


class VariantMetric(Document):
    """A variant's value of the compared metric."""

    variant: str
    records: int
    value: float
    standard_deviation: float
    ci_low: float
    ci_high: float


class VariantComparison(Document):
    """Two variants' metric on one window: the difference (treatment minus control), its interval
    and p-value, and which variant is better when the difference is significant."""

    endpoint: str
    model: str
    window_start: datetime
    window_end: datetime
    metric: str
    problem_type: str
    confidence: float
    lower_is_better: bool
    control: VariantMetric
    treatment: VariantMetric
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    better: str | None = None
    method: str = ""
    variants_found: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


def _metric_of(statistics: Any, metric: str, variant: str) -> tuple[float, float]:
    group = statistics.metrics
    found = group.metric(metric) if group is not None else None
    if found is None:
        names = sorted(group.scalar_metrics()) if group is not None else []
        raise UserError(f"--metric {metric!r} is not a {statistics.problem_type} metric of variant "
                        f"{variant!r}; expected one of {', '.join(names)}")
    return found.value, found.standard_deviation


def compare_variants(statistics: dict[str, Any], control: str, treatment: str, metric: str, *,
                     confidence: float = 0.95, endpoint: str = "", model: str = "",
                     window: tuple[datetime, datetime] | None = None) -> VariantComparison:
    """Compare one metric of two variants.

    Parameters
    ----------
    statistics : dict of str to ModelQualityStatistics
        Each variant's statistics over the same window (from `merged_metrics`), with standard
        deviations.
    control, treatment : str
        The variants compared; the difference is treatment minus control.
    metric : str
        A scalar metric of the problem type, e.g. ``"accuracy"``, ``"f1"``, ``"auc"``, ``"rmse"``.
    confidence : float, default 0.95
        The interval's confidence level, in (0, 1); the difference is significant when the
        interval excludes zero, i.e. p < 1 - confidence.
    endpoint, model : str
        Named in the result.
    window : (datetime, datetime), optional
        The window compared, named in the result.

    Returns
    -------
    VariantComparison

    Examples
    --------
    >>> from modelwatch.tasks.quality import compute_metrics
    >>> a = compute_metrics("binary", [1, 0] * 500, [1, 0] * 400 + [0, 1] * 100, bootstrap=500)
    >>> b = compute_metrics("binary", [1, 0] * 500, [1, 0] * 480 + [0, 1] * 20, bootstrap=500)
    >>> result = compare_variants({"A": a, "B": b}, "A", "B", "accuracy")
    >>> round(result.difference, 2), result.significant, result.better
    (0.16, True, 'B')
    """
    from modelwatch.tasks.quality import LOWER_IS_BETTER

    if not 0 < confidence < 1:
        raise UserError(f"--confidence {confidence}: expected a level between 0 and 1, e.g. 0.95")
    for name in (control, treatment):
        if name not in statistics:
            raise UserError(f"variant {name!r} has no labelled records in the window; variants "
                            f"found: {', '.join(sorted(statistics)) or 'none'}")
    if control == treatment:
        raise UserError(f"--variants names {control!r} twice; expected two different variants")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    values = {}
    for name in (control, treatment):
        value, sd = _metric_of(statistics[name], metric, name)
        if not math.isfinite(value):
            raise UserError(f"variant {name!r} has no finite {metric} in the window")
        sd = sd if math.isfinite(sd) else 0.0
        values[name] = VariantMetric(variant=name, records=statistics[name].item_count or 0,
                                     value=value, standard_deviation=sd, ci_low=value - z * sd,
                                     ci_high=value + z * sd)
    a, b = values[control], values[treatment]
    difference = b.value - a.value
    se = math.hypot(a.standard_deviation, b.standard_deviation)
    if se > 0:
        p_value = 2 * (1 - NormalDist().cdf(abs(difference) / se))
    else:  # no spread in either variant: any difference is certain
        p_value = 1.0 if difference == 0 else 0.0
    significant = p_value < 1 - confidence
    lower = metric in LOWER_IS_BETTER
    better = None
    if significant:
        better = treatment if (difference < 0) == lower else control
    start, end = window if window is not None else (datetime.min, datetime.min)
    notes = [f"variant {v.variant!r} has {v.records} labelled records: fewer than 200 give noisy "
             "standard deviations" for v in (a, b) if v.records < 200]
    return VariantComparison(
        endpoint=endpoint, model=model, window_start=start, window_end=end, metric=metric,
        problem_type=statistics[control].problem_type or "", confidence=confidence,
        lower_is_better=lower, control=a, treatment=b, difference=difference,
        ci_low=difference - z * se, ci_high=difference + z * se, p_value=p_value,
        significant=significant, better=better,
        method="normal interval of the difference, standard errors from the bootstrap standard "
               "deviation of each variant's metric (independent samples)",
        variants_found={k: s.item_count or 0 for k, s in statistics.items()}, notes=notes)


def variant_statistics(batch: MergedBatch, problem_type: str, threshold: float,
                       bootstrap: int = COMPARE_BOOTSTRAP) -> dict[str, Any]:
    """Each variant's model-quality statistics of a window's merged records."""
    return {variant: merged_metrics(part, problem_type, threshold, bootstrap)[0]
            for variant, part in batch.by_variant().items()}


@dataclass
class WindowRecords:
    """An endpoint's merged records of a window for one model, and what they were read from."""

    batch: MergedBatch
    model: str
    problem_type: str
    threshold: float
    files: int


def endpoint_window(store: Any, endpoint: str, model: str | None, start: datetime,
                    end: datetime) -> WindowRecords:
    """The merged records of [start, end) of the endpoint's model (the one it serves, or `model` of
    a multi-model endpoint), tagged with their variants; the problem type and score threshold come
    from the model's latest model-quality baseline, else its registry entry. A merge of the window
    that never finished, or a window without merged records, is a UserError."""
    from modelwatch.tasks.baselines import latest_version, read_manifest
    from modelwatch.tasks.groundtruth_layout import merged_prefix, unfinished_merges
    from modelwatch.tasks.registry import get_endpoint, get_model, model_key
    from modelwatch.tasks.sources import file_variants, merged_files

    record = get_endpoint(store, endpoint)
    views = {view.model: view for view in record.views()}
    chosen = model or record.model
    if chosen not in views:
        raise UserError(f"--model {chosen!r} is not served by endpoint {endpoint!r}; it serves "
                        f"{', '.join(views)}")
    view = views[chosen]
    unfinished = unfinished_merges(store, endpoint, start, end)
    if unfinished:
        raise UserError(f"the ground-truth merge of {', '.join(unfinished)} did not finish: run "
                        "`modelwatch groundtruth merge` for that window again")
    root = store.uri(merged_prefix(endpoint, view.hosted_model))
    files = merged_files([root], start, end)
    if not files:
        raise UserError(f"no merged records of endpoint {endpoint!r} in {root} for the window; run "
                        "`modelwatch groundtruth merge` for it first")
    manifest: dict[str, Any] = {}
    try:
        manifest = read_manifest(store, chosen, latest_version(store, chosen), "model-quality")
    except UserError:
        manifest = {}
    problem_type = manifest.get("problem_type") or (
        get_model(store, chosen).problem_type if store.exists(model_key(chosen)) else "binary")
    from modelwatch.tasks.quality import normalise_problem_type

    scored = normalise_problem_type(problem_type) == "BinaryClassification"
    batch = read_merged_files(files, file_variants([root], files), scored=scored)
    return WindowRecords(batch, chosen, problem_type, float(manifest.get("threshold", 0.5)),
                         len(files))

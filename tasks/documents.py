"""Pydantic models of the data-quality documents, in SageMaker Model Monitor's shapes.

statistics.json, constraints.json and constraint_violations.json load from files SageMaker wrote
(unknown keys are kept, "NaN" strings parse as floats) and are written back in the same shape.
execution.json is ours: one monitoring execution's outcome.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from modelwatch.tasks.errors import UserError

InferredType = Literal["Integral", "Fractional", "String", "Unknown"]
# A monitor type's name (the registry in modelwatch.flows.monitor_types says which exist).
MonitorType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")]
ExecutionStatus = Literal["Completed", "CompletedWithViolations", "Failed", "NoData"]


class Document(BaseModel):
    """Keeps keys we do not model, so a SageMaker file survives a load/save round trip."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="python", by_alias=True, exclude_none=True)


class OwnDocument(Document):
    """A document only modelwatch writes (execution, index, alert, registry entry): an unknown field
    is an error, so a misspelt one is found rather than kept as a silent extra key."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---- statistics.json ----

class Common(Document):
    num_present: int
    num_missing: int


class NumericalStatistics(Document):
    common: Common
    mean: float
    sum: float
    std_dev: float
    min: float
    max: float
    distribution: dict[str, Any] | None = None


class StringStatistics(Document):
    common: Common
    distinct_count: float
    distribution: dict[str, Any] | None = None


class FeatureStatistics(Document):
    name: str
    inferred_type: InferredType
    numerical_statistics: NumericalStatistics | None = None
    string_statistics: StringStatistics | None = None
    # Ours (the format allows extra metrics): how many present values parsed as each type.
    type_counts: dict[str, int] | None = None

    @property
    def common(self) -> Common | None:
        stats = self.numerical_statistics or self.string_statistics
        return stats.common if stats else None


class DatasetInfo(Document):
    item_count: int


class Statistics(Document):
    version: float = 0.0
    dataset: DatasetInfo
    features: list[FeatureStatistics]

    def feature(self, name: str) -> FeatureStatistics | None:
        return next((f for f in self.features if f.name == name), None)


# ---- constraints.json ----

_OVERRIDES = AliasChoices("monitoringConfigOverrides", "monitoring_config_overrides")


class NumConstraints(Document):
    is_non_negative: bool | None = None


class StringConstraints(Document):
    domains: list[str] | None = None
    # The SDK's own fixture nests per-feature overrides here.
    monitoring_config_overrides: dict[str, Any] | None = Field(default=None, validation_alias=_OVERRIDES)


class DriftSpec(Document):
    """One drift method a feature is compared with (ours: SageMaker names one per file)."""

    method: str
    threshold: float | None = None  # None: the method's default threshold


class FeatureConstraints(Document):
    name: str
    inferred_type: InferredType = "Unknown"
    completeness: float | None = None
    num_constraints: NumConstraints | None = None
    string_constraints: StringConstraints | None = None
    monitoring_config_overrides: dict[str, Any] | None = Field(
        default=None, validation_alias=_OVERRIDES, serialization_alias="monitoringConfigOverrides"
    )
    # Ours: the drift methods of this feature, each with its threshold. Absent (as in SageMaker's
    # files), the file's comparison_method or categorical_drift_method applies.
    drift_methods: list[DriftSpec] | None = None

    def overrides(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        if self.string_constraints and self.string_constraints.monitoring_config_overrides:
            merged.update(self.string_constraints.monitoring_config_overrides)
        merged.update(self.monitoring_config_overrides or {})
        return merged


class DistributionConstraints(Document):
    perform_comparison: Literal["Enabled", "Disabled"] = "Enabled"
    comparison_threshold: float = 0.1
    comparison_method: str = "Robust"
    categorical_comparison_threshold: float | None = None
    categorical_drift_method: str = "LInfinity"
    # Older SDK fixture keys: enable_comparisons stands for perform_comparison.
    enable_comparisons: bool | None = None
    min_domain_mass: float | None = None

    @property
    def enabled(self) -> bool:
        if self.enable_comparisons is not None and "perform_comparison" not in self.model_fields_set:
            return self.enable_comparisons
        return self.perform_comparison == "Enabled"

    @property
    def categorical_threshold(self) -> float:
        if self.categorical_comparison_threshold is None:
            return self.comparison_threshold
        return self.categorical_comparison_threshold


class MonitoringConfig(Document):
    evaluate_constraints: Literal["Enabled", "Disabled"] = "Enabled"
    emit_metrics: Literal["Enabled", "Disabled"] = "Enabled"
    datatype_check_threshold: float = 1.0
    domain_content_threshold: float = 1.0
    distribution_constraints: DistributionConstraints = Field(default_factory=DistributionConstraints)


class Constraints(Document):
    version: float = 0.0
    features: list[FeatureConstraints]
    monitoring_config: MonitoringConfig = Field(default_factory=MonitoringConfig)


# ---- constraint_violations.json ----

class Violation(Document):
    feature_name: str
    constraint_check_type: str
    description: str


class ConstraintViolations(Document):
    violations: list[Violation] = Field(default_factory=list)


class Check(OwnDocument):
    """One check as an execution decided it, passed or not: what was compared (a feature, a metric,
    a facet), the check's name, the observed value, the threshold and which side of it passes. A
    failed check is a violation with the same name and description."""

    subject: str
    check: str
    value: float | None = None
    threshold: float | None = None
    # "within": threshold <= value <= upper, either side None for unbounded.
    passes: Literal["at least", "at most", "above", "below", "within", "none"] = "none"
    upper: float | None = None
    passed: bool
    description: str = ""

    def violation(self) -> Violation:
        return Violation(feature_name=self.subject, constraint_check_type=self.check,
                         description=self.description)


# ---- execution.json (ours) ----

class VariantOutcome(OwnDocument):
    """One production variant's share of an execution: its records, its headline number and the
    checks it fails on its own (variants.json of the execution holds its documents)."""

    records: int = 0
    status: ExecutionStatus = "Completed"
    metric_name: str | None = None
    metric: float | None = None
    violation_count: int = 0
    violations: list[str] = Field(default_factory=list)  # what failed: a feature or metric name


class Execution(OwnDocument):
    model: str
    model_version: str
    monitor_type: MonitorType
    window_start: datetime
    window_end: datetime
    status: ExecutionStatus
    failure_reason: str | None = None
    records_read: int = 0
    records_malformed: int = 0
    records_outside_window: int = 0
    records_without_time: int = 0  # no usable inferenceTime: quarantined (or placed by file hour)
    blank_lines: int = 0
    rows_profiled: int = 0
    violation_count: int = 0
    violation_types: dict[str, int] = Field(default_factory=dict)
    capture: str | None = None
    files_read: int = 0
    files_skipped: int = 0  # in the window's folders but not read (see notes)
    baseline: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    flow_run_id: str | None = None
    metric_name: str | None = None  # the execution's headline number (trend charts, the index)
    metric: float | None = None
    # Per production variant, when the window's records come from more than one (A/B testing).
    variants: dict[str, VariantOutcome] = Field(default_factory=dict)


def parse_document(model_class: type, data: bytes | str | Any, source: str):
    """Validate a JSON document, naming the file and the first bad field on failure."""
    try:
        raw = json.loads(data) if isinstance(data, bytes | str) else data
        return model_class.model_validate(raw)
    except json.JSONDecodeError as problem:
        raise UserError(f"{source}: not valid JSON ({problem})") from None
    except ValidationError as problem:
        first = problem.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(
            f"{source}: not a valid {model_class.__name__} document: {where}: {first['msg']}"
        ) from None

"""The four built-in monitor types as implementations of the monitor interface: their options, how
each loads its baseline and which flow runs an execution. Registered in dashboard order when the
registry first loads; each type's flows are imported only when it is baselined or run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from modelwatch.flows.monitor_types import DatasetCheck, Headline, Monitor, Options, column, register
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store, default_store_uri


def _categorical_methods() -> list[str]:
    from modelwatch.tasks.drift import DRIFT_METHODS

    return [m.name for m in DRIFT_METHODS.values() if m.kind == "categorical"]


def _untimed_choice(value: str) -> str:
    from modelwatch.tasks.capture import UNTIMED_CHOICES

    if value not in UNTIMED_CHOICES:
        raise ValueError(f"expected one of {', '.join(UNTIMED_CHOICES)}")
    return value


MinRecords = Field(default=None, ge=1, description=(
    "fewer usable records than this is NoData [default: 200 labelled; 100 captured for attribution]"))


class CaptureRunOptions(Options):
    """Run options of every type that reads capture."""

    untimed: str = Field(default="quarantine", description=(
        "a record without a usable inferenceTime is quarantined, or with file-hour placed at its "
        "file's hour folder"))

    _untimed = field_validator("untimed")(_untimed_choice)


class DataQualityBaselineOptions(Options):
    categorical_drift_method: str = Field(
        default="ShareDistance", description=(
            "drift method of categorical features: ShareDistance (modelwatch's), or SageMaker's "
            "LInfinity or ChiSquared"))

    @field_validator("categorical_drift_method")
    @classmethod
    def _known(cls, value: str) -> str:
        known = _categorical_methods()
        if value not in known:
            raise ValueError(f"expected {' or '.join(known)}")
        return value


class DataQualityRunOptions(CaptureRunOptions):
    max_malformed_share: float = Field(
        default=0.05, ge=0, le=1,
        description="share of malformed capture records above which the window is a violation")
    report: bool = Field(default=True, description=(
        "write report.html: the verdict, every check and each feature's distribution"))
    evidently: bool = Field(default=False, description=(
        "also write evidently.html, Evidently's DataDriftPreset on samples of both sides, labelled "
        "a second opinion (slow: ~10 s)"))


class DataQuality(Monitor):
    """Data quality: each feature's statistics against the training set's (SageMaker Model Monitor)."""

    name = "data-quality"
    label = "Data quality"
    reads = "capture"
    headline = Headline(name="max drift distance", direction="higher-is-worse", threshold=0.1)
    baseline_options = DataQualityBaselineOptions
    run_options = DataQualityRunOptions

    def suggest_baseline(self, *, model: str, dataset: str, version: str, label: str | None,
                         store: str | None, options: Any) -> dict[str, Any]:
        from modelwatch.flows.baseline import suggest_baseline

        uris = suggest_baseline(model=model, dataset=dataset, monitor_type=self.name, label=label,
                                version=version, store=store,
                                categorical_drift_method=options.categorical_drift_method)
        return {k: uris[k] for k in ("statistics", "constraints", "baseline", "sample", "warnings")}

    def load_baseline(self, store: Store, model: str, version: str | None) -> Any:
        from modelwatch.tasks.baselines import load_baseline

        return load_baseline(store, model, self.name, version, with_sample=False)

    def check_dataset(self, store: Store, model: str, dataset: str,
                      version: str | None) -> DatasetCheck:
        from modelwatch.tasks.capture import read_dataset
        from modelwatch.tasks.constraints import check_data_quality
        from modelwatch.tasks.profile import profile_table, to_statistics

        baseline = self.load_baseline(store, model, version)
        table = read_dataset(dataset)
        present = [f for f in baseline.features if f in table.column_names]
        profile = profile_table(table.select(present), seed=17)
        violations = check_data_quality(baseline.constraints, baseline.statistics, profile,
                                        records_read=table.num_rows, records_malformed=0)
        return DatasetCheck(baseline_version=baseline.version, documents={
            "statistics.json": to_statistics(profile, order=present).dump(),
            "constraint_violations.json": violations.dump()},
            violations=[v.dump() for v in violations.violations])

    def check_run_inputs(self, store: Store, model: str, start: datetime, end: datetime,
                         sources: list[str] | None, options: Any, allow_empty: bool = False) -> None:
        """A single CSV/Parquet dataset given instead of capture roots must be a file (the window
        does not apply to it); capture roots are checked as every capture-reading type's."""
        from modelwatch.tasks.capture import DATASET_SUFFIXES

        if sources and len(sources) == 1 and sources[0].lower().endswith(DATASET_SUFFIXES):
            from modelwatch.tasks.store import filesystem_for

            fs, path = filesystem_for(sources[0])
            if not fs.isfile(path):
                raise UserError(f"--capture {sources[0]}: no such file (expected a CSV or Parquet "
                                "dataset, or a capture root)")
            return
        super().check_run_inputs(store, model, start, end, sources, options, allow_empty)

    def run(self, *, model: str, start: datetime, end: datetime, source: list[str] | None,
            store: str | None, version: str | None, options: Any,
            return_state: bool = False) -> Any:
        from modelwatch.flows.monitor import monitor_data_quality
        from modelwatch.flows.scale_out import on_cluster
        from modelwatch.tasks.sources import capture_roots

        captures = source or capture_roots(Store(store or default_store_uri()), model, None)
        return on_cluster(monitor_data_quality)(
            model=model, capture=captures, start=start, end=end, store=store, version=version,
            max_malformed_share=options.max_malformed_share, report=options.report,
            evidently=options.evidently,
            untimed=options.untimed, return_state=return_state)


class ModelQualityBaselineOptions(Options):
    prediction: str | None = column("the predicted-label column")
    probability: str | None = column("(binary) the score column")
    problem_type: str | None = Field(
        default=None, description="binary, multiclass or regression [default: the registry's]")
    threshold: float = Field(default=0.5, description="probability threshold for score predictions")


class MinRecordsOptions(Options):
    min_records: int | None = MinRecords


class ModelQuality(Monitor):
    """Model quality: the model's metrics on labelled traffic against the validation set's."""

    name = "model-quality"
    label = "Model quality"
    reads = "merged"
    headline = Headline(name="accuracy (rmse for regression)", direction="lower-is-worse")
    baseline_options = ModelQualityBaselineOptions
    run_options = MinRecordsOptions

    def check_baseline_options(self, options: Any, label: str | None, dataset: str,
                               columns: list[str]) -> None:
        if not label or not (options.prediction or options.probability):
            raise UserError("--type model-quality needs --label and --prediction (or --probability)")
        super().check_baseline_options(options, label, dataset, columns)

    def suggest_baseline(self, *, model: str, dataset: str, version: str, label: str | None,
                         store: str | None, options: Any) -> dict[str, Any]:
        from modelwatch.flows.quality import suggest_model_quality_baseline

        return suggest_model_quality_baseline(
            model=model, dataset=dataset, label=label, prediction=options.prediction,
            probability=options.probability, problem_type=options.problem_type, version=version,
            threshold=options.threshold, store=store)

    def load_baseline(self, store: Store, model: str, version: str | None) -> Any:
        _require_baseline_file(store, model, version, self.name, "constraints.json")
        from modelwatch.flows.quality import load_quality_baseline

        return load_quality_baseline(store, model, version)

    def run(self, *, model: str, start: datetime, end: datetime, source: list[str] | None,
            store: str | None, version: str | None, options: Any,
            return_state: bool = False) -> Any:
        from modelwatch.flows.quality import monitor_model_quality

        return monitor_model_quality(model=model, start=start, end=end, merged=source, store=store,
                                     version=version, return_state=return_state,
                                     **_given(options, "min_records"))


class BiasBaselineOptions(Options):
    prediction: str | None = column("the predicted-label (or score) column")
    facet: list[str] = Field(default_factory=list, description=(
        "sensitive facet NAME, NAME=VALUE[,VALUE] or NAME>THRESHOLD (repeatable)"))
    group: str | None = column("group variable for CDDPL")
    label_values: str | None = Field(
        default=None, description="positive label value(s), e.g. 1 or yes,true or >0.5 [default: 1]")
    threshold: float = Field(default=0.5, description="probability threshold for score predictions")
    bound: list[str] = Field(default_factory=list, description=(
        "absolute bounds METRIC=LOW:HIGH, e.g. DI=0.8:1.25 (repeatable)"))
    tolerance: float = Field(default=0.1,
                             description="allowed move beyond the baseline's distance from fair")
    min_members: int = Field(default=30, ge=1, description="smallest facet group that gets a figure")
    window_rows: int = Field(default=1000, ge=1, description=(
        "expected window size; ranges allow a metric's chance movement in one"))


class BiasDrift(Monitor):
    """Bias drift: post-training bias metrics per facet on labelled traffic (SageMaker Clarify)."""

    name = "bias-drift"
    label = "Bias drift"
    reads = "merged"
    headline = Headline(name="DPPL", direction="away-from-zero-is-worse")
    baseline_options = BiasBaselineOptions
    run_options = MinRecordsOptions

    def check_baseline_options(self, options: Any, label: str | None, dataset: str,
                               columns: list[str]) -> None:
        from modelwatch.tasks.bias_documents import parse_bounds, parse_facet, parse_label_values

        if not label or not options.prediction or not options.facet:
            raise UserError("--type bias-drift needs --label, --prediction and at least one --facet")
        super().check_baseline_options(options, label, dataset, columns)
        # The texts parse, and each facet names a column, before the flow reads the whole dataset.
        parse_label_values(options.label_values)
        parse_bounds(options.bound)
        for text in options.facet:
            name = parse_facet(text).name
            if columns and name not in columns:
                raise UserError(f"--facet {text!r}: {name!r} is not a column of {dataset}; columns "
                                f"are {', '.join(columns)}")

    def suggest_baseline(self, *, model: str, dataset: str, version: str, label: str | None,
                         store: str | None, options: Any) -> dict[str, Any]:
        from modelwatch.flows.bias import suggest_bias_baseline

        return suggest_bias_baseline(
            model=model, dataset=dataset, label=label, prediction=options.prediction,
            facets=options.facet, group=options.group, label_values=options.label_values,
            probability_threshold=options.threshold, bounds=options.bound or None,
            tolerance=options.tolerance, min_members=options.min_members,
            window_rows=options.window_rows, version=version, store=store)

    def load_baseline(self, store: Store, model: str, version: str | None) -> Any:
        _require_baseline_file(store, model, version, self.name, "constraints.json")
        from modelwatch.flows.bias import load_bias_baseline

        return load_bias_baseline(store, model, version)

    def check_dataset(self, store: Store, model: str, dataset: str,
                      version: str | None) -> DatasetCheck:
        from modelwatch.flows.bias import check_bias_dataset

        version, analysis, violations = check_bias_dataset(store, model, dataset, version)
        return DatasetCheck(baseline_version=version, documents={
            "analysis.json": analysis.dump(), "constraint_violations.json": violations.dump()},
            violations=[v.dump() for v in violations.violations])

    def run(self, *, model: str, start: datetime, end: datetime, source: list[str] | None,
            store: str | None, version: str | None, options: Any,
            return_state: bool = False) -> Any:
        from modelwatch.flows.bias import monitor_bias_drift

        return monitor_bias_drift(model=model, start=start, end=end, merged=source, store=store,
                                  version=version, return_state=return_state,
                                  **_given(options, "min_records"))

    def describe_violation(self, violation: dict[str, Any]) -> str:
        return f"{violation.get('facet')}={violation.get('facet_value')}: {violation.get('metric_name')}"


class AttributionBaselineOptions(Options):
    sample_size: int | None = Field(default=None, ge=1, description="records explained per run")
    background_size: int | None = Field(
        default=None, ge=1, description="background records of a model-agnostic explainer")
    seed: int = Field(default=0, description="sampling seed")
    ndcg_threshold: float | None = Field(
        default=None, description="nDCG below this is a violation [default: 0.9]")


class AttributionRunOptions(CaptureRunOptions):
    min_records: int | None = MinRecords
    ndcg_threshold: float | None = Field(
        default=None, description="nDCG threshold [default: the baseline's]")
    sample_size: int | None = Field(
        default=None, ge=1, description="records explained [default: the baseline's]")


class FeatureAttributionDrift(Monitor):
    """Feature attribution drift: the ranking of shap attributions against the training set's."""

    name = "feature-attribution-drift"
    label = "Feature attribution drift"
    reads = "capture"
    headline = Headline(name="nDCG", direction="lower-is-worse", threshold=0.9)
    baseline_options = AttributionBaselineOptions
    run_options = AttributionRunOptions

    def suggest_baseline(self, *, model: str, dataset: str, version: str, label: str | None,
                         store: str | None, options: Any) -> dict[str, Any]:
        from modelwatch.flows.attribution import suggest_attribution_baseline

        return suggest_attribution_baseline(
            model=model, dataset=dataset, version=version, label=label,
            sample_size=options.sample_size, background_size=options.background_size,
            seed=options.seed, threshold=options.ndcg_threshold, store=store)

    def load_baseline(self, store: Store, model: str, version: str | None) -> Any:
        _require_baseline_file(store, model, version, self.name, "analysis.json")
        from modelwatch.flows.attribution import load_attribution_baseline

        return load_attribution_baseline(store, model, version)

    def run(self, *, model: str, start: datetime, end: datetime, source: list[str] | None,
            store: str | None, version: str | None, options: Any,
            return_state: bool = False) -> Any:
        from modelwatch.flows.attribution import monitor_feature_attribution_drift

        return monitor_feature_attribution_drift(
            model=model, start=start, end=end, capture=source, store=store, version=version,
            threshold=options.ndcg_threshold, sample_size=options.sample_size,
            untimed=options.untimed, return_state=return_state, **_given(options, "min_records"))


def _require_baseline_file(store: Store, model: str, version: str | None, monitor_type: str,
                           name: str) -> None:
    """A missing baseline is said before the type's flow module loads: those import Prefect, and
    shap for attribution, seconds a user with a typo should not wait."""
    from modelwatch.tasks.baselines import latest_version, require_document

    require_document(store, model, version or latest_version(store, model), monitor_type, name,
                     lambda data, source: None)  # read, not parsed: the type's loader parses it


def _given(options: Any, *names: str) -> dict[str, Any]:
    """The options among `names` that were set (None leaves the flow's own default)."""
    return {n: getattr(options, n) for n in names if getattr(options, n) is not None}


BUILT_IN = (DataQuality, ModelQuality, BiasDrift, FeatureAttributionDrift)  # dashboard order
for _type in BUILT_IN:
    register(_type)

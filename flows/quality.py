"""Model-quality flows: suggest a baseline from a labelled, scored dataset, and run an execution over
merged records (capture joined with ground truth) of a window, in SageMaker's model-quality shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from modelwatch.flows.lifecycle import (
    begin_execution,
    count_violations,
    finish_execution,
    outcome_recorded,
    summary_head,
    write_outputs_task,
    write_report,
)
from modelwatch.flows.window_records import (  # noqa: F401 - merged_files is read from here too
    check_merges_finished,
    merged_files,
    merged_roots,
    read_merged_task,
)
from modelwatch.tasks.baselines import (
    baseline_prefix,
    latest_version,
    parser_of,
    read_manifest,
    require_document,
)
from modelwatch.tasks.capture import read_dataset
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.markdown import escape_markdown
from modelwatch.tasks.merged import LEFT_OUT, merged_metrics
from modelwatch.tasks.monitor_reports import model_quality_sections
from modelwatch.tasks.sources import file_variants
from modelwatch.tasks.store import (
    Store,
    check_slug,
    default_store_uri,
    json_dumps,
)
from modelwatch.tasks.variants import headline, quality_by_variant
from modelwatch.tasks.windows import utc_window

MONITOR_TYPE = "model-quality"
MIN_RECORDS = 200


def _problem_type(store: Store, model: str, given: str | None) -> str:
    if given:
        return given
    from modelwatch.tasks.registry import get_model, model_key

    if store.exists(model_key(model)):
        return get_model(store, model).problem_type
    return "binary"


@task(name="compute-baseline-metrics", cache_policy=NO_CACHE)
def baseline_metrics_task(dataset: str, problem_type: str, label: str, prediction: str | None,
                          probability: str | None, threshold: float) -> Any:
    from modelwatch.tasks.quality import compute_metrics

    frame = read_dataset(dataset).to_pandas()
    missing = [c for c in (label, prediction, probability) if c and c not in frame.columns]
    if missing:
        raise UserError(f"dataset {dataset}: column(s) {', '.join(missing)} not found; columns are "
                        f"{', '.join(frame.columns)}")
    if prediction is None and probability is None:
        raise UserError("model-quality baseline needs --prediction or --probability")
    return compute_metrics(problem_type, frame[label],
                           frame[prediction] if prediction else None,
                           frame[probability] if probability else None, threshold=threshold)


@flow(name="baseline-suggest-model-quality", log_prints=True)
def suggest_model_quality_baseline(
    model: str,
    dataset: str,
    label: str,
    prediction: str | None = None,
    probability: str | None = None,
    problem_type: str | None = None,
    version: str = "1",
    threshold: float = 0.5,
    store: str | None = None,
) -> dict[str, str]:
    """Metrics of a labelled validation set with its predictions, and constraints that a window
    drawn like it does not violate (thresholds allow for each metric's standard deviation)."""
    from modelwatch.tasks.quality import suggest_constraints

    check_slug(model, "model name")
    check_slug(version, "model version")
    store_uri = store or default_store_uri()
    the_store = Store(store_uri)
    kind = _problem_type(the_store, model, problem_type)
    statistics = baseline_metrics_task(dataset, kind, label, prediction, probability, threshold)
    constraints = suggest_constraints(statistics)
    prefix = baseline_prefix(model, version, MONITOR_TYPE)
    manifest = {"model": model, "version": version, "monitor_type": MONITOR_TYPE, "dataset": dataset,
                "label": label, "prediction": prediction, "probability": probability,
                "problem_type": kind, "threshold": threshold,
                "created_at": datetime.now(UTC).isoformat()}
    return {
        "statistics": the_store.write_json(f"{prefix}/statistics.json", statistics.dump()),
        "constraints": the_store.write_json(f"{prefix}/constraints.json", constraints.dump()),
        "baseline": the_store.write_json(f"{prefix}/baseline.json", manifest),
    }


def load_quality_baseline(store: Store, model: str, version: str | None) -> tuple[str, Any, dict, dict]:
    """(version, constraints, manifest, sources); a reviewed constraints.json in the project wins."""
    from modelwatch.tasks.quality import ModelQualityConstraints

    version = version or latest_version(store, model)
    constraints, source = require_document(store, model, version, MONITOR_TYPE, "constraints.json",
                                           parser_of(ModelQualityConstraints))
    return version, constraints, read_manifest(store, model, version, MONITOR_TYPE), \
        {"constraints": source}


def _scores(problem_type: str) -> bool:
    """Whether a model's bare outputs in (0, 1) are scores: binary classification only."""
    from modelwatch.tasks.quality import normalise_problem_type

    return normalise_problem_type(problem_type) == "BinaryClassification"


@flow(name="monitor-model-quality", log_prints=True)
def monitor_model_quality(
    model: str,
    start: datetime,
    end: datetime,
    merged: str | list[str] | None = None,
    store: str | None = None,
    version: str | None = None,
    min_records: int = MIN_RECORDS,
    threshold: float | None = None,
) -> dict[str, Any]:
    """One model-quality execution over merged records of [start, end) (default: the merged data of
    the model's endpoints). Fewer than `min_records` labelled records is NoData, not a noisy verdict."""
    from modelwatch.tasks.quality import check

    check_slug(model, "model name")
    start, end = utc_window(start, end)
    store_uri = store or default_store_uri()
    the_store = Store(store_uri)
    version, constraints, manifest, sources = load_quality_baseline(the_store, model, version)
    roots = merged_roots(the_store, model, merged)
    run = begin_execution(store_uri, model, MONITOR_TYPE, version, start, end,
                          ", ".join(roots), sources)
    execution = run.execution
    metric: float | None = None
    metric_name: str | None = None
    violations: Any = None
    statistics: Any = None
    with outcome_recorded(run):
        check_merges_finished(the_store, model, merged, start, end)
        files = merged_files(roots, start, end)
        problem_type = manifest.get("problem_type") or _problem_type(the_store, model, None)
        batch = read_merged_task(files, scored=_scores(problem_type),
                                 variants=file_variants(roots, files))
        execution.files_read = len(files)
        execution.records_read = batch.records_read
        execution.blank_lines = batch.blank_lines
        execution.records_malformed = len(batch.quarantine)
        execution.rows_profiled = len(batch.labels)
        documents = {"quarantine.jsonl": b"".join(orjson.dumps(q) + b"\n" for q in batch.quarantine)}
        if len(batch.labels) < min_records:
            execution.status = "NoData"
            execution.notes.append(f"{len(batch.labels)} labelled records in the window; at least "
                                   f"{min_records} are needed for a model-quality verdict")
        else:
            cut = threshold if threshold is not None else manifest.get("threshold", 0.5)
            statistics, left_out = merged_metrics(batch, problem_type, cut)
            execution.rows_profiled = statistics.dataset.item_count
            for reason, count in left_out.items():
                if count:
                    execution.notes.append(f"{count} labelled rows {LEFT_OUT[reason]} and were left "
                                           "out of the metrics")
            violations = check(constraints, statistics, min_records=min_records)
            documents["statistics.json"] = json_dumps(statistics.dump()).encode()
            documents["constraint_violations.json"] = json_dumps(violations.dump()).encode()
            metric_name, metric = headline(statistics)
            count_violations(execution, [v.metric_name for v in violations.violations])
            # An A/B test: each variant checked on its own as well, its documents in variants.json.
            variants = quality_by_variant(batch, problem_type, cut, constraints, min_records)
            execution.variants = {name: found.outcome() for name, found in variants.items()}
            if variants:
                documents["variants.json"] = json_dumps(
                    {name: found.document() for name, found in variants.items()}).encode()
            for name in violations.skipped:
                execution.notes.append(f"constraint on {name} not checked: the window has no "
                                       "finite value of it")
        execution.outputs = write_outputs_task(store_uri, run.prefix, documents)
        write_report(execution, store_uri, run.prefix,
                     violations.checks if violations is not None else [],
                     lambda: model_quality_sections(statistics, violations.checks)
                     if statistics is not None else [])
    lines = summary_head(execution, f"{execution.rows_profiled} labelled records")
    if violations is not None:
        lines += [f"- {escape_markdown(v.description)}" for v in violations.violations]
    return finish_execution(run, metric, "\n".join(lines), metric_name=metric_name)

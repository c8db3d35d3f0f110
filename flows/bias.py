"""Bias-drift flows: suggest a baseline (Clarify's post-training bias metrics of a labelled, scored
dataset, and the range each metric may move in), and run an execution over a window's merged records
(captured inputs, predictions and late labels) that reports metrics outside their range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd
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
from modelwatch.flows.quality import MIN_RECORDS
from modelwatch.flows.window_records import (
    check_merges_finished,
    merged_files,
    merged_roots,
    read_merged_task,
)
from modelwatch.tasks.baselines import (
    baseline_prefix,
    latest_version,
    parse_document,
    read_manifest,
    require_document,
)
from modelwatch.tasks.capture import read_dataset
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.markdown import escape_markdown
from modelwatch.tasks.monitor_reports import bias_sections
from modelwatch.tasks.store import Store, check_slug, default_store_uri, json_dumps
from modelwatch.tasks.windows import utc_window

MONITOR_TYPE = "bias-drift"
MIN_MEMBERS = 30
PREDICTED = "__predicted__"  # the merged window's prediction column (a name no feature uses)


def numeric_where_possible(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns whose every present value reads as a number become numeric (CSV captures carry text);
    the others are left as they are."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if column.dtype == object:
            numbers = pd.to_numeric(column, errors="coerce")
            if numbers.notna().sum() == column.notna().sum():
                out[name] = numbers
    return out


def model_features(store: Store, model: str, frame_columns: list[str], exclude: set[str]) -> list[str]:
    """The model's input features: the registry's list when the model is registered with one, else
    the dataset's columns less the label and prediction."""
    from modelwatch.tasks.registry import get_model, model_key

    if store.exists(model_key(model)):
        names = [f.name for f in get_model(store, model).features]
        if names:
            return names
    return [c for c in frame_columns if c not in exclude]


def bias_settings(manifest: dict[str, Any]) -> dict[str, Any]:
    """compute_bias keyword arguments recorded in a baseline's manifest."""
    from modelwatch.tasks.bias_documents import parse_facet, parse_label_values

    return {
        "facets": [parse_facet(text) for text in manifest["facets"]],
        "label_values": parse_label_values(manifest.get("label_values")),
        "probability_threshold": manifest.get("probability_threshold", 0.5),
        "group": manifest.get("group"),
    }


def _check_columns(frame: pd.DataFrame, wanted: list[str], source: str) -> None:
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise UserError(f"{source}: column(s) {', '.join(missing)} not found; columns are "
                        f"{', '.join(map(str, frame.columns))}")


@task(name="compute-bias", cache_policy=NO_CACHE)
def compute_bias_task(frame: pd.DataFrame, label: str, predicted: str, settings: dict[str, Any],
                      features: list[str], min_members: int) -> Any:
    from modelwatch.tasks.bias import compute_bias

    return compute_bias(frame, label=label, predicted=predicted, features=features,
                        min_members=min_members, **settings)


@task(name="bias-noise", cache_policy=NO_CACHE)
def noise_task(frame: pd.DataFrame, label: str, predicted: str, settings: dict[str, Any],
               features: list[str], min_members: int, window_rows: int) -> Any:
    from modelwatch.tasks.bias_constraints import metric_noise

    return metric_noise(frame, window_rows=window_rows, label=label, predicted=predicted,
                        features=features, min_members=min_members, **settings)


@flow(name="baseline-suggest-bias-drift", log_prints=True)
def suggest_bias_baseline(
    model: str,
    dataset: str,
    label: str,
    prediction: str,
    facets: list[str],
    group: str | None = None,
    label_values: str | None = None,
    probability_threshold: float = 0.5,
    bounds: list[str] | None = None,
    tolerance: float = 0.1,
    min_members: int = MIN_MEMBERS,
    window_rows: int = 1000,
    version: str = "1",
    store: str | None = None,
) -> dict[str, str]:
    """Post-training bias metrics of a labelled dataset with its predictions (analysis.json in
    Clarify's shape) and constraints: per facet and metric, the baseline's distance from fair plus a
    tolerance (or the metric's chance movement in a `window_rows` window, where larger), or the
    absolute bounds given (e.g. DI=0.8:1.25)."""
    from modelwatch.tasks.bias_constraints import suggest_bias_constraints
    from modelwatch.tasks.bias_documents import parse_bounds

    check_slug(model, "model name")
    check_slug(version, "model version")
    if not facets:
        raise UserError("a bias-drift baseline needs at least one --facet NAME[=VALUE|>THRESHOLD]")
    parsed_bounds = parse_bounds(bounds or [])
    manifest: dict[str, Any] = {
        "model": model, "version": version, "monitor_type": MONITOR_TYPE, "dataset": dataset,
        "label": label, "prediction": prediction, "facets": list(facets), "group": group,
        "label_values": label_values, "probability_threshold": probability_threshold,
        "tolerance": tolerance, "bounds": list(bounds or []), "min_members": min_members,
        "window_rows": window_rows,
    }
    settings = bias_settings(manifest)  # refuses bad facet or label-value texts before any work
    store_uri = store or default_store_uri()
    the_store = Store(store_uri)
    frame = numeric_where_possible(read_dataset(dataset).to_pandas())
    wanted = [label, prediction, *(f.name for f in settings["facets"]), *([group] if group else [])]
    _check_columns(frame, wanted, f"dataset {dataset}")
    features = model_features(the_store, model, list(frame.columns), {label, prediction})
    manifest["features"] = features
    manifest["created_at"] = datetime.now(UTC).isoformat()
    if window_rows < 10:
        raise UserError(f"window rows {window_rows}: expected at least 10")
    present = [f for f in features if f in frame.columns]
    analysis = compute_bias_task(frame, label, prediction, settings, present, min_members)
    noise = noise_task(frame, label, prediction, settings, present, min_members, window_rows)
    constraints = suggest_bias_constraints(analysis, tolerance=tolerance, bounds=parsed_bounds,
                                           noise=noise)
    prefix = baseline_prefix(model, version, MONITOR_TYPE)
    return {
        "analysis": the_store.write_json(f"{prefix}/analysis.json", analysis.dump()),
        "constraints": the_store.write_json(f"{prefix}/constraints.json", constraints.dump()),
        "baseline": the_store.write_json(f"{prefix}/baseline.json", manifest),
    }


def parse_bias_constraints(data: bytes, source: str) -> Any:
    """Our constraints.json, or a SageMaker bias baseline analysis.json used as constraints (a metric
    then may be no farther from fair than it was in the baseline, as SageMaker checks)."""
    from modelwatch.tasks.bias_constraints import constraints_from_analysis
    from modelwatch.tasks.bias_documents import BiasAnalysis, BiasConstraints

    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as problem:
        raise UserError(f"{source}: not valid JSON ({problem})") from None
    if isinstance(raw, dict) and "post_training_bias_metrics" in raw:
        return constraints_from_analysis(parse_document(BiasAnalysis, raw, source))
    return parse_document(BiasConstraints, raw, source)


def load_bias_baseline(store: Store, model: str, version: str | None) -> tuple[str, Any, dict, dict]:
    """(version, constraints, manifest, sources) of a model's bias-drift baseline."""
    version = version or latest_version(store, model)
    constraints, source = require_document(store, model, version, MONITOR_TYPE, "constraints.json",
                                           parse_bias_constraints)
    manifest = read_manifest(store, model, version, MONITOR_TYPE)
    if not manifest.get("facets") or not manifest.get("label"):
        raise UserError(f"model {model!r} version {version}: the {MONITOR_TYPE} baseline has no "
                        "baseline.json naming its facets and label (suggest it with `modelwatch "
                        "baseline suggest --type bias-drift ...`)")
    return version, constraints, manifest, {"constraints": source}


def check_bias_dataset(store: Store, model: str, dataset: str,
                       version: str | None) -> tuple[str, Any, Any]:
    """(baseline version, analysis, violations) of a labelled, predicted dataset against the
    model's bias-drift baseline: the facets, label and prediction columns its baseline names."""
    from modelwatch.tasks.bias import compute_bias
    from modelwatch.tasks.bias_constraints import check_bias

    version, constraints, manifest, _ = load_bias_baseline(store, model, version)
    settings = bias_settings(manifest)
    label, prediction = manifest["label"], manifest.get("prediction")
    if not prediction:
        raise UserError(f"model {model!r} version {version}: the bias-drift baseline names no "
                        "prediction column")
    frame = numeric_where_possible(read_dataset(dataset).to_pandas())
    _check_columns(frame, [label, prediction, *(f.name for f in settings["facets"]),
                           *([settings["group"]] if settings["group"] else [])],
                   f"dataset {dataset}")
    features = [f for f in manifest.get("features") or [] if f in frame.columns]
    analysis = compute_bias(frame, label=label, predicted=prediction, features=features,
                            min_members=manifest.get("min_members", MIN_MEMBERS), **settings)
    return version, analysis, check_bias(constraints, analysis)


def window_frame(batch: Any, label: str, features: list[str]) -> pd.DataFrame:
    """The merged window as a frame: captured inputs, the label and the prediction (the predicted
    label, or the score where the model answered only a score)."""
    frame = batch.input_frame(features)
    frame[label] = batch.labels
    frame[PREDICTED] = [p if p is not None else s for p, s in zip(batch.predictions, batch.scores,
                                                                   strict=True)]
    return numeric_where_possible(frame)


@flow(name="monitor-bias-drift", log_prints=True)
def monitor_bias_drift(
    model: str,
    start: datetime,
    end: datetime,
    merged: str | list[str] | None = None,
    store: str | None = None,
    version: str | None = None,
    min_records: int = MIN_RECORDS,
) -> dict[str, Any]:
    """One bias-drift execution over the merged records of [start, end): the baseline's facets and
    metrics on the window, checked against the allowed ranges. Fewer than `min_records` labelled
    records is NoData; a facet group too small for a figure is noted, not a violation."""
    from modelwatch.tasks.bias import facets_too_small
    from modelwatch.tasks.bias_constraints import check_bias

    check_slug(model, "model name")
    start, end = utc_window(start, end)
    store_uri = store or default_store_uri()
    the_store = Store(store_uri)
    version, constraints, manifest, sources = load_bias_baseline(the_store, model, version)
    roots = merged_roots(the_store, model, merged)
    run = begin_execution(store_uri, model, MONITOR_TYPE, version, start, end,
                          ", ".join(roots), sources)
    execution = run.execution
    metric: float | None = None
    violations: Any = None
    with outcome_recorded(run):
        settings = bias_settings(manifest)
        label = manifest["label"]
        features = manifest.get("features") or []
        check_merges_finished(the_store, model, merged, start, end)
        files = merged_files(roots, start, end)
        batch = read_merged_task(files, features)
        execution.files_read = len(files)
        execution.records_read = batch.records_read
        execution.records_malformed = len(batch.quarantine)
        execution.rows_profiled = len(batch.labels)
        documents = {"quarantine.jsonl": b"".join(orjson.dumps(q) + b"\n" for q in batch.quarantine)}
        if len(batch.labels) < min_records:
            execution.status = "NoData"
            execution.notes.append(f"{len(batch.labels)} labelled records in the window; at least "
                                   f"{min_records} are needed for a bias-drift verdict")
        else:
            frame = window_frame(batch, label, features)
            _check_columns(frame, [f.name for f in settings["facets"]]
                           + ([settings["group"]] if settings["group"] else []),
                           "the merged window's captured inputs")
            analysis = compute_bias_task(frame, label, PREDICTED, settings,
                                         [f for f in features if f in frame.columns],
                                         manifest.get("min_members", MIN_MEMBERS))
            violations = check_bias(constraints, analysis)
            execution.notes += facets_too_small(analysis) + violations.notes
            documents["analysis.json"] = json_dumps(analysis.dump()).encode()
            documents["constraint_violations.json"] = json_dumps(violations.dump()).encode()
            metric = headline_metric(analysis)
            count_violations(execution, [v.metric_name for v in violations.violations])
        execution.outputs = write_outputs_task(store_uri, run.prefix, documents)
        write_report(execution, store_uri, run.prefix,
                     violations.checks if violations is not None else [],
                     lambda: bias_sections(analysis, violations.checks)
                     if violations is not None else [])
    lines = summary_head(execution, f"{execution.rows_profiled} labelled records")
    if violations is not None:
        lines += [f"- {escape_markdown(f'{v.facet}={v.facet_value} {v.metric_name}: {v.description}')}"
                  for v in violations.violations]
    lines += [f"- {escape_markdown(note)}" for note in execution.notes]
    return finish_execution(run, metric, "\n".join(lines), metric_name="DPPL")


def headline_metric(analysis: Any) -> float | None:
    """The trend line's figure: DPPL of the first facet group that has one."""
    section = analysis.post_training_bias_metrics
    if section is None:
        return None
    for entries in section.facets.values():
        for entry in entries:
            for item in entry.metrics:
                if item.name == "DPPL" and item.value is not None:
                    return float(item.value)
    return None

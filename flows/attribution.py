"""Feature-attribution-drift flows: explain a sample of the training data with shap for the baseline
(global mean |SHAP| per feature, Clarify's analysis.json), and explain a sample of a window's captured
inputs the same way, reporting a violation when the feature ranking's nDCG falls below the threshold."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from modelwatch.flows.batch import load_model_task
from modelwatch.flows.bias import model_features, numeric_where_possible
from modelwatch.flows.lifecycle import (
    begin_execution,
    count_violations,
    finish_execution,
    note_skipped,
    outcome_recorded,
    summary_head,
    write_outputs_task,
    write_report,
)
from modelwatch.flows.window_records import capture_roots, read_inputs_task
from modelwatch.tasks.baselines import (
    baseline_prefix,
    latest_version,
    parser_of,
    read_manifest,
    require_document,
)
from modelwatch.tasks.capture import (
    PREDICTION,
    SkippedFile,
    list_capture_files,
    read_dataset,
)
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.markdown import escape_markdown
from modelwatch.tasks.monitor_reports import attribution_sections
from modelwatch.tasks.store import Store, check_slug, default_store_uri, json_dumps
from modelwatch.tasks.windows import utc_window

MONITOR_TYPE = "feature-attribution-drift"
MIN_RECORDS = 100


def artifact_of(store: Store, model: str, version: str) -> tuple[str, str | None]:
    """The registered artifact of a model version (what the explainer explains) and its SHA-256."""
    from modelwatch.tasks.registry import get_model

    registered = get_model(store, model).version(version)
    if not registered.artifact_uri:
        raise UserError(f"model {model!r} version {version} has no artifact: register one with "
                        f"`modelwatch models add-version --model {model} --artifact URI`")
    return registered.artifact_uri, registered.artifact_sha256


def model_inputs(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The model's feature columns, typed: text that reads as numbers becomes numbers (CSV captures
    carry text); other text stays for pipelines that encode it. Rows an explainer cannot take are
    counted by it (records_skipped), never dropped silently."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise UserError(f"feature(s) {', '.join(missing)} not in the data; columns are "
                        f"{', '.join(map(str, frame.columns))}")
    return numeric_where_possible(frame[features]).reset_index(drop=True)


@task(name="explain", cache_policy=NO_CACHE)
def explain_task(estimator: Any, frame: pd.DataFrame, features: list[str],
                 background: pd.DataFrame | None, settings: Any) -> Any:
    from modelwatch.tasks import progress
    from modelwatch.tasks.attribution import explain

    progress.step(f"explaining {len(frame):,} rows with shap")
    progress.expect("rows explained", len(frame))
    analysis = explain(estimator, frame, features, background=background, settings=settings)
    progress.advance("rows explained", len(frame))
    return analysis


@flow(name="baseline-suggest-feature-attribution-drift", log_prints=True)
def suggest_attribution_baseline(
    model: str,
    dataset: str,
    version: str = "1",
    label: str | None = None,
    sample_size: int | None = None,
    background_size: int | None = None,
    seed: int = 0,
    threshold: float | None = None,
    store: str | None = None,
) -> dict[str, str]:
    """Global attributions of the model version's artifact on a sample of `dataset`, the background
    sample a model-agnostic explainer needs (kept so every execution explains against the same one),
    and the nDCG threshold below which a window's ranking is a violation."""
    from modelwatch.tasks.attribution import DEFAULT_THRESHOLD

    check_slug(model, "model name")
    check_slug(version, "model version")
    settings = explain_settings(sample_size, background_size, seed)
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    if not 0 < threshold <= 1:
        raise UserError(f"nDCG threshold {threshold}: expected a value in (0, 1]")
    store_uri = store or default_store_uri()
    the_store = Store(store_uri)
    artifact, digest = artifact_of(the_store, model, version)
    frame = read_dataset(dataset).to_pandas()
    if label is not None and label not in frame.columns:
        raise UserError(f"dataset {dataset}: label column {label!r} not found")
    features = model_features(the_store, model, list(frame.columns), {label or "", PREDICTION})
    rows = model_inputs(frame, features)
    if rows.empty:
        raise UserError(f"dataset {dataset}: no rows")
    background = rows.sample(n=min(settings.background_size, len(rows)), random_state=settings.seed)
    analysis = explain_task(load_model_task(artifact, digest, f"model {model!r} version {version!r}"),
                            rows, features, background, settings)
    prefix = baseline_prefix(model, version, MONITOR_TYPE)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(background, preserve_index=False), buffer)
    manifest = {"model": model, "version": version, "monitor_type": MONITOR_TYPE, "dataset": dataset,
                "artifact": artifact, "artifact_sha256": digest, "features": features,
                "threshold": threshold,
                "settings": settings.dump(),
                "created_at": datetime.now(UTC).isoformat()}
    return {
        "analysis": the_store.write_json(f"{prefix}/analysis.json", analysis.dump()),
        "background": the_store.write_bytes(f"{prefix}/background.parquet", buffer.getvalue()),
        "baseline": the_store.write_json(f"{prefix}/baseline.json", manifest),
    }


def explain_settings(sample_size: int | None, background_size: int | None, seed: int,
                      recorded: dict[str, Any] | None = None) -> Any:
    from modelwatch.tasks.attribution import ExplainSettings

    values = dict(recorded or {})
    if sample_size is not None:
        values["sample_size"] = sample_size
    if background_size is not None:
        values["background_size"] = background_size
    values.setdefault("seed", seed)
    settings = ExplainSettings.model_validate(values)
    if settings.sample_size < 1 or settings.background_size < 1:
        raise UserError(f"sample size {settings.sample_size} and background size "
                        f"{settings.background_size}: both must be at least 1")
    return settings


def load_attribution_baseline(store: Store, model: str, version: str | None
                              ) -> tuple[str, Any, dict, pd.DataFrame | None, dict]:
    """(version, baseline analysis, manifest, background sample, sources); a reviewed analysis.json
    in the project (or SageMaker's own baseline analysis.json) wins over the suggested one."""
    from modelwatch.tasks.attribution import AttributionAnalysis

    version = version or latest_version(store, model)
    analysis, source = require_document(store, model, version, MONITOR_TYPE, "analysis.json",
                                        parser_of(AttributionAnalysis))
    manifest = read_manifest(store, model, version, MONITOR_TYPE)
    key = f"{baseline_prefix(model, version, MONITOR_TYPE)}/background.parquet"
    background = pd.read_parquet(io.BytesIO(store.read_bytes(key))) if store.exists(key) else None
    return version, analysis, manifest, background, {"analysis": source}


@flow(name="monitor-feature-attribution-drift", log_prints=True)
def monitor_feature_attribution_drift(
    model: str,
    start: datetime,
    end: datetime,
    capture: str | list[str] | None = None,
    store: str | None = None,
    version: str | None = None,
    threshold: float | None = None,
    sample_size: int | None = None,
    min_records: int = MIN_RECORDS,
    untimed: str = "quarantine",
) -> dict[str, Any]:
    """One feature-attribution-drift execution over the captured inputs of [start, end): explain a
    sample as the baseline was explained and compare the rankings (nDCG against the threshold)."""
    from modelwatch.tasks.attribution import DEFAULT_THRESHOLD, check_attribution

    check_slug(model, "model name")
    start, end = utc_window(start, end)
    store_uri = store or default_store_uri()
    the_store = Store(store_uri)
    version, baseline, manifest, background, sources = load_attribution_baseline(the_store, model,
                                                                                 version)
    captures = capture_roots(the_store, model, capture)
    run = begin_execution(store_uri, model, MONITOR_TYPE, version, start, end,
                          ", ".join(captures), sources)
    execution = run.execution
    limit = threshold if threshold is not None else manifest.get("threshold", DEFAULT_THRESHOLD)
    metric: float | None = None
    violations: Any = None
    scores: dict[str, float] = {}
    with outcome_recorded(run):
        features = manifest.get("features") or model_features(the_store, model, [], set())
        settings = explain_settings(sample_size, None, 0, manifest.get("settings"))
        skipped: list[SkippedFile] = []
        files = [f for root in captures for f in list_capture_files(root, start, end, skipped)]
        inputs = read_inputs_task(files, features, (start, end), untimed)
        raw, quarantine = inputs.frame, inputs.quarantine
        execution.records_read = inputs.records_read
        execution.records_outside_window = inputs.records_outside_window
        execution.records_without_time = inputs.records_without_time
        execution.blank_lines = inputs.blank_lines
        execution.files_read = len(files) - len(inputs.skipped)
        note_skipped(execution, skipped + inputs.skipped)
        execution.records_malformed = len(quarantine)
        rows = model_inputs(raw, features) if len(raw) else raw
        documents = {"quarantine.jsonl": b"".join(orjson.dumps(q) + b"\n" for q in quarantine)}
        if len(rows) < min_records:
            execution.status = "NoData"
            execution.notes.append(f"{len(rows)} captured rows in the window; at least "
                                   f"{min_records} are needed to compare attributions")
        else:
            artifact, digest = artifact_of(the_store, model, version)
            if manifest.get("artifact") and manifest["artifact"] != artifact:
                artifact, digest = manifest["artifact"], manifest.get("artifact_sha256")
            estimator = load_model_task(artifact, digest, f"model {model!r} version {version!r}")
            analysis = explain_task(estimator, rows, features, background, settings)
            info = analysis.modelwatch
            execution.rows_profiled = info.records_explained if info else min(len(rows),
                                                                                settings.sample_size)
            if info and info.records_skipped:
                execution.notes.append(f"{info.records_skipped} sampled rows had a missing feature "
                                       f"value and were not explained ({info.explainer} explainer)")
            violations, scores = check_attribution(baseline, analysis, threshold=limit)
            missing = sorted(set(baseline.labels()) ^ set(analysis.labels()))
            if missing:
                execution.notes.append("label(s) present on one side only, not compared: "
                                       + ", ".join(missing))
            metric = min(scores.values()) if scores else None
            documents["analysis.json"] = json_dumps(analysis.dump()).encode()
            documents["constraint_violations.json"] = json_dumps(violations.dump()).encode()
            count_violations(execution, [v.constraint_check_type for v in violations.violations])
        execution.outputs = write_outputs_task(store_uri, run.prefix, documents)
        write_report(execution, store_uri, run.prefix,
                     violations.checks if violations is not None else [],
                     lambda: attribution_sections(baseline, analysis, violations.checks)
                     if violations is not None else [], what="feature attribution drift")
    lines = summary_head(execution, f"{execution.rows_profiled} of {execution.records_read} captured "
                                    f"records explained; nDCG threshold {limit}")
    lines += [f"- {escape_markdown(label)}: nDCG {score:.4f}" for label, score in scores.items()]
    if violations is not None:
        lines += [f"- {escape_markdown(v.description)}" for v in violations.violations]
    lines += [f"- {escape_markdown(note)}" for note in execution.notes]
    return finish_execution(run, metric, "\n".join(lines), metric_name="nDCG")

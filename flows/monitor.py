"""Monitoring execution flow (data quality): profile a capture window per chunk of files, merge the
profiles, check them against the baseline and write the execution's documents, execution.json last."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from modelwatch.flows.fanout import MAX_CHUNKS, chunked
from modelwatch.flows.lifecycle import (
    begin_execution,
    count_violations,
    finish_execution,
    note_skipped,
    outcome_recorded,
    summary_head,
    write_outputs_task,
    write_page,
    write_report,
)
from modelwatch.flows.retries import STORE_RETRY
from modelwatch.flows.window_records import list_files_task
from modelwatch.runtime import configure_arrow
from modelwatch.tasks import progress
from modelwatch.tasks.baselines import Baseline, load_baseline
from modelwatch.tasks.capture import (
    DATASET_SUFFIXES,
    PREDICTION,
    CaptureCounts,
    SkippedFile,
    UnreadableFile,
    parse_capture,
    read_dataset,
)
from modelwatch.tasks.constraints import (
    MAX_MALFORMED_SHARE,
    drift_scores,
    evaluate_data_quality,
    violations_of,
)
from modelwatch.tasks.documents import Check, ConstraintViolations, Execution, VariantOutcome
from modelwatch.tasks.execution_report import data_quality_sections
from modelwatch.tasks.gx_suites import (
    GX_ROWS,
    GxOutcome,
    GxSuite,
    load_gx_suite,
    report_sections,
    run_suite,
)
from modelwatch.tasks.markdown import escape_markdown
from modelwatch.tasks.profile import (
    DatasetProfile,
    merge_profiles,
    profile_columns,
    profile_table,
    to_statistics,
)
from modelwatch.tasks.sources import file_variants
from modelwatch.tasks.store import Store, check_slug, default_store_uri, json_bytes, read_uri_bytes
from modelwatch.tasks.windows import utc_window

REPORT_ROWS = 5000
PROFILE_BATCH_ROWS = 50_000  # rows of parsed capture profiled at once: a few MB per feature at most


@dataclass
class ChunkResult(CaptureCounts):
    """A chunk of capture files: its merged profile, counts, quarantined lines and a row sample."""

    profile: DatasetProfile = field(default_factory=DatasetProfile)
    files: int = 0
    batches: int = 0
    sample: pd.DataFrame | None = None
    sample_keys: np.ndarray | None = None


def _bottom_k(frame: pd.DataFrame, keys: np.ndarray, k: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Keep the k rows with the smallest random keys: a uniform sample that merges exactly."""
    if len(keys) <= k:
        return frame, keys
    keep = np.argpartition(keys, k)[:k]
    return frame.iloc[keep].reset_index(drop=True), keys[keep]


def merge_samples(parts: list[tuple[pd.DataFrame | None, np.ndarray | None]],
                  k: int) -> tuple[pd.DataFrame | None, np.ndarray | None]:
    kept = [(f, keys) for f, keys in parts if f is not None and keys is not None and len(f)]
    if not kept:
        return None, None
    frame = pd.concat([f for f, _ in kept], ignore_index=True)
    return _bottom_k(frame, np.concatenate([keys for _, keys in kept]), k)


def profile_capture_files(files: list[str], features: list[str], categorical: set[str],
                          window: tuple[datetime, datetime] | None, sample_rows: int,
                          seed: int, untimed: str = "quarantine") -> ChunkResult:
    """Parse capture files one at a time and profile them in batches of up to PROFILE_BATCH_ROWS
    rows of one schema (memory stays bounded by the batch; profiling a batch costs about what one
    small file did, and capture files are often small), then merge."""
    result = ChunkResult(profile=DatasetProfile())
    rng = np.random.default_rng(seed)
    samples: list[tuple[pd.DataFrame, np.ndarray]] = []
    pending: list[pa.Table] = []
    pending_rows = 0

    def profile_pending() -> None:
        nonlocal pending_rows
        if pending:
            table = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
            result.profile.merge(profile_table(table, categorical=categorical,
                                               seed=seed * 7919 + result.batches))
            result.batches += 1
            pending.clear()
            pending_rows = 0

    for uri in files:
        try:
            batch = parse_capture(read_uri_bytes(uri), uri, features, window, untimed)
        except UnreadableFile as problem:
            result.skipped.append(SkippedFile(uri, str(problem)))
            continue
        result.files += 1
        result.add(batch)
        progress.advance("files profiled")
        progress.advance("records parsed", batch.records_read)
        for table in batch.tables:
            if pending and (table.schema != pending[0].schema
                            or pending_rows + table.num_rows > PROFILE_BATCH_ROWS):
                profile_pending()
            pending.append(table)
            pending_rows += table.num_rows
            if sample_rows:
                keys = rng.random(table.num_rows)
                take = np.argsort(keys)[:sample_rows]
                samples.append((table.take(pa.array(take)).to_pandas(), keys[take]))
                if sum(len(f) for f, _ in samples) > 2 * sample_rows:  # many small files: stay bounded
                    samples = [merge_samples(samples, sample_rows)]
    profile_pending()
    result.sample, result.sample_keys = merge_samples(samples, sample_rows)
    return result


def profile_dataset_file(uri: str, categorical: set[str], sample_rows: int) -> ChunkResult:
    """A plain CSV/Parquet dataset given instead of a capture root: one partition."""
    table = read_dataset(uri)
    columns = {n: table.column(n) for n in table.column_names}
    profile = profile_columns(columns, table.num_rows, categorical=categorical, seed=1)
    frame = table.to_pandas()
    keys = np.random.default_rng(1).random(len(frame))
    sample, sample_keys = _bottom_k(frame, keys, sample_rows)
    return ChunkResult(profile=profile, records_read=table.num_rows, files=1, sample=sample,
                       sample_keys=sample_keys)


@task(name="profile-capture-chunk", cache_policy=NO_CACHE, **STORE_RETRY)
def profile_chunk_task(files: list[str], features: list[str], categorical: set[str],
                       window: tuple[datetime, datetime] | None, sample_rows: int,
                       seed: int, untimed: str = "quarantine") -> ChunkResult:
    return profile_capture_files(files, features, categorical, window, sample_rows, seed, untimed)


@task(name="profile-dataset-file", cache_policy=NO_CACHE)
def profile_dataset_task(uri: str, categorical: set[str], sample_rows: int) -> ChunkResult:
    return profile_dataset_file(uri, categorical, sample_rows)


@task(name="check-constraints", cache_policy=NO_CACHE)
def check_task(baseline: Baseline, profile: DatasetProfile, records_read: int,
               records_malformed: int, max_malformed_share: float) -> list[Check]:
    return evaluate_data_quality(
        baseline.constraints, baseline.statistics, profile,
        records_read=records_read, records_malformed=records_malformed,
        max_malformed_share=max_malformed_share,
        ignore_columns={c for c in profile.columns if c.startswith(PREDICTION)},
    )


@task(name="run-gx-suite", cache_policy=NO_CACHE)
def gx_task(suite: GxSuite, baseline: Baseline, sample: pd.DataFrame | None,
            window_rows: int) -> GxOutcome:
    """The committed GX suite on the window's rows: all of them, or a uniform sample of GX_ROWS."""
    return run_suite(suite, sample, baseline.constraints, window_rows=window_rows)


@task(name="render-evidently-report", cache_policy=NO_CACHE)
def evidently_task(baseline: Baseline, sample: pd.DataFrame | None, title: str, status: str,
                   violations: ConstraintViolations) -> str:
    """evidently.html: Evidently's DataDriftPreset on the samples, labelled a second opinion."""
    from modelwatch.tasks.reports import drift_report_html

    reference = baseline.sample if baseline.sample is not None else pd.DataFrame()
    current = sample if sample is not None else pd.DataFrame()
    types = {f.name: f.inferred_type for f in baseline.constraints.features}
    return drift_report_html(
        reference, current,
        numerical=[n for n, t in types.items() if t in ("Integral", "Fractional")],
        categorical=[n for n, t in types.items() if t == "String"],
        max_rows=REPORT_ROWS, title=title,
        verdict=(status, [(v.feature_name, v.constraint_check_type, v.description)
                          for v in violations.violations]),
    )


def _max_drift(baseline: Baseline, profile: DatasetProfile) -> float | None:
    """The execution's headline: the largest drift distance of a feature from the baseline."""
    distances = [v for v in drift_scores(baseline.constraints, baseline.statistics,
                                         profile).values() if np.isfinite(v)]
    return max(distances) if distances else None


def _check_variants(execution: Execution, baseline: Baseline, part_variants: list[str | None],
                    results: list[ChunkResult], max_malformed_share: float) -> dict[str, Any]:
    """Check each production variant's records on their own (when the window holds several):
    their outcomes go on the execution, their statistics and violations are returned."""
    documents: dict[str, Any] = {}
    for variant in dict.fromkeys(v for v in part_variants if v is not None):
        mine = [r for v, r in zip(part_variants, results, strict=True) if v == variant]
        profile = merge_profiles([r.profile for r in mine])
        records = sum(r.records_read for r in mine)
        malformed = sum(len(r.quarantine) for r in mine)
        checks = check_task(quote(baseline), quote(profile), records, malformed,
                            max_malformed_share)
        violations = violations_of(checks)
        status = "CompletedWithViolations" if violations.violations else \
            "NoData" if profile.item_count == 0 else "Completed"
        execution.variants[variant] = VariantOutcome(
            records=records, status=status, metric_name="max drift distance",
            metric=_max_drift(baseline, profile), violation_count=len(violations.violations),
            violations=[f"{v.feature_name or '-'}: {v.constraint_check_type}"
                        for v in violations.violations])
        documents[variant] = {
            "statistics": to_statistics(profile, order=baseline.features).dump(),
            "violations": violations.dump(), "records_read": records, "records_malformed": malformed}
    return documents


def _markdown_summary(execution: Execution, violations: ConstraintViolations) -> str:
    lines = [
        *summary_head(execution, f"{execution.rows_profiled} rows from {execution.records_read} "
                                 f"records ({execution.records_malformed} malformed)"),
        "",
    ]
    if violations.violations:
        lines += ["| feature | check | description |", "| --- | --- | --- |"]
        lines += [
            f"| {escape_markdown(v.feature_name or '-')} | {v.constraint_check_type} | "
            f"{escape_markdown(v.description)} |" for v in violations.violations
        ]
    lines += [f"- {escape_markdown(note)}" for note in execution.notes]
    if execution.failure_reason:
        lines.append(f"Failure: {escape_markdown(execution.failure_reason)}")
    lines.append(f"\nReport: {escape_markdown(execution.outputs.get('report.html', 'none'))}")
    return "\n".join(lines)


def _quarantine_jsonl(entries: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in entries)


@flow(name="monitor-data-quality", log_prints=True)
def monitor_data_quality(
    model: str,
    capture: str | list[str],
    start: datetime,
    end: datetime,
    store: str | None = None,
    version: str | None = None,
    max_malformed_share: float = MAX_MALFORMED_SHARE,
    report: bool = True,
    chunks: int = MAX_CHUNKS,
    evidently: bool = False,
    untimed: str = "quarantine",
) -> dict[str, Any]:
    """Run one data-quality execution over capture records in [start, end) and return execution.json.

    `capture` is an endpoint's capture root (<root>/<variant>/YYYY/MM/DD/HH/*.jsonl), a list of them
    (a model behind several endpoints), or a CSV/Parquet dataset. Re-running the same window rewrites
    the same execution, re-indexes it and re-evaluates the model's alert. A record whose
    inferenceTime is missing or unreadable is quarantined, or with untimed="file-hour" placed by its
    file's hour folder.
    """
    configure_arrow()
    check_slug(model, "model name")
    start, end = utc_window(start, end)
    store_uri = store or default_store_uri()
    baseline = load_baseline(Store(store_uri), model, "data-quality", version, with_sample=False)
    gx_suite = load_gx_suite(Store(store_uri), model, baseline.version)  # None: GX is not imported
    if gx_suite is not None:
        baseline.sources["gx_suite"] = gx_suite.source
    captures = [capture] if isinstance(capture, str) else list(capture)
    run = begin_execution(store_uri, model, "data-quality", baseline.version, start, end,
                          ", ".join(captures), baseline.sources)
    execution = run.execution
    violations = ConstraintViolations()
    metric: float | None = None
    with outcome_recorded(run):
        categorical = {f.name for f in baseline.constraints.features if f.inferred_type == "String"}
        input_features = [f for f in baseline.features if f != PREDICTION]
        sample_rows = max(REPORT_ROWS if evidently else 0, GX_ROWS if gx_suite else 0)
        if len(captures) == 1 and captures[0].lower().endswith(DATASET_SUFFIXES):
            results = [profile_dataset_task(captures[0], categorical, max(REPORT_ROWS, sample_rows))]
            skipped: list[SkippedFile] = []
            part_variants = [None]
        else:
            progress.step("listing capture files")
            files, skipped = list_files_task(captures, start, end)
            progress.step("profiling capture files")
            progress.expect("files profiled", len(files))
            # An A/B test's variants are profiled apart (profiles merge, so the whole costs nothing
            # more), each to be checked on its own as well.
            groups: dict[str | None, list[str]] = {}
            for uri, variant in zip(files, file_variants(captures, files), strict=True):
                groups.setdefault(variant, []).append(uri)
            if len(groups) < 2:
                groups = {None: files}
            parts = [(variant, chunk) for variant, group in groups.items()
                     for chunk in chunked(group, chunks)]
            futures = profile_chunk_task.map(
                [chunk for _, chunk in parts], unmapped(input_features), unmapped(categorical),
                unmapped((start, end)), unmapped(sample_rows), list(range(len(parts))),
                unmapped(untimed),
            )
            results = [f.result() for f in futures]
            part_variants = [variant for variant, _ in parts]
        note_skipped(execution, skipped + [s for r in results for s in r.skipped])
        profile = merge_profiles([r.profile for r in results])
        quarantine = [q for r in results for q in r.quarantine]
        execution.files_read = sum(r.files for r in results)
        execution.records_read = sum(r.records_read for r in results)
        execution.records_outside_window = sum(r.records_outside_window for r in results)
        execution.records_without_time = sum(r.records_without_time for r in results)
        execution.blank_lines = sum(r.blank_lines for r in results)
        execution.records_malformed = len(quarantine)
        execution.rows_profiled = profile.item_count
        # quote(): Prefect would otherwise walk every nested document looking for futures (~0.1 s each).
        progress.step("checking constraints")
        checks = check_task(quote(baseline), quote(profile), execution.records_read,
                            execution.records_malformed, max_malformed_share)
        gx = None
        if gx_suite is not None and profile.item_count:
            sample, _ = merge_samples([(r.sample, r.sample_keys) for r in results], GX_ROWS)
            gx = gx_task(quote(gx_suite), quote(baseline), sample, profile.item_count)
            checks += gx.checks
            execution.notes.append(gx.note)
        violations = violations_of(checks)
        statistics = to_statistics(profile, order=baseline.features)
        metric = _max_drift(baseline, profile)
        variant_documents = _check_variants(execution, baseline, part_variants, results,
                                            max_malformed_share)
        execution.outputs = write_outputs_task(store_uri, run.prefix, {
            **({"variants.json": json_bytes(variant_documents)} if variant_documents else {}),
            "statistics.json": json_bytes(statistics.dump()),
            "constraint_violations.json": json_bytes(violations.dump()),
            "quarantine.jsonl": _quarantine_jsonl(quarantine),
            **({"gx_validation.json": json_bytes(gx.result)} if gx is not None else {}),
        })
        count_violations(execution, [v.constraint_check_type for v in violations.violations])
        if not violations.violations and profile.item_count == 0:
            execution.status = "NoData"
            execution.notes.append("the window held no usable capture records")
        if baseline.statistics is None:
            execution.notes.append("no baseline statistics: baseline_drift_check was skipped")
        title = f"{model} data quality, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        # The reports are optional, the verdict is not: the documents above are already written.
        if report:
            write_report(execution, store_uri, run.prefix, checks, lambda: data_quality_sections(
                checks, baseline.statistics, statistics) + report_sections(gx), what="data quality")
        if evidently:
            sample, _ = merge_samples([(r.sample, r.sample_keys) for r in results], REPORT_ROWS)
            with_sample = load_baseline(Store(store_uri), model, "data-quality", baseline.version)
            write_page(execution, store_uri, run.prefix, "evidently.html", lambda: evidently_task(
                quote(with_sample), sample, f"{title} (Evidently, a second opinion)", execution.status,
                violations))
    return finish_execution(run, metric, _markdown_summary(execution, violations),
                            metric_name="max drift distance")

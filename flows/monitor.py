"""Monitoring execution flow (data quality): profile a capture window per chunk of files, merge the
profiles, check them against the baseline and write the execution's documents, execution.json last."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
from prefect import flow, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from modelwatch.errors import UserError
from tasks.baselines import Baseline, load_baseline
from tasks.capture import PREDICTION, list_capture_files, parse_capture, read_dataset
from tasks.constraints import MAX_MALFORMED_SHARE, check_data_quality, drift_scores
from tasks.documents import ConstraintViolations, Execution
from tasks.profile import DatasetProfile, merge_profiles, profile_columns, profile_table, to_statistics
from tasks.store import Store, check_slug, default_store_uri, read_uri_bytes

REPORT_ROWS = 5000
MAX_CHUNKS = 8  # Prefect records every task run: tens of tasks per flow, not one per file


def execution_prefix(model: str, monitor_type: str, start: datetime, end: datetime) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    return f"monitoring/{model}/{monitor_type}/{start.strftime(stamp)}_{end.strftime(stamp)}"


@dataclass
class ChunkResult:
    """A chunk of capture files: its merged profile, counts, quarantined lines and a row sample."""

    profile: DatasetProfile
    records_read: int = 0
    records_outside_window: int = 0
    files: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)
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
                          seed: int) -> ChunkResult:
    """Parse and profile capture files one at a time (bounded memory) and merge."""
    result = ChunkResult(profile=DatasetProfile())
    rng = np.random.default_rng(seed)
    samples: list[tuple[pd.DataFrame, np.ndarray]] = []
    for i, uri in enumerate(files):
        batch = parse_capture(read_uri_bytes(uri), uri, features, window)
        result.files += 1
        result.records_read += batch.records_read
        result.records_outside_window += batch.records_outside_window
        result.quarantine.extend(batch.quarantine)
        for j, table in enumerate(batch.tables):
            result.profile.merge(profile_table(table, categorical=categorical,
                                               seed=seed * 7919 + i * 7 + j))
            if sample_rows:
                keys = rng.random(table.num_rows)
                take = np.argsort(keys)[:sample_rows]
                samples.append((table.take(pa.array(take)).to_pandas(), keys[take]))
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


@task(name="profile-capture-chunk", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def profile_chunk_task(files: list[str], features: list[str], categorical: set[str],
                       window: tuple[datetime, datetime] | None, sample_rows: int,
                       seed: int) -> ChunkResult:
    return profile_capture_files(files, features, categorical, window, sample_rows, seed)


@task(name="profile-dataset-file", cache_policy=NO_CACHE)
def profile_dataset_task(uri: str, categorical: set[str], sample_rows: int) -> ChunkResult:
    return profile_dataset_file(uri, categorical, sample_rows)


@task(name="list-capture-files", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def list_files_task(captures: list[str], start: datetime, end: datetime) -> list[str]:
    return [f for capture in captures for f in list_capture_files(capture, start, end)]


@task(name="update-alert", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def update_alert_task(store_uri: str, execution: Execution, metric: float | None) -> str | None:
    """Index the execution, re-evaluate the alert; emit an event only on a transition."""
    from tasks.alerts import read_alert, save_alert, update_alert
    from tasks.events import emit_transition
    from tasks.executions import record_execution

    store = Store(store_uri)
    index = record_execution(store, execution, metric)
    alert = read_alert(store, execution.model, execution.monitor_type)
    transition = update_alert(alert, index.executions, model_version=execution.model_version)
    save_alert(store, alert)
    if transition is None:
        return None
    print(f"alert {transition.state} for {execution.model} {execution.monitor_type}: "
          f"{transition.reason}")
    return emit_transition(transition)


@task(name="check-constraints", cache_policy=NO_CACHE)
def check_task(baseline: Baseline, profile: DatasetProfile, records_read: int,
               records_malformed: int, max_malformed_share: float) -> ConstraintViolations:
    return check_data_quality(
        baseline.constraints, baseline.statistics, profile,
        records_read=records_read, records_malformed=records_malformed,
        max_malformed_share=max_malformed_share,
        ignore_columns={c for c in profile.columns if c.startswith(PREDICTION)},
    )


@task(name="render-report", cache_policy=NO_CACHE)
def report_task(baseline: Baseline, sample: pd.DataFrame | None, title: str) -> str:
    from tasks.reports import drift_report_html

    reference = baseline.sample if baseline.sample is not None else pd.DataFrame()
    current = sample if sample is not None else pd.DataFrame()
    types = {f.name: f.inferred_type for f in baseline.constraints.features}
    return drift_report_html(
        reference, current,
        numerical=[n for n, t in types.items() if t in ("Integral", "Fractional")],
        categorical=[n for n, t in types.items() if t == "String"],
        max_rows=REPORT_ROWS, title=title,
    )


@task(name="write-execution", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def write_outputs_task(store_uri: str, prefix: str, documents: dict[str, bytes]) -> dict[str, str]:
    store = Store(store_uri)
    return {name: store.write_bytes(f"{prefix}/{name}", data) for name, data in documents.items()}


def chunked(items: list[str], chunks: int) -> list[list[str]]:
    if not items:
        return []
    size = -(-len(items) // max(1, min(chunks, len(items))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _markdown_summary(execution: Execution, violations: ConstraintViolations) -> str:
    lines = [
        f"### {execution.model} · {execution.monitor_type} · {execution.status}",
        f"Window {execution.window_start:%Y-%m-%d %H:%M} to {execution.window_end:%Y-%m-%d %H:%M}"
        f" UTC; {execution.rows_profiled} rows from {execution.records_read} records "
        f"({execution.records_malformed} malformed).",
        "",
    ]
    if violations.violations:
        lines += ["| feature | check | description |", "| --- | --- | --- |"]
        lines += [
            f"| {v.feature_name or '-'} | {v.constraint_check_type} | "
            f"{v.description.replace('|', '/')} |" for v in violations.violations
        ]
    if execution.failure_reason:
        lines.append(f"Failure: {execution.failure_reason}")
    lines.append(f"\nReport: {execution.outputs.get('report', 'none')}")
    return "\n".join(lines)


def artifact_key(model: str, monitor_type: str) -> str:
    return f"{model}-{monitor_type}".replace("_", "-").replace(".", "-")


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
) -> dict[str, Any]:
    """Run one data-quality execution over capture records in [start, end) and return execution.json.

    `capture` is an endpoint's capture root (<root>/<variant>/YYYY/MM/DD/HH/*.jsonl), a list of them
    (a model behind several endpoints), or a CSV/Parquet dataset. Re-running the same window rewrites
    the same execution, re-indexes it and re-evaluates the model's alert.
    """
    check_slug(model, "model name")
    start, end = utc_window(start, end)
    store_uri = store or default_store_uri()
    baseline = load_baseline(Store(store_uri), model, "data-quality", version)
    captures = [capture] if isinstance(capture, str) else list(capture)
    prefix, execution = begin_execution(store_uri, model, "data-quality", baseline.version, start, end,
                                        ", ".join(captures), baseline.sources)
    violations = ConstraintViolations()
    metric: float | None = None
    with outcome_recorded(execution):
        categorical = {f.name for f in baseline.constraints.features if f.inferred_type == "String"}
        input_features = [f for f in baseline.features if f != PREDICTION]
        if len(captures) == 1 and captures[0].lower().endswith((".csv", ".parquet", ".pq")):
            results = [profile_dataset_task(captures[0], categorical, REPORT_ROWS)]
        else:
            files = list_files_task(captures, start, end)
            futures = profile_chunk_task.map(
                chunked(files, chunks), unmapped(input_features), unmapped(categorical),
                unmapped((start, end)), unmapped(REPORT_ROWS if report else 0),
                list(range(len(chunked(files, chunks)))),
            )
            results = [f.result() for f in futures]
        profile = merge_profiles([r.profile for r in results])
        quarantine = [q for r in results for q in r.quarantine]
        execution.files_read = sum(r.files for r in results)
        execution.records_read = sum(r.records_read for r in results)
        execution.records_outside_window = sum(r.records_outside_window for r in results)
        execution.records_malformed = len(quarantine)
        execution.rows_profiled = profile.item_count
        violations = check_task(baseline, profile, execution.records_read,
                                execution.records_malformed, max_malformed_share)
        statistics = to_statistics(profile, order=baseline.features)
        distances = [v for name, v in drift_scores(baseline.constraints, baseline.statistics,
                                                    profile).items() if np.isfinite(v)]
        metric = max(distances) if distances else None
        documents = {
            "statistics.json": _json_bytes(statistics.dump()),
            "constraint_violations.json": _json_bytes(violations.dump()),
            "quarantine.jsonl": _quarantine_jsonl(quarantine),
        }
        if report:
            sample, _ = merge_samples([(r.sample, r.sample_keys) for r in results], REPORT_ROWS)
            title = f"{model} data quality, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
            documents["report.html"] = report_task(baseline, sample, title).encode("utf-8")
        execution.outputs = write_outputs_task(store_uri, prefix, documents)
        count_violations(execution, [v.constraint_check_type for v in violations.violations])
        if not violations.violations and profile.item_count == 0:
            execution.status = "NoData"
            execution.notes.append("the window held no usable capture records")
        if baseline.statistics is None:
            execution.notes.append("no baseline statistics: baseline_drift_check was skipped")
    return finish_execution(store_uri, prefix, execution, metric,
                            _markdown_summary(execution, violations))


def begin_execution(store_uri: str, model: str, monitor_type: str, version: str, start: datetime,
                    end: datetime, source: str, baseline_sources: dict[str, str]) -> tuple[str, Execution]:
    """(prefix, Execution in progress) of one window; a re-run first withdraws the old execution.json,
    so a crash midway never leaves a stale "done"."""
    from prefect.runtime import flow_run

    prefix = execution_prefix(model, monitor_type, start, end)
    execution = Execution(model=model, model_version=version, monitor_type=monitor_type,
                          window_start=start, window_end=end, status="Completed", capture=source,
                          baseline=baseline_sources, started_at=datetime.now(UTC),
                          flow_run_id=str(flow_run.id) if flow_run.id else None)
    Store(store_uri).delete(f"{prefix}/execution.json")
    return prefix, execution


def utc_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise UserError(f"window end {end.isoformat()} must be after its start {start.isoformat()}")
    return start, end


def count_violations(execution: Execution, kinds: list[str]) -> None:
    """Violation count and per-kind tally of an execution (check type, or metric name); any violation
    makes it CompletedWithViolations."""
    execution.violation_count = len(kinds)
    for kind in kinds:
        execution.violation_types[kind] = execution.violation_types.get(kind, 0) + 1
    if kinds:
        execution.status = "CompletedWithViolations"


@contextlib.contextmanager
def outcome_recorded(execution: Execution) -> Iterator[None]:
    """A user's error propagates (exit code 2); any other failure becomes the execution's outcome."""
    try:
        yield
    except UserError:
        raise
    except Exception as problem:  # noqa: BLE001 - recorded, then finish_execution fails the run
        mark_failed(execution, problem)


def summary_head(execution: Execution, what: str) -> list[str]:
    """The first lines of an execution's markdown artifact."""
    return [f"### {execution.model} · {execution.monitor_type} · {execution.status}",
            f"{what}, window {execution.window_start:%Y-%m-%d %H:%M} to "
            f"{execution.window_end:%Y-%m-%d %H:%M} UTC."]


def mark_failed(execution: Execution, problem: Exception) -> None:
    execution.status = "Failed"
    execution.failure_reason = f"{type(problem).__name__}: {problem}"[:1024]


def finish_execution(store_uri: str, prefix: str, execution: Execution, metric: float | None,
                     markdown: str) -> dict[str, Any]:
    """Write execution.json last, index it and re-evaluate the alert, publish the summary artifact;
    a Failed execution then fails the flow run, with everything about it recorded."""
    store = Store(store_uri)
    execution.finished_at = datetime.now(UTC)
    execution.outputs["execution"] = store.uri(f"{prefix}/execution.json")
    store.write_json(f"{prefix}/execution.json", execution.dump())
    update_alert_task(store_uri, execution, metric)
    create_markdown_artifact(
        key=artifact_key(execution.model, execution.monitor_type), markdown=markdown,
        description=f"{execution.model} {execution.monitor_type} execution {execution.status}",
    )
    if execution.status == "Failed":
        raise RuntimeError(f"{execution.monitor_type} execution failed: {execution.failure_reason}")
    return execution.dump()


def _json_bytes(document: Any) -> bytes:
    from tasks.store import json_dumps

    return json_dumps(document).encode("utf-8")

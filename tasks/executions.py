"""Where executions live and their per-model, per-monitor index (monitoring/<model>/<type>/index.json),
so that alerts, the dashboard and trend charts read one small document instead of every execution.

An execution's folder holds attempt.json while it runs (who runs it, refreshed by a heartbeat) and
execution.json once it has an outcome, written last. The index lists a running execution as Running and
never points at an execution.json that is not there; a Running entry whose heartbeat stopped is turned
into Failed ("interrupted") by `reconcile`. Every index change is an atomic read-modify-write of the
store, so concurrent executions of one model (a backfill beside a schedule) lose no entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import Field, ValidationError

from modelwatch.tasks.dashboard import ExecutionSummary
from modelwatch.tasks.documents import Execution, OwnDocument
from modelwatch.tasks.store import Store, check_slug

# The latest executions per monitor: the trend chart's window and the longest evaluation period.
# Older executions stay in the store, unindexed, so the dashboard's cost does not grow with history.
MAX_ENTRIES = 60
STAMP = "%Y%m%dT%H%M%SZ"
RUNNING = "Running"
logger = logging.getLogger("modelwatch.executions")


class ExecutionIndex(OwnDocument):
    model: str
    monitor_type: str
    executions: list[ExecutionSummary] = Field(default_factory=list)  # oldest first, by window


class Attempt(OwnDocument):
    """attempt.json: the flow run working on an execution, and when it last said it was alive."""

    flow_run_id: str | None = None
    started_at: datetime
    heartbeat_at: datetime
    host: str | None = None
    pid: int | None = None
    heartbeat_seconds: float | None = None  # the writer's interval: readers judge staleness by it


def execution_prefix(model: str, monitor_type: str, start: datetime, end: datetime) -> str:
    return (f"monitoring/{check_slug(model, 'model name')}/{monitor_type}/"
            f"{start.astimezone(UTC).strftime(STAMP)}_{end.astimezone(UTC).strftime(STAMP)}")


def index_key(model: str, monitor_type: str) -> str:
    return f"monitoring/{model}/{monitor_type}/index.json"


def read_index(store: Store, model: str, monitor_type: str) -> ExecutionIndex:
    """The index; one that cannot be read is rebuilt from the execution documents."""
    key = index_key(model, monitor_type)
    if not store.exists(key):
        return ExecutionIndex(model=model, monitor_type=monitor_type)
    try:
        return ExecutionIndex.model_validate(store.read_json(key))
    except (ValueError, ValidationError) as problem:
        logger.warning("%s is unreadable (%s): rebuilt from the executions", store.uri(key), problem)
        return rebuild_index(store, model, monitor_type)


def rebuild_index(store: Store, model: str, monitor_type: str) -> ExecutionIndex:
    """The index as the executions' own documents tell it (the latest MAX_ENTRIES windows)."""
    index = ExecutionIndex(model=model, monitor_type=monitor_type)
    folders = [f for f in store.list_dirs(f"monitoring/{model}/{monitor_type}") if "_" in f]
    for folder in sorted(folders)[-MAX_ENTRIES:]:
        key = f"monitoring/{model}/{monitor_type}/{folder}/execution.json"
        if not store.exists(key):
            continue
        try:
            execution = Execution.model_validate(store.read_json(key))
        except (ValueError, ValidationError):
            continue
        add_to_index(index, summarize_execution(execution))
    return index


def update_index(store: Store, model: str, monitor_type: str,
                 change: Callable[[ExecutionIndex], bool]) -> ExecutionIndex:
    """Apply `change` (True when it changed something) to the index, atomically."""
    def mutate(raw: object) -> dict | None:
        index = _parse_index(store, model, monitor_type, raw)
        return index.dump() if change(index) else None

    written = store.update_json(index_key(model, monitor_type), mutate, indent=None)
    return _parse_index(store, model, monitor_type, written)


def _parse_index(store: Store, model: str, monitor_type: str, raw: object) -> ExecutionIndex:
    if raw is None:
        return ExecutionIndex(model=model, monitor_type=monitor_type)
    try:
        return ExecutionIndex.model_validate(raw)
    except ValidationError:
        return rebuild_index(store, model, monitor_type)


def summarize_execution(execution: Execution, metric: float | None = None) -> ExecutionSummary:
    return ExecutionSummary(
        monitor_type=execution.monitor_type, window_start=execution.window_start,
        window_end=execution.window_end, status=execution.status,
        violation_count=execution.violation_count, records_read=execution.records_read,
        started_at=execution.started_at, finished_at=execution.finished_at,
        report_uri=_report(execution.outputs), execution_uri=execution.outputs.get("execution"),
        metric=metric if metric is not None else execution.metric,
        flow_run_id=execution.flow_run_id, failure_reason=execution.failure_reason,
        variants=execution.variants,
    )


# What a model page links as an execution's report: the HTML report where there is one (data quality),
# else the monitor's main document.
REPORT_DOCUMENTS = ("report.html", "analysis.json", "statistics.json")


def _report(outputs: dict[str, str]) -> str | None:
    return next((outputs[name] for name in REPORT_DOCUMENTS if name in outputs), None)


def add_to_index(index: ExecutionIndex, entry: ExecutionSummary) -> bool:
    """Put `entry` in window order; a re-run of a window replaces its entry."""
    kept = [e for e in index.executions
            if (e.window_start, e.window_end) != (entry.window_start, entry.window_end)]
    kept.append(entry)
    kept.sort(key=lambda e: (e.window_end, e.window_start))
    index.executions = kept[-MAX_ENTRIES:]
    return True


def record_running(store: Store, execution: Execution) -> ExecutionIndex:
    """Index an execution that has begun: its window's entry says Running, with no document to link
    (the previous outcome of the window was withdrawn)."""
    entry = ExecutionSummary(monitor_type=execution.monitor_type, window_start=execution.window_start,
                             window_end=execution.window_end, status=RUNNING,
                             started_at=execution.started_at, flow_run_id=execution.flow_run_id)
    return update_index(store, execution.model, execution.monitor_type,
                        lambda index: add_to_index(index, entry))


def record_execution(store: Store, execution: Execution, metric: float | None = None) -> ExecutionIndex:
    """Index an execution's outcome (its execution.json is written)."""
    entry = summarize_execution(execution, metric)
    return update_index(store, execution.model, execution.monitor_type,
                        lambda index: add_to_index(index, entry))


def attempt_key(prefix: str) -> str:
    return f"{prefix}/attempt.json"


def read_attempt(store: Store, prefix: str) -> Attempt | None:
    key = attempt_key(prefix)
    try:
        return Attempt.model_validate(store.read_json(key)) if store.exists(key) else None
    except (ValueError, ValidationError):
        return None


STALE_HEARTBEATS = 10  # missed heartbeats after which a run counts as dead


def is_stale(attempt: Attempt | None, started_at: datetime | None, now: datetime,
             stale_after: timedelta) -> bool:
    """No sign of life for long enough: the heartbeat older than STALE_HEARTBEATS of the interval
    the run itself recorded (else `stale_after`), or, without an attempt, the start that old."""
    if attempt is not None and attempt.heartbeat_seconds:
        stale_after = timedelta(seconds=attempt.heartbeat_seconds * STALE_HEARTBEATS)
    alive = attempt.heartbeat_at if attempt is not None else started_at
    return alive is None or now - alive > stale_after


def reconcile(store: Store, model: str, monitor_type: str, now: datetime, stale_after: timedelta,
              index: ExecutionIndex | None = None) -> tuple[ExecutionIndex, list[ExecutionSummary]]:
    """Settle the index's Running entries: one whose execution.json has since been written takes its
    outcome (a run that died between its last two writes); one whose heartbeat stopped becomes
    Failed, interrupted. Returns the index and the entries found interrupted (their flow runs are
    dead: the caller may tell Prefect)."""
    index = index or read_index(store, model, monitor_type)
    # window -> (the flow run of the Running entry looked at, what replaces it)
    replacements: dict[tuple[datetime, datetime], tuple[str | None, ExecutionSummary]] = {}
    interrupted: list[ExecutionSummary] = []
    for entry in index.executions:
        if entry.status != RUNNING:
            continue
        prefix = execution_prefix(model, monitor_type, entry.window_start, entry.window_end)
        finished = _finished_since(store, prefix, entry)
        if finished is not None:
            replacements[(entry.window_start, entry.window_end)] = (entry.flow_run_id, finished)
            continue
        attempt = read_attempt(store, prefix)
        if attempt is not None and attempt.flow_run_id != entry.flow_run_id:
            attempt = None  # another run's attempt: this entry's own run left no sign of life
        if is_stale(attempt, entry.started_at, now, stale_after):
            since = attempt.heartbeat_at if attempt is not None else entry.started_at
            failed = entry.model_copy(update={
                "status": "Failed", "finished_at": now,
                "failure_reason": f"interrupted: the run (flow run {entry.flow_run_id or 'unknown'}) "
                                  f"stopped without an outcome; last sign of life "
                                  f"{since.isoformat() if since else 'never'}"})
            replacements[(entry.window_start, entry.window_end)] = (entry.flow_run_id, failed)
            interrupted.append(failed)
    if not replacements:
        return index, []

    def change(current: ExecutionIndex) -> bool:
        changed = False
        for i, entry in enumerate(current.executions):
            examined, new = replacements.get((entry.window_start, entry.window_end), (None, None))
            # Only the very entry looked at: a run that began meanwhile has its own.
            if new is not None and entry.status == RUNNING and entry.flow_run_id == examined:
                current.executions[i] = new
                changed = True
        return changed

    return update_index(store, model, monitor_type, change), interrupted


def _finished_since(store: Store, prefix: str, entry: ExecutionSummary) -> ExecutionSummary | None:
    key = f"{prefix}/execution.json"
    if not store.exists(key):
        return None
    try:
        execution = Execution.model_validate(store.read_json(key))
    except (ValueError, ValidationError):
        return None
    same_run = entry.flow_run_id is not None and execution.flow_run_id == entry.flow_run_id
    later = (execution.started_at is not None and entry.started_at is not None
             and execution.started_at >= entry.started_at)
    return summarize_execution(execution) if same_run or later else None

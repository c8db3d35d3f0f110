"""The per-model, per-monitor index of executions (monitoring/<model>/<type>/index.json), so that
alerts, the dashboard and trend charts read one small document instead of every execution."""

from __future__ import annotations

from pydantic import Field

from tasks.dashboard import ExecutionSummary
from tasks.documents import Document, Execution
from tasks.store import Store

# The latest executions per monitor: the trend chart's window and the longest evaluation period.
# Older executions stay in the store, unindexed, so the dashboard's cost does not grow with history.
MAX_ENTRIES = 60


class ExecutionIndex(Document):
    model: str
    monitor_type: str
    executions: list[ExecutionSummary] = Field(default_factory=list)  # oldest first, by window


def index_key(model: str, monitor_type: str) -> str:
    return f"monitoring/{model}/{monitor_type}/index.json"


def read_index(store: Store, model: str, monitor_type: str) -> ExecutionIndex:
    key = index_key(model, monitor_type)
    if not store.exists(key):
        return ExecutionIndex(model=model, monitor_type=monitor_type)
    return ExecutionIndex.model_validate(store.read_json(key))


def summarize_execution(execution: Execution, metric: float | None = None) -> ExecutionSummary:
    return ExecutionSummary(
        monitor_type=execution.monitor_type, window_start=execution.window_start,
        window_end=execution.window_end, status=execution.status,
        violation_count=execution.violation_count, records_read=execution.records_read,
        finished_at=execution.finished_at, report_uri=_report(execution.outputs),
        execution_uri=execution.outputs.get("execution"), metric=metric,
    )


# What a model page links as an execution's report: the HTML report where there is one (data quality),
# else the monitor's main document.
REPORT_DOCUMENTS = ("report.html", "analysis.json", "statistics.json")


def _report(outputs: dict[str, str]) -> str | None:
    return next((outputs[name] for name in REPORT_DOCUMENTS if name in outputs), None)


def add_to_index(index: ExecutionIndex, entry: ExecutionSummary) -> ExecutionIndex:
    """The index with `entry` in window order; a re-run of a window replaces its entry."""
    kept = [e for e in index.executions
            if (e.window_start, e.window_end) != (entry.window_start, entry.window_end)]
    kept.append(entry)
    kept.sort(key=lambda e: (e.window_end, e.window_start))
    index.executions = kept[-MAX_ENTRIES:]
    return index


def record_execution(store: Store, execution: Execution, metric: float | None = None) -> ExecutionIndex:
    """Add an execution to its index. Read-modify-write: one writer per model and monitor type (a
    schedule runs one execution at a time) keeps it consistent."""
    index = add_to_index(read_index(store, execution.model, execution.monitor_type),
                         summarize_execution(execution, metric))
    store.write_json(index_key(execution.model, execution.monitor_type), index.dump(), indent=None)
    return index

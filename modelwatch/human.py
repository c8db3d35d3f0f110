"""Lines for people about monitoring executions: what `monitor run` says on stderr after its JSON and
what the demo prints. Numbers are rounded to four significant digits (tasks.numbers); the JSON
documents keep full precision. Each violation is said the way its monitor type says it (a bias-drift
violation names its facet, facet value and metric), followed by its description."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelwatch.tasks.numbers import human_number, human_text

MAX_VIOLATION_LINES = 20


def _moment(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return f"{value:%Y-%m-%d %H:%M}"


def execution_line(execution: dict[str, Any]) -> str:
    """One line: model, type, window, status, violation count and the headline metric.

    Parameters
    ----------
    execution : dict
        An execution.json document.

    Returns
    -------
    str
        E.g. ``churn data-quality 2026-11-24 00:00 to 2026-11-25 00:00 UTC: CompletedWithViolations,
        3 violation(s), max drift distance 0.1235``.
    """
    said = [f"{execution['model']} {execution['monitor_type']} {_moment(execution['window_start'])} "
            f"to {_moment(execution['window_end'])} UTC: {execution['status']}"]
    if execution.get("violation_count"):
        said.append(f"{execution['violation_count']} violation(s)")
    if execution.get("metric") is not None:
        said.append(f"{execution.get('metric_name') or 'metric'} {human_number(execution['metric'])}")
    line = ", ".join(said)
    return f"{line}: {execution['failure_reason']}" if execution.get("failure_reason") else line


def violations_of(execution: dict[str, Any]) -> list[dict[str, Any]]:
    """The violations in the execution's constraint_violations.json ([] when it wrote none)."""
    import orjson

    from modelwatch.tasks.store import read_uri_bytes

    uri = (execution.get("outputs") or {}).get("constraint_violations.json")
    return list(orjson.loads(read_uri_bytes(uri)).get("violations", [])) if uri else []


def violation_line(monitor_type: str, violation: dict[str, Any]) -> str:
    """What the violation is about, as its type says it (`Monitor.describe_violation`), and its
    description with numbers rounded."""
    from modelwatch.flows.monitor_types import get_monitor

    head = get_monitor(monitor_type).describe_violation(violation)
    description = human_text(violation.get("description") or "")
    return f"{head}: {description}" if description else head


def execution_lines(execution: dict[str, Any]) -> list[str]:
    """`execution_line`, then a line per violation (at most MAX_VIOLATION_LINES, then a count)."""
    lines = [execution_line(execution)]
    try:
        violations = violations_of(execution)
    except Exception as problem:  # noqa: BLE001 - the document is out already; say what is missing
        return [*lines, f"  (its violations could not be read: {type(problem).__name__}: {problem})"]
    lines += [f"  {violation_line(execution['monitor_type'], v)}"
              for v in violations[:MAX_VIOLATION_LINES]]
    if len(violations) > MAX_VIOLATION_LINES:
        lines.append(f"  ... and {len(violations) - MAX_VIOLATION_LINES} more in "
                     f"{execution['outputs']['constraint_violations.json']}")
    return lines

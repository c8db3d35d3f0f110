"""The dashboard as Prometheus metrics (text exposition format 0.0.4), per model and monitor type:
the state, the alarm, the last execution's time, violation count and headline metric, so Grafana
dashboards and Alertmanager rules can use what CloudWatch gives SageMaker users."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

STATES = ("OK", "Alarm", "Inactive", "None")


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**pairs: Any) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items()) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _family(name: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines += [f"{name}{labels} {_number(value)}" for labels, value in samples]
    return lines


def metrics_text(rows: list[Any], columns: list[Any], generated_at: datetime | None) -> str:
    """The exposition text of a dashboard's rows.

    Examples
    --------
    >>> from modelwatch.tasks.dashboard import DashboardRow, MonitorCell, MonitorColumn
    >>> row = DashboardRow(model="churn", monitors={"data-quality": MonitorCell(status="OK")})
    >>> text = metrics_text([row], [MonitorColumn(name="data-quality", label="Data quality")], None)
    >>> 'modelwatch_monitor_alarm{model="churn",monitor_type="data-quality"} 0' in text
    True
    """
    from modelwatch.tasks.dashboard import MonitorCell

    headline = {c.name: c.metric for c in columns}
    status, alarm, last, violations, metric = [], [], [], [], []
    for row in rows:
        for column in columns:
            cell = row.monitors.get(column.name) or MonitorCell()
            key = {"model": row.model, "monitor_type": column.name}
            status += [(_labels(**key, status=s), 1.0 if cell.status == s else 0.0) for s in STATES]
            alarm.append((_labels(**key), 1.0 if cell.in_alarm else 0.0))
            if cell.last_execution_at is not None:
                last.append((_labels(**key), cell.last_execution_at.timestamp()))
            if cell.last_violation_count is not None:
                violations.append((_labels(**key), float(cell.last_violation_count)))
            if cell.last_metric is not None and headline.get(column.name):
                metric.append((_labels(**key, metric=headline[column.name]), cell.last_metric))
    lines = _family("modelwatch_models", "Models on the dashboard.", [("", float(len(rows)))])
    if generated_at is not None:
        lines += _family("modelwatch_dashboard_generated_timestamp_seconds",
                         "When the dashboard was last built (Unix time).",
                         [("", generated_at.timestamp())])
    lines += _family("modelwatch_monitor_status",
                     "1 for the monitor's dashboard state (OK, Alarm, Inactive: paused, None: no "
                     "schedule), 0 for the others.", status)
    lines += _family("modelwatch_monitor_alarm", "1 while the monitor's alert is in ALARM.", alarm)
    lines += _family("modelwatch_monitor_last_execution_timestamp_seconds",
                     "End of the window of the monitor's latest execution (Unix time).", last)
    lines += _family("modelwatch_monitor_last_violations",
                     "Violations found by the monitor's latest execution.", violations)
    lines += _family("modelwatch_monitor_headline_metric",
                     "The latest execution's headline metric (label metric names it).", metric)
    return "\n".join(lines) + "\n"

"""The model dashboard's documents: one row per registered model (SageMaker Model Dashboard semantics)
and the data behind each model's page. Building them is a plain function of what the store and
Prefect hold; rendering them is tasks/dashboard_html.py's job."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from modelwatch.tasks.documents import OwnDocument, VariantOutcome

MonitorState = Literal["None", "Inactive", "OK", "Alarm"]


def default_label(monitor_type: str) -> str:
    """A column title from a type name: "data-quality" -> "Data quality"."""
    return monitor_type.replace("-", " ").capitalize()


class MonitorColumn(OwnDocument):
    """A monitor type as the dashboard shows it: its column title and headline metric. The summary
    writes one per registered type; renderers given none derive them from the rows."""

    name: str
    label: str
    metric: str | None = None  # the headline metric of its trend chart
    direction: str | None = None  # higher-is-worse, lower-is-worse, away-from-zero-is-worse
    threshold: float | None = None


def columns_of(rows: list[DashboardRow]) -> list[MonitorColumn]:
    """The monitor types present in the rows, in first-seen order."""
    names = dict.fromkeys(t for row in rows for t in row.monitors)
    return [MonitorColumn(name=t, label=default_label(t)) for t in names]


class MonitorCell(OwnDocument):
    """One monitor type's column for one model."""

    status: MonitorState = "None"  # None: no schedule; Inactive: paused; OK; Alarm (see raised_at)
    alert_raised_at: datetime | None = None
    # The alert is in ALARM whatever the schedule: on-demand executions of an unscheduled (or paused)
    # monitor raise it too, and the cell then keeps None/Inactive for the schedule.
    alarm: bool = False
    last_execution_at: datetime | None = None  # window end of the latest execution
    last_status: str | None = None  # Completed, CompletedWithViolations, NoData, Failed
    last_violation_count: int | None = None
    last_metric: float | None = None  # the latest execution's headline metric (MonitorColumn.metric)
    schedule: str | None = None  # the cron expression, when scheduled

    @property
    def in_alarm(self) -> bool:
        return self.status == "Alarm" or self.alarm

    @property
    def display(self) -> str:
        """What the dashboard cell says: None / Inactive / OK / the time the alert was raised."""
        if self.status == "Alarm" and self.alert_raised_at is not None:
            return self.alert_raised_at.strftime("%Y-%m-%d %H:%M UTC")
        return self.status

    @property
    def alarm_note(self) -> str:
        """The alarm of an unscheduled or paused monitor, said beside its schedule state."""
        if not self.alarm or self.status == "Alarm":
            return ""
        since = f" since {self.alert_raised_at:%Y-%m-%d %H:%M} UTC" if self.alert_raised_at else ""
        return f"ALARM{since}"


class BatchJobCell(OwnDocument):
    job_id: str
    status: str
    finished_at: datetime | None = None


class DashboardRow(OwnDocument):
    model: str
    latest_version: str | None = None
    problem_type: str | None = None
    # The risk rating and card of the version the endpoints serve (the latest version's card when
    # no endpoint serves the model); the latest card too when it is another one.
    risk_rating: Literal["High", "Medium", "Low", "Unknown"] = "Unknown"
    card_status: str | None = None  # Draft, PendingReview, Approved, Archived; None without a card
    card_version: int | None = None
    card_model_version: str | None = None  # the model version that card describes
    served_versions: list[str] = Field(default_factory=list)  # what the endpoints serve
    latest_card_status: str | None = None  # only when the latest card is not the one above
    latest_card_version: int | None = None
    latest_card_model_version: str | None = None
    endpoints: list[str] = Field(default_factory=list)
    latest_batch_job: BatchJobCell | None = None
    monitors: dict[str, MonitorCell] = Field(default_factory=dict)  # by monitor type
    problems: list[str] = Field(default_factory=list)  # documents that could not be read or updated

    @property
    def in_alarm(self) -> list[str]:
        return [t for t, cell in self.monitors.items() if cell.in_alarm]

    def flat(self, monitor_types: list[str]) -> dict[str, Any]:
        """One flat record (for Parquet and the Prefect table artifact), with the columns of each
        of `monitor_types` (a type the row has no cell for reads as None)."""
        record: dict[str, Any] = {
            "model": self.model, "latest_version": self.latest_version,
            "problem_type": self.problem_type, "risk_rating": self.risk_rating,
            "card_status": self.card_status, "card_version": self.card_version,
            "served_versions": ", ".join(self.served_versions) or None,
            "latest_card_status": self.latest_card_status,
            "endpoints": ", ".join(self.endpoints),
            "latest_batch_job": self.latest_batch_job.job_id if self.latest_batch_job else None,
            "latest_batch_job_status": self.latest_batch_job.status if self.latest_batch_job else None,
            "problems": "; ".join(self.problems) or None,
        }
        for monitor_type in monitor_types:
            cell = self.monitors.get(monitor_type, MonitorCell())
            prefix = monitor_type.replace("-", "_")
            record[prefix] = cell.display
            record[f"{prefix}_last_execution"] = (
                cell.last_execution_at.isoformat() if cell.last_execution_at else None)
            record[f"{prefix}_violations"] = cell.last_violation_count
        return record


class ExecutionSummary(OwnDocument):
    """An execution as listed on a model page and in the per-monitor index."""

    monitor_type: str
    window_start: datetime
    window_end: datetime
    status: str  # an execution status, or Running (begun, no outcome yet)
    violation_count: int = 0
    records_read: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    report_uri: str | None = None
    execution_uri: str | None = None  # only once execution.json is written
    metric: float | None = None  # one number per execution for the trend chart
    flow_run_id: str | None = None
    failure_reason: str | None = None
    variants: dict[str, VariantOutcome] = Field(default_factory=dict)  # an A/B test's, per variant


class AlertHistoryEntry(OwnDocument):
    monitor_type: str
    state: Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
    at: datetime
    reason: str
    cause: str | None = None  # what re-evaluated the alert (an execution's flow run, a criteria edit)


class ModelPage(OwnDocument):
    """Everything a model's page shows."""

    row: DashboardRow
    card: dict[str, Any] | None = None  # the served version's card (content, status, history)
    latest_card: dict[str, Any] | None = None  # the latest card, when it is another one
    lineage: list[dict[str, str]] = Field(default_factory=list)  # edges {from, to[, kind]}
    alert_history: list[AlertHistoryEntry] = Field(default_factory=list)
    executions: list[ExecutionSummary] = Field(default_factory=list)  # newest first
    generated_at: datetime | None = None
    columns: list[MonitorColumn] = Field(default_factory=list)  # default: those of the row

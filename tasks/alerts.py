"""Alerts per model and monitor type: ALARM when at least M of the last N executions had violations
(CloudWatch's "datapoints to alert" of an "evaluation period"). The state and its transition history
live in alerts/<model>/<type>.json; only transitions produce events, so one alarm is one event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from modelwatch.errors import UserError
from tasks.dashboard import AlertHistoryEntry, ExecutionSummary
from tasks.documents import Document
from tasks.store import Store, check_slug

AlertState = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
# Executions that say something about the data; NoData and Failed windows are not datapoints.
DATAPOINT_STATUSES = ("Completed", "CompletedWithViolations")


class AlertCriteria(Document):
    datapoints_to_alert: int = 1
    evaluation_period: int = 1

    def validate_values(self) -> AlertCriteria:
        from tasks.executions import MAX_ENTRIES

        if not 1 <= self.evaluation_period <= MAX_ENTRIES or \
                not 1 <= self.datapoints_to_alert <= self.evaluation_period:
            raise UserError(
                f"alert criteria {self.datapoints_to_alert} of {self.evaluation_period}: expected "
                f"1 <= datapoints-to-alert <= evaluation-period <= {MAX_ENTRIES}"
            )
        return self


class Alert(Document):
    model: str
    monitor_type: str
    model_version: str | None = None
    criteria: AlertCriteria = Field(default_factory=AlertCriteria)
    state: AlertState = "INSUFFICIENT_DATA"
    raised_at: datetime | None = None  # when the current ALARM began
    evaluated_at: datetime | None = None
    evaluated_criteria: AlertCriteria | None = None
    evaluated_through: datetime | None = None  # window end of the newest execution considered
    last_execution: ExecutionSummary | None = None
    history: list[AlertHistoryEntry] = Field(default_factory=list)


class Transition(Document):
    """An alert entering or leaving ALARM; the caller turns it into an event."""

    model: str
    monitor_type: str
    model_version: str | None = None
    state: Literal["OK", "ALARM"]
    at: datetime
    reason: str

    @property
    def event_name(self) -> str:
        return "modelwatch.alert.raised" if self.state == "ALARM" else "modelwatch.alert.resolved"


def alert_key(model: str, monitor_type: str) -> str:
    return f"alerts/{check_slug(model, 'model name')}/{monitor_type}.json"


def read_alert(store: Store, model: str, monitor_type: str) -> Alert:
    key = alert_key(model, monitor_type)
    if not store.exists(key):
        return Alert(model=model, monitor_type=monitor_type)
    return Alert.model_validate(store.read_json(key))


def save_alert(store: Store, alert: Alert) -> str:
    return store.write_json(alert_key(alert.model, alert.monitor_type), alert.dump())


def evaluate(criteria: AlertCriteria, executions: list[ExecutionSummary]) -> tuple[AlertState, str]:
    """The state the last N datapoints call for, and why (executions oldest first)."""
    datapoints = [e for e in executions if e.status in DATAPOINT_STATUSES]
    recent = datapoints[-criteria.evaluation_period:]
    if not recent:
        return "INSUFFICIENT_DATA", "no completed execution yet"
    breaching = sum(1 for e in recent if e.violation_count > 0)
    reason = (f"{breaching} of the last {len(recent)} executions had violations "
              f"(alarm at {criteria.datapoints_to_alert} of {criteria.evaluation_period})")
    return ("ALARM" if breaching >= criteria.datapoints_to_alert else "OK"), reason


def update_alert(alert: Alert, executions: list[ExecutionSummary], now: datetime | None = None,
                 model_version: str | None = None) -> Transition | None:
    """Re-evaluate in place; return the transition into or out of ALARM, if any."""
    now = now or datetime.now(UTC)
    state, reason = evaluate(alert.criteria, executions)
    previous = alert.state
    alert.state = state
    alert.evaluated_at = now
    alert.evaluated_criteria = alert.criteria.model_copy()
    alert.model_version = model_version or alert.model_version
    if executions:
        alert.last_execution = executions[-1]
        alert.evaluated_through = executions[-1].window_end
    if state == previous or (state != "ALARM" and previous != "ALARM"):
        return None
    at = now
    alert.raised_at = at if state == "ALARM" else None
    alert.history.append(AlertHistoryEntry(monitor_type=alert.monitor_type, state=state, at=at,
                                           reason=reason))
    return Transition(model=alert.model, monitor_type=alert.monitor_type,
                      model_version=alert.model_version, state=state, at=at, reason=reason)


def criteria_changed(alert: Alert) -> bool:
    """Criteria edited (modelwatch alerts set) since the last evaluation: re-evaluate from the index."""
    return alert.evaluated_criteria != alert.criteria

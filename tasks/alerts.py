"""Alerts per model and monitor type: ALARM when at least M of the last N executions had violations
(CloudWatch's "datapoints to alert" of an "evaluation period"). The state and its transition history
live in alerts/<model>/<type>.json; only transitions into or out of ALARM produce events, so one alarm
is one event. The document is re-evaluated by an atomic read-modify-write against the index as it is
at that moment, so concurrent executions of one model agree on the state and its transitions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, ValidationError

from modelwatch.tasks.dashboard import AlertHistoryEntry, ExecutionSummary
from modelwatch.tasks.documents import OwnDocument
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store, check_slug

AlertState = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
# Executions that say something about the data; NoData and Failed windows are not datapoints.
DATAPOINT_STATUSES = ("Completed", "CompletedWithViolations")


class AlertCriteria(OwnDocument):
    datapoints_to_alert: int = 1
    evaluation_period: int = 1

    def validate_values(self) -> AlertCriteria:
        from modelwatch.tasks.executions import MAX_ENTRIES

        if not 1 <= self.evaluation_period <= MAX_ENTRIES or \
                not 1 <= self.datapoints_to_alert <= self.evaluation_period:
            raise UserError(
                f"alert criteria {self.datapoints_to_alert} of {self.evaluation_period}: expected "
                f"1 <= datapoints-to-alert <= evaluation-period <= {MAX_ENTRIES}"
            )
        return self


class Alert(OwnDocument):
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


class Transition(OwnDocument):
    """An alert entering or leaving ALARM; the caller turns it into an event."""

    model: str
    monitor_type: str
    model_version: str | None = None
    state: AlertState  # ALARM: raised; OK or INSUFFICIENT_DATA (no datapoint left): resolved
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
    try:
        raw = store.read_json(key)
    except ValueError as problem:
        raise UserError(f"alert document {store.uri(key)} is not valid JSON ({problem})") from None
    return _parse_alert(raw, model, monitor_type)


def set_criteria(store: Store, model: str, monitor_type: str, criteria: AlertCriteria) -> Alert:
    """Store new criteria (the next evaluation applies them), atomically."""
    def mutate(raw: Any) -> dict[str, Any]:
        alert = _parse_alert(raw, model, monitor_type)
        alert.criteria = criteria
        return alert.dump()

    return Alert.model_validate(store.update_json(alert_key(model, monitor_type), mutate))


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
                 model_version: str | None = None, cause: str | None = None) -> Transition | None:
    """Re-evaluate in place; return the transition into or out of ALARM, if any. Leaving ALARM
    because no datapoint is left (INSUFFICIENT_DATA) resolves the alert like going back to OK."""
    now = now or datetime.now(UTC)
    state, reason = evaluate(alert.criteria, executions)
    previous = alert.state
    alert.state = state
    alert.evaluated_at = now
    alert.evaluated_criteria = alert.criteria.model_copy()
    alert.model_version = model_version or alert.model_version
    point_at(alert, executions)
    if state == previous or (state != "ALARM" and previous != "ALARM"):
        return None
    alert.raised_at = now if state == "ALARM" else None
    alert.history.append(AlertHistoryEntry(monitor_type=alert.monitor_type, state=state, at=now,
                                           reason=reason, cause=cause))
    return _transition(alert, alert.history[-1])


def point_at(alert: Alert, executions: list[ExecutionSummary]) -> None:
    """The alert's latest execution is the index's newest window (never a withdrawn document)."""
    alert.last_execution = executions[-1] if executions else None
    alert.evaluated_through = executions[-1].window_end if executions else None


def _transition(alert: Alert, entry: AlertHistoryEntry) -> Transition:
    return Transition(model=alert.model, monitor_type=alert.monitor_type,
                      model_version=alert.model_version, state=entry.state, at=entry.at,
                      reason=entry.reason)


def reevaluate_alert(store: Store, model: str, monitor_type: str, *, cause: str,
                     model_version: str | None = None, evaluate_state: bool = True,
                     now: datetime | None = None) -> tuple[Alert, Transition | None]:
    """Re-evaluate a stored alert against the index as it is now, atomically; the transition to emit.

    With evaluate_state False only the latest execution is updated (an execution has begun: its
    window's previous outcome is withdrawn, and the state waits for the new one). `cause` names the
    evaluation: when a write landed but its answer was lost and the update ran again, the transition
    it made is found in the history by its cause, so it is still emitted, once.
    """
    from modelwatch.tasks.executions import read_index

    found: dict[str, Any] = {}

    def mutate(raw: Any) -> dict[str, Any]:
        alert = _parse_alert(raw, model, monitor_type)
        executions = read_index(store, model, monitor_type).executions
        if evaluate_state:
            transition = update_alert(alert, executions, now, model_version, cause)
        else:
            point_at(alert, executions)
            transition = None
        if transition is None and alert.history and alert.history[-1].cause == cause:
            transition = _transition(alert, alert.history[-1])
        found["alert"], found["transition"] = alert, transition
        return alert.dump()

    store.update_json(alert_key(model, monitor_type), mutate)
    return found["alert"], found["transition"]


def _parse_alert(raw: Any, model: str, monitor_type: str) -> Alert:
    if raw is None:
        return Alert(model=model, monitor_type=monitor_type)
    try:
        return Alert.model_validate(raw)
    except ValidationError as problem:
        raise UserError(f"alert document {alert_key(model, monitor_type)} is not a valid Alert: "
                        f"{problem.errors()[0]['msg']}") from None


def criteria_changed(alert: Alert) -> bool:
    """Criteria edited (modelwatch alerts set) since the last evaluation: re-evaluate from the index."""
    return alert.evaluated_criteria != alert.criteria

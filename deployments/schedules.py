"""Monitoring schedules are Prefect deployments of the scheduled-monitor flow, one per model and
monitor type, tagged with both; plus the summary and retrain deployments and the automation that turns
an alert into a retrain. `modelwatch serve` builds them all and serves them in one process. The store's
retention job (`modelwatch retention schedule`) is built here too."""

from __future__ import annotations

from typing import Any

from modelwatch.flows.prefect_api import (
    MERGE_TAG,
    MODELWATCH_TAG,
    MONITOR_TAG,
    ScheduleInfo,
    monitor_schedules,
)
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import check_slug

SUMMARY_DEPLOYMENT = "modelwatch-summary"
RETENTION_DEPLOYMENT = "modelwatch-retention"
RETENTION_TAG = "modelwatch-retention"
ALERT_RAISED = "modelwatch.alert.raised"


def monitor_deployment_name(model: str, monitor_type: str) -> str:
    return f"{check_slug(model, 'model name')}-{monitor_type}"


def retrain_deployment_name(model: str) -> str:
    return f"retrain-{check_slug(model, 'model name')}"


def check_cron(cron: str) -> str:
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=cron, timezone="UTC")
    except ValueError:
        raise UserError(f"--cron {cron!r} is not a cron expression such as '0 * * * *'") from None
    return cron


def monitor_deployment(model: str, monitor_type: str, cron: str, store: str,
                       period: str | None = None, active: bool = True,
                       schedule_parameters: dict[str, Any] | None = None,
                       options: dict[str, Any] | None = None):
    """The RunnerDeployment of one monitoring schedule; `options` are the type's own run options,
    checked now and passed to every run."""
    from prefect.schedules import Cron

    from modelwatch.flows.monitor_types import get_monitor, parse_options
    from modelwatch.flows.scheduled import period_for_cron, scheduled_monitor

    monitor = get_monitor(monitor_type)
    if options:
        parse_options(monitor.run_options, options, monitor_type, "run")
    check_cron(cron)
    return scheduled_monitor.to_deployment(
        name=monitor_deployment_name(model, monitor_type),
        schedules=[Cron(cron, timezone="UTC", active=active,
                        parameters=schedule_parameters or {})],
        parameters={"model": model, "monitor_type": monitor_type,
                    "period": period or period_for_cron(cron), "store": store,
                    **({"options": options} if options else {})},
        tags=[MODELWATCH_TAG, MONITOR_TAG, f"model:{model}", f"monitor:{monitor_type}"],
        description=f"{monitor_type} monitoring of {model}",
    )


def _kept_schedules(info: ScheduleInfo) -> list[Any]:
    """An existing deployment's cron schedules as they are: cron, parameters and whether each is
    active (serve() re-applies deployments; a paused schedule must stay paused)."""
    from prefect.schedules import Cron

    return [
        Cron(s["schedule"]["cron"], timezone=s["schedule"].get("timezone") or "UTC",
             active=bool(s.get("active", True)), parameters=s.get("parameters") or {})
        for s in info.schedules if (s.get("schedule") or {}).get("cron")
    ]


def rebuild_monitor_deployment(info: ScheduleInfo, store: str):
    """A served copy of an existing monitoring schedule."""
    from modelwatch.flows.scheduled import scheduled_monitor

    return scheduled_monitor.to_deployment(
        name=info.deployment_name, schedules=_kept_schedules(info),
        parameters={"store": store, **info.parameters},
        tags=[MODELWATCH_TAG, MONITOR_TAG, f"model:{info.model}", f"monitor:{info.monitor_type}"],
        description=f"{info.monitor_type} monitoring of {info.model}",
    )


def merge_deployment_name(endpoint: str) -> str:
    return f"merge-{check_slug(endpoint, 'endpoint name')}"


def merge_deployment(endpoint: str, cron: str, store: str, period: str | None = None,
                     lookback: str = "P7D", info: ScheduleInfo | None = None):
    """The ground-truth merge job of one endpoint: each run merges the hour or day before it. With
    `info`, a served copy of that existing deployment (its schedules and parameters kept)."""
    from prefect.schedules import Cron

    from modelwatch.flows.scheduled import period_for_cron, scheduled_merge

    if info is None:
        schedules = [Cron(check_cron(cron), timezone="UTC")]
        parameters = {"endpoint": endpoint, "period": period or period_for_cron(cron),
                      "lookback": lookback, "store": store}
    else:
        schedules, parameters = _kept_schedules(info), {"store": store, **info.parameters}
    return scheduled_merge.to_deployment(
        name=merge_deployment_name(endpoint), schedules=schedules, parameters=parameters,
        tags=[MODELWATCH_TAG, MERGE_TAG, f"endpoint:{endpoint}"],
        description=f"ground-truth merge of {endpoint}")


def summary_deployment(store: str, cron: str = "*/15 * * * *"):
    from modelwatch.flows.summary import summarize_fleet

    return summarize_fleet.to_deployment(
        name=SUMMARY_DEPLOYMENT, cron=check_cron(cron), parameters={"store": store},
        tags=[MODELWATCH_TAG, "modelwatch-summary"], description="materialize the model dashboard")


def retention_deployment(cron: str, store: str, ages: dict[str, int | None] | None = None,
                         info: ScheduleInfo | None = None):
    """The store's retention job, `modelwatch-retention` of the retention-apply flow.

    Parameters
    ----------
    cron : str
        When it runs, UTC (e.g. "0 3 * * *"); ignored with `info`.
    store : str
        The store's root URI.
    ages : dict of str to int or None, optional
        Days to keep per kind (capture, groundtruth, merged, executions, telemetry), checked now and
        passed to every run as ``<kind>_days``; ignored with `info`.
    info : ScheduleInfo, optional
        An existing retention deployment (see `existing_retention`): a served copy of it is built,
        its schedules (paused or not) and parameters kept.

    Returns
    -------
    RunnerDeployment
        The deployment, to `apply()` or to serve.
    """
    from prefect.schedules import Cron

    from modelwatch.flows.retention import retention_apply
    from modelwatch.tasks.retention import check_ages

    if info is None:
        schedules = [Cron(check_cron(cron), timezone="UTC")]
        parameters = {**{f"{kind}_days": days for kind, days in check_ages(ages or {}).items()},
                      "store": store}
    else:
        schedules, parameters = _kept_schedules(info), {"store": store, **info.parameters}
    return retention_apply.to_deployment(
        name=RETENTION_DEPLOYMENT, schedules=schedules, parameters=parameters,
        tags=[MODELWATCH_TAG, RETENTION_TAG],
        description="remove capture, ground truth, merged data, executions and telemetry past "
                    "their retention ages")


def existing_retention() -> ScheduleInfo | None:
    """The retention deployment Prefect knows (made by `modelwatch retention schedule`), if any."""
    from modelwatch.flows.prefect_api import read_deployments

    for deployment in read_deployments([RETENTION_TAG]):
        if deployment["name"] == RETENTION_DEPLOYMENT:
            return ScheduleInfo(
                deployment_id=str(deployment["id"]), deployment_name=deployment["name"], model="",
                monitor_type="retention", paused=bool(deployment.get("paused")),
                schedules=deployment.get("schedules") or [],
                parameters=deployment.get("parameters") or {})
    return None


def retrain_deployment(model: str, store: str):
    from modelwatch.flows.retrain import retrain

    return retrain.to_deployment(
        name=retrain_deployment_name(model), parameters={"model": model, "store": store},
        tags=[MODELWATCH_TAG, "modelwatch-retrain", f"model:{model}"],
        description=f"retrain {model} when its alert is raised")


def retrain_automation(model: str, deployment_id: str):
    """Alert raised for this model -> one run of its retrain deployment, with the alert as parameters."""
    from prefect.automations import Automation
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    return Automation(
        name=f"modelwatch-retrain-{model}",
        description=f"retrain {model} when one of its monitors raises an alert",
        trigger=EventTrigger(
            expect={ALERT_RAISED},
            match={"prefect.resource.id": f"modelwatch.model.{model}"},
            posture=Posture.Reactive, threshold=1,
        ),
        actions=[RunDeployment(
            source="selected", deployment_id=deployment_id,
            parameters={
                "model": model,
                # A parameter that is only "{{ event.id }}" fails as InvalidJinja: cast it.
                "alert_event_id": "{{ event.id | string }}",
                "monitor_type": "{{ event.resource['modelwatch.monitor-type'] }}",
            },
        )],
    )


def apply_automation(automation: Any) -> str:
    """Create the automation, or replace the one with the same name (idempotent)."""
    from prefect.automations import Automation

    try:
        existing = Automation.read(name=automation.name)
    except ValueError:
        existing = None
    if existing is not None:
        existing.delete()
    return str(automation.create().id)


def existing_schedules() -> dict[tuple[str, str], ScheduleInfo]:
    return monitor_schedules()

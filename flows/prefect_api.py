"""The few Prefect API calls modelwatch makes about deployments, schedules and automations.

Prefect holds schedules, so "is this monitor scheduled, and is its schedule active" is asked of
Prefect, never stored beside it. Calls go through the REST routes because prefect 3.8.8's sync client
sends nulls that its own server rejects on some filters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODELWATCH_TAG = "modelwatch"
MONITOR_TAG = "modelwatch-monitor"
MERGE_TAG = "modelwatch-merge"
MERGE = "ground-truth-merge"  # the monitor_type of a merge schedule's ScheduleInfo
PAGE = 200


@dataclass(frozen=True)
class ScheduleInfo:
    """A monitor deployment as the dashboard and the CLI need it."""

    deployment_id: str
    deployment_name: str
    model: str
    monitor_type: str
    paused: bool
    schedules: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return not self.paused and any(s.get("active", True) for s in self.schedules)

    @property
    def cron(self) -> str | None:
        for schedule in self.schedules:
            cron = (schedule.get("schedule") or {}).get("cron")
            if cron:
                return cron
        return None


def _client():
    from prefect.client.orchestration import get_client

    from modelwatch.flows.local_server import ensure_api

    ensure_api()
    return get_client(sync_client=True)


def _tag_value(tags: list[str], prefix: str) -> str | None:
    return next((t[len(prefix):] for t in tags if t.startswith(prefix)), None)


def read_deployments(tags: list[str]) -> list[dict[str, Any]]:
    """Every deployment carrying all of `tags`."""
    out: list[dict[str, Any]] = []
    with _client() as client:
        offset = 0
        while True:
            page = client.request("POST", "/deployments/filter", json={
                "deployments": {"tags": {"all_": tags}}, "limit": PAGE, "offset": offset,
                "sort": "NAME_ASC"}).json()
            out.extend(page)
            if len(page) < PAGE:
                return out
            offset += PAGE


def monitor_schedules(model: str | None = None) -> dict[tuple[str, str], ScheduleInfo]:
    """Monitor deployments keyed by (model, monitor type), from their tags (one model's only, when
    `model` is given)."""
    found: dict[tuple[str, str], ScheduleInfo] = {}
    for deployment in read_deployments([MONITOR_TAG] + ([f"model:{model}"] if model else [])):
        tags = deployment.get("tags") or []
        model, monitor_type = _tag_value(tags, "model:"), _tag_value(tags, "monitor:")
        if not model or not monitor_type:
            continue
        found[(model, monitor_type)] = ScheduleInfo(
            deployment_id=str(deployment["id"]), deployment_name=deployment["name"], model=model,
            monitor_type=monitor_type, paused=bool(deployment.get("paused")),
            schedules=deployment.get("schedules") or [],
            parameters=deployment.get("parameters") or {},
        )
    return found


def merge_schedules() -> dict[str, ScheduleInfo]:
    """Ground-truth merge deployments keyed by endpoint (ScheduleInfo.model holds the endpoint)."""
    found: dict[str, ScheduleInfo] = {}
    for deployment in read_deployments([MERGE_TAG]):
        endpoint = _tag_value(deployment.get("tags") or [], "endpoint:")
        if endpoint:
            found[endpoint] = ScheduleInfo(
                deployment_id=str(deployment["id"]), deployment_name=deployment["name"],
                model=endpoint, monitor_type=MERGE, paused=bool(deployment.get("paused")),
                schedules=deployment.get("schedules") or [],
                parameters=deployment.get("parameters") or {})
    return found


def set_schedules_active(info: ScheduleInfo, active: bool) -> None:
    """Pause or resume a monitor's schedules (the UI's schedule toggle does the same).

    Each schedule's parameters are sent back with it: `active` alone would wipe them.
    """
    with _client() as client:
        for schedule in info.schedules:
            client.request(
                "PATCH", f"/deployments/{info.deployment_id}/schedules/{schedule['id']}",
                json={"active": active, "parameters": schedule.get("parameters") or {}})
        if active and info.paused:
            client.request("POST", f"/deployments/{info.deployment_id}/resume_deployment")


def set_schedule_cron(info: ScheduleInfo, cron: str) -> None:
    """Give a monitor's schedules a new cron (UTC). A window period that followed the old cron (the
    default: PT1H for an hourly-or-faster cron, else P1D) follows the new one."""
    from modelwatch.flows.scheduled import period_for_cron

    with _client() as client:
        for schedule in info.schedules:
            timing = {**(schedule.get("schedule") or {}), "cron": cron}
            timing.setdefault("timezone", "UTC")
            client.request(
                "PATCH", f"/deployments/{info.deployment_id}/schedules/{schedule['id']}",
                json={"schedule": timing, "active": bool(schedule.get("active", True)),
                      "parameters": schedule.get("parameters") or {}})
        period = info.parameters.get("period")
        if info.cron and period == period_for_cron(info.cron) != period_for_cron(cron):
            client.request("PATCH", f"/deployments/{info.deployment_id}", json={
                "parameters": {**info.parameters, "period": period_for_cron(cron)}})


def delete_deployment(deployment_id: str) -> None:
    with _client() as client:
        client.request("DELETE", f"/deployments/{deployment_id}")


def deployment_id(flow_name: str, deployment_name: str) -> str | None:
    from prefect.exceptions import ObjectNotFound

    with _client() as client:
        try:
            return str(client.read_deployment_by_name(f"{flow_name}/{deployment_name}").id)
        except ObjectNotFound:
            return None

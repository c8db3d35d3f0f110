"""The summary flow: materialize the model dashboard (one row per registered model) from the registry,
the cards, the alert documents and Prefect's schedules; write it as Parquet, JSON and static HTML;
publish it as Prefect artifacts; emit events for alert transitions caused by edited criteria.

Cost grows with the number of models, not with history: each (model, monitor type) costs one small
alert document, plus its execution index for the model page.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from tasks.alerts import Alert, criteria_changed, read_alert, save_alert, update_alert
from tasks.dashboard import BatchJobCell, DashboardRow, ModelPage, MonitorCell
from tasks.documents import MONITOR_TYPES
from tasks.store import Store, default_store_uri

T = TypeVar("T")
R = TypeVar("R")
IO_THREADS = 16  # small documents: latency-bound on S3, cheap locally


def _parallel(fn: Callable[[T], R], items: list[T]) -> list[R]:
    with ThreadPoolExecutor(IO_THREADS) as pool:
        return list(pool.map(fn, items))


def schedule_states() -> dict[tuple[str, str], Any]:
    """Monitor schedules from Prefect. Errors propagate: a dashboard must never show 'None' for a
    schedule it could not read."""
    from deployments.prefect_api import monitor_schedules

    return monitor_schedules()


def monitor_cell(schedule: Any | None, alert: Alert) -> MonitorCell:
    last = alert.last_execution
    cell = MonitorCell(
        last_execution_at=last.window_end if last else None,
        last_status=last.status if last else None,
        last_violation_count=last.violation_count if last else None,
        schedule=schedule.cron if schedule else None,
    )
    if schedule is None:
        cell.status = "None"
    elif not schedule.active:
        cell.status = "Inactive"
    elif alert.state == "ALARM":
        cell.status, cell.alert_raised_at = "Alarm", alert.raised_at
    else:
        cell.status = "OK"
    return cell


def build_row(model: Any, endpoints: list[Any], latest_job: Any | None, card: Any | None,
              schedules: dict[tuple[str, str], Any], alerts: dict[str, Alert]) -> DashboardRow:
    """One dashboard row from the documents that describe a model (a plain function)."""
    from tasks.cards import risk_rating

    return DashboardRow(
        model=model.name,
        latest_version=model.latest.version if model.latest else None,
        problem_type=model.problem_type,
        risk_rating=risk_rating(card) if card is not None else "Unknown",
        card_status=card.status if card is not None else None,
        endpoints=sorted(e.name for e in endpoints),
        latest_batch_job=BatchJobCell(job_id=latest_job.job_id, status=latest_job.status,
                                      finished_at=latest_job.finished_at) if latest_job else None,
        monitors={t: monitor_cell(schedules.get((model.name, t)), alerts[t]) for t in MONITOR_TYPES},
    )


@task(name="read-fleet", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def read_fleet_task(store_uri: str) -> dict[str, Any]:
    from tasks.cards import latest_card
    from tasks.registry import list_batch_jobs, list_endpoints, list_models

    store = Store(store_uri)
    models = list_models(store)
    names = [m.name for m in models]
    endpoints = list_endpoints(store)
    jobs = list_batch_jobs(store)
    cards = dict(zip(names, _parallel(lambda m: latest_card(store, m), names), strict=True))
    pairs = [(m, t) for m in names for t in MONITOR_TYPES]
    alerts = dict(zip(pairs, _parallel(lambda p: read_alert(store, *p), pairs), strict=True))
    return {"models": models, "endpoints": endpoints, "jobs": jobs, "cards": cards,
            "alerts": alerts}


@task(name="re-evaluate-alerts", cache_policy=NO_CACHE)
def reevaluate_task(store_uri: str, alerts: dict[tuple[str, str], Alert]) -> list[str]:
    """Alerts whose criteria were edited since their last evaluation; emit their transitions."""
    from tasks.events import emit_transition
    from tasks.executions import read_index

    store = Store(store_uri)
    changed: list[str] = []
    for (model, monitor_type), alert in alerts.items():
        if not criteria_changed(alert):
            continue
        index = read_index(store, model, monitor_type)
        transition = update_alert(alert, index.executions)
        save_alert(store, alert)
        if transition is not None:
            emit_transition(transition)
            changed.append(f"{model} {monitor_type} -> {transition.state}")
    return changed


@task(name="write-dashboard", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def write_dashboard_task(store_uri: str, rows: list[DashboardRow], fleet: dict[str, Any],
                         generated_at: datetime) -> dict[str, str]:
    from tasks.dashboard_html import render_index, render_model_page
    from tasks.executions import read_index
    from tasks.registry import lineage_edges

    store = Store(store_uri)
    models = {m.name: m for m in fleet["models"]}
    endpoints_by_model: dict[str, list[Any]] = {}
    for endpoint in fleet["endpoints"]:
        endpoints_by_model.setdefault(endpoint.model, []).append(endpoint)
    jobs_by_model: dict[str, list[Any]] = {}
    for job in fleet["jobs"]:
        jobs_by_model.setdefault(job.model, []).append(job)
    flat = [row.flat() for row in rows]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(flat) if flat else pa.table({"model": pa.array([], pa.string())}),
                   buffer)
    outputs = {
        "parquet": store.write_bytes("dashboard/models.parquet", buffer.getvalue()),
        "json": store.write_json("dashboard/models.json", {
            "generated_at": generated_at, "models": [row.dump() for row in rows]}),
        "html": store.write_text("dashboard/index.html", render_index(rows, generated_at)),
    }

    def page(row: DashboardRow) -> None:
        executions = [e for t in MONITOR_TYPES for e in read_index(store, row.model, t).executions]
        executions.sort(key=lambda e: e.window_end, reverse=True)
        history = [h for t in MONITOR_TYPES for h in fleet["alerts"][(row.model, t)].history]
        card = fleet["cards"].get(row.model)
        document = ModelPage(
            row=row, card=card.dump() if card is not None else None,
            lineage=lineage_edges(models[row.model], endpoints_by_model.get(row.model, []),
                                  jobs_by_model.get(row.model, [])),
            alert_history=sorted(history, key=lambda h: h.at),
            executions=executions[:200], generated_at=generated_at,
        )
        store.write_text(f"dashboard/models/{row.model}.html",
                         render_model_page(document, store_root=store.uri("")))

    _parallel(page, rows)
    return outputs


def alarm_markdown(rows: list[DashboardRow]) -> str:
    alarmed = [r for r in rows if r.in_alarm]
    if not alarmed:
        return "### Models in alarm\n\nNone: every monitored model is OK."
    lines = ["### Models in alarm", "", "| model | version | risk | monitor | alert raised |",
             "| --- | --- | --- | --- | --- |"]
    for row in alarmed:
        for monitor_type in row.in_alarm:
            lines.append(f"| {row.model} | {row.latest_version} | {row.risk_rating} | "
                         f"{monitor_type} | {row.monitors[monitor_type].display} |")
    return "\n".join(lines)


@flow(name="summary", log_prints=True)
def summarize_fleet(store: str | None = None, publish: bool = True) -> dict[str, Any]:
    """Build and write the dashboard; return its outputs and which models are in alarm."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    store_uri = store or default_store_uri()
    generated_at = datetime.now(UTC)
    fleet = read_fleet_task(store_uri)
    # quote(): Prefect would otherwise walk every nested document looking for futures to resolve.
    changed = reevaluate_task(store_uri, quote(fleet["alerts"]))
    schedules = schedule_states()
    endpoints_by_model: dict[str, list[Any]] = {}
    for endpoint in fleet["endpoints"]:
        endpoints_by_model.setdefault(endpoint.model, []).append(endpoint)
    latest_job: dict[str, Any] = {}
    for job in fleet["jobs"]:  # sorted by start time: the last one wins
        latest_job[job.model] = job
    rows = [
        build_row(model, endpoints_by_model.get(model.name, []), latest_job.get(model.name),
                  fleet["cards"].get(model.name), schedules,
                  {t: fleet["alerts"][(model.name, t)] for t in MONITOR_TYPES})
        for model in sorted(fleet["models"], key=lambda m: m.name)
    ]
    outputs = write_dashboard_task(store_uri, quote(rows), quote(fleet), generated_at)
    if publish:
        create_table_artifact(key="model-dashboard", table=[row.flat() for row in rows],
                              description=f"modelwatch dashboard, {len(rows)} models")
        create_markdown_artifact(key="models-in-alarm", markdown=alarm_markdown(rows),
                                 description="models whose alert is raised")
    print(f"dashboard: {len(rows)} models, {sum(1 for r in rows if r.in_alarm)} in alarm; "
          f"{outputs['html']}")
    # The table itself is in the outputs; a 1,000-row return value would only cost Prefect time.
    return {"outputs": outputs, "models": len(rows),
            "in_alarm": {r.model: r.in_alarm for r in rows if r.in_alarm},
            "re_evaluated": changed, "generated_at": generated_at.isoformat()}


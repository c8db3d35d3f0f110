"""The summary flow: materialize the model dashboard (one row per registered model) from the registry,
the cards, the alert documents, the execution indexes and Prefect's schedules; write it as Parquet,
JSON and static HTML; publish it as Prefect artifacts; emit events for alert transitions caused by
edited criteria or by executions found interrupted.

Each model is summarised on its own: a model whose documents cannot be read or whose alert cannot be
re-evaluated gets a row that says so, and every other model's row and page are still written. Cost
grows with the number of models, not with history: each (model, monitor type) costs one small alert
document and its execution index.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from modelwatch.flows.lifecycle import mark_crashed, stale_after
from modelwatch.flows.monitor_types import monitor_types, monitors
from modelwatch.flows.retries import STORE_RETRY
from modelwatch.tasks.alerts import Alert, criteria_changed, read_alert, reevaluate_alert
from modelwatch.tasks.dashboard import BatchJobCell, DashboardRow, ModelPage, MonitorCell, MonitorColumn
from modelwatch.tasks.markdown import escape_markdown
from modelwatch.tasks.store import Store, default_store_uri

T = TypeVar("T")
R = TypeVar("R")
IO_THREADS = 16  # small documents: latency-bound on S3, cheap locally


def _parallel(fn: Callable[[T], R], items: list[T]) -> list[R]:
    with ThreadPoolExecutor(IO_THREADS) as pool:
        return list(pool.map(fn, items))


def schedule_states(model: str | None = None) -> dict[tuple[str, str], Any]:
    """Monitor schedules from Prefect (one model's, when given). Errors propagate: a dashboard must
    never show 'None' for a schedule it could not read."""
    from modelwatch.flows.prefect_api import monitor_schedules

    return monitor_schedules(model)


def monitor_cell(schedule: Any | None, alert: Alert) -> MonitorCell:
    last = alert.last_execution
    cell = MonitorCell(
        last_execution_at=last.window_end if last else None,
        last_status=last.status if last else None,
        last_violation_count=last.violation_count if last else None,
        last_metric=last.metric if last else None,
        schedule=schedule.cron if schedule else None,
    )
    if alert.state == "ALARM":
        cell.alarm, cell.alert_raised_at = True, alert.raised_at
    if schedule is None:
        cell.status = "None"
    elif not schedule.active:
        cell.status = "Inactive"
    else:
        cell.status = "Alarm" if alert.state == "ALARM" else "OK"
    return cell


def dashboard_columns() -> list[MonitorColumn]:
    """A column per registered monitor type, in registry order."""
    return [MonitorColumn(name=m.name, label=m.label, metric=m.headline.name,
                          direction=m.headline.direction, threshold=m.headline.threshold)
            for m in monitors()]


def served_version(endpoints: list[Any]) -> str | None:
    """The model version the endpoints serve: the one most of them serve (a tie: the version
    number sorting last); None without endpoints."""
    counts: dict[str, int] = {}
    for endpoint in endpoints:
        counts[endpoint.model_version] = counts.get(endpoint.model_version, 0) + 1
    if not counts:
        return None
    return max(counts, key=lambda v: (counts[v], _version_order(v)))


def _version_order(version: str) -> tuple[int, float, str]:
    try:
        return (1, float(version), version)
    except ValueError:
        return (0, 0.0, version)


def row_cards(store: Store, model: str, endpoints: list[Any]) -> tuple[Any | None, Any | None]:
    """(the card the row shows, the latest card): the card of the served version when endpoints
    serve the model (None when that version has none), else the latest card."""
    from modelwatch.tasks.cards import card_for_version, latest_card

    latest = latest_card(store, model)
    served = served_version(endpoints)
    if served is None:
        return latest, latest
    return card_for_version(store, model, served), latest


def build_row(model: Any, endpoints: list[Any], latest_job: Any | None, card: Any | None,
              schedules: dict[tuple[str, str], Any], alerts: dict[str, Alert],
              latest_card: Any | None = None) -> DashboardRow:
    """One dashboard row from the documents that describe a model (a plain function). `card` is
    the card of the served version (see `row_cards`), `latest_card` the latest one."""
    from modelwatch.tasks.cards import risk_rating

    other = latest_card if latest_card is not None and (
        card is None or latest_card.card_version != card.card_version) else None
    return DashboardRow(
        model=model.name,
        latest_version=model.latest.version if model.latest else None,
        problem_type=model.problem_type,
        risk_rating=risk_rating(card) if card is not None else "Unknown",
        card_status=card.status if card is not None else None,
        card_version=card.card_version if card is not None else None,
        card_model_version=card.model_version if card is not None else None,
        served_versions=sorted({e.model_version for e in endpoints}, key=_version_order),
        latest_card_status=other.status if other is not None else None,
        latest_card_version=other.card_version if other is not None else None,
        latest_card_model_version=other.model_version if other is not None else None,
        endpoints=sorted(e.name for e in endpoints),
        latest_batch_job=BatchJobCell(job_id=latest_job.job_id, status=latest_job.status,
                                      finished_at=latest_job.finished_at) if latest_job else None,
        monitors={t: monitor_cell(schedules.get((model.name, t)), alerts[t]) for t in monitor_types()},
    )


@task(name="read-fleet", cache_policy=NO_CACHE, **STORE_RETRY)
def read_fleet_task(store_uri: str) -> dict[str, Any]:
    """The registry: models, endpoints and batch jobs (what every row needs to be built)."""
    from modelwatch.tasks.registry import list_batch_jobs, list_endpoints, list_models

    store = Store(store_uri)
    return {"models": list_models(store), "endpoints": list_endpoints(store),
            "jobs": list_batch_jobs(store)}


@dataclass
class ModelSummary:
    """One model's row and what summarising it found."""

    row: DashboardRow
    alerts: dict[str, Alert] = field(default_factory=dict)
    transitions: list[Any] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)  # flow runs found dead
    problems: list[str] = field(default_factory=list)


def summarize_model(store: Store, model: Any, endpoints: list[Any], jobs: list[Any],
                    schedules: dict[tuple[str, str], Any], generated_at: datetime) -> ModelSummary:
    """Settle the model's interrupted executions, re-evaluate alerts whose criteria changed, build its
    row and write its page. A problem is reported on the row, never raised."""
    from modelwatch.tasks.executions import RUNNING, read_index, reconcile

    alerts: dict[str, Alert] = {}
    indexes: dict[str, Any] = {}
    summary = ModelSummary(row=DashboardRow(model=model.name))
    card = latest = None
    try:
        card, latest = row_cards(store, model.name, endpoints)
    except Exception as problem:  # noqa: BLE001 - reported on the row
        summary.problems.append(f"card: {_said(problem)}")
    for monitor_type in monitor_types():
        try:
            alert = read_alert(store, model.name, monitor_type)
            index = read_index(store, model.name, monitor_type)
            interrupted: list[Any] = []
            if any(e.status == RUNNING for e in index.executions):
                index, interrupted = reconcile(store, model.name, monitor_type, generated_at,
                                               stale_after(), index=index)
            if interrupted or criteria_changed(alert):
                cause = (f"summary {generated_at.isoformat()}: "
                         + ("interrupted executions" if interrupted else "criteria changed"))
                alert, transition = reevaluate_alert(store, model.name, monitor_type, cause=cause)
                if transition is not None:
                    summary.transitions.append(transition)
                    summary.changed.append(f"{model.name} {monitor_type} -> {transition.state}")
                summary.crashed += [e.flow_run_id for e in interrupted if e.flow_run_id]
            alerts[monitor_type], indexes[monitor_type] = alert, index
        except Exception as problem:  # noqa: BLE001 - reported on the row
            summary.problems.append(f"{monitor_type}: {_said(problem)}")
            alerts[monitor_type] = Alert(model=model.name, monitor_type=monitor_type)
            indexes[monitor_type] = None
    latest_job = jobs[-1] if jobs else None  # sorted by start time
    summary.row = build_row(model, endpoints, latest_job, card, schedules, alerts, latest)
    summary.row.problems = summary.problems
    summary.alerts = alerts
    try:
        write_model_page(store, summary.row, model, endpoints, jobs, card, alerts, indexes,
                         generated_at, latest)
    except Exception as problem:  # noqa: BLE001 - reported on the row
        summary.problems.append(f"page: {_said(problem)}")
    return summary


def _said(problem: Exception) -> str:
    return f"{type(problem).__name__}: {problem}"[:500]


def model_page(store: Store, row: DashboardRow, model: Any, endpoints: list[Any],
               jobs: list[Any], card: Any | None, alerts: dict[str, Alert],
               indexes: dict[str, Any], generated_at: datetime,
               latest_card: Any | None = None) -> tuple[ModelPage, list[Any]]:
    """What a model's page shows, and the telemetry views of its endpoints."""
    from modelwatch.tasks.endpoint_page import endpoint_telemetry, variant_rows
    from modelwatch.tasks.registry import lineage_edges

    executions = [e for t in monitor_types() if indexes.get(t) is not None
                  for e in indexes[t].executions]
    executions.sort(key=lambda e: e.window_end, reverse=True)
    history = [h for t in monitor_types() for h in alerts[t].history]
    document = ModelPage(
        row=row, card=card.dump() if card is not None else None,
        latest_card=latest_card.dump() if latest_card is not None and (
            card is None or latest_card.card_version != card.card_version) else None,
        lineage=lineage_edges(model, endpoints, jobs),
        alert_history=sorted(history, key=lambda h: h.at),
        executions=executions[:200], generated_at=generated_at, columns=dashboard_columns(),
    )
    finished = {t: next((e for e in reversed(indexes[t].executions) if e.status != "Running"), None)
                for t in monitor_types() if indexes.get(t) is not None}
    by_variant = variant_rows(finished)
    views = [endpoint_telemetry(store, e.name, model.name, generated_at) for e in endpoints]
    for view in views:
        view.variant_quality = by_variant
    return document, views


def write_model_page(store: Store, row: DashboardRow, model: Any, endpoints: list[Any],
                     jobs: list[Any], card: Any | None, alerts: dict[str, Alert],
                     indexes: dict[str, Any], generated_at: datetime,
                     latest_card: Any | None = None) -> None:
    from modelwatch.tasks.dashboard_html import render_model_page
    from modelwatch.tasks.endpoint_page import render_endpoint_page

    document, views = model_page(store, row, model, endpoints, jobs, card, alerts, indexes,
                                 generated_at, latest_card)
    for view in views:
        store.write_text(f"dashboard/endpoints/{view.endpoint}.html",
                         render_endpoint_page(view, model_href=f"../models/{model.name}.html"))
    store.write_text(f"dashboard/models/{row.model}.html",
                     render_model_page(document, store_root=store.uri(""), endpoints=views))


def read_model_page(store: Store, row: DashboardRow,
                    generated_at: datetime | None = None) -> tuple[ModelPage, list[Any]]:
    """A model's page as the store holds it now, for a dashboard row, without writing anything
    (the console's model page: alerts are read, never re-evaluated)."""
    from modelwatch.tasks.executions import read_index
    from modelwatch.tasks.registry import endpoints_of, get_model, list_batch_jobs

    model = get_model(store, row.model)
    endpoints = endpoints_of(store, row.model)
    card, latest = row_cards(store, row.model, endpoints)
    alerts = {t: read_alert(store, row.model, t) for t in monitor_types()}
    indexes = {t: read_index(store, row.model, t) for t in monitor_types()}
    return model_page(store, row, model, endpoints, list_batch_jobs(store, row.model), card, alerts,
                      indexes, generated_at or datetime.now(UTC), latest)


@task(name="summarize-models", cache_policy=NO_CACHE)
def summarize_models_task(store_uri: str, fleet: dict[str, Any],
                          schedules: dict[tuple[str, str], Any],
                          generated_at: datetime) -> list[ModelSummary]:
    store = Store(store_uri)
    endpoints_by_model: dict[str, list[Any]] = {}
    for endpoint in (v for e in fleet["endpoints"] for v in e.views()):
        endpoints_by_model.setdefault(endpoint.model, []).append(endpoint)
    jobs_by_model: dict[str, list[Any]] = {}
    for job in fleet["jobs"]:
        jobs_by_model.setdefault(job.model, []).append(job)
    models = sorted(fleet["models"], key=lambda m: m.name)

    def one(model: Any) -> ModelSummary:
        try:
            return summarize_model(store, model, endpoints_by_model.get(model.name, []),
                                   jobs_by_model.get(model.name, []), schedules, generated_at)
        except Exception as problem:  # noqa: BLE001 - one model never stops the fleet's summary
            row = DashboardRow(model=model.name, problems=[_said(problem)])
            return ModelSummary(row=row, problems=row.problems)

    return _parallel(one, models)


DASHBOARD_JSON = "dashboard/models.json"


def _dashboard_document(rows: list[DashboardRow], columns: list[MonitorColumn],
                        generated_at: datetime) -> dict[str, Any]:
    return {"generated_at": generated_at.isoformat(), "models": [row.dump() for row in rows],
            "columns": [c.dump() for c in columns]}


def _write_views(store: Store, rows: list[DashboardRow], columns: list[MonitorColumn],
                 generated_at: datetime) -> dict[str, str]:
    """models.parquet and index.html of the rows (models.json is written by the caller)."""
    from modelwatch.tasks.dashboard_html import render_index

    flat = [row.flat([c.name for c in columns]) for row in rows]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(flat) if flat else pa.table({"model": pa.array([], pa.string())}),
                   buffer)
    return {"parquet": store.write_bytes("dashboard/models.parquet", buffer.getvalue()),
            "html": store.write_text("dashboard/index.html",
                                     render_index(rows, generated_at, columns=columns))}


@task(name="write-dashboard", cache_policy=NO_CACHE, **STORE_RETRY)
def write_dashboard_task(store_uri: str, rows: list[DashboardRow],
                         generated_at: datetime) -> dict[str, str]:
    store = Store(store_uri)
    columns = dashboard_columns()
    written = store.write_json(DASHBOARD_JSON, _dashboard_document(rows, columns, generated_at))
    return {"json": written, **_write_views(store, rows, columns, generated_at)}


def refresh_model_row(store_uri: str, model_name: str) -> bool:
    """After one of a model's executions: rebuild that model's row and page and put the row into
    the dashboard (models.json, models.parquet, index.html); every other row stays as the last
    summary or refresh left it. Nothing to do (False) before the first summary wrote a dashboard,
    or for a model the registry does not know (the dashboard lists registered models only).

    models.json is updated atomically against concurrent refreshes of other models; the Parquet and
    HTML views are then written from the document that update produced."""
    from modelwatch.flows.events import emit_transition
    from modelwatch.tasks.registry import endpoints_of, get_model, list_batch_jobs, model_key

    store = Store(store_uri)
    if not store.exists(DASHBOARD_JSON) or not store.exists(model_key(model_name)):
        return False
    model = get_model(store, model_name)
    generated_at = datetime.now(UTC)
    summary = summarize_model(store, model, endpoints_of(store, model_name),
                              list_batch_jobs(store, model_name), schedule_states(model_name),
                              generated_at)
    for transition in summary.transitions:
        emit_transition(transition)
    mark_crashed(summary.crashed, "found without an outcome by a dashboard refresh (no heartbeat)")
    columns = dashboard_columns()

    def put_row(document: dict[str, Any] | None) -> dict[str, Any]:
        rows = [DashboardRow.model_validate(r) for r in (document or {}).get("models", [])
                if r.get("model") != model_name]
        rows = sorted([*rows, summary.row], key=lambda r: r.model)
        return _dashboard_document(rows, columns, generated_at)

    document = store.update_json(DASHBOARD_JSON, put_row)
    _write_views(store, [DashboardRow.model_validate(r) for r in document["models"]], columns,
                 generated_at)
    return True


def alarm_markdown(rows: list[DashboardRow]) -> str:
    alarmed = [r for r in rows if r.in_alarm]
    lines = ["### Models in alarm", ""]
    if not alarmed:
        lines.append("None: every monitored model is OK.")
    else:
        lines += ["| model | version | risk | monitor | alert raised |", "| --- | --- | --- | --- | --- |"]
    for row in alarmed:
        for monitor_type in row.in_alarm:
            cell = row.monitors[monitor_type]
            lines.append(f"| {escape_markdown(row.model)} | {escape_markdown(row.latest_version)} | "
                         f"{row.risk_rating} | {monitor_type} | "
                         f"{escape_markdown(cell.alarm_note or cell.display)} |")
    broken = [r for r in rows if r.problems]
    if broken:
        lines += ["", "### Models that could not be fully summarised", ""]
        lines += [f"- {escape_markdown(r.model)}: {escape_markdown('; '.join(r.problems))}"
                  for r in broken]
    return "\n".join(lines)


@flow(name="summary", log_prints=True)
def summarize_fleet(store: str | None = None, publish: bool = True) -> dict[str, Any]:
    """Build and write the dashboard; return its outputs, which models are in alarm, and the models
    that could not be summarised (their rows say why)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from modelwatch.flows.events import emit_transition

    store_uri = store or default_store_uri()
    generated_at = datetime.now(UTC)
    fleet = read_fleet_task(store_uri)
    schedules = schedule_states()
    # quote(): Prefect would otherwise walk every nested document looking for futures to resolve.
    summaries = summarize_models_task(store_uri, quote(fleet), quote(schedules), generated_at)
    for found in summaries:
        for transition in found.transitions:
            emit_transition(transition)
    mark_crashed([run for found in summaries for run in found.crashed],
                 "found without an outcome by the summary (no heartbeat)")
    rows = [found.row for found in summaries]
    outputs = write_dashboard_task(store_uri, quote(rows), generated_at)
    problems = {found.row.model: found.problems for found in summaries if found.problems}
    if publish:
        types = list(monitor_types())
        create_table_artifact(key="model-dashboard", table=[row.flat(types) for row in rows],
                              description=f"modelwatch dashboard, {len(rows)} models")
        create_markdown_artifact(key="models-in-alarm", markdown=alarm_markdown(rows),
                                 description="models whose alert is raised")
    print(f"dashboard: {len(rows)} models, {sum(1 for r in rows if r.in_alarm)} in alarm; "
          f"{outputs['html']}")
    for model, said in problems.items():
        print(f"model {model} could not be fully summarised: {'; '.join(said)}")
    # The table itself is in the outputs; a 1,000-row return value would only cost Prefect time.
    return {"outputs": outputs, "models": len(rows),
            "in_alarm": {r.model: r.in_alarm for r in rows if r.in_alarm},
            "re_evaluated": [c for found in summaries for c in found.changed],
            "problems": problems, "generated_at": generated_at.isoformat()}

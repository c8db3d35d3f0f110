"""CLI for running the fleet: monitoring schedules (Prefect deployments), alert criteria, the
dashboard, the retrain automations, and `serve`, which runs all deployments in one process."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from modelwatch.cli_common import (
    StoreOption,
    TypeOption,
    check_type,
    cli_identity,
    emit_json,
    needs_api,
    open_store,
    say,
    working,
)
from modelwatch.cli_type_options import with_type_options
from modelwatch.flows.monitor_types import monitor_types
from modelwatch.tasks.errors import UserError

schedule_app = typer.Typer(no_args_is_help=True,
                           help="Monitoring schedules (Prefect deployments with a cron schedule).")
alerts_app = typer.Typer(no_args_is_help=True, help="Alert criteria and state.")
automations_app = typer.Typer(no_args_is_help=True, help="Prefect automations (retrain on alert).")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _schedule(model: str, monitor_type: str):
    from modelwatch.flows.prefect_api import monitor_schedules

    needs_api()
    info = monitor_schedules().get((model, monitor_type))
    if info is None:
        raise UserError(f"model {model!r} has no {monitor_type} schedule "
                        "(create one with `modelwatch monitor schedule create`)")
    return info


@schedule_app.command("create")
@with_type_options("run")
def schedule_create(
    model: Annotated[str, typer.Option(help="Model name.")],
    cron: Annotated[str, typer.Option(help="Cron expression, UTC, e.g. '0 * * * *'.")],
    monitor_type: TypeOption = "data-quality",
    period: Annotated[str | None, typer.Option(
        help="Window each run checks: PT1H or P1D \\[default: from the cron]")] = None,
    store: StoreOption = None,
    **type_options: Any,
) -> None:
    """Create (or replace) the schedule of one model and monitor type. The type's own run options
    (its panel below) are passed to every run."""
    from modelwatch.deployments.schedules import monitor_deployment
    from modelwatch.flows.monitor_types import get_monitor, parse_options
    from modelwatch.tasks.registry import get_model

    parse_options(get_monitor(monitor_type).run_options, type_options, monitor_type, "run")
    the_store = open_store(store)
    get_model(the_store, model)
    needs_api()
    with working():
        deployment = monitor_deployment(model, monitor_type, cron, the_store.root, period=period,
                                        options=type_options or None)
        deployment_id = deployment.apply()
    emit_json({"deployment": f"scheduled-monitor/{deployment.name}", "id": str(deployment_id),
               "cron": cron, "parameters": deployment.parameters})


def _set_active(model: str, monitor_type: str, active: bool, store: str | None) -> None:
    from modelwatch.flows.actions import set_schedule_active

    check_type(monitor_type)
    the_store = open_store(store, writable=True)
    info = _schedule(model, monitor_type)
    state = set_schedule_active(the_store, _actor(), model, monitor_type, active)
    emit_json({"deployment": f"scheduled-monitor/{info.deployment_name}", **state})


def _actor():
    from modelwatch.flows.actions import Actor

    return Actor(cli_identity(), None, "cli")


@schedule_app.command("pause")
def schedule_pause(model: Annotated[str, typer.Option()], monitor_type: TypeOption = "data-quality",
                   store: StoreOption = None) -> None:
    """Pause a schedule (the dashboard shows Inactive); recorded in the audit log."""
    _set_active(model, monitor_type, False, store)


@schedule_app.command("resume")
def schedule_resume(model: Annotated[str, typer.Option()], monitor_type: TypeOption = "data-quality",
                    store: StoreOption = None) -> None:
    """Resume a paused schedule; recorded in the audit log."""
    _set_active(model, monitor_type, True, store)


@schedule_app.command("set-cron")
def schedule_set_cron(model: Annotated[str, typer.Option()],
                      cron: Annotated[str, typer.Option(help="Cron expression, UTC.")],
                      monitor_type: TypeOption = "data-quality", store: StoreOption = None) -> None:
    """Give a schedule a new cron (a window period that followed the old cron follows the new one);
    recorded in the audit log."""
    from modelwatch.flows.actions import set_schedule_cron

    check_type(monitor_type)
    the_store = open_store(store, writable=True)
    info = _schedule(model, monitor_type)
    state = set_schedule_cron(the_store, _actor(), model, monitor_type, cron)
    emit_json({"deployment": f"scheduled-monitor/{info.deployment_name}", **state})


@schedule_app.command("delete")
def schedule_delete(model: Annotated[str, typer.Option()], monitor_type: TypeOption = "data-quality",
                    ) -> None:
    """Delete a schedule (the dashboard shows None)."""
    from modelwatch.flows.prefect_api import delete_deployment

    info = _schedule(model, check_type(monitor_type))
    delete_deployment(info.deployment_id)
    emit_json({"deleted": f"scheduled-monitor/{info.deployment_name}"})


@schedule_app.command("list")
def schedule_list(as_json: JsonFlag = False) -> None:
    """Every monitoring schedule known to Prefect."""
    from modelwatch.flows.prefect_api import monitor_schedules

    needs_api()
    infos = sorted(monitor_schedules().values(), key=lambda i: (i.model, i.monitor_type))
    records = [{"model": i.model, "monitor_type": i.monitor_type, "cron": i.cron,
                "active": i.active, "deployment": f"scheduled-monitor/{i.deployment_name}"}
               for i in infos]
    if as_json:
        emit_json(records)
        return
    _table("monitoring schedules", records)


@alerts_app.command("set")
def alerts_set(
    model: Annotated[str, typer.Option()],
    datapoints_to_alert: Annotated[int, typer.Option(help="M: executions with violations...")] = 1,
    evaluation_period: Annotated[int, typer.Option(help="...out of the last N executions.")] = 1,
    monitor_type: TypeOption = "data-quality",
    store: StoreOption = None,
) -> None:
    """Set alert criteria; the next monitor run or summary re-evaluates (and emits on a change).
    Recorded in the audit log."""
    from modelwatch.flows.actions import set_alert_criteria

    check_type(monitor_type)
    the_store = open_store(store, writable=True)
    emit_json(set_alert_criteria(the_store, _actor(), model, monitor_type, datapoints_to_alert,
                                 evaluation_period).dump())


@alerts_app.command("show")
def alerts_show(model: Annotated[str, typer.Option()], monitor_type: TypeOption = "data-quality",
                store: StoreOption = None) -> None:
    """An alert's criteria, state and transition history."""
    from modelwatch.tasks.alerts import read_alert
    from modelwatch.tasks.registry import get_model

    the_store = open_store(store)
    get_model(the_store, model)
    emit_json(read_alert(the_store, model, check_type(monitor_type)).dump())


@alerts_app.command("list")
def alerts_list(store: StoreOption = None, as_json: JsonFlag = False) -> None:
    """Every model's alert state per monitor type."""
    from modelwatch.tasks.alerts import read_alert
    from modelwatch.tasks.registry import list_models

    the_store = open_store(store)
    records = []
    for model in list_models(the_store):
        for monitor_type in monitor_types():
            alert = read_alert(the_store, model.name, monitor_type)
            records.append({
                "model": model.name, "monitor_type": monitor_type, "state": alert.state,
                "criteria": f"{alert.criteria.datapoints_to_alert} of "
                            f"{alert.criteria.evaluation_period}",
                "raised_at": alert.raised_at.isoformat() if alert.raised_at else None})
    if as_json:
        emit_json(records)
        return
    _table("alerts", records)


@automations_app.command("apply")
def automations_apply(store: StoreOption = None) -> None:
    """Create the retrain deployments and, per retrainable model, the alert -> retrain automation."""
    the_store = open_store(store)
    needs_api()
    emit_json(apply_retraining(the_store.root))


def apply_retraining(store_uri: str) -> list[dict[str, str]]:
    from modelwatch.deployments.schedules import apply_automation, retrain_automation, retrain_deployment
    from modelwatch.tasks.registry import list_models
    from modelwatch.tasks.store import Store

    applied = []
    for model in list_models(Store(store_uri)):
        if not model.training_entry_point:
            continue
        with working():
            deployment_id = str(retrain_deployment(model.name, store_uri).apply())
            automation_id = apply_automation(retrain_automation(model.name, deployment_id))
        applied.append({"model": model.name, "deployment_id": deployment_id,
                        "automation_id": automation_id})
    return applied


def dashboard_command(
    refresh: Annotated[bool, typer.Option(help="Run the summary flow first.")] = False,
    store: StoreOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the model dashboard (one row per registered model)."""
    the_store = open_store(store, writable=True)
    problems: dict[str, list[str]] = {}
    if refresh:
        needs_api()
        with working():
            from modelwatch.flows.summary import summarize_fleet

            problems = summarize_fleet(store=the_store.root).get("problems") or {}
    if not the_store.exists("dashboard/models.json"):
        raise UserError(f"no dashboard in {the_store.root} yet: run `modelwatch dashboard --refresh`")
    document = the_store.read_json("dashboard/models.json")
    if as_json:
        emit_json(document)
    else:
        print_dashboard(document, the_store.uri("dashboard/index.html"))
    if problems:
        for model, said in problems.items():
            print(f"error: model {model} could not be fully summarised: {'; '.join(said)}",
                  file=sys.stderr)
        raise typer.Exit(1)


def _terminal_cell(cell: Any, colours: dict[str, str]) -> str:
    """A monitor cell in the terminal: an alarm says ALARM, whether or not a schedule runs it."""
    if cell.status == "Alarm":
        return f"[bold red]ALARM {cell.display}[/]"
    text = f"[{colours[cell.status]}]{cell.display}[/]"
    return f"{text} [bold red]{cell.alarm_note}[/]" if cell.alarm_note else text


def print_dashboard(document: dict, index_uri: str, console: Console | None = None) -> None:
    from modelwatch.tasks.dashboard import DashboardRow

    console = console or Console(width=max(Console().width, 150))
    table = Table(title=f"model dashboard, {document['generated_at']}")
    from modelwatch.tasks.dashboard import MonitorCell

    types = monitor_types()
    for column in ("model", "version", "risk", "card", "endpoints", "batch job", *types):
        table.add_column(column, overflow="fold")
    colours = {"None": "dim", "Inactive": "yellow", "OK": "green", "Alarm": "bold red"}
    for raw in document["models"]:
        row = DashboardRow.model_validate(raw)
        cells = [_terminal_cell(cell, colours)
                 for cell in (row.monitors.get(t, MonitorCell()) for t in types)]
        job = row.latest_batch_job
        table.add_row(row.model, row.latest_version or "-", row.risk_rating, row.card_status or "-",
                      ", ".join(row.endpoints) or "-",
                      f"{job.job_id} ({job.status})" if job else "-", *cells)
    console.print(table)
    console.print(f"HTML dashboard: {index_uri}")


def serve_command(
    summary_cron: Annotated[str, typer.Option(help="Cron of the summary deployment.")] = "*/15 * * * *",
    store: StoreOption = None,
) -> None:
    """Serve every monitoring and merge schedule, the summary, retention and the retrain deployments
    in one long-lived process, after applying the retrain automations. Needs a Prefect server:
    PREFECT_API_URL, else the local one (`modelwatch server`)."""
    from prefect import serve

    from modelwatch.deployments.schedules import (
        merge_deployment,
        rebuild_monitor_deployment,
        retrain_deployment,
        summary_deployment,
    )
    from modelwatch.flows.prefect_api import merge_schedules, monitor_schedules
    from modelwatch.tasks.registry import list_models

    the_store = open_store(store)
    needs_api()
    deployments = [rebuild_monitor_deployment(info, the_store.root)
                   for info in monitor_schedules().values()]
    deployments += [merge_deployment(endpoint, "", the_store.root, info=info)
                    for endpoint, info in merge_schedules().items()]
    deployments.append(summary_deployment(the_store.root, summary_cron))
    from modelwatch.deployments.schedules import existing_retention, retention_deployment

    if (retention := existing_retention()) is not None:  # made by `modelwatch retention schedule`
        deployments.append(retention_deployment("", the_store.root, info=retention))
    deployments += [retrain_deployment(m.name, the_store.root) for m in list_models(the_store)
                    if m.training_entry_point]
    applied = apply_retraining(the_store.root)
    say(f"serving {len(deployments)} deployments; {len(applied)} retrain automations applied")
    # pause_on_shutdown=False: stopping the server process is not the user pausing schedules.
    serve(*deployments, pause_on_shutdown=False)


def _table(title: str, records: list[dict]) -> None:
    console = Console(width=max(Console().width, 120))
    table = Table(title=title)
    if not records:
        console.print(f"{title}: none")
        return
    for column in records[0]:
        table.add_column(column)
    for record in records:
        table.add_row(*["-" if v is None else str(v) for v in record.values()])
    console.print(table)


def endpoints_promote(
    endpoint: Annotated[str, typer.Option(help="Endpoint name.")],
    version: Annotated[str, typer.Option(help="Model version to serve.")],
    by: Annotated[str | None, typer.Option(help="Who promotes \\[default: $USER].")] = None,
    store: StoreOption = None,
) -> None:
    """Move an endpoint to another version of its model; refused unless that version's card is
    Approved. The endpoint's monitors then check against that version's baselines."""
    import os

    from modelwatch.tasks.promotion import promote_endpoint

    record = promote_endpoint(open_store(store, writable=True), endpoint, version,
                              by or os.environ.get("USER"))
    emit_json(record.dump())


def _group(app: typer.Typer, name: str) -> typer.Typer:
    return next(g.typer_instance for g in app.registered_groups if g.name == name)


def register(app: typer.Typer) -> None:
    monitor_group = _group(app, "monitor")
    monitor_group.add_typer(schedule_app, name="schedule")
    _group(app, "endpoints").command("promote")(endpoints_promote)
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(automations_app, name="automations")
    app.command("dashboard")(dashboard_command)
    app.command("serve")(serve_command)

"""`modelwatch retention apply | schedule`: remove the store's data older than an age set per kind.

`apply` works on the store alone and never starts Prefect; `schedule` makes it a daily (or any cron)
Prefect deployment of the retention-apply flow.
"""

from __future__ import annotations

from typing import Annotated

import typer

from modelwatch.cli_common import StoreOption, emit_json, needs_api, open_store, say, working


def _days(kind: str, what: str) -> object:
    return Annotated[int | None, typer.Option(
        f"--{kind}-days", help=f"Remove {what} older than this many days \\[default: kept].")]


CaptureDays = _days("capture", "capture hour folders (capture/<endpoint>/..., multi-model too)")
GroundtruthDays = _days("groundtruth", "ground-truth hour folders (groundtruth/<endpoint>/...)")
MergedDays = _days("merged", "merged hour folders (merged/<endpoint>/...)")
ExecutionsDays = _days("executions", "monitoring executions (by window end; their index entries "
                                     "too)")
TelemetryDays = _days("telemetry", "telemetry day folders (telemetry/<endpoint>/YYYY/MM/DD/)")


def register(app: typer.Typer) -> None:
    """Add the retention command group to the main app."""
    retention_app = typer.Typer(
        no_args_is_help=True,
        help="Data retention: remove capture, ground truth, merged data, executions and telemetry "
             "older than an age per kind.")
    app.add_typer(retention_app, name="retention")
    retention_app.command("apply")(retention_apply_command)
    retention_app.command("schedule")(retention_schedule_command)


def _ages(capture: int | None, groundtruth: int | None, merged: int | None,
          executions: int | None, telemetry: int | None) -> dict[str, int | None]:
    from modelwatch.tasks.retention import check_ages

    ages = {"capture": capture, "groundtruth": groundtruth, "merged": merged,
            "executions": executions, "telemetry": telemetry}
    check_ages(ages)
    return ages


def retention_apply_command(
    capture_days: CaptureDays = None,
    groundtruth_days: GroundtruthDays = None,
    merged_days: MergedDays = None,
    executions_days: ExecutionsDays = None,
    telemetry_days: TelemetryDays = None,
    now: Annotated[str | None, typer.Option(
        help="Count ages back from this ISO-8601 time (UTC if no zone) \\[default: now].")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Report what would be removed; remove nothing.")] = False,
    store: StoreOption = None,
) -> None:
    """Remove data older than the given ages (a kind without an age is kept) and print the report:
    per kind the cutoff, the files and bytes removed, the folders removed and the entries skipped.
    Ages are read from the paths (hour, day, execution window), never from file times: an hour
    folder goes once its whole hour is older than the cutoff. Anything that is not a date folder of
    the layout is left alone and listed as skipped."""
    from modelwatch.tasks.retention import apply_retention
    from modelwatch.tasks.windows import parse_time

    ages = _ages(capture_days, groundtruth_days, merged_days, executions_days, telemetry_days)
    moment = parse_time(now, "--now") if now is not None else None
    the_store = open_store(store, writable=not dry_run)
    report = apply_retention(the_store, ages, now=moment, dry_run=dry_run)
    emit_json(report.dump())
    verb = "would remove" if dry_run else "removed"
    say(f"{verb} {report.files} files ({report.bytes} bytes) in "
        f"{sum(len(k.removed) for k in report.kinds.values())} folders")


def retention_schedule_command(
    cron: Annotated[str, typer.Option(help="Cron expression, UTC, e.g. '0 3 * * *'.")],
    capture_days: CaptureDays = None,
    groundtruth_days: GroundtruthDays = None,
    merged_days: MergedDays = None,
    executions_days: ExecutionsDays = None,
    telemetry_days: TelemetryDays = None,
    store: StoreOption = None,
) -> None:
    """Create (or replace) the store's retention job: a Prefect deployment `modelwatch-retention` of
    the retention-apply flow, each run counting ages back from its scheduled time."""
    from modelwatch.deployments.schedules import check_cron, retention_deployment

    ages = _ages(capture_days, groundtruth_days, merged_days, executions_days, telemetry_days)
    check_cron(cron)
    the_store = open_store(store)
    needs_api()
    with working():
        deployment = retention_deployment(cron, the_store.root, ages)
        deployment_id = deployment.apply()
    emit_json({"deployment": f"retention-apply/{deployment.name}", "id": str(deployment_id),
               "cron": cron, "parameters": deployment.parameters})

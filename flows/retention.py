"""The retention flow (`retention-apply`): one task per kind of data removes what is older than its age
(the logic lives in tasks/retention.py), and the run's report is published as a Prefect artifact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from modelwatch.flows.retries import STORE_RETRY
from modelwatch.tasks.retention import KindReport, RetentionReport, apply_kind, plan_retention, utc
from modelwatch.tasks.store import Store, default_store_uri

ARTIFACT_KEY = "modelwatch-retention"


@task(name="retention", cache_policy=NO_CACHE, **STORE_RETRY)
def retention_task(store_uri: str, kind: str, days: int, cutoff: datetime, now: datetime,
                   dry_run: bool) -> KindReport:
    """Remove one kind's data older than the cutoff (a re-run finds what is left and goes on)."""
    return apply_kind(Store(store_uri), kind, days, cutoff, dry_run=dry_run, now=now)


def _now(now: datetime | None) -> datetime:
    """`now` when given, else the run's scheduled time (a late run still keeps exactly its ages'
    worth), else the current time."""
    if now is None:
        from prefect.runtime import flow_run

        now = flow_run.scheduled_start_time or datetime.now(UTC)
    return utc(now)


def _markdown(report: RetentionReport) -> str:
    verb = "would remove" if report.dry_run else "removed"
    lines = [f"### retention · {report.store}", "",
             f"As of {report.now.isoformat()}{' (dry run)' if report.dry_run else ''}.", "",
             f"| kind | days | cutoff | folders {verb} | files | bytes | skipped |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for kind, part in report.kinds.items():
        lines.append(f"| {kind} | {part.days} | {part.cutoff.isoformat()} | {len(part.removed)} | "
                     f"{part.files} | {part.bytes} | {len(part.skipped)} |")
    return "\n".join(lines)


@flow(name="retention-apply", log_prints=True)
def retention_apply(
    capture_days: int | None = None,
    groundtruth_days: int | None = None,
    merged_days: int | None = None,
    executions_days: int | None = None,
    telemetry_days: int | None = None,
    store: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Remove the store's data older than the ages given, in days per kind (a kind without an age is
    kept), counted back from `now` (default: the run's scheduled time). Returns the retention report
    (as `modelwatch retention apply` prints it)."""
    ages = {"capture": capture_days, "groundtruth": groundtruth_days, "merged": merged_days,
            "executions": executions_days, "telemetry": telemetry_days}
    store_uri = Store(store or default_store_uri()).root
    moment = _now(now)
    report = RetentionReport(store=store_uri, now=moment, dry_run=dry_run)
    for kind, (days, cutoff) in plan_retention(ages, moment).items():
        part = retention_task.with_options(name=f"retention-{kind}")(
            store_uri, kind, days, cutoff, moment, dry_run)
        report.add(kind, part)
        print(f"{kind}: {'would remove' if dry_run else 'removed'} {len(part.removed)} folders, "
              f"{part.files} files, {part.bytes} bytes older than {cutoff.isoformat()}"
              + (f"; {len(part.skipped)} entries skipped" if part.skipped else ""))
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=_markdown(report),
                             description=f"retention of {store_uri}")
    return report.dump()

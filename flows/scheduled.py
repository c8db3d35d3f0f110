"""The flows schedules run: work out the window the run is for (the previous hour or day before its
scheduled time); a monitoring schedule finds the model's endpoints in the registry, runs the monitor on
them and refreshes the dashboard; a merge schedule merges an endpoint's ground truth for the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow

from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store, default_store_uri

PERIODS = {"PT1H": timedelta(hours=1), "P1D": timedelta(days=1)}


def window_for(scheduled: datetime, period: str) -> tuple[datetime, datetime]:
    """[start, end) of the complete period before `scheduled` (hour or day, UTC)."""
    if period not in PERIODS:
        raise UserError(f"window period {period!r}: expected one of {', '.join(PERIODS)}")
    scheduled = scheduled.astimezone(UTC)
    if period == "PT1H":
        end = scheduled.replace(minute=0, second=0, microsecond=0)
    else:
        end = scheduled.replace(hour=0, minute=0, second=0, microsecond=0)
    return end - PERIODS[period], end


def run_window(period: str, window_end: datetime | None) -> tuple[datetime, datetime]:
    """The window of this run: the period ending at `window_end` when given, else the complete period
    before the run's scheduled time (or now, for a run nobody scheduled)."""
    from prefect.runtime import flow_run

    if window_end is not None:
        if period not in PERIODS:
            raise UserError(f"window period {period!r}: expected one of {', '.join(PERIODS)}")
        return window_end - PERIODS[period], window_end
    return window_for(flow_run.scheduled_start_time or datetime.now(UTC), period)


def period_for_cron(cron: str) -> str:
    """An hourly-or-faster cron monitors the previous hour; anything slower, the previous day."""
    fields = cron.split()
    hour = fields[1] if len(fields) >= 2 else "*"
    return "PT1H" if hour == "*" or "/" in hour or "," in hour else "P1D"


@flow(name="scheduled-monitor", log_prints=True)
def scheduled_monitor(
    model: str,
    monitor_type: str = "data-quality",
    period: str = "P1D",
    store: str | None = None,
    window_end: datetime | None = None,
    summarize: bool = True,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One scheduled execution for a model and monitor type over the window before this run.
    `options` are the type's own run options (see `modelwatch monitor run --help`)."""
    from modelwatch.flows.monitor_types import get_monitor, parse_options
    from modelwatch.tasks.registry import endpoints_of, get_model

    monitor = get_monitor(monitor_type)
    run_options = parse_options(monitor.run_options, options or {}, monitor_type, "run")
    store_uri = store or default_store_uri()
    the_store = Store(store_uri)
    start, end = run_window(period, window_end)
    get_model(the_store, model)
    endpoints = endpoints_of(the_store, model)
    if not endpoints:
        raise UserError(f"model {model!r} has no registered endpoint to monitor")
    # The endpoints' traffic, checked against the baseline of the version they serve.
    version = max((e.model_version for e in endpoints), key=lambda v: (len(v), v))
    print(f"{model} {monitor_type}: window {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, "
          f"endpoints {', '.join(e.name for e in endpoints)}")
    if monitor.reads == "merged":
        from modelwatch.flows.merge import merge_ground_truth
        from modelwatch.flows.scale_out import on_cluster

        # Merged data: join the window's capture with the labels that arrived so far.
        for endpoint in endpoints:
            on_cluster(merge_ground_truth)(endpoint=endpoint.name, start=start, end=end, store=store_uri)
        source = None
    else:
        source = [e.capture_uri.rstrip("/") for e in endpoints]
    state = monitor.run(model=model, start=start, end=end, source=source, store=store_uri,
                        version=version, options=run_options, return_state=True)
    if summarize:
        from modelwatch.flows.summary import summarize_fleet

        summarize_fleet(store=store_uri)
    from prefect.states import Completed

    # A failed execution fails this run; otherwise its state's name (CompletedWithViolations,
    # NoData ...) is this run's too. A fresh state: a child run's own state would be the result.
    execution = state.result()
    return Completed(name=state.name, message=state.message, data=execution)


@flow(name="scheduled-merge", log_prints=True)
def scheduled_merge(
    endpoint: str,
    period: str = "PT1H",
    lookback: str = "P7D",
    store: str | None = None,
    window_end: datetime | None = None,
) -> dict[str, Any]:
    """The ground-truth merge job of an endpoint: merge the window before this run with the labels
    that arrived within the lookback (re-running a window rewrites the same merged files)."""
    from modelwatch.flows.merge import merge_ground_truth
    from modelwatch.flows.scale_out import on_cluster

    start, end = run_window(period, window_end)
    return on_cluster(merge_ground_truth)(endpoint=endpoint, start=start, end=end, lookback=lookback,
                              store=store or default_store_uri())

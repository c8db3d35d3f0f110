"""`modelwatch groundtruth upload | merge`: labels in SageMaker's ground-truth format, and their merge
with an endpoint's capture.

`upload` is a plain store write and never starts Prefect; `merge` runs the merge flow once every
check a user can fail has passed.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from modelwatch.cli_common import (
    DaskOption,
    StoreOption,
    emit_json,
    needs_api,
    open_store,
    use_dask,
    working,
)
from modelwatch.tasks.errors import UserError


def register(app: typer.Typer) -> None:
    """Add the groundtruth command group to the main app."""
    groundtruth_app = typer.Typer(
        no_args_is_help=True,
        help="Ground truth: upload labels, merge them with an endpoint's capture.")
    app.add_typer(groundtruth_app, name="groundtruth")
    groundtruth_app.command("upload")(groundtruth_upload)
    groundtruth_app.command("merge")(groundtruth_merge)
    groundtruth_app.command("schedule")(groundtruth_schedule)


def groundtruth_upload(
    endpoint: Annotated[str, typer.Option(help="Registered endpoint the labels belong to.")],
    file: Annotated[str, typer.Option(
        "--file", help="Labelled dataset: CSV with a header row, or Parquet; path or URI.")],
    id_column: Annotated[str, typer.Option(
        help="Column holding the capture's inferenceId (or its eventId when it had none).")],
    label_column: Annotated[str, typer.Option(help="Column holding the label.")],
    labelled_at: Annotated[str | None, typer.Option(
        help="When these labels were collected, ISO-8601 \\[default: now].")] = None,
    labelled_at_column: Annotated[str | None, typer.Option(
        help="Column holding each row's labelling time instead of --labelled-at.")] = None,
    store: StoreOption = None,
) -> None:
    """Write a dataset's labels as ground truth, groundtruth/<endpoint>/YYYY/MM/DD/HH/, by the hour
    they were labelled. Prints what was written and the rows skipped (no id or no label)."""
    from modelwatch.tasks.groundtruth_upload import parse_labelled_at, write_ground_truth
    from modelwatch.tasks.registry import get_endpoint
    from modelwatch.tasks.store import check_slug

    check_slug(endpoint, "endpoint name")
    if labelled_at and labelled_at_column:
        raise UserError("give --labelled-at or --labelled-at-column, not both")
    moment = parse_labelled_at(labelled_at)
    the_store = open_store(store, writable=True)
    get_endpoint(the_store, endpoint)
    report = write_ground_truth(the_store, endpoint, file, id_column, label_column,
                                labelled_at=moment, labelled_at_column=labelled_at_column)
    emit_json(report.dump())


def groundtruth_merge(
    endpoint: Annotated[str, typer.Option(help="Registered endpoint.")],
    start: Annotated[str, typer.Option(help="Window start, ISO-8601 on a whole hour (UTC if no zone).")],
    end: Annotated[str, typer.Option(help="Window end (exclusive), ISO-8601 on a whole hour.")],
    lookback: Annotated[str, typer.Option(
        help="How late labels may arrive, and how far around the window capture ids are searched: "
             "ISO-8601 PnD, PTnH or PTnM.")] = "P7D",
    dask: DaskOption = None,
    store: StoreOption = None,
) -> None:
    """Merge the window's capture records with their ground truth and print the merge report."""
    from modelwatch.api import check_merge_inputs

    address = use_dask(dask)
    the_store, begin, finish = check_merge_inputs(endpoint, start, end, lookback, store)
    needs_api()
    from modelwatch.flows.scale_out import cluster

    with working(), cluster(address):
        from modelwatch.flows.merge import merge_ground_truth
        from modelwatch.flows.scale_out import on_cluster

        state = on_cluster(merge_ground_truth)(endpoint=endpoint, start=begin, end=finish, lookback=lookback,
                                   store=the_store.root, return_state=True)
        report = _report_of(state, endpoint)
    emit_json(report)
    if report.get("status") == "Failed":
        raise typer.Exit(1)


def _report_of(state: Any, endpoint: str) -> dict[str, Any]:
    if not state.is_failed():
        return state.result()
    try:
        state.result()
    except UserError:
        raise
    except Exception as problem:  # noqa: BLE001 - reported as the merge's outcome, exit code 1
        return {"endpoint": endpoint, "status": "Failed",
                "failure_reason": f"{type(problem).__name__}: {problem}"[:1024]}
    return {"endpoint": endpoint, "status": "Failed", "failure_reason": "unknown"}


def groundtruth_schedule(
    endpoint: Annotated[str, typer.Option(help="Registered endpoint.")],
    cron: Annotated[str, typer.Option(help="Cron expression, UTC, e.g. '30 * * * *'.")],
    lookback: Annotated[str, typer.Option(help="How long labels may arrive after a capture.")] = "P7D",
    period: Annotated[str | None, typer.Option(
        help="Window each run merges: PT1H or P1D \\[default: from the cron]")] = None,
    store: StoreOption = None,
) -> None:
    """Create (or replace) the merge job of an endpoint: a Prefect deployment `merge-<endpoint>` of
    the scheduled-merge flow, served by `modelwatch serve`."""
    from modelwatch.deployments.schedules import merge_deployment
    from modelwatch.flows.scheduled import PERIODS
    from modelwatch.tasks.registry import get_endpoint
    from modelwatch.tasks.windows import parse_duration

    the_store = open_store(store)
    get_endpoint(the_store, endpoint)
    parse_duration(lookback, "--lookback")
    if period is not None and period not in PERIODS:
        raise UserError(f"--period {period!r}: expected one of {', '.join(PERIODS)}")
    needs_api()
    with working():
        deployment = merge_deployment(endpoint, cron, the_store.root, period=period, lookback=lookback)
        deployment_id = deployment.apply()
    emit_json({"deployment": f"scheduled-merge/{deployment.name}", "id": str(deployment_id),
               "cron": cron, "parameters": deployment.parameters})

"""The `modelwatch` console script. Commands that print JSON print only that JSON on stdout; logs and
progress go to stderr. Exit codes: 0 done, 1 an execution failed, 2 a user error."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import typer

from modelwatch.cli_common import (
    TYPE_HELP,
    StoreOption,
    emit_json,
    open_store,
    parse_window,
    stdout_to_stderr,
)
from modelwatch.cli_type_options import with_type_options
from modelwatch.runtime import configure_prefect
from modelwatch.tasks.errors import UserError

configure_prefect()

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Self-hosted model monitoring on Prefect (SageMaker-compatible files).")
baseline_app = typer.Typer(no_args_is_help=True, help="Suggest baselines.")
monitor_app = typer.Typer(no_args_is_help=True, help="Run monitoring executions.")
app.add_typer(baseline_app, name="baseline")
app.add_typer(monitor_app, name="monitor")


def _add_command_groups() -> None:
    """Command groups that live in modelwatch/commands/, one module per concern."""
    import importlib

    for module_name in ("registry", "cards", "operations", "groundtruth"):
        try:
            module = importlib.import_module(f"modelwatch.commands.{module_name}")
        except ModuleNotFoundError as missing:
            if missing.name != f"modelwatch.commands.{module_name}":
                raise
            continue
        module.register(app)


_add_command_groups()

@baseline_app.command("suggest")
@with_type_options("baseline")
def baseline_suggest(
    model: Annotated[str, typer.Option(help="Model name (a slug).")],
    dataset: Annotated[str, typer.Option(help="Training dataset: CSV or Parquet, path or URI.")],
    monitor_type: Annotated[str, typer.Option("--type", help=TYPE_HELP)] = "data-quality",
    label: Annotated[str | None, typer.Option(help="Label column, left out of the features.")] = None,
    version: Annotated[str, typer.Option(help="Model version the baseline belongs to.")] = "1",
    store: StoreOption = None,
    **type_options: Any,
) -> None:
    """Suggest a baseline: data-quality profiles a dataset; model-quality and bias-drift score a
    labelled, predicted one; feature-attribution-drift explains a sample with shap. Each type's own
    options are listed in its panel below."""
    from modelwatch.flows.monitor_types import get_monitor, parse_options
    from modelwatch.tasks.store import check_slug

    monitor = get_monitor(monitor_type)
    options = parse_options(monitor.baseline_options, type_options, monitor_type, "baseline")
    check_slug(model, "model name")
    check_slug(version, "model version")
    open_store(store, writable=True)
    from modelwatch.tasks.store import filesystem_for

    fs, path = filesystem_for(dataset)
    if not fs.isfile(path):
        raise UserError(f"--dataset {dataset}: no such file (expected a CSV or Parquet dataset)")
    from modelwatch.tasks.capture import dataset_columns

    columns = dataset_columns(dataset)
    if label and columns and label not in columns:
        raise UserError(f"--label {label!r} is not a column of {dataset}; columns are "
                        f"{', '.join(columns)}")
    monitor.check_baseline_options(options, label, dataset, columns)
    with stdout_to_stderr():
        uris = monitor.suggest_baseline(model=model, dataset=dataset, version=version, label=label,
                                        store=store, options=options)
    emit_json(uris)


@monitor_app.command("run")
@with_type_options("run")
def monitor_run(
    model: Annotated[str, typer.Option(help="Model name (a slug).")],
    start: Annotated[str, typer.Option(help="Window start, ISO-8601 (UTC if no zone).")],
    end: Annotated[str, typer.Option(help="Window end (exclusive), ISO-8601.")],
    capture: Annotated[list[str] | None, typer.Option(
        help="Types reading capture: a capture root (<root>/<variant>/YYYY/MM/DD/HH/*.jsonl), "
             "repeatable; data-quality also takes a CSV/Parquet dataset \\[default: the model's "
             "endpoints]")] = None,
    merged: Annotated[list[str] | None, typer.Option(
        help="Types reading merged data: a merged-data root, repeatable \\[default: "
             "merged/<endpoint> of the model's endpoints]")] = None,
    monitor_type: Annotated[str, typer.Option("--type", help=TYPE_HELP)] = "data-quality",
    version: Annotated[str | None, typer.Option(help="Baseline version \\[default: latest].")] = None,
    store: StoreOption = None,
    **type_options: Any,
) -> None:
    """Run one monitoring execution over [start, end) and print its execution.json. Each type's
    own options are listed in its panel below."""
    from modelwatch.flows.monitor_types import get_monitor, parse_options

    monitor = get_monitor(monitor_type)
    options = parse_options(monitor.run_options, type_options, monitor_type, "run")
    begin, finish = parse_window(start, end)
    from modelwatch.tasks.store import check_slug

    check_slug(model, "model name")
    if monitor.reads == "capture":
        given, unwanted, flag = capture, merged, "--merged"
    else:
        given, unwanted, flag = merged, capture, "--capture"
    if unwanted:
        raise UserError(f"{flag} does not apply to --type {monitor_type}: it reads "
                        f"{monitor.reads} records")
    # Refuse an unusable store, an unknown model or a broken baseline before Prefect's start-up.
    the_store = open_store(store, writable=True)
    monitor.load_baseline(the_store, model, version)
    with stdout_to_stderr():
        state = monitor.run(model=model, start=begin, end=finish, source=given or None,
                            store=store, version=version, options=options, return_state=True)
        document, failure = _execution_of(state, model, monitor_type, begin, finish, store)
    emit_json(document)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        raise typer.Exit(1)


def _execution_of(state: Any, model: str, monitor_type: str, begin: datetime, finish: datetime,
                  store: str | None) -> tuple[dict[str, Any], str | None]:
    """(the execution document of the run this command started, why it failed or None). Only a
    document written by that very flow run is reported: an older execution.json of the same window is
    never passed off as this run's outcome."""
    run_id = str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None
    if not state.is_failed() and not state.is_crashed():
        return state.result(), None
    try:
        state.result()
        problem: BaseException = RuntimeError(state.message or f"flow run ended {state.name}")
    except UserError:
        raise
    except BaseException as raised:  # noqa: BLE001 - reported as this run's failure
        problem = raised
    reason = f"{type(problem).__name__}: {problem}"[:2000]
    from modelwatch.tasks.executions import execution_prefix
    from modelwatch.tasks.store import Store, default_store_uri

    key = f"{execution_prefix(model, monitor_type, begin, finish)}/execution.json"
    try:
        the_store = Store(store or default_store_uri())
        document = the_store.read_json(key) if the_store.exists(key) else None
    except Exception:  # noqa: BLE001 - the store may be what failed
        document = None
    if document is not None and run_id is not None and document.get("flow_run_id") == run_id:
        if document.get("status") == "Failed":
            return document, document.get("failure_reason") or reason
        return document, f"the execution finished {document.get('status')} but recording its " \
                         f"outcome failed: {reason}"
    from modelwatch.tasks.windows import iso_z

    return {"model": model, "monitor_type": monitor_type, "window_start": iso_z(begin),
            "window_end": iso_z(finish), "status": "Failed", "failure_reason": reason,
            "flow_run_id": run_id}, reason


@app.command("demo")
def demo(
    out: Annotated[str, typer.Option(help="Folder for the demo's data and store.")] = "demo-output",
) -> None:
    """Generate a drifting credit-default case and monitor two days of its traffic."""
    from modelwatch.demo import run_demo

    run_demo(out)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 done, 1 an execution failed (or the store kept failing
    after its bounded retries), 2 a user error."""
    from modelwatch.tasks.store import StoreConflict, StoreUnavailable

    try:
        code = app(args=argv, prog_name="modelwatch", standalone_mode=False)
    except UserError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    except (StoreUnavailable, StoreConflict) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except Exception as problem:
        # Usage errors (typer's own click): print its message the usual way, exit code 2.
        if hasattr(problem, "show") and hasattr(problem, "exit_code"):
            problem.show()
            return int(problem.exit_code)
        raise
    return code if isinstance(code, int) else 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()


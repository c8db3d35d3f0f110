"""The `modelwatch` console script. Commands that print JSON print only that JSON on stdout; logs and
progress go to stderr. Exit codes: 0 done, 1 an execution failed, 2 a user error."""

from __future__ import annotations

import gc
import sys
from typing import Annotated, Any

import typer

from modelwatch.cli_common import (
    TYPE_HELP,
    DaskOption,
    StoreOption,
    check_type,
    emit_json,
    open_store,
    say,
    set_quiet,
    use_dask,
    working,
)
from modelwatch.cli_type_options import with_type_options
from modelwatch.runtime import configure_prefect
from modelwatch.tasks.errors import UserError

configure_prefect()

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Self-hosted model monitoring on Prefect (SageMaker-compatible files).")
baseline_app = typer.Typer(no_args_is_help=True, help="Suggest and export baselines.")
monitor_app = typer.Typer(no_args_is_help=True, help="Run monitoring executions.")


@app.callback()
def _global_options(
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only results and errors: no progress, no summary lines, "
                              "Prefect logs from warnings up.")] = False,
) -> None:
    set_quiet(quiet)


app.add_typer(baseline_app, name="baseline")
app.add_typer(monitor_app, name="monitor")


def _add_command_groups() -> None:
    """Command groups that live in modelwatch/commands/, one module per concern."""
    import importlib

    for module_name in ("registry", "cards", "operations", "groundtruth", "server", "retention",
                        "variants", "console"):
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
    from modelwatch.api import suggest_baseline

    with working():
        uris = suggest_baseline(model, dataset, monitor_type=monitor_type, label=label,
                                version=version, store=store, **type_options)
    emit_json(uris)


EXPORT_FORMATS = ("gx",)


@baseline_app.command("export")
def baseline_export(
    model: Annotated[str, typer.Option(help="Model name (a slug).")],
    monitor_type: Annotated[str, typer.Option("--type", help=TYPE_HELP)] = "data-quality",
    version: Annotated[str | None, typer.Option(help="Baseline version \\[default: latest].")] = None,
    export_format: Annotated[str, typer.Option(
        "--format", help="gx: a Great Expectations 1.x Expectation Suite (JSON).")] = "gx",
    out: Annotated[str | None, typer.Option(help="File to write \\[default: stdout].")] = None,
    store: StoreOption = None,
) -> None:
    """Export a baseline's constraints (the reviewed ones where committed) in another tool's format:
    the suite on stdout, or with --out written to FILE and {"gx_suite": FILE, "expectations": N}
    printed. Commit a suite as baselines/<model>/data-quality/gx_suite.json and every data-quality
    execution runs it."""
    from pathlib import Path

    from modelwatch.tasks.baselines import load_baseline
    from modelwatch.tasks.gx_suites import export_suite
    from modelwatch.tasks.store import json_dumps

    if export_format not in EXPORT_FORMATS:
        raise UserError(f"unknown --format {export_format!r}: one of {', '.join(EXPORT_FORMATS)}")
    if check_type(monitor_type) != "data-quality":
        raise UserError(f"--format {export_format} exports data-quality baselines only, not "
                        f"{monitor_type}")
    opened = open_store(store)
    baseline = load_baseline(opened, model, monitor_type, version, with_sample=False)
    document = export_suite(
        baseline.constraints, baseline.statistics, name=f"{model}-{baseline.version}-data-quality",
        order=baseline.features,
        meta={"modelwatch": {"model": model, "version": baseline.version, **baseline.sources}})
    if out is None:
        emit_json(document)
        return
    target = Path(out)
    if target.is_dir():
        raise UserError(f"--out {out}: is a folder, not a file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json_dumps(document) + "\n", encoding="utf-8")
    except OSError as problem:
        raise UserError(f"--out {out}: cannot write ({problem.strerror or problem})") from None
    emit_json({"gx_suite": str(target.resolve()), "expectations": len(document["expectations"])})


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
    allow_empty: Annotated[bool, typer.Option(
        "--allow-empty", help="Record a NoData execution when the window's hour folders hold no "
                              "file (else that is an error, exit code 2).")] = False,
    dask: DaskOption = None,
    store: StoreOption = None,
    **type_options: Any,
) -> None:
    """Run one monitoring execution over [start, end) and print its execution.json. Each type's
    own options are listed in its panel below."""
    from modelwatch.api import ExecutionFailed, run_monitor
    from modelwatch.flows.monitor_types import get_monitor

    address = use_dask(dask, monitor_type)
    reads = get_monitor(monitor_type).reads
    given, unwanted, flag = (capture, merged, "--merged") if reads == "capture" else \
        (merged, capture, "--capture")
    if unwanted:
        raise UserError(f"{flag} does not apply to --type {monitor_type}: it reads {reads} records")
    from modelwatch.flows.scale_out import cluster

    try:
        with working(), cluster(address):
            document = run_monitor(model, start, end, monitor_type=monitor_type, source=given,
                                   version=version, store=store, allow_empty=allow_empty,
                                   **type_options)
    except ExecutionFailed as failed:
        emit_json(failed.execution)
        print(f"error: {failed.reason}", file=sys.stderr)
        raise typer.Exit(1) from None
    emit_json(document)
    from modelwatch.human import execution_lines

    say("\n".join(execution_lines(document)))  # for people: numbers rounded


@app.command("demo")
def demo(
    out: Annotated[str, typer.Option(help="Folder for the demo's data and store.")] = "demo-output",
) -> None:
    """Build a demo fleet of four models in OUT/store and monitor two days of
    their traffic on the local Prefect server.

    credit-default (data and model quality) drifts on day two and its
    labels, arriving a day late, show its quality dropping: both alerts
    are raised and it is retrained (a new version with a Draft card and
    fresh baselines). loan-approval runs all four monitors (data quality,
    model quality, bias drift on gender, feature attribution drift); an
    upstream change on day two moves its bias metrics and SHAP ranking.
    credit-default-canary has a paused schedule; income-estimator is
    registered but never monitored.

    Prints every execution, the dashboard and the path of index.html; a
    re-run replaces OUT/store."""
    from modelwatch.demo import run_demo

    run_demo(out)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 done, 1 an execution failed (or the store kept failing
    after its bounded retries), 2 a user error."""
    from modelwatch.flows.local_server import LocalServerFailed
    from modelwatch.tasks.store import StoreConflict, StoreUnavailable

    try:
        code = app(args=argv, prog_name="modelwatch", standalone_mode=False)
    except UserError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    except (StoreUnavailable, StoreConflict, LocalServerFailed) as problem:
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
    code = run()
    # Teardown's last garbage collection walks every object pandas, pyarrow and Prefect made: 0.6 s
    # of a 3 s command here. Frozen objects are skipped; Prefect's drains and atexit hooks still run.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    main()


"""The `modelwatch` console script. Commands that print JSON print only that JSON on stdout; logs and
progress go to stderr. Exit codes: 0 done, 1 an execution failed, 2 a user error."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import typer

from modelwatch.cli_common import (
    StoreOption,
    check_type,
    emit_json,
    parse_window,
    stdout_to_stderr,
)
from modelwatch.errors import UserError
from modelwatch.runtime import configure_prefect

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
def baseline_suggest(
    model: Annotated[str, typer.Option(help="Model name (a slug).")],
    dataset: Annotated[str, typer.Option(help="Training dataset: CSV or Parquet, path or URI.")],
    monitor_type: Annotated[str, typer.Option("--type", help="Monitor type.")] = "data-quality",
    label: Annotated[str | None, typer.Option(help="Label column, left out of the features.")] = None,
    version: Annotated[str, typer.Option(help="Model version the baseline belongs to.")] = "1",
    categorical_drift_method: Annotated[str, typer.Option(
        help="LInfinity (default) or ChiSquared.")] = "LInfinity",
    prediction: Annotated[str | None, typer.Option(
        help="model-quality: the predicted-label column.")] = None,
    probability: Annotated[str | None, typer.Option(
        help="model-quality (binary): the score column.")] = None,
    problem_type: Annotated[str | None, typer.Option(
        help="model-quality: binary, multiclass or regression [default: the registry's]")] = None,
    threshold: Annotated[float, typer.Option(
        help="model-quality (binary): probability threshold.")] = 0.5,
    store: StoreOption = None,
) -> None:
    """Suggest a baseline: data-quality profiles a dataset; model-quality scores a labelled,
    predicted one. Writes statistics.json and constraints.json to the store."""
    check_type(monitor_type)
    if categorical_drift_method not in ("LInfinity", "ChiSquared"):
        raise UserError(f"--categorical-drift-method {categorical_drift_method!r}: "
                        "expected LInfinity or ChiSquared")
    from tasks.store import check_slug

    check_slug(model, "model name")
    check_slug(version, "model version")
    from tasks.store import filesystem_for

    fs, path = filesystem_for(dataset)
    if not fs.isfile(path):
        raise UserError(f"--dataset {dataset}: no such file (expected a CSV or Parquet dataset)")
    if monitor_type == "model-quality":
        if not label or not (prediction or probability):
            raise UserError("--type model-quality needs --label and --prediction (or --probability)")
        with stdout_to_stderr():
            from flows.quality import suggest_model_quality_baseline

            uris = suggest_model_quality_baseline(
                model=model, dataset=dataset, label=label, prediction=prediction,
                probability=probability, problem_type=problem_type, version=version,
                threshold=threshold, store=store)
        emit_json(uris)
        return
    with stdout_to_stderr():
        from flows.baseline import suggest_baseline

        uris = suggest_baseline(model=model, dataset=dataset, monitor_type=monitor_type,
                                label=label, version=version, store=store,
                                categorical_drift_method=categorical_drift_method)
    emit_json({"statistics": uris["statistics"], "constraints": uris["constraints"],
               "baseline": uris["baseline"], "sample": uris["sample"]})


@monitor_app.command("run")
def monitor_run(
    model: Annotated[str, typer.Option(help="Model name (a slug).")],
    start: Annotated[str, typer.Option(help="Window start, ISO-8601 (UTC if no zone).")],
    end: Annotated[str, typer.Option(help="Window end (exclusive), ISO-8601.")],
    capture: Annotated[str | None, typer.Option(
        help="data-quality: capture root (<root>/<variant>/YYYY/MM/DD/HH/*.jsonl) or a CSV/Parquet "
             "dataset.")] = None,
    merged: Annotated[str | None, typer.Option(
        help="model-quality: merged-data root [default: merged/<endpoint> of the model's "
             "endpoints]")] = None,
    min_records: Annotated[int, typer.Option(
        help="model-quality: fewer labelled records than this is NoData.")] = 200,
    monitor_type: Annotated[str, typer.Option("--type", help="Monitor type.")] = "data-quality",
    version: Annotated[str | None, typer.Option(help="Baseline version [default: latest].")] = None,
    max_malformed_share: Annotated[float, typer.Option(
        help="Share of malformed capture records above which the window is a violation.")] = 0.05,
    report: Annotated[bool, typer.Option(help="Render the Evidently HTML report.")] = True,
    store: StoreOption = None,
) -> None:
    """Run one monitoring execution over [start, end) and print its execution.json."""
    check_type(monitor_type)
    begin, finish = parse_window(start, end)
    from tasks.store import check_slug

    check_slug(model, "model name")
    if not 0 <= max_malformed_share <= 1:
        raise UserError(f"--max-malformed-share {max_malformed_share}: expected a share in [0, 1]")
    # Refuse an unknown model or a broken baseline before paying for Prefect's start-up.
    from tasks.store import Store, default_store_uri

    the_store = Store(store or default_store_uri())
    if monitor_type == "model-quality":
        from flows.quality import load_quality_baseline

        load_quality_baseline(the_store, model, version)
        with stdout_to_stderr():
            from flows.quality import monitor_model_quality

            state = monitor_model_quality(model=model, start=begin, end=finish, merged=merged,
                                          store=store, version=version, min_records=min_records,
                                          return_state=True)
            document = _execution_of(state, model, monitor_type, begin, finish, store)
        emit_json(document)
        if document.get("status") == "Failed":
            raise typer.Exit(1)
        return
    if capture is None:
        raise UserError("--type data-quality needs --capture")
    from tasks.baselines import load_baseline

    load_baseline(the_store, model, monitor_type, version, with_sample=False)
    with stdout_to_stderr():
        from flows.monitor import monitor_data_quality

        state = monitor_data_quality(model=model, capture=capture, start=begin, end=finish,
                                     store=store, version=version,
                                     max_malformed_share=max_malformed_share, report=report,
                                     return_state=True)
        document = _execution_of(state, model, monitor_type, begin, finish, store)
    emit_json(document)
    if document.get("status") == "Failed":
        raise typer.Exit(1)


def _execution_of(state: Any, model: str, monitor_type: str, begin: datetime, finish: datetime,
                  store: str | None) -> dict[str, Any]:
    if not state.is_failed():
        return state.result()
    try:
        state.result()
    except UserError:
        raise
    except Exception as problem:  # noqa: BLE001 - read what the flow recorded, if anything
        from flows.monitor import execution_prefix
        from tasks.store import Store, default_store_uri

        the_store = Store(store or default_store_uri())
        key = f"{execution_prefix(model, monitor_type, begin, finish)}/execution.json"
        if the_store.exists(key):
            return the_store.read_json(key)
        return {"model": model, "status": "Failed", "failure_reason": str(problem)}
    return {"model": model, "status": "Failed", "failure_reason": "unknown"}


@app.command("demo")
def demo(
    out: Annotated[str, typer.Option(help="Folder for the demo's data and store.")] = "demo-output",
) -> None:
    """Generate a drifting credit-default case and monitor two days of its traffic."""
    from flows.demo import run_demo

    run_demo(out)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 done, 1 an execution failed, 2 a user error."""
    try:
        code = app(args=argv, prog_name="modelwatch", standalone_mode=False)
    except UserError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
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


"""The `modelwatch` console script. Commands that print JSON print only that JSON on stdout; logs and
progress go to stderr. Exit codes: 0 done, 1 an execution failed, 2 a user error."""

from __future__ import annotations

import sys
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import typer

from modelwatch.cli_common import (
    StoreOption,
    check_type,
    emit_json,
    open_store,
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
        help="model-quality, bias-drift: probability threshold for score predictions.")] = 0.5,
    facet: Annotated[list[str] | None, typer.Option(
        help="bias-drift: sensitive facet NAME, NAME=VALUE[,VALUE] or NAME>THRESHOLD (repeatable).")
    ] = None,
    group: Annotated[str | None, typer.Option(help="bias-drift: group variable for CDDPL.")] = None,
    label_values: Annotated[str | None, typer.Option(
        help="bias-drift: positive label value(s), e.g. 1 or yes,true or >0.5 [default: 1]")] = None,
    bound: Annotated[list[str] | None, typer.Option(
        help="bias-drift: absolute bounds METRIC=LOW:HIGH, e.g. DI=0.8:1.25 (repeatable).")] = None,
    tolerance: Annotated[float, typer.Option(
        help="bias-drift: allowed move beyond the baseline's distance from fair.")] = 0.1,
    min_members: Annotated[int, typer.Option(
        help="bias-drift: smallest facet group that gets a figure.")] = 30,
    window_rows: Annotated[int, typer.Option(
        help="bias-drift: expected window size; ranges allow a metric's chance movement in one.")
    ] = 1000,
    sample_size: Annotated[int | None, typer.Option(
        help="feature-attribution-drift: records explained per run.")] = None,
    background_size: Annotated[int | None, typer.Option(
        help="feature-attribution-drift: background records of a model-agnostic explainer.")] = None,
    seed: Annotated[int, typer.Option(help="feature-attribution-drift: sampling seed.")] = 0,
    ndcg_threshold: Annotated[float | None, typer.Option(
        help="feature-attribution-drift: nDCG below this is a violation [default: 0.9]")] = None,
    store: StoreOption = None,
) -> None:
    """Suggest a baseline: data-quality profiles a dataset; model-quality and bias-drift score a
    labelled, predicted one; feature-attribution-drift explains a sample with shap."""
    check_type(monitor_type)
    if categorical_drift_method not in ("LInfinity", "ChiSquared"):
        raise UserError(f"--categorical-drift-method {categorical_drift_method!r}: "
                        "expected LInfinity or ChiSquared")
    from modelwatch.tasks.store import check_slug

    check_slug(model, "model name")
    check_slug(version, "model version")
    open_store(store, writable=True)
    from modelwatch.tasks.store import filesystem_for

    fs, path = filesystem_for(dataset)
    if not fs.isfile(path):
        raise UserError(f"--dataset {dataset}: no such file (expected a CSV or Parquet dataset)")
    from modelwatch.tasks.capture import dataset_columns

    columns = dataset_columns(dataset)
    for option, column in (("--label", label), ("--prediction", prediction),
                           ("--probability", probability)):
        if column and columns and column not in columns:
            raise UserError(f"{option} {column!r} is not a column of {dataset}; columns are "
                            f"{', '.join(columns)}")
    if monitor_type == "bias-drift":
        if not label or not prediction or not facet:
            raise UserError("--type bias-drift needs --label, --prediction and at least one --facet")
        with stdout_to_stderr():
            from modelwatch.flows.bias import suggest_bias_baseline

            uris = suggest_bias_baseline(
                model=model, dataset=dataset, label=label, prediction=prediction, facets=facet,
                group=group, label_values=label_values, probability_threshold=threshold,
                bounds=bound, tolerance=tolerance, min_members=min_members, window_rows=window_rows,
                version=version,
                store=store)
        emit_json(uris)
        return
    if monitor_type == "feature-attribution-drift":
        with stdout_to_stderr():
            from modelwatch.flows.attribution import suggest_attribution_baseline

            uris = suggest_attribution_baseline(
                model=model, dataset=dataset, version=version, label=label, sample_size=sample_size,
                background_size=background_size, seed=seed, threshold=ndcg_threshold, store=store)
        emit_json(uris)
        return
    if monitor_type == "model-quality":
        if not label or not (prediction or probability):
            raise UserError("--type model-quality needs --label and --prediction (or --probability)")
        with stdout_to_stderr():
            from modelwatch.flows.quality import suggest_model_quality_baseline

            uris = suggest_model_quality_baseline(
                model=model, dataset=dataset, label=label, prediction=prediction,
                probability=probability, problem_type=problem_type, version=version,
                threshold=threshold, store=store)
        emit_json(uris)
        return
    with stdout_to_stderr():
        from modelwatch.flows.baseline import suggest_baseline

        uris = suggest_baseline(model=model, dataset=dataset, monitor_type=monitor_type,
                                label=label, version=version, store=store,
                                categorical_drift_method=categorical_drift_method)
    emit_json({"statistics": uris["statistics"], "constraints": uris["constraints"],
               "baseline": uris["baseline"], "sample": uris["sample"], "warnings": uris["warnings"]})


@monitor_app.command("run")
def monitor_run(
    model: Annotated[str, typer.Option(help="Model name (a slug).")],
    start: Annotated[str, typer.Option(help="Window start, ISO-8601 (UTC if no zone).")],
    end: Annotated[str, typer.Option(help="Window end (exclusive), ISO-8601.")],
    capture: Annotated[str | None, typer.Option(
        help="data-quality: capture root (<root>/<variant>/YYYY/MM/DD/HH/*.jsonl) or a CSV/Parquet "
             "dataset; feature-attribution-drift: capture root [default: the model's endpoints]")
    ] = None,
    merged: Annotated[str | None, typer.Option(
        help="model-quality, bias-drift: merged-data root [default: merged/<endpoint> of the "
             "model's endpoints]")] = None,
    min_records: Annotated[int | None, typer.Option(
        help="model-quality, bias-drift, feature-attribution-drift: fewer usable records than this "
             "is NoData [default: 200 labelled; 100 captured for attribution]")] = None,
    ndcg_threshold: Annotated[float | None, typer.Option(
        help="feature-attribution-drift: nDCG threshold [default: the baseline's]")] = None,
    sample_size: Annotated[int | None, typer.Option(
        help="feature-attribution-drift: records explained [default: the baseline's]")] = None,
    monitor_type: Annotated[str, typer.Option("--type", help="Monitor type.")] = "data-quality",
    version: Annotated[str | None, typer.Option(help="Baseline version [default: latest].")] = None,
    max_malformed_share: Annotated[float, typer.Option(
        help="Share of malformed capture records above which the window is a violation.")] = 0.05,
    report: Annotated[bool, typer.Option(help="Render the Evidently HTML report.")] = True,
    untimed: Annotated[str, typer.Option(
        help="data-quality, feature-attribution-drift: a record without a usable inferenceTime is "
             "quarantined, or with file-hour placed at its file's hour folder.")] = "quarantine",
    store: StoreOption = None,
) -> None:
    """Run one monitoring execution over [start, end) and print its execution.json."""
    check_type(monitor_type)
    begin, finish = parse_window(start, end)
    from modelwatch.tasks.capture import UNTIMED_CHOICES
    from modelwatch.tasks.store import check_slug

    check_slug(model, "model name")
    if untimed not in UNTIMED_CHOICES:
        raise UserError(f"--untimed {untimed!r}: expected one of {', '.join(UNTIMED_CHOICES)}")
    if not 0 <= max_malformed_share <= 1:
        raise UserError(f"--max-malformed-share {max_malformed_share}: expected a share in [0, 1]")
    # Refuse an unusable store, an unknown model or a broken baseline before Prefect's start-up.
    the_store = open_store(store, writable=True)
    if min_records is not None and min_records < 1:
        raise UserError(f"--min-records {min_records}: expected at least 1")
    minimum = {} if min_records is None else {"min_records": min_records}
    if monitor_type == "model-quality":
        from modelwatch.flows.quality import load_quality_baseline, monitor_model_quality

        load_quality_baseline(the_store, model, version)
        flow_call = partial(monitor_model_quality, merged=merged, **minimum)
    elif monitor_type == "bias-drift":
        from modelwatch.flows.bias import load_bias_baseline, monitor_bias_drift

        load_bias_baseline(the_store, model, version)
        flow_call = partial(monitor_bias_drift, merged=merged, **minimum)
    elif monitor_type == "feature-attribution-drift":
        from modelwatch.flows.attribution import load_attribution_baseline, monitor_feature_attribution_drift

        load_attribution_baseline(the_store, model, version)
        flow_call = partial(monitor_feature_attribution_drift, capture=capture,
                            threshold=ndcg_threshold, sample_size=sample_size, untimed=untimed,
                            **minimum)
    else:
        if capture is None:
            raise UserError("--type data-quality needs --capture")
        from modelwatch.flows.monitor import monitor_data_quality
        from modelwatch.tasks.baselines import load_baseline

        load_baseline(the_store, model, monitor_type, version, with_sample=False)
        flow_call = partial(monitor_data_quality, capture=capture,
                            max_malformed_share=max_malformed_share, report=report, untimed=untimed)
    with stdout_to_stderr():
        state = flow_call(model=model, start=begin, end=finish, store=store, version=version,
                          return_state=True)
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
    from modelwatch.flows.demo import run_demo

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


"""`modelwatch models | endpoints | batch`: the registry from the command line.

Registry commands are plain store reads and writes and never start Prefect; only `batch run` does,
after every check a user can fail has passed.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from modelwatch.cli_common import StoreOption, emit_json, needs_api, open_store, working
from modelwatch.tasks.errors import UserError

FEATURE_TYPES = ("Integral", "Fractional", "String")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    """Add the models, endpoints and batch command groups to the main app."""
    models_app = typer.Typer(no_args_is_help=True, help="Registered models and their versions.")
    endpoints_app = typer.Typer(no_args_is_help=True, help="Endpoints serving a model version.")
    batch_app = typer.Typer(no_args_is_help=True, help="Batch transform jobs.")
    app.add_typer(models_app, name="models")
    app.add_typer(endpoints_app, name="endpoints")
    app.add_typer(batch_app, name="batch")

    models_app.command("register")(models_register)
    models_app.command("add-version")(models_add_version)
    models_app.command("list")(models_list)
    models_app.command("show")(models_show)
    models_app.command("pin-artifact")(models_pin_artifact)
    endpoints_app.command("register")(endpoints_register)
    endpoints_app.command("list")(endpoints_list)
    batch_app.command("run")(batch_run)
    batch_app.command("list")(batch_list)


# ---- helpers ----

def parse_feature(spec: str) -> Any:
    """'name:Type' (Type one of Integral, Fractional, String, any case) -> FeatureSpec."""
    from modelwatch.tasks.registry import FeatureSpec

    name, sep, kind = spec.rpartition(":")
    by_lower = {t.lower(): t for t in FEATURE_TYPES}
    if not sep or not name.strip() or kind.strip().lower() not in by_lower:
        raise UserError(f"--feature {spec!r}: expected name:Type with Type one of "
                        f"{', '.join(FEATURE_TYPES)} (e.g. --feature income:Fractional)")
    return FeatureSpec(name=name.strip(), type=by_lower[kind.strip().lower()])


def check_problem_type(problem_type: str) -> str:
    from modelwatch.tasks.registry import PROBLEM_TYPES

    if problem_type not in PROBLEM_TYPES:
        raise UserError(f"--problem-type {problem_type!r} is not supported: expected one of "
                        f"{', '.join(PROBLEM_TYPES)}")
    return problem_type


def check_entry_point(entry_point: str | None) -> str | None:
    if entry_point is None:
        return None
    module, sep, function = entry_point.partition(":")
    if not sep or not module.replace(".", "").replace("_", "").isalnum() or \
            not function.isidentifier():
        raise UserError(f"--training-entry-point {entry_point!r}: expected module:function "
                        "(e.g. training.credit:train)")
    return entry_point


def check_file(option: str, uri: str | None) -> str | None:
    """Refuse a dataset or artifact that is not there, rather than registering a dangling URI;
    return it with a local path made absolute, since the registry outlives the working folder."""
    if uri is None:
        return None
    from modelwatch.tasks.store import filesystem_for

    fs, path = filesystem_for(uri)
    if not fs.isfile(path):
        raise UserError(f"{option} {uri}: no such file")
    return uri if "://" in uri and not uri.startswith("file://") else path


def print_table(title: str, columns: list[str], rows: list[list[str]], empty: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console.width = 200  # piped or captured: rich's 80-column default folds every URI
    if not rows:
        console.print(empty)
        return
    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _time(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


# ---- models ----

def models_register(
    model: Annotated[str, typer.Option(help="Model name (a slug).")],
    problem_type: Annotated[str, typer.Option(help="binary, multiclass or regression.")],
    features_from: Annotated[str | None, typer.Option(
        help="CSV/Parquet dataset to infer the features and their types from (label excluded).")] = None,
    feature: Annotated[list[str] | None, typer.Option(
        help="A feature as name:Type (Integral, Fractional or String); repeat for each.")] = None,
    label: Annotated[str | None, typer.Option(help="Label column.")] = None,
    version: Annotated[str, typer.Option(help="The first version's name.")] = "1",
    artifact: Annotated[str | None, typer.Option(
        help="The version's model artifact (a joblib file: an estimator or Pipeline).")] = None,
    training_dataset: Annotated[str | None, typer.Option(
        help="Dataset the version was trained on \\[default: --features-from].")] = None,
    training_run: Annotated[str | None, typer.Option(
        help="Training run: a Prefect flow run id or an external reference.")] = None,
    training_entry_point: Annotated[str | None, typer.Option(
        help="module:function that, given a frame, returns a fitted estimator (for retraining).")] = None,
    description: Annotated[str | None, typer.Option(help="What the model is for.")] = None,
    store: StoreOption = None,
) -> None:
    """Register a model with its first version and print its record."""
    from modelwatch.tasks.registry import ModelRecord, ModelVersion, model_key, register_model
    from modelwatch.tasks.store import check_slug

    check_slug(model, "model name")
    check_slug(version, "model version")
    check_problem_type(problem_type)
    check_entry_point(training_entry_point)
    if features_from and feature:
        raise UserError("give either --features-from or --feature, not both")
    the_store = open_store(store, writable=True)
    # Checked here too (register_model checks again) so a duplicate fails before a dataset is read.
    if the_store.exists(model_key(model)):
        raise UserError(f"model {model!r} is already registered in {the_store.root}: add a version "
                        f"with `modelwatch models add-version --model {model} ...`")
    features_from = check_file("--features-from", features_from)
    artifact = check_file("--artifact", artifact)
    training_dataset = check_file("--training-dataset", training_dataset)
    if features_from:
        from modelwatch.tasks.registry import infer_features

        features = infer_features(features_from, label, option="--features-from")
    else:
        features = [parse_feature(spec) for spec in feature or []]
    names = [f.name for f in features]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"feature(s) {', '.join(duplicates)} given more than once")
    if label is not None and label in names:
        raise UserError(f"label {label!r} is also given as a feature")
    record = ModelRecord(
        name=model, problem_type=problem_type, features=features, label=label,
        description=description, training_entry_point=training_entry_point,
        versions=[ModelVersion(version=version, artifact_uri=artifact,
                               training_dataset_uri=training_dataset or features_from,
                               training_run=training_run)],
    )
    emit_json(register_model(the_store, record).dump())


def models_add_version(
    model: Annotated[str, typer.Option(help="Model name.")],
    version: Annotated[str | None, typer.Option(
        help="Version name \\[default: one more than the highest numeric version].")] = None,
    artifact: Annotated[str | None, typer.Option(help="The version's model artifact.")] = None,
    training_dataset: Annotated[str | None, typer.Option(help="Dataset it was trained on.")] = None,
    training_run: Annotated[str | None, typer.Option(help="Training run reference.")] = None,
    parent_version: Annotated[str | None, typer.Option(
        help="The version this one was retrained from.")] = None,
    store: StoreOption = None,
) -> None:
    """Add a version to a registered model and print the model's record."""
    from modelwatch.tasks.registry import ModelVersion, add_version, get_model

    the_store = open_store(store, writable=True)
    record = get_model(the_store, model)
    if parent_version is not None:
        record.version(parent_version)
    artifact = check_file("--artifact", artifact)
    training_dataset = check_file("--training-dataset", training_dataset)
    new = ModelVersion(version=version or record.next_version(), artifact_uri=artifact,
                       training_dataset_uri=training_dataset, training_run=training_run,
                       parent_version=parent_version)
    emit_json(add_version(the_store, model, new).dump())


def models_pin_artifact(
    model: Annotated[str, typer.Option(help="Model name.")],
    version: Annotated[str, typer.Option(help="The version whose artifact to pin.")],
    store: StoreOption = None,
) -> None:
    """Record the SHA-256 of a version's artifact as it is now (a version registered before
    digests were recorded). Artifacts are code: pin only a file you trust."""
    from modelwatch.tasks.registry import get_model, pin_artifact, save_model

    the_store = open_store(store, writable=True)
    record = get_model(the_store, model)
    chosen = record.version(version)
    if not chosen.artifact_uri:
        raise UserError(f"model {model!r} version {version!r} has no artifact to pin")
    if chosen.artifact_sha256:
        raise UserError(f"model {model!r} version {version!r} already has a pinned artifact "
                        f"(SHA-256 {chosen.artifact_sha256[:16]}...); register a changed file as a "
                        "new version")
    pin_artifact(chosen)
    save_model(the_store, record)
    emit_json(chosen.dump())


def models_list(as_json: JsonOption = False, store: StoreOption = None) -> None:
    """List registered models."""
    from modelwatch.tasks.registry import list_models

    the_store = open_store(store)
    models = list_models(the_store)
    if as_json:
        emit_json([m.dump() for m in models])
        return
    rows = [[m.name, m.problem_type, m.latest.version if m.latest else "-", str(len(m.versions)),
             str(len(m.features)), m.label or "-", _time(m.created_at)] for m in models]
    print_table("Models", ["model", "problem type", "latest", "versions", "features", "label",
                           "registered"], rows, f"No models registered in {the_store.root}.")


def models_show(
    model: Annotated[str, typer.Option(help="Model name.")],
    store: StoreOption = None,
) -> None:
    """Print a model's record with its lineage edges (dataset -> run -> version -> endpoint/job)."""
    from modelwatch.tasks.registry import get_model, lineage

    the_store = open_store(store)
    document = get_model(the_store, model).dump()
    document["lineage"] = lineage(the_store, model)
    emit_json(document)


# ---- endpoints ----

def endpoints_register(
    endpoint: Annotated[str, typer.Option(help="Endpoint name (a slug).")],
    model: Annotated[str, typer.Option(help="Registered model it serves.")],
    model_version: Annotated[str, typer.Option(help="The model version it serves.")],
    variant: Annotated[str, typer.Option(help="Production variant.")] = "AllTraffic",
    capture_uri: Annotated[str | None, typer.Option(
        help="Capture root of the endpoint \\[default: <store>/capture/<endpoint>].")] = None,
    sampling_percentage: Annotated[float, typer.Option(
        help="Share of requests captured, in (0, 100].")] = 100.0,
    hosts: Annotated[list[str] | None, typer.Option(
        "--hosts", help="A multi-model endpoint: another model it hosts, as MODEL=VERSION "
        "(repeatable). Each model's capture goes to <capture-uri>/models/<model>/.")] = None,
    store: StoreOption = None,
) -> None:
    """Register an endpoint serving a model version and print its record."""
    from modelwatch.tasks.registry import EndpointRecord, HostedModel, endpoint_key, register_endpoint

    hosted = []
    for item in hosts or []:
        name, sep, version = item.partition("=")
        if not sep or not name or not version:
            raise UserError(f"--hosts {item!r}: expected MODEL=VERSION")
        hosted.append(HostedModel(model=name, model_version=version))

    the_store = open_store(store, writable=True)
    if the_store.exists(endpoint_key(endpoint)):
        raise UserError(f"endpoint {endpoint!r} is already registered in {the_store.root}")
    record = EndpointRecord(
        name=endpoint, model=model, model_version=model_version, variant=variant,
        capture_uri=capture_uri or the_store.uri(f"capture/{endpoint}"),
        sampling_percentage=sampling_percentage,
        hosted=[HostedModel(model=model, model_version=model_version), *hosted] if hosted else [],
    )
    emit_json(register_endpoint(the_store, record).dump())


def endpoints_list(
    model: Annotated[str | None, typer.Option(help="Only this model's endpoints.")] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """List registered endpoints."""
    from modelwatch.tasks.registry import list_endpoints

    the_store = open_store(store)
    endpoints = [e for e in list_endpoints(the_store)
                 if model is None or any(v.model == model for v in e.views())]
    if as_json:
        emit_json([e.dump() for e in endpoints])
        return
    rows = [[e.name, e.model, e.model_version, e.variant, f"{e.sampling_percentage:g}%",
             e.capture_uri] for e in endpoints]
    print_table("Endpoints", ["endpoint", "model", "version", "variant", "sampling", "capture"],
                rows, f"No endpoints registered in {the_store.root}.")


# ---- batch ----

def batch_run(
    model: Annotated[str, typer.Option(help="Registered model.")],
    input_uri: Annotated[str, typer.Option(
        "--input", help="Dataset to score: CSV or Parquet, path or URI.")],
    model_version: Annotated[str | None, typer.Option(help="Version \\[default: latest].")] = None,
    output: Annotated[str | None, typer.Option(
        help="Output CSV \\[default: <store>/batch/<job-id>/output.csv].")] = None,
    job_id: Annotated[str | None, typer.Option(
        help="Job id, a slug \\[default: <model>-<UTC yyyymmddThhmmss>, lowercase t].")] = None,
    store: StoreOption = None,
) -> None:
    """Run a batch transform job and print its record; exit 1 when the job failed."""
    from datetime import UTC, datetime

    the_store = open_store(store, writable=True)
    with working():
        from modelwatch.flows.batch import batch_transform, plan_job

        # Refuse what a user can get wrong before paying for Prefect's start-up; the id is fixed
        # here so a failed job's record can be found afterwards.
        _, version, _, job_id = plan_job(the_store, model, input_uri, model_version, job_id,
                                          datetime.now(UTC))
        needs_api()
        state = batch_transform(model=model, input=input_uri, version=version, output=output,
                                job_id=job_id, store=the_store.root, return_state=True)
        document = _job_of(state, the_store, job_id, model)

    emit_json(document)
    if document.get("status") == "Failed":
        raise typer.Exit(1)


def _job_of(state: Any, the_store: Any, job_id: str, model: str) -> dict[str, Any]:
    """The job's record after a run: the flow's result, else what it wrote before failing."""
    from modelwatch.tasks.registry import batch_job_key

    if not state.is_failed():
        return state.result()
    try:
        state.result()
    except UserError:
        raise
    except Exception as problem:  # noqa: BLE001 - report what the flow recorded, if anything
        if not the_store.exists(batch_job_key(job_id)):
            return {"job_id": job_id, "model": model, "status": "Failed",
                    "failure_reason": f"{type(problem).__name__}: {problem}"}
    return the_store.read_json(batch_job_key(job_id))


def batch_list(
    model: Annotated[str | None, typer.Option(help="Only this model's jobs.")] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """List batch transform jobs, oldest first."""
    from modelwatch.tasks.registry import list_batch_jobs

    the_store = open_store(store)
    jobs = list_batch_jobs(the_store, model)
    if as_json:
        emit_json([j.dump() for j in jobs])
        return
    rows = [[j.job_id, j.model, j.model_version, j.status, str(j.rows_in), str(j.rows_out),
             _time(j.started_at), _time(j.finished_at)] for j in jobs]
    print_table("Batch jobs", ["job", "model", "version", "status", "rows in", "rows out",
                               "started", "finished"], rows,
                f"No batch jobs in {the_store.root}.")

"""The registry: models (with versions and lineage), endpoints and batch transform jobs, as JSON
documents in the store under registry/. Plain functions over a Store; the CLI and flows call them."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from modelwatch.tasks.documents import Document, OwnDocument
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store, check_slug

ProblemType = Literal["binary", "multiclass", "regression"]
PROBLEM_TYPES: tuple[str, ...] = ("binary", "multiclass", "regression")
# SageMaker's own VariantName pattern: its default variant, "AllTraffic", is not one of our
# lowercase slugs, yet it names a folder of every capture tree, so variants get their own rule.
VARIANT = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def now() -> datetime:
    return datetime.now(UTC)


class FeatureSpec(OwnDocument):
    name: str
    type: Literal["Integral", "Fractional", "String"] = "Fractional"


class ModelVersion(OwnDocument):
    version: str
    artifact_uri: str | None = None
    # Artifacts are code (joblib unpickles them): the digest recorded at registration is checked
    # before every load, so a file swapped afterwards is refused rather than run.
    artifact_sha256: str | None = None
    training_dataset_uri: str | None = None
    training_run: str | None = None  # a Prefect flow run id or an external run reference
    created_at: datetime = Field(default_factory=now)
    parent_version: str | None = None
    source: Literal["registered", "retrain"] = "registered"
    reason: str | None = None  # e.g. the alert that triggered a retrain


class ModelRecord(OwnDocument):
    name: str
    problem_type: ProblemType
    features: list[FeatureSpec] = Field(default_factory=list)
    label: str | None = None
    description: str | None = None
    training_entry_point: str | None = None  # "module:function", given a frame, returns an estimator
    versions: list[ModelVersion] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=now)

    @property
    def latest(self) -> ModelVersion | None:
        return self.versions[-1] if self.versions else None

    def version(self, version: str) -> ModelVersion:
        for candidate in self.versions:
            if candidate.version == version:
                return candidate
        known = ", ".join(v.version for v in self.versions) or "none"
        raise UserError(f"model {self.name!r} has no version {version!r} (versions: {known})")

    def resolve(self, version: str | None = None) -> ModelVersion:
        """The named version, or the latest when version is None."""
        if version is not None:
            return self.version(version)
        if self.latest is None:
            raise UserError(f"model {self.name!r} has no versions: add one with "
                            f"`modelwatch models add-version --model {self.name} ...`")
        return self.latest

    def next_version(self) -> str:
        numbers = [int(v.version) for v in self.versions if v.version.isdigit()]
        return str(max(numbers, default=0) + 1)


class EndpointVersionChange(OwnDocument):
    model_version: str
    at: datetime = Field(default_factory=now)
    by: str | None = None


class HostedModel(OwnDocument):
    """One model of a multi-model endpoint."""

    model: str
    model_version: str


class EndpointRecord(OwnDocument):
    name: str
    model: str
    model_version: str
    variant: str = "AllTraffic"
    capture_uri: str  # the endpoint's capture root: <capture_uri>/<variant>/YYYY/MM/DD/HH/
    sampling_percentage: float = 100.0
    created_at: datetime = Field(default_factory=now)
    history: list[EndpointVersionChange] = Field(default_factory=list)
    # A multi-model endpoint: every model it hosts (`model` is the first). Each model's capture is
    # <capture_uri>/models/<model>/<variant>/..., its merged data merged/<endpoint>/models/<model>/.
    hosted: list[HostedModel] = Field(default_factory=list)
    # Set on the per-model views `views()` returns, never stored: the hosted model the view is of.
    hosted_model: str | None = None

    def views(self) -> list[EndpointRecord]:
        """The endpoint as each model it serves sees it: itself for a single-model endpoint; for a
        multi-model one, a record per hosted model with that model, its version and its capture."""
        if not self.hosted:
            return [self]
        root = self.capture_uri.rstrip("/")
        return [self.model_copy(update={"model": h.model, "model_version": h.model_version,
                                        "capture_uri": f"{root}/models/{h.model}",
                                        "hosted_model": h.model}) for h in self.hosted]


class BatchJob(OwnDocument):
    job_id: str
    model: str
    model_version: str
    input_uri: str
    output_uri: str | None = None
    capture_uri: str | None = None
    status: Literal["InProgress", "Completed", "Failed"] = "InProgress"
    started_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None
    rows_in: int = 0
    rows_out: int = 0
    failure_reason: str | None = None
    flow_run_id: str | None = None


def check_variant(name: str) -> str:
    """Return name if it is a SageMaker variant name (e.g. AllTraffic); else UserError."""
    if not isinstance(name, str) or not VARIANT.fullmatch(name):
        raise UserError(f"invalid variant name {name!r}: expected 1-63 letters, digits or '-', "
                        "starting and ending with a letter or digit (e.g. AllTraffic)")
    return name


def default_batch_job_id(model: str, at: datetime) -> str:
    """<model>-<yyyymmdd>t<hhmmss> (UTC). The 't' is lowercase, and a long model name is cut, so
    the id is always a slug."""
    stamp = at.astimezone(UTC).strftime("%Y%m%dt%H%M%S")
    return f"{model[: 62 - len(stamp)]}-{stamp}"


# ---- store access ----

def model_key(name: str) -> str:
    return f"registry/models/{check_slug(name, 'model name')}.json"


def endpoint_key(name: str) -> str:
    return f"registry/endpoints/{check_slug(name, 'endpoint name')}.json"


def batch_job_key(job_id: str) -> str:
    return f"registry/batch-jobs/{check_slug(job_id, 'batch job id')}.json"


def _load(store: Store, key: str, kind: type[Document], what: str):
    if not store.exists(key):
        folder = key.rsplit("/", 1)[0]
        names = sorted(k.rsplit("/", 1)[-1].removesuffix(".json") for k in store.list(folder)
                       if k.endswith(".json"))
        listed = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        raise UserError(f"unknown {what}: not registered in {store.root} (registered: "
                        f"{listed or 'none'})")
    from modelwatch.tasks.documents import parse_document

    return parse_document(kind, store.read_bytes(key), store.uri(key))


def get_model(store: Store, name: str) -> ModelRecord:
    return _load(store, model_key(name), ModelRecord, f"model {name!r}")


def save_model(store: Store, record: ModelRecord) -> str:
    return store.write_json(model_key(record.name), record.dump())


def list_models(store: Store) -> list[ModelRecord]:
    from modelwatch.tasks.documents import parse_document

    return [parse_document(ModelRecord, store.read_bytes(key), store.uri(key))
            for key in store.list("registry/models") if key.endswith(".json")]


def register_model(store: Store, record: ModelRecord, replace: bool = False) -> ModelRecord:
    check_slug(record.name, "model name")
    if store.exists(model_key(record.name)) and not replace:
        raise UserError(f"model {record.name!r} is already registered; add a version instead")
    for version in record.versions:
        check_slug(version.version, "model version")
        pin_artifact(version)
    save_model(store, record)
    return record


def add_version(store: Store, name: str, version: ModelVersion) -> ModelRecord:
    record = get_model(store, name)
    check_slug(version.version, "model version")
    if any(v.version == version.version for v in record.versions):
        raise UserError(f"model {name!r} already has version {version.version!r}")
    pin_artifact(version)
    record.versions.append(version)
    save_model(store, record)
    return record


def artifact_bytes(uri: str) -> bytes:
    """The whole artifact file; a missing one is a user error naming it."""
    from modelwatch.tasks.store import read_uri_bytes

    return read_uri_bytes(uri, "model artifact ")


def pin_artifact(version: ModelVersion) -> ModelVersion:
    """Record the SHA-256 of a version's artifact as it is now (when it has one and none yet)."""
    if version.artifact_uri and not version.artifact_sha256:
        version.artifact_sha256 = hashlib.sha256(artifact_bytes(version.artifact_uri)).hexdigest()
    return version


def verified_artifact(uri: str, expected_sha256: str | None, what: str) -> bytes:
    """The artifact's bytes, once their SHA-256 is the one recorded; else a UserError. The bytes
    checked are the bytes returned: nothing can change between the check and the load."""
    if not expected_sha256:
        raise UserError(f"{what}: artifact {uri} has no recorded SHA-256; artifacts are code, so only "
                        "a registered digest is loaded: record the current file's with `modelwatch "
                        "models pin-artifact` once you trust it")
    data = artifact_bytes(uri)
    found = hashlib.sha256(data).hexdigest()
    if found != expected_sha256:
        raise UserError(f"{what}: artifact {uri} has SHA-256 {found[:16]}..., not the registered "
                        f"{expected_sha256[:16]}...: the file changed since it was registered "
                        "(if the change is intended, register it as a new version)")
    return data


def get_endpoint(store: Store, name: str) -> EndpointRecord:
    return _load(store, endpoint_key(name), EndpointRecord, f"endpoint {name!r}")


def save_endpoint(store: Store, record: EndpointRecord) -> str:
    return store.write_json(endpoint_key(record.name), record.dump())


def list_endpoints(store: Store) -> list[EndpointRecord]:
    from modelwatch.tasks.documents import parse_document

    return [parse_document(EndpointRecord, store.read_bytes(key), store.uri(key))
            for key in store.list("registry/endpoints") if key.endswith(".json")]


def register_endpoint(store: Store, record: EndpointRecord) -> EndpointRecord:
    check_slug(record.name, "endpoint name")
    check_variant(record.variant)
    if record.hosted_model is not None:
        raise ValueError("a per-model view of an endpoint is not saved")
    if record.hosted and record.hosted[0].model != record.model:
        record.hosted.insert(0, HostedModel(model=record.model, model_version=record.model_version))
    names = [h.model for h in record.hosted]
    if len(set(names)) != len(names):
        raise UserError(f"endpoint {record.name!r}: a model is hosted twice ({', '.join(names)})")
    for hosted in record.hosted or [HostedModel(model=record.model, model_version=record.model_version)]:
        get_model(store, hosted.model).version(hosted.model_version)
    if not 0 < record.sampling_percentage <= 100:
        raise UserError(f"sampling percentage {record.sampling_percentage}: expected (0, 100]")
    if not record.history:
        record.history.append(EndpointVersionChange(model_version=record.model_version))
    save_endpoint(store, record)
    return record


def endpoints_of(store: Store, model: str) -> list[EndpointRecord]:
    """The endpoints serving a model, as that model sees them (see `EndpointRecord.views`)."""
    return [v for e in list_endpoints(store) for v in e.views() if v.model == model]


def save_batch_job(store: Store, job: BatchJob) -> str:
    return store.write_json(batch_job_key(job.job_id), job.dump())


def list_batch_jobs(store: Store, model: str | None = None) -> list[BatchJob]:
    from modelwatch.tasks.documents import parse_document

    jobs = [parse_document(BatchJob, store.read_bytes(key), store.uri(key))
            for key in store.list("registry/batch-jobs") if key.endswith(".json")]
    return sorted((j for j in jobs if model is None or j.model == model),
                  key=lambda j: j.started_at)


def lineage(store: Store, model: str) -> list[dict[str, str]]:
    """Edges of the lineage graph: dataset -> training run -> model version -> endpoint / batch job."""
    return lineage_edges(get_model(store, model), endpoints_of(store, model),
                         list_batch_jobs(store, model))


def lineage_edges(record: ModelRecord, endpoints: list[EndpointRecord],
                  jobs: list[BatchJob]) -> list[dict[str, str]]:
    """The lineage of one model from documents already read (the dashboard reads the fleet once)."""
    model = record.name
    edges: list[dict[str, str]] = []
    for version in record.versions:
        node = f"model:{model}/v{version.version}"
        run = f"run:{version.training_run}" if version.training_run else None
        if version.training_dataset_uri:
            edges.append({"from": f"dataset:{version.training_dataset_uri}", "to": run or node})
        if run:
            edges.append({"from": run, "to": node})
        if version.parent_version:
            edges.append({"from": f"model:{model}/v{version.parent_version}", "to": node,
                          "kind": "retrained-from"})
    for endpoint in endpoints:
        if endpoint.model != model:
            continue
        for change in endpoint.history:
            edges.append({"from": f"model:{model}/v{change.model_version}",
                          "to": f"endpoint:{endpoint.name}"})
    for job in jobs:
        if job.model == model:
            edges.append({"from": f"model:{model}/v{job.model_version}", "to": f"batch:{job.job_id}"})
    return edges


def infer_features(uri: str, label: str | None, option: str = "dataset") -> list[FeatureSpec]:
    """Feature specs of a dataset, typed the way the data-quality baseline types them, in column order.

    `option` names the input in errors (the CLI passes its flag).
    """
    import logging

    from modelwatch.tasks.capture import read_dataset
    from modelwatch.tasks.profile import profile_table

    table = read_dataset(uri)
    if label is not None and label not in table.column_names:
        raise UserError(f"{option} {uri}: label column {label!r} not found; columns are "
                        f"{', '.join(table.column_names)}")
    if table.num_rows == 0:
        raise UserError(f"{option} {uri}: no rows to infer feature types from")
    profile = profile_table(table, exclude={label} if label else set())
    features = []
    for name in table.column_names:
        if name == label:
            continue
        kind = profile.columns[name].inferred_type
        if kind == "Unknown":
            # Nothing to infer from an all-missing column; String accepts whatever comes later.
            logging.getLogger("modelwatch.registry").warning(
                "feature %r of %s has no values; registered as String", name, uri)
            kind = "String"
        features.append(FeatureSpec(name=name, type=kind))
    return features

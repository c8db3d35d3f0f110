"""The registry's plain functions on a local store: models and versions, endpoints, batch jobs,
lineage, and the names it refuses before they reach a path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelwatch.errors import UserError
from modelwatch.tasks.registry import (
    BatchJob,
    EndpointRecord,
    FeatureSpec,
    ModelRecord,
    ModelVersion,
    add_version,
    default_batch_job_id,
    get_model,
    lineage,
    list_batch_jobs,
    list_endpoints,
    list_models,
    register_endpoint,
    register_model,
    save_batch_job,
)
from modelwatch.tasks.store import Store, check_slug


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"))


def credit(name: str = "credit-default", **version: str) -> ModelRecord:
    return ModelRecord(
        name=name, problem_type="binary", label="default",
        features=[FeatureSpec(name="income", type="Fractional"),
                  FeatureSpec(name="region", type="String")],
        versions=[ModelVersion(version="1", **version)],
    )


def test_register_and_read_back(store: Store, tmp_path: Path) -> None:
    import hashlib

    artifact = tmp_path / "1.joblib"
    artifact.write_bytes(b"model bytes")
    register_model(store, credit(artifact_uri=str(artifact)))
    record = get_model(store, "credit-default")
    assert record.latest.artifact_sha256 == hashlib.sha256(b"model bytes").hexdigest()
    assert record.problem_type == "binary" and record.label == "default"
    assert [(f.name, f.type) for f in record.features] == [("income", "Fractional"),
                                                          ("region", "String")]
    assert record.latest.artifact_uri == str(artifact)
    assert store.exists("registry/models/credit-default.json")
    assert [m.name for m in list_models(store)] == ["credit-default"]


def test_add_version_and_next_version(store: Store) -> None:
    register_model(store, credit())
    record = add_version(store, "credit-default", ModelVersion(version="2", parent_version="1"))
    assert [v.version for v in record.versions] == ["1", "2"]
    assert get_model(store, "credit-default").latest.version == "2"
    assert record.next_version() == "3"
    assert record.resolve().version == "2" and record.resolve("1").version == "1"


def test_a_duplicate_model_or_version_is_refused(store: Store) -> None:
    register_model(store, credit())
    with pytest.raises(UserError, match="already registered"):
        register_model(store, credit())
    with pytest.raises(UserError, match="already has version '1'"):
        add_version(store, "credit-default", ModelVersion(version="1"))


def test_unknown_model_and_version(store: Store) -> None:
    with pytest.raises(UserError, match="unknown model 'ghost'"):
        get_model(store, "ghost")
    with pytest.raises(UserError, match="unknown model 'ghost'"):
        add_version(store, "ghost", ModelVersion(version="1"))
    register_model(store, credit())
    with pytest.raises(UserError, match=r"has no version '7' \(versions: 1\)"):
        get_model(store, "credit-default").resolve("7")
    empty = ModelRecord(name="empty", problem_type="regression")
    with pytest.raises(UserError, match="has no versions"):
        empty.resolve()


def test_endpoint_needs_a_known_model_version(store: Store) -> None:
    endpoint = EndpointRecord(name="credit-live", model="credit-default", model_version="1",
                              capture_uri=store.uri("capture/credit-live"))
    with pytest.raises(UserError, match="unknown model 'credit-default'"):
        register_endpoint(store, endpoint)
    register_model(store, credit())
    with pytest.raises(UserError, match="has no version '2'"):
        register_endpoint(store, endpoint.model_copy(update={"model_version": "2"}))
    with pytest.raises(UserError, match="sampling percentage"):
        register_endpoint(store, endpoint.model_copy(update={"sampling_percentage": 0}))
    saved = register_endpoint(store, endpoint)
    # SageMaker's default variant name is not one of our lowercase slugs, and must still work.
    assert saved.variant == "AllTraffic"
    assert [h.model_version for h in saved.history] == ["1"]
    assert [e.name for e in list_endpoints(store)] == ["credit-live"]
    with pytest.raises(UserError, match="invalid variant name"):
        register_endpoint(store, endpoint.model_copy(update={"name": "other", "variant": "../x"}))


def test_lineage_edges(store: Store) -> None:
    register_model(store, credit(training_dataset_uri="s3://data/train-1.csv", training_run="run-1"))
    add_version(store, "credit-default", ModelVersion(
        version="2", training_dataset_uri="s3://data/train-2.csv", parent_version="1",
        source="retrain"))
    register_endpoint(store, EndpointRecord(name="credit-live", model="credit-default",
                                            model_version="2", capture_uri="s3://c/credit-live"))
    save_batch_job(store, BatchJob(job_id="nightly-1", model="credit-default", model_version="1",
                                   input_uri="s3://data/scoring.csv"))
    edges = lineage(store, "credit-default")
    assert {"from": "dataset:s3://data/train-1.csv", "to": "run:run-1"} in edges
    assert {"from": "run:run-1", "to": "model:credit-default/v1"} in edges
    # No training run: the dataset points at the version itself.
    assert {"from": "dataset:s3://data/train-2.csv", "to": "model:credit-default/v2"} in edges
    assert {"from": "model:credit-default/v1", "to": "model:credit-default/v2",
            "kind": "retrained-from"} in edges
    assert {"from": "model:credit-default/v2", "to": "endpoint:credit-live"} in edges
    assert {"from": "model:credit-default/v1", "to": "batch:nightly-1"} in edges
    assert len(edges) == 6


def test_batch_jobs_listed_oldest_first_and_by_model(store: Store) -> None:
    for job_id, model, hour in (("b", "m1", 2), ("a", "m1", 3), ("c", "m2", 1)):
        save_batch_job(store, BatchJob(job_id=job_id, model=model, model_version="1",
                                       input_uri="in.csv",
                                       started_at=datetime(2026, 1, 1, hour, tzinfo=UTC)))
    assert [j.job_id for j in list_batch_jobs(store)] == ["c", "b", "a"]
    assert [j.job_id for j in list_batch_jobs(store, "m1")] == ["b", "a"]


def test_default_batch_job_id_is_a_slug() -> None:
    at = datetime(2026, 11, 23, 4, 5, 6, tzinfo=UTC)
    assert default_batch_job_id("credit-default", at) == "credit-default-20261123t040506"
    long_id = default_batch_job_id("m" * 63, at)
    assert check_slug(long_id) == long_id and long_id.endswith("-20261123t040506")


@pytest.mark.parametrize("name", ["Credit", "../etc", "a b", "", ".", "x" * 64, "model\n"])
def test_names_that_are_not_slugs_are_refused(store: Store, name: str) -> None:
    with pytest.raises(UserError, match="invalid model name"):
        register_model(store, credit(name))
    with pytest.raises(UserError, match="invalid"):
        get_model(store, name)
    with pytest.raises(UserError, match="invalid batch job id"):
        save_batch_job(store, BatchJob(job_id=name, model="m", model_version="1", input_uri="x"))
    assert not store.exists("registry")


def test_a_version_name_must_be_a_slug(store: Store) -> None:
    with pytest.raises(UserError, match="invalid model version"):
        register_model(store, ModelRecord(name="m", problem_type="binary",
                                          versions=[ModelVersion(version="v/1")]))
    register_model(store, credit("m"))
    with pytest.raises(UserError, match="invalid model version"):
        add_version(store, "m", ModelVersion(version="../2"))


def test_a_misspelt_field_of_our_own_documents_is_an_error(store: Store) -> None:
    """Registry entries, executions, indexes and alerts are ours alone: an unknown key is a mistake
    (it used to be kept as a silent extra), named when the document is read."""
    import json

    from modelwatch.tasks.alerts import Alert
    from modelwatch.tasks.documents import Execution

    register_model(store, credit())
    record = json.loads(store.read_bytes("registry/models/credit-default.json"))
    record["problem_typ"] = "regression"
    store.write_json("registry/models/credit-default.json", record)
    with pytest.raises(UserError, match="problem_typ"):
        get_model(store, "credit-default")
    with pytest.raises(ValueError, match="violation_cuont"):
        Execution(model="m", model_version="1", monitor_type="data-quality",
                  window_start=datetime(2026, 1, 1, tzinfo=UTC),
                  window_end=datetime(2026, 1, 2, tzinfo=UTC), status="Completed",
                  violation_cuont=3)
    with pytest.raises(ValueError, match="monitor_type"):
        Execution(model="m", model_version="1", monitor_type="Data Quality!",
                  window_start=datetime(2026, 1, 1, tzinfo=UTC),
                  window_end=datetime(2026, 1, 2, tzinfo=UTC), status="Completed")
    with pytest.raises(ValueError, match="stat"):
        Alert.model_validate({"model": "m", "monitor_type": "data-quality", "stat": "OK"})

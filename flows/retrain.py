"""The reference retrain flow, run by an automation when a model's alert is raised: fit a new version
with the model's registered training entry point, register it with a Draft card and fresh baselines.
An endpoint moves to it only through `modelwatch endpoints promote`, once its card is Approved."""

from __future__ import annotations

import importlib
import io
from typing import Any

import joblib
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store, default_store_uri


def load_entry_point(spec: str) -> Any:
    """The callable named by "module:function"."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise UserError(f"training entry point {spec!r}: expected module:function")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as problem:
        raise UserError(f"training entry point {spec!r} cannot be loaded: {problem}") from None
    if not callable(function):
        raise UserError(f"training entry point {spec!r} is not callable")
    return function


@task(name="fit-model", cache_policy=NO_CACHE)
def fit_task(entry_point: str, dataset: str) -> Any:
    from modelwatch.tasks.capture import read_dataset

    frame = read_dataset(dataset).to_pandas()
    return load_entry_point(entry_point)(frame)


@task(name="save-artifact", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def save_artifact_task(store_uri: str, model: str, version: str, estimator: Any) -> str:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return Store(store_uri).write_bytes(f"models/{model}/{version}/model.joblib", buffer.getvalue())


@flow(name="retrain", log_prints=True)
def retrain(
    model: str,
    store: str | None = None,
    dataset: str | None = None,
    alert_event_id: str | None = None,
    monitor_type: str | None = None,
    by: str = "modelwatch-retrain",
) -> dict[str, Any]:
    """Fit, register (new version, lineage to the previous one), Draft card, data-quality baseline."""
    from prefect.runtime import flow_run

    from modelwatch.flows.baseline import suggest_baseline
    from modelwatch.tasks.cards import create_card, latest_card
    from modelwatch.tasks.registry import ModelVersion, add_version, get_model

    store_uri = store or default_store_uri()
    the_store = Store(store_uri)
    record = get_model(the_store, model)
    if not record.training_entry_point:
        raise UserError(f"model {model!r} has no training entry point to retrain with")
    parent = record.latest
    dataset = dataset or (parent.training_dataset_uri if parent else None)
    if not dataset:
        raise UserError(f"model {model!r}: no training dataset given or registered")
    estimator = fit_task(record.training_entry_point, dataset)
    version = record.next_version()
    artifact = save_artifact_task(store_uri, model, version, estimator)
    reason = f"alert {alert_event_id} ({monitor_type})" if alert_event_id else "manual retrain"
    add_version(the_store, model, ModelVersion(
        version=version, artifact_uri=artifact, training_dataset_uri=dataset,
        training_run=str(flow_run.id) if flow_run.id else None,
        parent_version=parent.version if parent else None, source="retrain", reason=reason,
    ))
    previous = latest_card(the_store, model)
    content = dict(previous.content) if previous is not None else {}
    card = create_card(the_store, model, content, by=by, model_version=version)
    baseline = suggest_baseline(model=model, dataset=dataset, label=record.label, version=version,
                                store=store_uri)
    print(f"registered {model} v{version} ({reason}); card v{card.card_version} is "
          f"{card.status}; promote with `modelwatch endpoints promote` once it is Approved")
    return {"model": model, "version": version, "artifact": artifact,
            "card_version": card.card_version, "card_status": card.status,
            "baseline": baseline, "reason": reason}

"""The governance gate between a model version and traffic: an endpoint moves to a version only
when that version's model card is Approved."""

from __future__ import annotations

from modelwatch.tasks.errors import UserError
from modelwatch.tasks.registry import (
    EndpointRecord,
    EndpointVersionChange,
    get_endpoint,
    get_model,
    save_endpoint,
)
from modelwatch.tasks.store import Store


def promote_endpoint(store: Store, endpoint: str, version: str, by: str | None = None) -> EndpointRecord:
    """Point an endpoint at `version` of its model; refused unless the version's card is Approved."""
    from modelwatch.tasks.cards import card_for_version

    record = get_endpoint(store, endpoint)
    get_model(store, record.model).version(version)
    if record.model_version == version:
        raise UserError(f"endpoint {endpoint!r} already serves {record.model} version {version}")
    card = card_for_version(store, record.model, version)
    if card is None:
        raise UserError(f"{record.model} version {version} has no model card: create one and have it "
                        "Approved before promoting")
    if card.status != "Approved":
        raise UserError(f"{record.model} version {version}'s card (v{card.card_version}) is {card.status}, "
                        "not Approved: promotion refused")
    record.model_version = version
    record.history.append(EndpointVersionChange(model_version=version, by=by))
    save_endpoint(store, record)
    return record

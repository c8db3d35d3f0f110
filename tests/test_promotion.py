"""Endpoint promotion is gated on the target version's model card being Approved."""

from __future__ import annotations

import pytest

from modelwatch.errors import UserError
from modelwatch.tasks.cards import create_card, set_status
from modelwatch.tasks.promotion import promote_endpoint
from modelwatch.tasks.registry import (
    EndpointRecord,
    ModelRecord,
    ModelVersion,
    add_version,
    get_endpoint,
    register_endpoint,
    register_model,
)
from modelwatch.tasks.store import Store


def quiet(card, previous) -> bool:  # no Prefect API in this unit test
    return True


def test_promotion_needs_an_approved_card(tmp_path) -> None:
    store = Store(str(tmp_path / "store"))
    register_model(store, ModelRecord(name="m", problem_type="binary",
                                      versions=[ModelVersion(version="1")]))
    register_endpoint(store, EndpointRecord(name="prod", model="m", model_version="1",
                                            capture_uri=str(tmp_path / "capture")))
    add_version(store, "m", ModelVersion(version="2", parent_version="1", source="retrain"))

    with pytest.raises(UserError, match="version 2 has no model card"):
        promote_endpoint(store, "prod", "2")
    create_card(store, "m", {"intended_uses": {"risk_rating": "Low"}}, by="t", model_version="2")
    with pytest.raises(UserError, match="is Draft, not Approved"):
        promote_endpoint(store, "prod", "2")
    set_status(store, "m", "PendingReview", by="t", send_event=quiet)
    with pytest.raises(UserError, match="is PendingReview, not Approved"):
        promote_endpoint(store, "prod", "2")
    set_status(store, "m", "Approved", by="risk", send_event=quiet)
    record = promote_endpoint(store, "prod", "2", by="ops")
    assert record.model_version == "2"
    assert [c.model_version for c in get_endpoint(store, "prod").history] == ["1", "2"]
    assert get_endpoint(store, "prod").history[-1].by == "ops"
    with pytest.raises(UserError, match="already serves"):
        promote_endpoint(store, "prod", "2")
    with pytest.raises(UserError, match="no version '7'"):
        promote_endpoint(store, "prod", "7")

"""A dashboard row and model page show the card and risk rating of the version the endpoints serve
(and the latest card when it is another one), not the latest version's Draft card."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelwatch.flows.summary import served_version, summarize_model
from modelwatch.tasks.cards import create_card, set_status
from modelwatch.tasks.dashboard_html import render_index
from modelwatch.tasks.registry import (
    EndpointRecord,
    ModelRecord,
    ModelVersion,
    get_model,
    register_endpoint,
    register_model,
)
from modelwatch.tasks.store import Store

MODEL = "churn"


def _no_event(*_: object) -> bool:
    return True


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "store"))
    register_model(store, ModelRecord(name=MODEL, problem_type="binary",
                                      versions=[ModelVersion(version=v) for v in ("1", "2")]))
    create_card(store, MODEL, {"intended_uses": {"risk_rating": "High"}}, by="alice",
                model_version="1")
    set_status(store, MODEL, "PendingReview", by="alice", send_event=_no_event)
    set_status(store, MODEL, "Approved", by="carol", send_event=_no_event)
    # Version 2 is trained and drafted, rated Low, but no endpoint serves it yet.
    create_card(store, MODEL, {"intended_uses": {"risk_rating": "Low"}}, by="retrain",
                model_version="2")
    return store


def _summary(store: Store, endpoints: list[EndpointRecord]):
    return summarize_model(store, get_model(store, MODEL), endpoints, [], {},
                           datetime(2026, 12, 1, tzinfo=UTC))


def test_the_served_versions_card_leads_and_the_latest_is_named(store: Store) -> None:
    endpoint = register_endpoint(store, EndpointRecord(name="churn-prod", model=MODEL,
                                                       model_version="1", capture_uri="s3://b/c"))
    row = _summary(store, [endpoint]).row
    assert (row.risk_rating, row.card_status, row.card_model_version) == ("High", "Approved", "1")
    assert row.served_versions == ["1"] and row.latest_version == "2"
    assert (row.latest_card_status, row.latest_card_model_version) == ("Draft", "2")
    page = (Path(store.root) / "dashboard" / "models" / f"{MODEL}.html").read_text()
    assert 'id="card-status" data-status="Approved"' in page
    assert 'id="latest-card" data-status="Draft"' in page and 'id="latest-card-panel"' in page
    index = render_index([row], datetime(2026, 12, 1, tzinfo=UTC))
    assert "serving 1" in index and "latest: Draft (v2)" in index
    assert 'data-risk="High"' in index


def test_without_endpoints_the_latest_card_is_the_rows(store: Store) -> None:
    row = _summary(store, []).row
    assert (row.risk_rating, row.card_status, row.card_model_version) == ("Low", "Draft", "2")
    assert row.latest_card_status is None and row.served_versions == []


def test_a_served_version_without_a_card_says_so(store: Store) -> None:
    register_model(store, ModelRecord(name=MODEL, problem_type="binary", versions=[
        ModelVersion(version=v) for v in ("1", "2", "3")]), replace=True)
    endpoint = EndpointRecord(name="churn-canary", model=MODEL, model_version="3",
                              capture_uri="s3://b/c")
    row = _summary(store, [endpoint]).row
    assert (row.risk_rating, row.card_status) == ("Unknown", None)
    assert row.latest_card_status == "Draft"
    page = (Path(store.root) / "dashboard" / "models" / f"{MODEL}.html").read_text()
    assert "No card describes the served version 3." in page


def test_served_version_is_what_most_endpoints_serve() -> None:
    def endpoint(name: str, version: str) -> EndpointRecord:
        return EndpointRecord(name=name, model=MODEL, model_version=version, capture_uri="x")

    assert served_version([]) is None
    assert served_version([endpoint("a", "1"), endpoint("b", "2"), endpoint("c", "2")]) == "2"
    assert served_version([endpoint("a", "10"), endpoint("b", "9")]) == "10"  # a tie: the newest

"""Model cards: immutable numbered versions, SageMaker content validation, the review path and its
Prefect event, exports that never carry a script, and the `modelwatch cards` commands."""

from __future__ import annotations

import contextlib
import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelwatch import cli
from modelwatch.errors import UserError
from modelwatch.flows import events
from modelwatch.flows.cards import set_status, update_card
from modelwatch.tasks import cards
from modelwatch.tasks.cards import (
    STATUS_EVENT,
    ModelCard,
    card_for_version,
    card_to_html,
    card_to_markdown,
    card_versions,
    create_card,
    get_card,
    latest_card,
    merge_patch,
    risk_rating,
    validate_content,
)
from modelwatch.tasks.registry import ModelRecord, ModelVersion, register_model
from modelwatch.tasks.store import Store
from tests.sagemaker_samples import sample
from tests.test_cli import modelwatch

MODEL = "churn"
XSS = "<script>alert(1)</script>"


def registered(store: Store, name: str = MODEL, versions: tuple[str, ...] = ("1", "2")) -> Store:
    register_model(store, ModelRecord(name=name, problem_type="binary",
                                      versions=[ModelVersion(version=v) for v in versions]))
    return store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return registered(Store(str(tmp_path / "store")))


class Recorder:
    """Stands in for the Prefect event: (model, card version, from, to, by, model version)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, card: ModelCard, previous: str) -> bool:
        resource, payload = cards.status_event(card, previous)
        self.events.append({**payload, "resource": resource})
        return True


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Every status event, recorded instead of sent (also for the in-process CLI)."""
    recorder = Recorder()
    monkeypatch.setattr(events, "emit_status_changed", recorder)
    return recorder


CONTENT: dict[str, Any] = {
    "model_overview": {"model_description": "Predicts churn", "model_owner": "retention-team",
                       "model_artifact": ["s3://models/churn/2/model.tar.gz"],
                       "model_id": "churn-xgb", "inference_environment": {
                           "container_image": ["registry/xgb:1.7"]}},
    "intended_uses": {"purpose_of_model": "Retention offers", "risk_rating": "Medium"},
    "business_details": {"business_problem": "Churn", "line_of_business": "Telecom"},
    "training_details": {
        "objective_function": {"function": {"function": "Minimize", "facet": "Loss"}},
        "training_job_details": {"hyper_parameters": [{"name": "eta", "value": "0.2"}],
                                 "training_metrics": [{"name": "logloss", "value": 0.31}]}},
    "evaluation_details": [{
        "name": "holdout-2026-01", "evaluation_observation": "Stable across regions",
        "datasets": ["s3://data/holdout.csv"], "metadata": {"owner": "ml-platform"},
        "metric_groups": [{"name": "binary_classification_metrics", "metric_data": [
            {"name": "accuracy", "type": "number", "value": 0.91},
            {"name": "confusion_matrix", "type": "matrix", "value": [[50, 3], [4, 43]],
             "x_axis_name": ["0", "1"], "y_axis_name": ["0", "1"]},
            {"name": "roc", "type": "linear_graph", "value": [[0, 0], [0.1, 0.8], [1, 1]],
             "x_axis_name": "fpr", "y_axis_name": "tpr"},
            {"name": "global_shap", "type": "bar_chart", "value": [0.4, 0.1],
             "x_axis_name": ["tenure", "plan"]},
            {"name": "calibrated", "type": "boolean", "value": True},
        ]}],
    }],
    "additional_information": {"caveats_and_recommendations": "Retrain quarterly",
                               "custom_details": {"reviewer": "model-risk"}},
}


def invoke(*args: str) -> tuple[int, str]:
    """The CLI in this process: exit code and stdout (user errors print to stderr, return 2)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.run(list(args))
    return code, out.getvalue()


# ---- versions ----

def test_versions_are_immutable_and_numbered(store: Store, sent: Recorder) -> None:
    first = create_card(store, MODEL, CONTENT, by="alice")
    v1_bytes = store.read_bytes("cards/churn/v1.json")
    second = update_card(store, MODEL, {"intended_uses": {"risk_rating": "High"}}, by="bob")
    third = set_status(store, MODEL, "PendingReview", by="bob", note="ready")

    assert [c.card_version for c in (first, second, third)] == [1, 2, 3]
    assert store.list("cards/churn") == [f"cards/churn/v{n}.json" for n in (1, 2, 3)]
    assert store.read_bytes("cards/churn/v1.json") == v1_bytes  # earlier versions never rewritten
    assert [c.card_version for c in card_versions(store, MODEL)] == [1, 2, 3]
    assert risk_rating(get_card(store, MODEL, 1)) == "Medium"
    assert risk_rating(latest_card(store, MODEL)) == "High"
    assert (second.created_by, third.created_by) == ("bob", "bob")
    # The status history travels with every version.
    assert [(h.status, h.by, h.card_version) for h in third.status_history] == [
        ("Draft", "alice", 1), ("PendingReview", "bob", 3)]
    document = json.loads(store.read_bytes("cards/churn/v3.json"))
    assert set(document) >= {"model", "card_version", "status", "content", "created_at",
                             "created_by", "status_history"}
    assert set(document["status_history"][-1]) >= {"status", "by", "at", "note"}

    # A second writer that computed the same next number is refused, not allowed to overwrite.
    with pytest.raises(UserError, match="card v3 of model 'churn' already exists"):
        cards._write_new(store, third.model_copy(update={"created_by": "mallory"}))
    assert latest_card(store, MODEL).created_by == "bob"
    with pytest.raises(UserError, match=r"no card v9 \(card versions: v1-v3\)"):
        get_card(store, MODEL, 9)


def test_a_card_needs_a_registered_model(store: Store) -> None:
    with pytest.raises(UserError, match="unknown model 'ghost'"):
        create_card(store, "ghost", {}, by="alice")
    with pytest.raises(UserError, match="invalid model name"):
        create_card(store, "../etc", {}, by="alice")
    assert latest_card(store, "ghost") is None
    with pytest.raises(UserError, match="has no model card"):
        set_status(store, MODEL, "PendingReview", by="alice")


def test_versions_on_an_s3_store(s3_bucket: str, sent: Recorder,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = registered(Store(s3_bucket))
    create_card(store, MODEL, CONTENT, by="alice")
    card = set_status(store, MODEL, "PendingReview", by="bob")
    assert [c.card_version for c in card_versions(Store(s3_bucket), MODEL)] == [1, 2]
    with pytest.raises(UserError, match="already exists"):
        cards._write_new(store, card)
    # The race itself: both writers saw no v2, so only the conditional PUT can refuse the second.
    monkeypatch.setattr(store, "exists", lambda key: False)
    with pytest.raises(UserError, match="already exists"):
        cards._write_new(store, card.model_copy(update={"created_by": "mallory"}))
    assert get_card(Store(s3_bucket), MODEL, 2).created_by == "bob"
    assert sent.events[-1]["to"] == "PendingReview"


# ---- content ----

def test_both_schema_variants_and_sdk_metric_groups_are_accepted() -> None:
    checked = validate_content(CONTENT)
    assert checked["model_overview"]["inference_environment"] == {
        "container_image": ["registry/xgb:1.7"]}  # 2023 variant
    assert checked["business_details"]["line_of_business"] == "Telecom"  # sagemaker-core variant
    groups = []
    for name in ("clarify_bias", "clarify_explanation",
                 "model_monitor_model_quality_binary_classification",
                 "model_monitor_model_quality_regression"):
        groups += json.loads(sample(f"model_card_translated_{name}.json").read_text())[
            "metric_groups"]
    evaluation = {"evaluation_details": [{"name": "sdk", "metric_groups": groups}]}
    assert validate_content(evaluation)["evaluation_details"][0]["metric_groups"] == groups
    # SageMaker numbers model versions; the registry names them: both end up strings.
    assert validate_content({"model_overview": {"model_version": 3}})["model_overview"] == {
        "model_version": "3"}


def metric(**fields: Any) -> dict[str, Any]:
    return {"evaluation_details": [{"name": "e", "metric_groups": [
        {"name": "g", "metric_data": [{"name": "m", **fields}]}]}]}


M0 = "evaluation_details[0].metric_groups[0].metric_data[0]"


@pytest.mark.parametrize("content, message", [
    ({"intended_uses": {"risk_rating": "Extreme"}},
     "intended_uses.risk_rating: 'Extreme' is not one of High, Medium, Low, Unknown"),
    ({"model_overview": {"model_description": "x" * 1025}},
     "model_overview.model_description: is 1025 characters long; at most 1024 are allowed"),
    ({"business_details": {"business_problem": "x" * 2049}},
     "business_details.business_problem: is 2049 characters long; at most 2048"),
    ({"intended_uses": {"purpose_of_model": 3}},
     "intended_uses.purpose_of_model: expected a string, got a number"),
    ({"model_overview": {"colour": "red"}},
     "model_overview.colour: unknown field; expected one of: model_description"),
    ({"favourite_section": {}}, "favourite_section: unknown field; expected one of: "
                                "model_overview, intended_uses, business_details"),
    ({"model_overview": {"model_artifact": ["s3://a"] * 16}},
     "model_overview.model_artifact: has 16 items; at most 15"),
    ({"evaluation_details": [{"evaluation_observation": "no name"}]},
     "evaluation_details[0]: missing required field 'name'"),
    ({"evaluation_details": {"name": "not a list"}},
     "evaluation_details: expected a list, got an object"),
    (metric(type="pie", value=1), f"{M0}.type: 'pie' is not one of number, string, boolean"),
    (metric(type="number", value="high"), f"{M0}.value: expected a number, got a string"),
    (metric(type="string", value="x" * 64), f"{M0}.value: is 64 characters long; at most 63"),
    (metric(type="matrix", value=[[1]] * 21), f"{M0}.value: has 21 items; at most 20"),
    (metric(type="linear_graph", value=[[1, 2, 3]]), f"{M0}.value[0]: needs exactly 2 items"),
    (metric(type="bar_chart", value=[]), f"{M0}.value: needs at least 1 item(s)"),
    (metric(type="number"), f"{M0}: missing required field 'value'"),
    ({"additional_information": {"custom_details": {"k": 5}}},
     "additional_information.custom_details.k: expected a string, got a number"),
    ({"training_details": {"objective_function": {"function": {"function": "Maximise"}}}},
     "training_details.objective_function.function.function: 'Maximise' is not one of "
     "Maximize, Minimize"),
    ({"training_details": {"training_job_details": {"training_metrics": [{"name": "loss"}]}}},
     "training_details.training_job_details.training_metrics[0]: missing required field 'value'"),
    ({"evaluation_details": [{"name": "e", "evaluation_observation": "x" * 2000}] * 60},
     "card content: is 1"),  # over SageMaker's 100,000-character Content limit
])
def test_content_validation_names_the_field(content: dict, message: str) -> None:
    with pytest.raises(UserError) as problem:
        validate_content(content)
    assert message in str(problem.value)


def test_invalid_content_writes_nothing(store: Store) -> None:
    with pytest.raises(UserError, match="intended_uses.risk_rating"):
        create_card(store, MODEL, {"intended_uses": {"risk_rating": "Extreme"}}, by="alice")
    assert store.list("cards/churn") == []
    create_card(store, MODEL, CONTENT, by="alice")
    with pytest.raises(UserError, match="model_overview.model_description: is 2000"):
        update_card(store, MODEL, {"model_overview": {"model_description": "x" * 2000}}, by="b")
    assert [c.card_version for c in card_versions(store, MODEL)] == [1]


def test_merge_patch_merges_objects_replaces_lists_and_null_deletes() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert merge_patch(target, {"a": {"c": None, "d": 3}, "l": [9]}) == {
        "a": {"b": 1, "d": 3}, "l": [9]}
    assert target == {"a": {"b": 1, "c": 2}, "l": [1, 2]}  # the input is left alone


# ---- review ----

def test_full_status_path_and_illegal_moves(store: Store, sent: Recorder) -> None:
    create_card(store, MODEL, CONTENT, by="alice")
    with pytest.raises(UserError) as illegal:
        set_status(store, MODEL, "Approved", by="carol")
    assert str(illegal.value) == (
        "the card of model 'churn' (card v1) is Draft and cannot move to Approved; allowed "
        "moves from Draft: PendingReview, Archived")
    with pytest.raises(UserError, match="unknown card status 'Done'"):
        set_status(store, MODEL, "Done", by="carol")

    set_status(store, MODEL, "PendingReview", by="alice")
    set_status(store, MODEL, "Draft", by="carol", note="explain the risk rating")  # rejected
    set_status(store, MODEL, "PendingReview", by="alice")
    approved = set_status(store, MODEL, "Approved", by="carol", note="ok")
    with pytest.raises(UserError, match="is Approved and cannot move to PendingReview; allowed "
                                        "moves from Approved: Archived"):
        set_status(store, MODEL, "PendingReview", by="alice")
    archived = set_status(store, MODEL, "Archived", by="dave")

    assert approved.status == "Approved" and archived.card_version == 6
    assert [(h.status, h.by, h.note) for h in archived.status_history] == [
        ("Draft", "alice", "card created for model version 2"), ("PendingReview", "alice", None),
        ("Draft", "carol", "explain the risk rating"), ("PendingReview", "alice", None),
        ("Approved", "carol", "ok"), ("Archived", "dave", None)]
    assert [(e["from"], e["to"], e["by"], e["model_version"]) for e in sent.events] == [
        ("Draft", "PendingReview", "alice", "2"), ("PendingReview", "Draft", "carol", "2"),
        ("Draft", "PendingReview", "alice", "2"), ("PendingReview", "Approved", "carol", "2"),
        ("Approved", "Archived", "dave", "2")]
    assert sent.events[-1]["resource"]["prefect.resource.id"] == "modelwatch.model.churn"
    assert sent.events[-1]["resource"]["modelwatch.card.version"] == "6"

    with pytest.raises(UserError, match=r"Archived and cannot move to Draft; allowed moves from "
                                        r"Archived: none \(an Archived card is final\)"):
        set_status(store, MODEL, "Draft", by="alice")
    with pytest.raises(UserError, match="is Archived .* cannot change"):
        update_card(store, MODEL, {"intended_uses": {"risk_rating": "Low"}}, by="alice")


def test_by_defaults_to_the_user(store: Store, sent: Recorder,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "erin")
    card = create_card(store, MODEL, {}, by=None)
    assert card.created_by == "erin" and card.status_history[-1].by == "erin"


def test_updating_an_approved_card_returns_it_to_draft(store: Store, sent: Recorder) -> None:
    create_card(store, MODEL, CONTENT, by="alice")
    set_status(store, MODEL, "PendingReview", by="alice")
    approved = set_status(store, MODEL, "Approved", by="carol")

    same = update_card(store, MODEL, {"intended_uses": {"risk_rating": "Medium"}}, by="alice")
    assert same.card_version == approved.card_version  # nothing changed: nothing written

    changed = update_card(store, MODEL, {"intended_uses": {"risk_rating": "High"}}, by="alice")
    assert (changed.card_version, changed.status) == (4, "Draft")
    assert changed.status_history[-1].status == "Draft"
    assert changed.status_history[-1].by == "alice"
    assert "needs review again" in changed.status_history[-1].note
    assert (sent.events[-1]["from"], sent.events[-1]["to"]) == ("Approved", "Draft")
    assert get_card(store, MODEL, 3).status == "Approved"  # the approved version stays as it was

    # A Draft card's content change is just a new version, and no event.
    events = len(sent.events)
    draft = update_card(store, MODEL, {"intended_uses": {"explanations_for_risk_rating": "PII"}},
                        by="alice")
    assert (draft.status, draft.card_version, len(sent.events)) == ("Draft", 5, events)
    with pytest.raises(UserError, match="a card keeps the model version it describes"):
        update_card(store, MODEL, {"model_overview": {"model_version": "1"}}, by="alice")


def test_card_for_version(store: Store, sent: Recorder) -> None:
    first = create_card(store, MODEL, CONTENT, by="alice", model_version="1")
    assert first.content["model_overview"]["model_version"] == "1"
    assert first.content["model_overview"]["model_name"] == MODEL  # defaults to the model name
    set_status(store, MODEL, "PendingReview", by="alice")
    set_status(store, MODEL, "Approved", by="carol")
    # A retrain registers version 2 and drafts its card from the previous content.
    second = create_card(store, MODEL, latest_card(store, MODEL).content, by="retrain",
                         model_version="2")

    assert second.card_version == 4 and second.model_version == "2"
    assert [h.status for h in second.status_history] == ["Draft", "PendingReview", "Approved",
                                                         "Draft"]
    assert card_for_version(store, MODEL, "1").status == "Approved"
    assert card_for_version(store, MODEL, "2").status == "Draft"
    assert card_for_version(store, MODEL, "3") is None
    with pytest.raises(UserError, match="version 1 of model 'churn' already has a card "
                                        r"\(card v3, Approved\)"):
        create_card(store, MODEL, {}, by="alice", model_version="1")
    with pytest.raises(UserError, match=r"has no version '7' \(versions: 1, 2\)"):
        create_card(store, MODEL, {}, by="alice", model_version="7")


def test_model_version_defaults_to_the_latest(store: Store) -> None:
    card = create_card(store, MODEL, {"model_overview": {"model_name": "Churn v2"}}, by="alice")
    assert card.content["model_overview"] == {"model_name": "Churn v2", "model_version": "2"}


# ---- export ----

def test_markdown_and_html_export(store: Store, sent: Recorder) -> None:
    create_card(store, MODEL, CONTENT, by="alice")
    card = set_status(store, MODEL, "PendingReview", by="bob", note="please | review")

    markdown = card_to_markdown(card)
    assert markdown.startswith("# Model card: churn\n")
    assert "| Risk rating | Medium |" in markdown
    assert "## Evaluation details" in markdown and "#### binary_classification_metrics" in markdown
    assert "| confusion_matrix | matrix | [[50, 3], [4, 43]] |  |" in markdown
    assert "| PendingReview | bob |" in markdown and "please \\| review" in markdown
    assert "- **reviewer:** model-risk" in markdown

    page = card_to_html(card)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page.lower() and "src=" not in page  # self-contained, no script
    assert '<table class="metrics">' in page and "<th>Metric</th>" in page
    assert "<td>confusion_matrix</td>" in page and '<td class="num">43</td>' in page
    assert "<h2>Status history</h2>" in page and "please | review" in page
    assert "Predicts churn" in page and "retention-team" in page


def test_exports_escape_every_user_string(store: Store, sent: Recorder) -> None:
    hostile = {
        "model_overview": {"model_description": XSS, "model_owner": f"<img src=x onerror=1>{XSS}"},
        "intended_uses": {"purpose_of_model": XSS.upper()},
        "evaluation_details": [{"name": XSS, "metadata": {XSS: XSS}, "metric_groups": [
            {"name": XSS, "metric_data": [
                {"name": XSS, "type": "string", "value": "<script>x</script>", "notes": XSS},
                {"name": "m", "type": "matrix", "value": [[1]], "x_axis_name": [XSS],
                 "y_axis_name": [XSS]}]}]}],
        "additional_information": {"custom_details": {XSS: XSS}},
    }
    create_card(store, MODEL, hostile, by=XSS)
    card = set_status(store, MODEL, "PendingReview", by=XSS, note=XSS)

    page = card_to_html(card)
    assert "<script" not in page.lower()
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    markdown = card_to_markdown(card)
    assert "<script" not in markdown.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown


# ---- the command line ----

CARD_YAML = """\
# The card's sections, as SageMaker names them.
model_overview:
  model_description: Predicts churn from usage
  model_owner: retention-team
intended_uses:
  purpose_of_model: Retention offers
  risk_rating: Low
evaluation_details:
  - name: holdout
    metric_groups:
      - name: binary_classification_metrics
        metric_data:
          - {name: accuracy, type: number, value: 0.91}
"""


def test_yaml_create_then_update_list_show_and_export(store: Store, sent: Recorder,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELWATCH_IDENTITY", "alice")
    (tmp_path / "card.yaml").write_text(CARD_YAML)
    code, out = invoke("cards", "create", "--model", MODEL, "--from-yaml",
                       str(tmp_path / "card.yaml"), "--risk-rating", "medium",
                       "--store", store.root)
    assert code == 0, out
    created = json.loads(out)
    assert created["card_version"] == 1 and created["status"] == "Draft"
    assert created["created_by"] == "alice"
    assert created["content"]["intended_uses"]["risk_rating"] == "Medium"  # the option wins
    assert created["content"]["evaluation_details"][0]["metric_groups"][0]["metric_data"][0][
        "value"] == 0.91

    code, out = invoke("cards", "update", "--model", MODEL, "--set",
                       "additional_information.custom_details.ticket=RISK-12", "--set",
                       "model_overview.model_owner=", "--store", store.root)
    assert code == 0, out
    updated = json.loads(out)
    assert updated["content"]["additional_information"]["custom_details"] == {"ticket": "RISK-12"}
    assert "model_owner" not in updated["content"]["model_overview"]  # an empty --set removes

    code, out = invoke("cards", "status", "--model", MODEL, "--to", "PendingReview",
                       "--note", "ready", "--store", store.root)
    assert code == 0 and json.loads(out)["status"] == "PendingReview"
    assert sent.events[-1]["to"] == "PendingReview"
    code, _ = invoke("cards", "status", "--model", MODEL, "--to", "Approved", "--store", store.root)
    assert code == 2  # alice submitted it: she cannot approve it (separation of duties)
    code, _ = invoke("cards", "status", "--model", MODEL, "--to", "Approved", "--by", "bob",
                     "--store", store.root)
    assert code == 2  # no free-text identity any more
    from modelwatch.tasks.audit import read_audit

    assert [(e.who, e.via, e.action, e.after["status"]) for e in read_audit(store)] == [
        ("alice", "cli", "card.create", "Draft"), ("alice", "cli", "card.update", "Draft"),
        ("alice", "cli", "card.status", "PendingReview")]
    assert read_audit(store)[1].after["changed"] == [
        "additional_information.custom_details.ticket", "model_overview.model_owner"]

    code, out = invoke("cards", "list", "--json", "--store", store.root)
    assert code == 0
    assert [(r["model"], r["card_version"], r["status"], r["risk_rating"], r["model_version"])
            for r in json.loads(out)] == [(MODEL, 3, "PendingReview", "Medium", "2")]
    code, out = invoke("cards", "list", "--model", MODEL, "--store", store.root)
    assert code == 0 and "PendingReview" in out and "v1" in out

    code, out = invoke("cards", "show", "--model", MODEL, "--version", "1", "--store", store.root)
    assert code == 0 and json.loads(out)["card_version"] == 1

    code, out = invoke("cards", "export", "--model", MODEL, "--format", "markdown",
                       "--store", store.root)
    assert code == 0 and out.startswith("# Model card: churn")
    target = tmp_path / "out" / "churn.html"
    code, out = invoke("cards", "export", "--model", MODEL, "--format", "html", "--output",
                       str(target), "--store", store.root)
    assert code == 0 and json.loads(out)["output"] == str(target)
    assert "<h2>Status history</h2>" in target.read_text()


@pytest.mark.parametrize("yaml_text, args, message", [
    ("intended_uses:\n  purpose_of_model: x\n  risk_rating: Extreme\n", [],
     "card.yaml: line 3: intended_uses.risk_rating: 'Extreme' is not one of High"),
    ("model_overview:\n  model_description: [unclosed\n", [],
     "card.yaml: line 3, column 1: not valid YAML"),
    ("- just\n- a list\n", [], "expected a mapping of card sections"),
    ("model_overview:\n  model_description: ok\n", ["--risk-rating", "extreme"],
     "--risk-rating 'extreme': expected one of High, Medium, Low, Unknown"),
    ("evaluation_details:\n  - name: e\n    datasets: x\n", [],
     "card.yaml: line 3: evaluation_details[0].datasets: expected a list, got a string"),
])
def test_create_user_errors(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture,
                            yaml_text: str, args: list[str], message: str) -> None:
    (tmp_path / "card.yaml").write_text(yaml_text)
    code, out = invoke("cards", "create", "--model", MODEL, "--from-yaml",
                       str(tmp_path / "card.yaml"), *args, "--store", store.root)
    assert code == 2 and out == ""
    assert message in capsys.readouterr().err


def test_illegal_status_move_exits_2(store: Store, tmp_path: Path) -> None:
    create_card(store, MODEL, {}, by="alice")
    result = modelwatch("cards", "status", "--model", MODEL, "--to", "Approved",
                        "--store", store.root, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert ("the card of model 'churn' (card v1) is Draft and cannot move to Approved; allowed "
            "moves from Draft: PendingReview, Archived") in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert [c.card_version for c in card_versions(store, MODEL)] == [1]


# ---- the Prefect event ----

@pytest.mark.usefixtures("prefect_api")
def test_status_change_event_reaches_the_prefect_api(tmp_path: Path) -> None:
    from tests.prefect_events import wait_for_events

    model = f"card-event-{uuid.uuid4().hex[:8]}"  # this test's events alone, whatever ran before
    store = registered(Store(str(tmp_path / "store")), model)
    create_card(store, model, CONTENT, by="alice")
    card = set_status(store, model, "PendingReview", by="bob")  # the real emit_status_changed

    events = wait_for_events(STATUS_EVENT, f"modelwatch.model.{model}")
    assert len(events) == 1, "the status change never reached the Prefect API"
    event = events[0]
    assert event.resource["modelwatch.card.version"] == str(card.card_version)
    assert event.payload == {"from": "Draft", "to": "PendingReview", "by": "bob",
                             "model_version": "2"}


# ---- PDF ----

def _pdf_text(data: bytes) -> str:
    """The PDF's text as pypdf reads it back, whitespace collapsed (lines wrap anywhere)."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [t for v in value.values() for t in _leaves(v)]
    if isinstance(value, list):
        return [t for v in value for t in _leaves(v)]
    return [] if isinstance(value, bool | int | float) else [str(value)]


def test_pdf_export_shows_every_field_and_runs_nothing(store: Store, sent: Recorder) -> None:
    content = json.loads(json.dumps(CONTENT))
    content["additional_information"]["ethical_considerations"] = \
        f"{XSS} <img src=x onerror=alert(1)> Zürich " + "long words wrap " * 60
    create_card(store, MODEL, content, by="alice")
    card = set_status(store, MODEL, "PendingReview", by="bob", note="please | review")

    data = cards.card_to_pdf(card)
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    text = _pdf_text(data)
    assert text.startswith("Model card: churn")
    for leaf in _leaves(content):  # every string the author wrote, whole, even across wrapped lines
        assert " ".join(leaf.split()) in text, leaf
    for label in ("Card version 2", "Status PendingReview", "owner: ml-platform", "reviewer: model-risk",
                  "Model description: Predicts churn", "Line of business: Telecom",
                  "Risk rating Medium", "Model version 2",
                  "Status history", "Draft alice", "PendingReview bob", "please | review",
                  "accuracy number 0.91", "confusion_matrix matrix [[50, 3], [4, 43]]",
                  "global_shap bar_chart tenure: 0.4, plan: 0.1", "logloss 0.31"):
        assert label in text, label
    # Text is only drawn: no script, launch or URI action anywhere; opening only shows page 1.
    for marker in (b"/JavaScript", b"/JS", b"/Launch", b"/AA", b"/URI", b"/S /"):
        assert marker not in data
    assert re.findall(rb"/OpenAction\s*(.)", data) == [b"["]  # a destination, not an action
    # The same card version gives the same text (the metadata carries the card's own time).
    assert _pdf_text(cards.card_to_pdf(card)) == text


def test_pdf_without_a_unicode_font_refuses_what_it_cannot_show(
        store: Store, sent: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelwatch.tasks import card_pdf

    monkeypatch.delenv(card_pdf.FONT_ENV, raising=False)
    monkeypatch.setattr(card_pdf, "SYSTEM_FONTS", ())
    card = create_card(store, MODEL, {"model_overview": {"model_description": "Zürich, naïve"}},
                       by="alice")
    assert "Zürich, naïve" in _pdf_text(cards.card_to_pdf(card))  # Latin-1: the built-in Helvetica
    card = update_card(store, MODEL, {"intended_uses": {"purpose_of_model": "Ω-scores"}}, by="alice")
    with pytest.raises(UserError, match=r"'Ω-scores' holds U\+03A9 'Ω', which the built-in Helvetica "
                                        r"\(Latin-1 only\) cannot show: set MODELWATCH_PDF_FONT"):
        cards.card_to_pdf(card)
    with pytest.raises(UserError, match="PDF font /nowhere/x.ttf: no such file"):
        cards.card_to_pdf(card, font="/nowhere/x.ttf")


def test_pdf_with_a_truetype_font_shows_unicode(store: Store, sent: Recorder) -> None:
    from modelwatch.tasks import card_pdf

    font = card_pdf.find_font()
    if font is None:
        pytest.skip("no TrueType system font (DejaVu, Liberation, Arial) on this machine")
    card = create_card(store, MODEL, {"model_overview": {"model_description": "Ω-scores – Łódź"}},
                       by="zoë")
    text = _pdf_text(cards.card_to_pdf(card))
    assert "Ω-scores – Łódź" in text and "by zoë" in text
    # A character the font has no glyph for is named, not dropped.
    card = update_card(store, MODEL, {"intended_uses": {"purpose_of_model": "\u4e2d"}}, by="zoë")
    with pytest.raises(UserError, match=r"U\+4E2D"):
        cards.card_to_pdf(card)


def test_cards_export_pdf_command(store: Store, sent: Recorder, tmp_path: Path) -> None:
    create_card(store, MODEL, CONTENT, by="alice")
    target = tmp_path / "out" / "churn.pdf"
    code, out = invoke("cards", "export", "--model", MODEL, "--format", "pdf", "--output",
                       str(target), "--store", store.root)
    assert code == 0, out
    assert json.loads(out) == {"model": MODEL, "card_version": 1, "format": "pdf",
                               "output": str(target), "bytes": target.stat().st_size}
    assert "Predicts churn" in _pdf_text(target.read_bytes())
    assert invoke("cards", "export", "--model", MODEL, "--format", "pdf", "--font", "/nowhere.ttf",
                  "--output", str(target), "--store", store.root)[0] == 2
    assert invoke("cards", "export", "--model", MODEL, "--format", "html", "--font", "/x.ttf",
                  "--store", store.root)[0] == 2
    assert invoke("cards", "export", "--model", MODEL, "--format", "docx", "--store", store.root)[0] == 2


# ---- the form and the differences between versions ----

def test_the_card_form_covers_every_schema_field_and_round_trips() -> None:
    from modelwatch.tasks import card_form
    from modelwatch.tasks.card_schema import CardContent

    placed = {(f.section, f.field) for f in card_form.FIELDS} | {card_form.FIXED}
    expected = {("evaluation_details", None)}
    for section, info in CardContent.model_fields.items():
        if section != "evaluation_details":
            model = next(t for t in info.annotation.__args__ if t is not type(None))
            expected |= {(section, field) for field in model.model_fields}
    assert placed == expected
    content = validate_content(json.loads(json.dumps(CONTENT)))
    fixed = {card_form.FIXED: "2"}
    back = card_form.content_from_form(card_form.form_values(content), fixed)
    assert validate_content(back) == {**content, "model_overview": {**content["model_overview"],
                                                                   "model_version": "2"}}
    with pytest.raises(UserError, match=r"training_details.objective_function: not valid JSON "
                                        r"\(Expecting property name enclosed in double quotes at line 1"):
        card_form.content_from_form({"training_details.objective_function": "{'a': 1}"})


def test_card_changes_and_the_patch_between_two_contents() -> None:
    before = json.loads(json.dumps(CONTENT))
    after = json.loads(json.dumps(CONTENT))
    after["intended_uses"]["risk_rating"] = "High"
    del after["business_details"]
    after["evaluation_details"][0]["metric_groups"][0]["metric_data"][0]["value"] = 0.93
    after["evaluation_details"].append({"name": "fresh"})
    after["model_overview"]["model_artifact"] = ["s3://a", "s3://b"]
    changes = [(c.kind, c.path, c.before, c.after) for c in cards.card_changes(before, after)]
    assert changes == [
        ("removed", "business_details.business_problem", "Churn", None),
        ("removed", "business_details.line_of_business", "Telecom", None),
        ("changed", "evaluation_details[0].metric_groups[0].metric_data[0].value", 0.91, 0.93),
        ("added", "evaluation_details[1].name", None, "fresh"),
        ("changed", "intended_uses.risk_rating", "Medium", "High"),
        ("changed", "model_overview.model_artifact", ["s3://models/churn/2/model.tar.gz"],
         ["s3://a", "s3://b"]),
    ]
    assert merge_patch(before, cards.patch_between(before, after)) == after
    assert cards.patch_between(after, after) == {} and cards.card_changes(after, after) == []

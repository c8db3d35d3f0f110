"""Model cards: SageMaker Model Card content, versioned and reviewed.

A model's card is a series of immutable documents `cards/<model>/v<N>.json` (N = 1, 2, ...). Every
change, to the content or to the review status, writes the next version and no version is ever
rewritten, so the files themselves are the audit trail of who wrote and who approved what. Each
version carries the whole status history forward.

Content follows SageMaker's model card schema: the union of the SDK's 2025 copy and the 2023
developer-guide variant (see shared/interop/sagemaker-formats.md section 9), checked by a small
declarative spec below so errors name the field (`intended_uses.risk_rating: ...`).

Review: Draft -> PendingReview -> Approved -> Archived, PendingReview -> Draft (review rejected) and
any -> Archived. A content change to an Approved card returns it to Draft. Each move emits the
Prefect event `modelwatch.card.status-changed`; a card command never fails because of the event.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from modelwatch.tasks.card_schema import (  # noqa: F401 - part of this module's API
    MAX_CONTENT_CHARS,
    RISK_RATINGS,
    CardContentError,
    check_version,
    format_path,
    validate_content,
)
from modelwatch.tasks.card_schema import kind_of as _kind
from modelwatch.tasks.documents import Document
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store, check_slug, json_dumps

__all__ = [
    "ALLOWED_MOVES", "RISK_RATINGS", "STATUSES", "STATUS_EVENT", "CardContentError", "Change", "ModelCard",
    "StatusChange", "card_changes", "card_for_version", "card_to_html", "card_to_markdown", "card_to_pdf",
    "card_versions", "create_card", "export_card", "get_card", "latest_card", "list_card_models",
    "merge_patch", "patch_between", "review_authors", "risk_rating", "set_status", "status_event",
    "update_card", "validate_content",
]

CardStatus = Literal["Draft", "PendingReview", "Approved", "Archived"]
STATUSES: tuple[str, ...] = ("Draft", "PendingReview", "Approved", "Archived")
# Approved -> Draft is not a move a user makes: it happens when an Approved card's content changes.
ALLOWED_MOVES: dict[str, tuple[str, ...]] = {
    "Draft": ("PendingReview", "Archived"),
    "PendingReview": ("Approved", "Draft", "Archived"),
    "Approved": ("Archived",),
    "Archived": (),
}
STATUS_EVENT = "modelwatch.card.status-changed"
SECTION_TITLES: dict[str, str] = {
    "model_overview": "Model overview",
    "intended_uses": "Intended uses",
    "business_details": "Business details",
    "training_details": "Training details",
    "evaluation_details": "Evaluation details",
    "additional_information": "Additional information",
}
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.json$")


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON Merge Patch (RFC 7386): objects merge recursively, null deletes, anything else replaces
    (lists included: evaluation_details is replaced whole, never spliced)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result



def patch_between(before: Any, after: Any) -> dict[str, Any]:
    """The merge patch that turns content `before` into `after` (fields `after` lacks become null),
    so a whole edited content goes through update_card like any other change."""
    before = before if isinstance(before, dict) else {}
    patch: dict[str, Any] = {}
    for key in before.keys() | after.keys():
        if key not in after:
            patch[key] = None
        elif isinstance(after[key], dict) and isinstance(before.get(key), dict):
            inner = patch_between(before[key], after[key])
            if inner:
                patch[key] = inner
        elif after[key] != before.get(key):
            patch[key] = copy.deepcopy(after[key])
    return patch


class Change(Document):
    """One field that differs between two card versions (None: absent on that side)."""

    path: str
    before: Any = None
    after: Any = None

    @property
    def kind(self) -> str:
        return "added" if self.before is None else "removed" if self.after is None else "changed"


def card_changes(before: Any, after: Any, path: tuple[str | int, ...] = ()) -> list[Change]:
    """The fields that differ between two contents, field by field: objects key by key (an object
    only one side has, field by field too), lists item by item where they hold objects or keep their
    length (``evaluation_details[0].metric_groups[0].metric_data[1].value``), other lists whole."""
    if before == after:
        return []
    if isinstance(before, dict | None) and isinstance(after, dict | None):
        before, after = before or {}, after or {}
        return [c for key in sorted(before.keys() | after.keys(), key=str)
                for c in card_changes(before.get(key), after.get(key), (*path, key))]
    if isinstance(before, list) and isinstance(after, list) and (
            len(before) == len(after) or all(isinstance(v, dict) for v in before + after)):
        return [c for index in range(max(len(before), len(after)))
                for c in card_changes(before[index] if index < len(before) else None,
                                      after[index] if index < len(after) else None, (*path, index))]
    return [Change(path=format_path(path) or "content", before=before, after=after)]

# ---- documents ----

def now() -> datetime:
    return datetime.now(UTC)


class StatusChange(Document):
    status: CardStatus
    by: str | None = None
    at: datetime = Field(default_factory=now)
    note: str | None = None
    card_version: int | None = None  # the card version this move wrote
    model_version: str | None = None  # the model version the card described then


class ModelCard(Document):
    model: str
    card_version: int = Field(ge=1)
    status: CardStatus
    content: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=now)
    created_by: str | None = None
    status_history: list[StatusChange] = Field(default_factory=list)

    def dump(self) -> dict[str, Any]:
        # Unlike SageMaker documents, nulls stay: every history entry reads {status, by, at, note}.
        return self.model_dump(mode="python", by_alias=True)

    @property
    def model_version(self) -> str | None:
        overview = self.content.get("model_overview")
        version = overview.get("model_version") if isinstance(overview, dict) else None
        return None if version is None else str(version)

    @property
    def updated_at(self) -> datetime:
        """Each version is one change, so a version's creation is the card's last update."""
        return self.created_at


def card_prefix(model: str) -> str:
    return f"cards/{check_slug(model, 'model name')}"


def card_key(model: str, card_version: int) -> str:
    return f"{card_prefix(model)}/v{int(card_version)}.json"


def _version_numbers(store: Store, model: str) -> list[int]:
    numbers = []
    for key in store.list(card_prefix(model)):
        match = _VERSION_FILE.match(key.rsplit("/", 1)[-1])
        if match:
            numbers.append(int(match.group(1)))
    return sorted(numbers)


def _read(store: Store, model: str, number: int) -> ModelCard:
    from modelwatch.tasks.documents import parse_document

    key = card_key(model, number)
    card = parse_document(ModelCard, store.read_bytes(key), store.uri(key))
    if card.model != model or card.card_version != number:
        raise UserError(f"{store.uri(key)}: holds card v{card.card_version} of model "
                        f"{card.model!r}, not v{number} of {model!r}")
    return card


def _write_new(store: Store, card: ModelCard) -> str:
    """Write a card version that must not exist yet: a second writer racing for the same version
    number fails here instead of silently replacing the first one's version."""
    key = card_key(card.model, card.card_version)
    data = json_dumps(card.dump()).encode("utf-8")
    taken = UserError(
        f"card v{card.card_version} of model {card.model!r} already exists ({store.uri(key)}): "
        "someone changed the card meanwhile; read it again and retry"
    )
    try:
        return store.create_bytes(key, data)
    except FileExistsError:
        raise taken from None


# ---- reading ----

def card_versions(store: Store, model: str) -> list[ModelCard]:
    """Every version of a model's card, oldest first (empty when it has none)."""
    return [_read(store, model, n) for n in _version_numbers(store, model)]


def latest_card(store: Store, model: str) -> ModelCard | None:
    """The newest version of a model's card, or None when it has none."""
    numbers = _version_numbers(store, model)
    return _read(store, model, numbers[-1]) if numbers else None


def get_card(store: Store, model: str, card_version: int | None = None) -> ModelCard:
    """One card version (default the latest); UserError when it does not exist."""
    numbers = _version_numbers(store, model)
    if not numbers:
        raise UserError(f"model {model!r} has no model card in {store.root}: create one with "
                        f"`modelwatch cards create --model {model}`")
    if card_version is None:
        return _read(store, model, numbers[-1])
    if card_version not in numbers:
        raise UserError(f"model {model!r} has no card v{card_version} (card versions: "
                        f"{_ranges(numbers)})")
    return _read(store, model, card_version)


def card_for_version(store: Store, model: str, model_version: str) -> ModelCard | None:
    """The latest card version describing a model version (content.model_overview.model_version),
    or None. Endpoint promotion refuses a model version whose card here is not Approved."""
    wanted = str(model_version)
    for number in reversed(_version_numbers(store, model)):
        card = _read(store, model, number)
        if card.model_version == wanted:
            return card
    return None


def risk_rating(card: ModelCard | None) -> str:
    """The card's risk rating (High, Medium, Low, Unknown); Unknown when absent."""
    if card is None:
        return "Unknown"
    uses = card.content.get("intended_uses")
    rating = uses.get("risk_rating") if isinstance(uses, dict) else None
    return rating if rating in RISK_RATINGS else "Unknown"


def list_card_models(store: Store) -> list[str]:
    """Models that have a card folder in the store."""
    return store.list_dirs("cards")


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> "v1-v3, v5"."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"v{a}" if a == b else f"v{a}-v{b}" for a, b in spans)


# ---- writing ----

EventSender = Callable[["ModelCard", str], bool]


def _who(by: str | None) -> str:
    who = (by if by is not None else os.environ.get("USER") or "unknown").strip()
    if not who:
        raise UserError("--by: expected who makes the change, got an empty name")
    if len(who) > 256:
        raise UserError(f"--by: at most 256 characters, got {len(who)}")
    return who


def _check_note(note: str | None) -> str | None:
    if note is not None and len(note) > 2048:
        raise UserError(f"--note: at most 2048 characters, got {len(note)}")
    return note


def create_card(store: Store, model: str, content: dict[str, Any] | None, by: str | None,
                model_version: str | None = None, *, note: str | None = None) -> ModelCard:
    """Write a new Draft card for a model version (default: the model's latest version).

    The model must be registered. `model_version` (or content.model_overview.model_version) must be
    one of its versions and is written into the content; model_overview.model_name defaults to the
    model's name. Refused when that model version already has a card that is not Archived (change
    it with update_card). The status history of earlier cards is carried forward.
    """
    from modelwatch.tasks.registry import get_model

    record = get_model(store, model)
    content = copy.deepcopy(content) if content is not None else {}
    if not isinstance(content, dict):
        raise CardContentError((), f"expected an object of card sections, got {_kind(content)}")
    overview = content.get("model_overview")
    if overview is None:
        overview = content["model_overview"] = {}
    if not isinstance(overview, dict):
        raise CardContentError(("model_overview",), f"expected an object, got {_kind(overview)}")
    # An explicit model_version wins over the content's: the retrain flow copies the previous card's
    # content (naming the previous version) into the new version's card.
    if model_version is None and overview.get("model_version") is not None:
        model_version = check_version(overview["model_version"], ("model_overview", "model_version"))
    if model_version is None and record.latest is not None:
        model_version = record.latest.version
    if model_version is not None:
        model_version = record.version(str(model_version)).version
        overview["model_version"] = model_version
    if not overview.get("model_name"):
        overview["model_name"] = model
    checked = validate_content(content)
    who, note = _who(by), _check_note(note)

    existing = (card_for_version(store, model, model_version) if model_version is not None
                else latest_card(store, model))
    if existing is not None and existing.status != "Archived":
        which = f"version {model_version} of model {model!r}" if model_version else repr(model)
        raise UserError(f"{which} already has a card (card v{existing.card_version}, "
                        f"{existing.status}): change it with `modelwatch cards update --model "
                        f"{model}`, or archive it first")
    previous = latest_card(store, model)
    number = previous.card_version + 1 if previous else 1
    at = now()
    history = list(previous.status_history) if previous else []
    history.append(StatusChange(
        status="Draft", by=who, at=at, card_version=number, model_version=model_version,
        note=note or (f"card created for model version {model_version}" if model_version
                      else "card created")))
    card = ModelCard(model=model, card_version=number, status="Draft", content=checked,
                     created_at=at, created_by=who, status_history=history)
    _write_new(store, card)
    return card


def update_card(store: Store, model: str, patch: dict[str, Any], by: str | None, *,
                note: str | None = None, send_event: EventSender | None = None) -> ModelCard:
    """Merge a patch (JSON Merge Patch: null deletes a field) into the latest card's content and
    write it as the next version. An Approved card goes back to Draft, recorded in the history
    (and announced as a status change). A patch that changes nothing writes nothing and returns
    the latest card. Archived cards cannot change, nor can the model version a card describes."""
    latest = get_card(store, model)
    if latest.status == "Archived":
        raise UserError(f"the card of model {model!r} is Archived (card v{latest.card_version}) "
                        "and cannot change: create a new one with `modelwatch cards create`")
    if not isinstance(patch, dict):
        raise CardContentError((), f"expected an object of card sections, got {_kind(patch)}")
    merged = validate_content(merge_patch(latest.content, patch))
    was = latest.model_version
    now_describes = (merged.get("model_overview") or {}).get("model_version")
    if now_describes != was:
        raise UserError(
            f"model_overview.model_version: a card keeps the model version it describes "
            f"({was}); for version {now_describes} create a card with `modelwatch cards create "
            f"--model {model} --model-version {now_describes}`")
    if merged == latest.content:
        return latest
    who, note = _who(by), _check_note(note)
    at = now()
    number = latest.card_version + 1
    history = list(latest.status_history)
    status = latest.status
    if status == "Approved":
        status = "Draft"
        history.append(StatusChange(
            status="Draft", by=who, at=at, card_version=number, model_version=was,
            note=note or "content changed after approval: the card needs review again"))
    card = ModelCard(model=model, card_version=number, status=status, content=merged,
                     created_at=at, created_by=who, status_history=history)
    _write_new(store, card)
    if status != latest.status and send_event is not None:
        send_event(card, latest.status)
    return card


def set_status(store: Store, model: str, status: str, by: str | None, note: str | None = None,
               *, send_event: EventSender | None = None) -> ModelCard:
    """Move the card to a new review status as a new version, record who/when/why, and emit
    modelwatch.card.status-changed. An illegal move is a UserError naming the allowed ones."""
    if status not in STATUSES:
        raise UserError(f"unknown card status {status!r}: expected one of {', '.join(STATUSES)}")
    latest = get_card(store, model)
    allowed = ALLOWED_MOVES[latest.status]
    if status not in allowed:
        moves = ", ".join(allowed) if allowed else "none (an Archived card is final)"
        raise UserError(f"the card of model {model!r} (card v{latest.card_version}) is "
                        f"{latest.status} and cannot move to {status}; allowed moves from "
                        f"{latest.status}: {moves}")
    who, note = _who(by), _check_note(note)
    if status == "Approved" and who in (authors := review_authors(store, latest)):
        raise UserError(
            f"{who} cannot approve card v{latest.card_version} of model {model!r}: they "
            f"{authors[who]} it, and the approver must be someone else (separation of duties)")
    at = now()
    number = latest.card_version + 1
    history = [*latest.status_history, StatusChange(
        status=status, by=who, at=at, note=note, card_version=number,
        model_version=latest.model_version)]
    card = ModelCard(model=model, card_version=number, status=status,
                     content=copy.deepcopy(latest.content), created_at=at, created_by=who,
                     status_history=history)
    _write_new(store, card)
    if send_event is not None:
        send_event(card, latest.status)
    return card


def review_authors(store: Store, card: ModelCard) -> dict[str, str]:
    """Who put a PendingReview card's content up for review: the person who submitted it and everyone
    who changed the content since, each with what they did ("submitted" or "edited")."""
    authors: dict[str, str] = {}
    if card.status != "PendingReview":
        return authors
    submitted = next((h for h in reversed(card.status_history) if h.status == "PendingReview"), None)
    if submitted is None or submitted.card_version is None:
        return authors
    if submitted.by:
        authors[submitted.by] = "submitted"
    for number in range(submitted.card_version + 1, card.card_version + 1):
        version = _read(store, card.model, number)
        if version.created_by and version.created_by not in authors:
            authors[version.created_by] = "edited"
    return authors


# ---- events ----

def status_event(card: ModelCard, previous_status: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Resource and payload of a card's modelwatch.card.status-changed event."""
    resource = {"prefect.resource.id": f"modelwatch.model.{card.model}",
                "prefect.resource.name": card.model,
                "modelwatch.card.version": str(card.card_version)}
    last = card.status_history[-1] if card.status_history else None
    payload = {"from": previous_status, "to": card.status,
               "by": last.by if last else card.created_by, "model_version": card.model_version}
    return resource, payload


# ---- export (rendered by modelwatch.tasks.card_render, from templates) ----

def card_to_html(card: ModelCard) -> str:
    """The card as one self-contained HTML page (see modelwatch.tasks.card_render)."""
    from modelwatch.tasks.card_render import card_to_html as render

    return render(card)


def card_to_markdown(card: ModelCard) -> str:
    """The card as a Markdown document (see modelwatch.tasks.card_render)."""
    from modelwatch.tasks.card_render import card_to_markdown as render

    return render(card)


def card_to_pdf(card: ModelCard, font: str | None = None) -> bytes:
    """The card as a PDF document (see modelwatch.tasks.card_pdf)."""
    from modelwatch.tasks.card_pdf import card_to_pdf as render

    return render(card, font)


EXPORT_FORMATS = ("pdf", "html", "markdown")


def export_card(card: ModelCard, kind: str, font: str | None = None) -> bytes:
    """The card as a file of one of EXPORT_FORMATS (`font` for PDF only)."""
    if kind == "pdf":
        return card_to_pdf(card, font)
    return (card_to_html if kind == "html" else card_to_markdown)(card).encode("utf-8")

"""Card changes that announce themselves: the core's update and status move, with the
modelwatch.card.status-changed event sent to Prefect (the core writes cards and sends nothing)."""

from __future__ import annotations

from typing import Any

from modelwatch.flows import events
from modelwatch.tasks import cards
from modelwatch.tasks.cards import EventSender, ModelCard
from modelwatch.tasks.store import Store


def _sender(given: EventSender | None) -> EventSender:
    return given or events.emit_status_changed  # looked up per call: tests may stand in for it


def update_card(store: Store, model: str, patch: dict[str, Any], by: str | None, *,
                note: str | None = None, send_event: EventSender | None = None) -> ModelCard:
    """`modelwatch.tasks.cards.update_card`, announcing a status it changes (an edit of an Approved
    card sends it back to Draft)."""
    return cards.update_card(store, model, patch, by, note=note, send_event=_sender(send_event))


def set_status(store: Store, model: str, status: str, by: str | None, note: str | None = None,
               *, send_event: EventSender | None = None) -> ModelCard:
    """`modelwatch.tasks.cards.set_status`, announced as modelwatch.card.status-changed."""
    return cards.set_status(store, model, status, by, note, send_event=_sender(send_event))

"""Rendering model cards: one view of a card (its summary, its sections in SageMaker's order under
one set of titles, its status history) feeds the card on the dashboard's model page, the HTML export
and the Markdown export, all from templates in tasks/templates/."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from modelwatch.tasks.cards import RISK_RATINGS, SECTION_TITLES, ModelCard
from modelwatch.tasks.html_templates import render, static_text, trusted

# The HTML export carries no script at all and loads nothing.
EXPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def card_view(card: dict[str, Any], risk_fallback: str = "Unknown") -> dict[str, Any]:
    """What every rendering of a card shows, from a card document (as stored, or as the dashboard
    page holds it: any field may be missing or of the wrong type)."""
    content = _as_dict(card.get("content"))
    uses = content.get("intended_uses")
    rating = uses.get("risk_rating") if isinstance(uses, dict) else None
    risk = rating if isinstance(rating, str) and rating else risk_fallback
    sections = []
    for key, title in SECTION_TITLES.items():
        value = content.get(key)
        if key == "intended_uses" and isinstance(value, dict | None):
            # The risk rating always shows here, falling back to the dashboard's.
            value = {**(value or {}), "risk_rating": risk}
        sections.append({"key": key, "title": title, "value": value, "known": True,
                         "present": bool(content.get(key))})
    sections += [{"key": key, "title": key.replace("_", " ").capitalize(), "value": value,
                  "known": False, "present": bool(value)}
                 for key, value in content.items() if key not in SECTION_TITLES]
    history = [h for h in card.get("status_history") or [] if isinstance(h, dict)] \
        if isinstance(card.get("status_history"), list) else []
    overview = content.get("model_overview")
    model_version = overview.get("model_version") if isinstance(overview, dict) else None
    return {
        "model": card.get("model", ""), "card_version": card.get("card_version", "?"),
        "status": card.get("status") or "Unknown", "risk_rating": risk,
        "model_version": None if model_version is None else str(model_version),
        "updated_at": card.get("created_at"), "updated_by": card.get("created_by"),
        "last_step": history[-1] if history else None, "sections": sections, "history": history,
    }


def view_of(card: ModelCard) -> dict[str, Any]:
    """card_view of a stored card, its own risk rating shown when valid."""
    rating = card.content.get("intended_uses", {}).get("risk_rating") \
        if isinstance(card.content.get("intended_uses"), dict) else None
    return card_view(card.dump(), rating if rating in RISK_RATINGS else "Unknown")


def card_to_html(card: ModelCard) -> str:
    """The card as one self-contained HTML page: inline stylesheet, no script at all (a CSP meta
    forbids any), every user-written string escaped, metric groups and status history as tables."""
    return render("card.html", view=view_of(card), csp=EXPORT_CSP,
                  style=trusted(static_text("card.css")), exported=datetime.now(UTC))


def card_to_markdown(card: ModelCard) -> str:
    """The card as a Markdown document: summary, every section, metric groups as tables, and the
    status history. User text is HTML-escaped so a renderer never runs markup from a card."""
    text = render("card.md", view=view_of(card))
    lines = "\n".join(line.rstrip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", lines).strip() + "\n"

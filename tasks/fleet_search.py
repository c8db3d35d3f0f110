"""Free-text search over the fleet: each model's name, description, owners, endpoints and card text,
case-folded once into an in-memory index, so a query is a scan of short strings (no store reads).
Every word of a query must be found, each in any field; a result says which fields matched."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from modelwatch.tasks.store import Store

FIELDS = ("name", "description", "owner", "endpoints", "card")
OWNER_KEYS = ("model_owner", "model_creator", "business_problem_owner", "owner")
MAX_QUERY_CHARS = 200
_WORD = re.compile(r"\S+")


def fold(text: str) -> str:
    """Case- and accent-insensitive form used on both sides of a match."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _strings(value: Any, keys: tuple[str, ...] | None = None) -> Iterable[str]:
    """Every string (and number) inside a card's content; only those under `keys` when given."""
    if isinstance(value, dict):
        for key, item in value.items():
            if keys is None or key in keys:
                yield from _strings(item, None)
            elif isinstance(item, dict | list):
                yield from _strings(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, keys)
    elif isinstance(value, str | int | float) and not isinstance(value, bool) and keys is None:
        yield str(value)


@dataclass(frozen=True)
class Entry:
    model: str
    fields: dict[str, str]  # folded text per field in FIELDS


def entry_for(model: str, description: str | None, endpoints: Iterable[str],
              card_content: dict[str, Any] | None) -> Entry:
    content = card_content or {}
    return Entry(model=model, fields={
        "name": fold(model), "description": fold(description or ""),
        "owner": fold(" ".join(_strings(content, OWNER_KEYS))),
        "endpoints": fold(" ".join(endpoints)), "card": fold(" ".join(_strings(content))),
    })


def build_index(store: Store, rows: list[Any]) -> list[Entry]:
    """One entry per dashboard row, from the registry (description) and the model's latest card."""
    from modelwatch.tasks.cards import latest_card
    from modelwatch.tasks.registry import list_models

    descriptions = {m.name: m.description for m in list_models(store)}
    entries = []
    for row in rows:
        card = latest_card(store, row.model)
        entries.append(entry_for(row.model, descriptions.get(row.model), row.endpoints,
                                 card.content if card else None))
    return entries


def search(entries: list[Entry], query: str) -> dict[str, list[str]]:
    """Models matching every word of the query, each with the fields any word matched in.

    Examples
    --------
    >>> index = [entry_for("churn", "Predicts churn", ["web"], {"model_overview": {
    ...     "model_owner": "Ana Núñez"}}), entry_for("fraud", None, [], None)]
    >>> search(index, "nunez churn")
    {'churn': ['name', 'description', 'owner', 'card']}
    """
    words = [fold(w) for w in _WORD.findall(query[:MAX_QUERY_CHARS])]
    found: dict[str, list[str]] = {}
    if not words:
        return found
    for entry in entries:
        matched: set[str] = set()
        for word in words:
            hits = [f for f in FIELDS if word in entry.fields[f]]
            if not hits:
                break
            matched.update(hits)
        else:
            found[entry.model] = [f for f in FIELDS if f in matched]
    return found

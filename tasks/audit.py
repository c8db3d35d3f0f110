"""The audit log: one immutable JSON document per accepted action, ``audit/YYYY/MM/DD/<time>-<id>.json``,
written with create-only semantics (a hard link locally, a conditional PUT on S3), so an entry is
never rewritten and concurrent writers never collide. Who acted, when, through what (console or CLI),
on what, and the state before and after."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from modelwatch.tasks.documents import OwnDocument, parse_document
from modelwatch.tasks.store import Store, check_slug, json_dumps

AUDIT_PREFIX = "audit"


def now() -> datetime:
    return datetime.now(UTC)


class AuditEntry(OwnDocument):
    at: datetime = Field(default_factory=now)
    who: str
    role: str | None = None  # the console account's role; None from the CLI
    via: Literal["console", "cli", "api"] = "console"
    action: str  # e.g. alerts.set, schedule.pause, card.status
    model: str | None = None
    target: str | None = None  # the monitor type, schedule or card version acted on
    before: Any = None
    after: Any = None
    note: str | None = None
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)


def _key(entry: AuditEntry) -> str:
    """The entry's file; its model is in the name (``...-<id>@<model>.json``), so one model's entries
    are found without reading the others."""
    at = entry.at.astimezone(UTC)
    about = f"@{check_slug(entry.model, 'model name')}" if entry.model else ""
    return f"{AUDIT_PREFIX}/{at:%Y/%m/%d}/{at:%H%M%S.%f}-{entry.id}{about}.json"


def append_audit(store: Store, entry: AuditEntry) -> str:
    """Write one entry (never over an existing one); returns its URI."""
    return store.create_bytes(_key(entry), json_dumps(entry.dump()).encode("utf-8"))


def _days(start: datetime, end: datetime) -> Iterable[str]:
    day = start.astimezone(UTC).date()
    while day <= end.astimezone(UTC).date():
        yield f"{AUDIT_PREFIX}/{day:%Y/%m/%d}"
        day += timedelta(days=1)


def _every_day(store: Store) -> Iterable[str]:
    for year in store.list_dirs(AUDIT_PREFIX):
        for month in store.list_dirs(f"{AUDIT_PREFIX}/{year}"):
            for day in store.list_dirs(f"{AUDIT_PREFIX}/{year}/{month}"):
                yield f"{AUDIT_PREFIX}/{year}/{month}/{day}"


def read_audit(store: Store, *, model: str | None = None, start: datetime | None = None,
               end: datetime | None = None, limit: int | None = None) -> list[AuditEntry]:
    """Entries oldest first, optionally of one model and within [start, end]; the newest ``limit``.

    Parameters
    ----------
    store : Store
        The store holding ``audit/``.
    model : str, optional
        Only the entries about this model.
    start, end : datetime, optional
        Bounds on the entry's time (UTC); without ``start`` every day in the store is read.
    limit : int, optional
        Keep only the newest this many.
    """
    if start is not None:
        keys = [k for prefix in _days(start, end or now()) for k in store.list(prefix)]
    else:
        keys = [k for prefix in _every_day(store) for k in store.list(prefix)]
    entries = []
    suffix = f"@{model}.json" if model is not None else ".json"
    for key in sorted(k for k in keys if k.endswith(suffix)):
        entry = parse_document(AuditEntry, store.read_bytes(key), store.uri(key))
        if model is not None and entry.model != model:
            continue
        if (start is not None and entry.at < start) or (end is not None and entry.at > end):
            continue
        entries.append(entry)
    entries.sort(key=lambda e: (e.at, e.id))
    return entries[-limit:] if limit else entries


CSV_FIELDS = ("at", "who", "role", "via", "action", "model", "target", "before", "after", "note", "id")


def audit_jsonl(entries: list[AuditEntry]) -> str:
    return "".join(json_dumps(e.dump(), indent=None) + "\n" for e in entries)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet runs a cell that starts like a formula: keep user text text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def audit_csv(entries: list[AuditEntry]) -> str:
    """CSV with one row per entry; before and after as compact JSON; text that a spreadsheet would
    take for a formula is prefixed with an apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for entry in entries:
        record = entry.model_dump(mode="json")
        writer.writerow([_cell(json_dumps(record[f], indent=None) if f in ("before", "after")
                               and record[f] is not None else record[f]) for f in CSV_FIELDS])
    return out.getvalue()

"""Retention: remove the capture, ground truth, merged data, executions and telemetry older than an age
set per kind, judged by the hour or day in their store paths, and report what went."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field

from modelwatch.tasks.documents import OwnDocument
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.executions import STAMP, index_key, is_stale, read_attempt, read_index, update_index
from modelwatch.tasks.store import Store, _bounded

# The kinds of data retention ages, in the order they are applied and reported.
KINDS = ("capture", "groundtruth", "merged", "executions", "telemetry")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# A begun execution (attempt.json, no execution.json) whose heartbeat is younger than this is running
# and kept; the attempt's own heartbeat interval, when it recorded one, decides instead.
RUNNING_STALE_AFTER = timedelta(minutes=10)
_YEAR = re.compile(r"^\d{4}$")
_TWO = re.compile(r"^\d{2}$")
_DAY_FILE = re.compile(r"^(\d{2})\.parquet$")  # telemetry/<endpoint>/YYYY/MM/DD.parquet (DESIGN.md)
_WINDOW = re.compile(r"^(\d{8}T\d{6}Z)_(\d{8}T\d{6}Z)$")


class SkippedEntry(OwnDocument):
    """An entry where a date folder of the layout was expected that is not one: left alone."""

    uri: str
    reason: str


class KindReport(OwnDocument):
    """What retention removed (or, in a dry run, would remove) of one kind of data."""

    days: int
    cutoff: datetime  # data wholly older than this went: an hour, day or window ending at or before it
    files: int = 0
    bytes: int = 0
    removed: list[str] = Field(default_factory=list)  # URIs of the date (or execution) folders
    skipped: list[SkippedEntry] = Field(default_factory=list)
    index_entries: int | None = None  # executions: entries withdrawn from the execution indexes


class RetentionReport(OwnDocument):
    """One retention run: per kind given an age, its cutoff and what went; totals over the kinds."""

    store: str
    now: datetime
    dry_run: bool
    files: int = 0
    bytes: int = 0
    kinds: dict[str, KindReport] = Field(default_factory=dict)

    def add(self, kind: str, part: KindReport) -> None:
        """Put one kind's report in, counted into the totals."""
        self.kinds[kind] = part
        self.files += part.files
        self.bytes += part.bytes


def check_ages(ages: dict[str, int | None]) -> dict[str, int]:
    """The retention ages that were given, checked.

    Parameters
    ----------
    ages : dict of str to int or None
        Days to keep per kind (one of KINDS); None keeps that kind whatever its age.

    Returns
    -------
    dict of str to int
        The kinds given an age, in KINDS order.

    Raises
    ------
    UserError
        No age given, an unknown kind, or an age that is not a whole number of days of at least 1.
    """
    unknown = sorted(set(ages) - set(KINDS))
    if unknown:
        raise UserError(f"unknown retention kind {', '.join(unknown)}: expected {', '.join(KINDS)}")
    given = {kind: ages[kind] for kind in KINDS if ages.get(kind) is not None}
    if not given:
        raise UserError("no retention age given: set at least one of "
                        + ", ".join(f"--{kind}-days" for kind in KINDS)
                        + " (a kind without an age is kept)")
    for kind, days in given.items():
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise UserError(f"--{kind}-days {days!r}: expected a whole number of days, at least 1")
    return given


def cutoff_for(now: datetime, days: int, kind: str = "") -> datetime:
    """`now` minus `days` days, in UTC (a naive `now` is UTC); an age reaching before year 1 is a
    UserError."""
    try:
        return utc(now) - timedelta(days=days)
    except OverflowError:
        raise UserError(f"--{kind}-days {days}: too many days (before year 1)") from None


def utc(moment: datetime) -> datetime:
    """A time in UTC; a naive one is taken to be UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def plan_retention(ages: dict[str, int | None], now: datetime) -> dict[str, tuple[int, datetime]]:
    """(days, cutoff) of each kind given an age (checked by `check_ages`), counted back from `now`."""
    return {kind: (days, cutoff_for(now, days, kind)) for kind, days in check_ages(ages).items()}


def apply_retention(store: Store, ages: dict[str, int | None], now: datetime | None = None,
                    dry_run: bool = False) -> RetentionReport:
    """Remove every kind's data older than its age and report what went.

    Age is read from the paths, never from file times: a capture, ground-truth or merged hour folder
    (YYYY/MM/DD/HH) goes once its whole hour is older than the cutoff, a telemetry day folder once
    its whole day is, an execution once its window ended at or before the cutoff (its index entry is
    withdrawn first, so an index never points at a removed execution). Entries that do not parse as
    the layout's dates are left alone and reported as skipped.

    Parameters
    ----------
    store : Store
        The store to clean.
    ages : dict of str to int or None
        Days to keep per kind (capture, groundtruth, merged, executions, telemetry); a kind left out
        or None is kept. At least one is required (see `check_ages`).
    now : datetime, optional
        The time ages are counted from (UTC when naive); default the current time.
    dry_run : bool, default False
        Report what would be removed, and remove nothing.

    Returns
    -------
    RetentionReport
        Per kind: the cutoff, the files and bytes removed, the folders removed and what was skipped.
    """
    moment = utc(now or datetime.now(UTC))
    report = RetentionReport(store=store.root, now=moment, dry_run=dry_run)
    for kind, (days, cutoff) in plan_retention(ages, moment).items():
        report.add(kind, apply_kind(store, kind, days, cutoff, dry_run=dry_run, now=moment))
    return report


def apply_kind(store: Store, kind: str, days: int, cutoff: datetime, dry_run: bool = False,
               now: datetime | None = None) -> KindReport:
    """Remove one kind's data older than `cutoff` (see `apply_retention`).

    Parameters
    ----------
    store : Store
        The store to clean.
    kind : str
        One of KINDS.
    days : int
        The age the cutoff came from, for the report.
    cutoff : datetime
        Data wholly before this time goes.
    dry_run : bool, default False
        Report what would be removed, and remove nothing.
    now : datetime, optional
        The current time, to tell a running execution from an interrupted one; default `cutoff`
        plus `days`.

    Returns
    -------
    KindReport
        The cutoff, the files and bytes removed, the folders removed and what was skipped.
    """
    if kind not in KINDS:
        raise UserError(f"unknown retention kind {kind!r}: expected {', '.join(KINDS)}")
    report = KindReport(days=days, cutoff=cutoff)
    if kind == "executions":
        _remove_executions(store, cutoff, now or cutoff + timedelta(days=days), dry_run, report)
        return report
    hourly = kind != "telemetry"
    roots = {"capture": _capture_roots, "groundtruth": _endpoint_roots, "merged": _merged_roots,
             "telemetry": _endpoint_roots}[kind](store, kind)
    for root, known in roots:
        units = list(_old_units(store, root, hourly, cutoff, known, report))
        _remove_units(store, units, dry_run, report)
    return report


# ---- where each kind's dated folders are ----

def _endpoint_roots(store: Store, kind: str) -> list[tuple[str, frozenset[str]]]:
    """<kind>/<endpoint>: the dated folders sit right under each endpoint."""
    return [(f"{kind}/{endpoint}", frozenset()) for endpoint in store.list_dirs(kind)]


def _capture_roots(store: Store, kind: str) -> list[tuple[str, frozenset[str]]]:
    """capture/<endpoint>/<variant> and capture/<endpoint>/models/<model>/<variant>; a `models`
    folder holding years is a variant of that name."""
    roots = []
    for endpoint in store.list_dirs(kind):
        for variant in store.list_dirs(f"{kind}/{endpoint}"):
            under = f"{kind}/{endpoint}/{variant}"
            children = store.list_dirs(under) if variant == "models" else []
            if variant != "models" or any(_YEAR.match(c) for c in children):
                roots.append((under, frozenset()))
                continue
            for model in children:
                roots += [(f"{under}/{model}/{v}", frozenset())
                          for v in store.list_dirs(f"{under}/{model}")]
    return roots


def _merged_roots(store: Store, kind: str) -> list[tuple[str, frozenset[str]]]:
    """merged/<endpoint> and merged/<endpoint>/models/<model>; their reports/ folders are not dated
    and are kept."""
    roots = []
    for endpoint in store.list_dirs(kind):
        roots.append((f"{kind}/{endpoint}", frozenset({"reports", "models"})))
        roots += [(f"{kind}/{endpoint}/models/{model}", frozenset({"reports"}))
                  for model in store.list_dirs(f"{kind}/{endpoint}/models")]
    return roots


# ---- dated folders older than the cutoff ----

@dataclass
class _Unit:
    """A dated folder (or a telemetry DD.parquet file) wholly older than the cutoff: its files."""

    key: str
    files: dict[str, int] = field(default_factory=dict)  # filesystem path -> bytes
    parents: tuple[str, ...] = ()  # its YYYY, YYYY/MM (and YYYY/MM/DD) folders' keys, deepest first


@_bounded("list")
def _entries(store: Store, key: str) -> list[tuple[str, bool]]:
    """(name, is a folder) of what is directly under a key; nothing when it is missing."""
    path = store.path(key)
    try:
        found = store.fs.ls(path, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for entry in found:
        name = entry["name"].rstrip("/")
        if name == path:  # an S3 folder marker
            continue
        out.append((name.rsplit("/", 1)[-1], entry.get("type") == "directory"))
    return sorted(out)


@_bounded("list")
def _sizes(store: Store, key: str) -> dict[str, int]:
    """Every file under a key (recursively) and its size in bytes."""
    try:
        found = store.fs.find(store.path(key), detail=True)
    except FileNotFoundError:
        return {}
    return {path: int(info.get("size") or info.get("Size") or 0) for path, info in found.items()
            if info.get("type") != "directory"}


def _skip(store: Store, report: KindReport, key: str, expected: str, is_dir: bool = True) -> None:
    reason = f"not {expected}" if is_dir else f"a file where {expected} belongs"
    report.skipped.append(SkippedEntry(uri=store.uri(key), reason=reason))


def _old_units(store: Store, root: str, hourly: bool, cutoff: datetime, known: frozenset[str],
               report: KindReport) -> Iterator[_Unit]:
    """The YYYY/MM/DD/HH (hourly) or YYYY/MM/DD folders under `root` whose whole hour or day ended at
    or before `cutoff`. Years, months and days that cannot hold one are not listed; names in `known`
    right under the root are the layout's own undated folders."""
    span = HOUR if hourly else DAY
    for year, is_dir in _entries(store, root):
        key = f"{root}/{year}"
        if year in known:
            continue
        if not is_dir or not _YEAR.match(year) or int(year) < 1:
            _skip(store, report, key, "a YYYY year folder", is_dir)
            continue
        if datetime(int(year), 1, 1, tzinfo=UTC) + span > cutoff:
            continue
        for month, is_dir in _entries(store, key):
            month_key = f"{key}/{month}"
            if not is_dir or not _TWO.match(month) or not 1 <= int(month) <= 12:
                _skip(store, report, month_key, "an MM month folder", is_dir)
                continue
            if datetime(int(year), int(month), 1, tzinfo=UTC) + span > cutoff:
                continue
            yield from _old_days(store, month_key, (int(year), int(month)), hourly, cutoff, report,
                                 (month_key, key))


def _old_days(store: Store, month_key: str, year_month: tuple[int, int], hourly: bool,
              cutoff: datetime, report: KindReport, parents: tuple[str, ...]) -> Iterator[_Unit]:
    for name, is_dir in _entries(store, month_key):
        key = f"{month_key}/{name}"
        day_file = None if (is_dir or hourly) else _DAY_FILE.match(name)
        start = _day(year_month, day_file.group(1) if day_file else name)
        if start is None or not (is_dir or day_file):
            _skip(store, report, key, "a DD day folder", is_dir)
            continue
        if not hourly:
            if start + DAY <= cutoff:
                yield _Unit(key, _sizes(store, key), parents)
            continue
        if start + HOUR > cutoff:
            continue
        hours: list[str] = []
        for hour, is_hour_dir in _entries(store, key):
            if not is_hour_dir or not _TWO.match(hour) or int(hour) > 23:
                _skip(store, report, f"{key}/{hour}", "an HH hour folder", is_hour_dir)
            elif start + timedelta(hours=int(hour)) + HOUR <= cutoff:
                hours.append(hour)
        if not hours:
            continue
        files = _sizes(store, key)  # one listing for the day's hours
        for hour in hours:
            inside = store.path(f"{key}/{hour}") + "/"
            yield _Unit(f"{key}/{hour}", {p: s for p, s in files.items() if p.startswith(inside)},
                        (key, *parents))


def _day(year_month: tuple[int, int], name: str) -> datetime | None:
    if not _TWO.match(name):
        return None
    try:
        return datetime(*year_month, int(name), tzinfo=UTC)
    except ValueError:
        return None


def _remove_units(store: Store, units: list[_Unit], dry_run: bool, report: KindReport) -> None:
    """Count the units into the report and, unless a dry run, delete their files (then, in a local
    store, the folders left empty)."""
    for unit in units:
        report.files += len(unit.files)
        report.bytes += sum(unit.files.values())
        report.removed.append(store.uri(unit.key))
    if dry_run or not units:
        return
    _delete_files(store, units[0].key, sorted(p for unit in units for p in unit.files))
    if store.is_local:
        folders = {k for unit in units for k in (unit.key, *unit.parents)}
        for key in sorted(folders, key=lambda k: k.count("/"), reverse=True):
            _remove_empty_tree(store.path(key))


@_bounded("delete")
def _delete_files(store: Store, key: str, paths: list[str]) -> None:
    """Delete files (S3: in batched requests); one already gone is not an error. `key` names the
    first folder, for an error message."""
    if not store.is_local:
        if paths:
            store.fs.rm(paths)
        return
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _remove_empty_tree(path: str) -> None:
    """Remove a local folder and the folders under it, if they hold no file (else leave them)."""
    if not os.path.isdir(path):
        return
    for folder, _, _ in os.walk(path, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


# ---- executions ----

def _window(name: str) -> tuple[datetime, datetime] | None:
    match = _WINDOW.match(name)
    if match is None:
        return None
    try:
        start, end = (datetime.strptime(g, STAMP).replace(tzinfo=UTC) for g in match.groups())
    except ValueError:
        return None
    return start, end


def _running(store: Store, key: str, now: datetime) -> bool:
    """An execution that has begun, has no outcome yet and is still alive (fresh heartbeat)."""
    if store.exists(f"{key}/execution.json"):
        return False
    attempt = read_attempt(store, key)
    return attempt is not None and not is_stale(attempt, attempt.started_at, now, RUNNING_STALE_AFTER)


def _remove_executions(store: Store, cutoff: datetime, now: datetime, dry_run: bool,
                       report: KindReport) -> None:
    """monitoring/<model>/<type>/<start>_<end>/ folders whose window ended at or before the cutoff:
    their index entries withdrawn first, then the folders."""
    report.index_entries = 0
    for model in store.list_dirs("monitoring"):
        for monitor_type in store.list_dirs(f"monitoring/{model}"):
            prefix = f"monitoring/{model}/{monitor_type}"
            old: dict[tuple[datetime, datetime], str] = {}
            for folder in store.list_dirs(prefix):
                key, window = f"{prefix}/{folder}", _window(folder)
                if window is None:
                    _skip(store, report, key, "a <window-start>_<window-end> execution folder")
                elif window[1] <= cutoff:
                    if _running(store, key, now):
                        report.skipped.append(SkippedEntry(
                            uri=store.uri(key), reason="running: its execution has not finished"))
                    else:
                        old[window] = key
            if old:
                report.index_entries += _withdraw(store, model, monitor_type, set(old), dry_run)
                _remove_units(store, [_Unit(key, _sizes(store, key), ()) for key in old.values()],
                              dry_run, report)


def _withdraw(store: Store, model: str, monitor_type: str, windows: set[tuple[datetime, datetime]],
              dry_run: bool) -> int:
    """Withdraw the index entries of the windows (atomically, beside concurrent writers); how many."""
    if not store.exists(index_key(model, monitor_type)):
        return 0
    if dry_run:
        index = read_index(store, model, monitor_type)
        return sum((e.window_start, e.window_end) in windows for e in index.executions)
    withdrawn = {"count": 0}

    def change(index: Any) -> bool:
        kept = [e for e in index.executions if (e.window_start, e.window_end) not in windows]
        withdrawn["count"] = len(index.executions) - len(kept)
        index.executions = kept
        return bool(withdrawn["count"])

    update_index(store, model, monitor_type, change)
    return withdrawn["count"]

"""Time windows: ISO-8601 times and durations as users write them, windows checked before any work (in
UTC, end after start, no longer than the configured maximum), and the YYYY/MM/DD/HH hour folders a
window covers."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

from modelwatch.tasks.errors import UserError

_HOUR_IN_PATH = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")
_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?)?")
# The longest window an execution or a merge may cover ($MODELWATCH_MAX_WINDOW overrides): a window
# from year 1 to 9999 would otherwise list folders and read data without end.
DEFAULT_MAX_WINDOW = "P400D"


def iso_z(moment: datetime) -> str:
    """UTC second-precision ISO-8601 with a Z, as SageMaker writes inferenceTime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, what: str = "time") -> datetime:
    """Parse an ISO-8601 time; naive times are UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise UserError(f"{what} {text!r} is not an ISO-8601 time such as 2026-11-23T00:00:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_duration(text: str, what: str = "duration") -> timedelta:
    """An ISO-8601 duration of days, hours and minutes: P7D, PT12H, PT30M, P1DT6H (zero allowed)."""
    match = _DURATION.fullmatch(text.strip().upper()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise UserError(f"{what} {text!r} is not an ISO-8601 duration: expected PnD, PTnH or PTnM "
                        "(e.g. P7D, PT12H, PT30M, or combined as P1DT6H)")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def max_window() -> timedelta:
    """The longest window allowed: $MODELWATCH_MAX_WINDOW (an ISO-8601 duration), default P400D."""
    text = os.environ.get("MODELWATCH_MAX_WINDOW") or DEFAULT_MAX_WINDOW
    return parse_duration(text, "MODELWATCH_MAX_WINDOW")


def utc_window(start: datetime, end: datetime, what: str = "window") -> tuple[datetime, datetime]:
    """The window in UTC: end after start, no longer than max_window()."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise UserError(f"{what} end {end.isoformat()} must be after its start {start.isoformat()}")
    limit = max_window()
    if end - start > limit:
        raise UserError(f"{what} {iso_z(start)} to {iso_z(end)} spans {(end - start).days} days: at "
                        f"most {limit.days} days are allowed (set MODELWATCH_MAX_WINDOW, e.g. P730D, "
                        "for longer windows)")
    return start, end


def check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """utc_window with both ends on whole hours, so each capture hour folder has one owner."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    for name, moment in (("start", start), ("end", end)):
        if moment.minute or moment.second or moment.microsecond:
            raise UserError(f"window {name} {iso_z(moment)} is not on a whole hour: merged records "
                            "are written per capture hour, so windows start and end on the hour")
    return utc_window(start, end)


def hour_prefixes(start: datetime, end: datetime) -> list[str]:
    """YYYY/MM/DD/HH folders of the hours that overlap [start, end)."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while hour < end:
        out.append(hour.strftime("%Y/%m/%d/%H"))
        hour += timedelta(hours=1)
    return out


def hour_of_path(path: str) -> datetime | None:
    """The UTC hour of a .../YYYY/MM/DD/HH/<file> path, or None."""
    match = _HOUR_IN_PATH.search(path)
    if match is None:
        return None
    year, month, day, hour = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None

"""Where ground truth and merges live in the store, and reading that layout: the keys of label files,
merged hour files, merge reports and running markers; which label files a window's merge reads; which
merges of a window began and never finished.

    groundtruth/<endpoint>/YYYY/MM/DD/HH/<name>.jsonl       labels, by the UTC hour they were labelled
    merged/<endpoint>/YYYY/MM/DD/HH/part-00000.<variant>.jsonl   capture record + groundTruthData, by
                                                            the hour folder the capture was written
                                                            to and its production variant
                                                            (part-00000.jsonl: capture without a
                                                            variant folder)
    merged/<endpoint>/reports/<window>.json                 the MergeReport, written last
    merged/<endpoint>/reports/<window>.quarantine.jsonl     malformed lines, unknown and superseded labels
    merged/<endpoint>/reports/<window>.running.json         while a merge of the window runs
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from modelwatch.tasks.store import Store, check_slug
from modelwatch.tasks.windows import iso_z

GROUNDTRUTH = "groundtruth"
MERGED = "merged"
PART_NAME = "part-00000.jsonl"
# A merged hour file: part-00000.jsonl, or part-00000.<variant>.jsonl (variant names hold no dot).
_PART = re.compile(r"^part-00000(?:\.([a-zA-Z0-9-]{1,63}))?\.jsonl$")
STAMP = "%Y%m%dT%H%M%SZ"
ENCODINGS = ("CSV", "JSON")

# ---- small helpers ----

def window_stamp(start: datetime, end: datetime) -> str:
    return f"{start.astimezone(UTC).strftime(STAMP)}_{end.astimezone(UTC).strftime(STAMP)}"


def groundtruth_prefix(endpoint: str) -> str:
    return f"{GROUNDTRUTH}/{check_slug(endpoint, 'endpoint name')}"


def merged_prefix(endpoint: str, model: str | None = None) -> str:
    """merged/<endpoint>, or merged/<endpoint>/models/<model> for a model of a multi-model endpoint."""
    prefix = f"{MERGED}/{check_slug(endpoint, 'endpoint name')}"
    return prefix if model is None else f"{prefix}/models/{check_slug(model, 'model name')}"


def merged_key(endpoint: str, hour: datetime, model: str | None = None,
               variant: str | None = None) -> str:
    name = PART_NAME if variant is None else f"part-00000.{variant}.jsonl"
    return f"{merged_hour_prefix(endpoint, hour, model)}/{name}"


def merged_hour_prefix(endpoint: str, hour: datetime, model: str | None = None) -> str:
    return f"{merged_prefix(endpoint, model)}/{hour:%Y/%m/%d/%H}"


def is_merged_part(key: str) -> bool:
    """Whether a key names a merged hour file the merge writes (and so may replace)."""
    return _PART.match(key.rsplit("/", 1)[-1]) is not None


def part_variant(key: str) -> str | None:
    """The production variant a merged hour file's name carries (None: none, or not such a file)."""
    found = _PART.match(key.rsplit("/", 1)[-1])
    return found.group(1) if found else None


def report_key(endpoint: str, start: datetime, end: datetime) -> str:
    return f"{merged_prefix(endpoint)}/reports/{window_stamp(start, end)}.json"


def quarantine_key(endpoint: str, start: datetime, end: datetime) -> str:
    return f"{merged_prefix(endpoint)}/reports/{window_stamp(start, end)}.quarantine.jsonl"


def running_key(endpoint: str, start: datetime, end: datetime) -> str:
    """Present while a merge of the window runs (or after one died midway)."""
    return f"{merged_prefix(endpoint)}/reports/{window_stamp(start, end)}.running.json"


def unfinished_merges(store: Store, endpoint: str, start: datetime, end: datetime) -> list[str]:
    """Merges of windows overlapping [start, end) that began and have not written their report
    (running now, or killed midway): their hours may hold a mix of old and new merged records."""
    prefix = f"{merged_prefix(endpoint)}/reports"
    found = []
    for key in store.list(prefix):
        name = key.rsplit("/", 1)[-1]
        if not name.endswith(".running.json"):
            continue
        stamp = name[: -len(".running.json")]
        try:
            lo, hi = (datetime.strptime(t, STAMP).replace(tzinfo=UTC) for t in stamp.split("_"))
        except ValueError:
            continue
        if lo < end and start < hi and not store.exists(f"{prefix}/{stamp}.json"):
            found.append(f"{endpoint} {iso_z(lo)} to {iso_z(hi)}")
    return found


# ---- listing what a merge reads (store I/O) ----

LabelFile = tuple[str, datetime, datetime | None]  # key, labelled hour, when it was written


def list_ground_truth(store: Store, endpoint: str, start: datetime, end: datetime) -> list[LabelFile]:
    """(key, labelled hour, modification time) of the ground-truth files labelled in the hours
    overlapping [start, end): the day folders that exist, then their hours in the range."""
    from modelwatch.tasks.capture import existing_days

    prefix = groundtruth_prefix(endpoint)
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    files: list[LabelFile] = []
    for day in existing_days(store.fs, store.path(prefix), start, end):
        for hh in store.list_dirs(f"{prefix}/{day}"):
            try:
                hour = datetime.strptime(f"{day}/{hh}", "%Y/%m/%d/%H").replace(tzinfo=UTC)
            except ValueError:
                continue
            if not first <= hour < end:
                continue
            files.extend((key, hour, modified)
                         for key, modified in store.list_modified(f"{prefix}/{day}/{hh}")
                         if key.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")))
    return files



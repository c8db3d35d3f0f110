"""Ground-truth merge flow: join one window of an endpoint's capture records with the labels that
arrived for it, write the merged records by capture hour, file labels whose capture lies in another
window as pending, and write the merge report last. The logic lives in tasks/groundtruth.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from prefect import flow, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.monitor import MAX_CHUNKS, chunked
from modelwatch.errors import UserError
from tasks.capture import iso_z, list_capture_hours
from tasks.groundtruth import (
    CaptureRecords,
    JoinResult,
    LabelBatch,
    MergeReport,
    check_window,
    concat_captures,
    concat_labels,
    list_ground_truth,
    list_pending,
    merge_outputs,
    merge_window,
    merged_key,
    parse_duration,
    parse_ground_truth,
    quarantine_key,
    quarantine_lines,
    read_capture_records,
    report_key,
)
from tasks.registry import get_endpoint
from tasks.store import Store, check_slug, default_store_uri, read_uri_bytes

HourFile = tuple[str, datetime]


@dataclass
class CaptureListing:
    """Capture files of the window, and of the rest of the searched range (ids only)."""

    window: list[HourFile] = field(default_factory=list)
    context: list[HourFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@task(name="list-capture-files", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def list_captures_task(capture_uri: str, start: datetime, end: datetime,
                       reach: timedelta) -> CaptureListing:
    listing = CaptureListing()
    try:
        files = list_capture_hours(capture_uri, start - reach, end + reach)
    except UserError as missing:
        # A new endpoint may have no traffic yet; the report says so rather than failing.
        listing.notes.append(str(missing))
        return listing
    for uri, hour in files:
        (listing.window if start <= hour < end else listing.context).append((uri, hour))
    return listing


@task(name="read-capture-chunk", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def read_captures_task(files: list[HourFile]) -> CaptureRecords:
    return concat_captures([read_capture_records(read_uri_bytes(uri), uri, hour)
                            for uri, hour in files])


@task(name="read-capture-ids", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def read_capture_ids_task(files: list[HourFile]) -> pd.DataFrame:
    """Join ids and hours of capture records outside the window: enough to call a label pending."""
    batch = concat_captures([read_capture_records(read_uri_bytes(uri), uri, hour, keep_raw=False)
                             for uri, hour in files], keep_raw=False)
    return batch.frame[["id", "hour"]].drop_duplicates()


@task(name="list-ground-truth", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def list_labels_task(store_uri: str, endpoint: str, start: datetime, end: datetime,
                     reach: timedelta) -> tuple[list[HourFile], list[str]]:
    store = Store(store_uri)
    return (list_ground_truth(store, endpoint, start, end + reach),
            list_pending(store, endpoint, start, end))


@task(name="read-ground-truth-chunk", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def read_labels_task(store_uri: str, files: list[HourFile]) -> LabelBatch:
    store = Store(store_uri)
    return concat_labels([parse_ground_truth(store.read_bytes(key), key, hour)
                          for key, hour in files])


@task(name="read-pending-labels", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def read_pending_task(store_uri: str, keys: list[str]) -> LabelBatch:
    store = Store(store_uri)
    return concat_labels([parse_ground_truth(store.read_bytes(key), key, pending=True)
                          for key in keys])


@task(name="join-ground-truth", cache_policy=NO_CACHE)
def join_task(captures: CaptureRecords, labels: LabelBatch, pending: LabelBatch,
              context: pd.DataFrame, endpoint: str, start: datetime, end: datetime,
              lookback: str) -> tuple[MergeReport, JoinResult]:
    return merge_window(captures, labels, pending, context, endpoint=endpoint, start=start,
                        end=end, lookback=lookback)


@task(name="write-merged", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def write_merged_task(store_uri: str, endpoint: str, start: datetime, end: datetime,
                      result: JoinResult, quarantine: bytes,
                      previous: dict[str, Any] | None) -> dict[str, Any]:
    """Write merged hour files and pending files; remove what an earlier run of the window wrote
    and this one did not, so a re-run leaves exactly the same keys."""
    store = Store(store_uri)
    documents = merge_outputs(endpoint, start, end, result)
    written = {key: store.write_bytes(key, data) for key, data in documents.items()}
    hour = start
    while hour < end:
        key = merged_key(endpoint, hour)
        if key not in written:
            store.delete(key)
        hour += timedelta(hours=1)
    base = store.uri("") + "/"
    for uri in (previous or {}).get("pending", []):
        if uri.startswith(base) and uri[len(base):] not in written:
            store.delete(uri[len(base):])
    return {
        "merged": [u for k, u in written.items() if "/pending/" not in k],
        "pending": [u for k, u in written.items() if "/pending/" in k],
        "quarantine": store.write_bytes(quarantine_key(endpoint, start, end), quarantine),
    }


@task(name="write-merge-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def write_report_task(store_uri: str, key: str, report: MergeReport) -> str:
    return Store(store_uri).write_json(key, report.dump())


def _markdown(report: MergeReport) -> str:
    rows = [
        ("capture records in the window", report.captures_read),
        ("matched (merged)", report.captures_matched),
        ("unmatched (no label yet)", report.captures_unmatched),
        ("malformed capture lines", report.captures_malformed),
        ("labels read", report.labels_read),
        ("labels matched", report.labels_matched),
        ("labels pending (capture in another window)", report.labels_pending),
        ("labels for unknown ids", report.labels_unknown),
        ("duplicate labels superseded", report.labels_duplicate),
        ("of which conflicting", report.label_conflicts),
        ("malformed label lines", report.labels_malformed),
    ]
    lines = [
        f"### ground-truth merge · {report.endpoint}",
        f"Window {iso_z(report.window_start)} to {iso_z(report.window_end)}, lookback "
        f"{report.lookback}: labels labelled up to {iso_z(report.labels_until)}; capture ids "
        f"searched from {iso_z(report.captures_searched_from)}.",
        "",
        "| | count |",
        "| --- | ---: |",
        *[f"| {name} | {count} |" for name, count in rows],
    ]
    lines += [f"\n- {note}" for note in report.notes]
    lines.append(f"\nReport: {report.outputs.get('report', 'none')}")
    return "\n".join(lines)


def artifact_key(endpoint: str) -> str:
    # Prefect artifact keys allow lowercase letters, digits and dashes only.
    return f"merge-{endpoint}".replace("_", "-").replace(".", "-")


@flow(name="merge-ground-truth", log_prints=True)
def merge_ground_truth(
    endpoint: str,
    start: datetime,
    end: datetime,
    lookback: str = "P7D",
    store: str | None = None,
    chunks: int = MAX_CHUNKS,
) -> dict[str, Any]:
    """Merge the capture records of [start, end) (whole hours) with their ground truth.

    Reads the endpoint's capture (all variants) from its registry record, labels labelled in
    [start, end + lookback) and pending labels filed under the window's hours; capture ids in
    [start - lookback, end + lookback) tell pending labels from unknown ones. Returns the report,
    also written to merged/<endpoint>/reports/<start>_<end>.json. Re-running rewrites the same keys.
    """
    check_slug(endpoint, "endpoint name")
    start, end = check_window(start, end)
    reach = parse_duration(lookback, "lookback")
    store_uri = store or default_store_uri()
    the_store = Store(store_uri)
    record = get_endpoint(the_store, endpoint)
    key = report_key(endpoint, start, end)
    previous = None
    if the_store.exists(key):
        try:  # what the last run wrote, so files this run no longer writes can be removed
            previous = the_store.read_json(key).get("outputs")
        except (ValueError, AttributeError):
            previous = None
    # Withdraw the old report first: a run that dies midway must not look finished.
    the_store.delete(key)

    listing = list_captures_task(record.capture_uri, start, end, reach)
    label_files, pending_files = list_labels_task(store_uri, endpoint, start, end, reach)
    capture_futures = read_captures_task.map(chunked(listing.window, chunks))
    context_futures = read_capture_ids_task.map(chunked(listing.context, chunks))
    label_futures = read_labels_task.map(unmapped(store_uri), chunked(label_files, chunks))
    pending = read_pending_task(store_uri, pending_files)

    captures = concat_captures([f.result() for f in capture_futures])
    contexts = [f.result() for f in context_futures]
    context = pd.concat(contexts, ignore_index=True) if contexts else None
    labels = concat_labels([f.result() for f in label_futures])
    report, result = join_task(captures, labels, pending, context, endpoint, start, end, lookback)
    report.notes.extend(listing.notes)

    quarantine = quarantine_lines(captures, labels, pending, result, report)
    report.outputs = write_merged_task(store_uri, endpoint, start, end, result, quarantine, previous)
    report.outputs["report"] = the_store.uri(key)
    write_report_task(store_uri, key, report)
    print(f"merged {report.captures_matched} of {report.captures_read} capture records of "
          f"{endpoint}; {report.labels_pending} labels pending, {report.labels_unknown} unknown, "
          f"{report.labels_duplicate} superseded")
    create_markdown_artifact(key=artifact_key(endpoint), markdown=_markdown(report),
                             description=f"{endpoint} ground-truth merge {iso_z(start)}")
    return report.dump()

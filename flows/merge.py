"""Ground-truth merge flow: join one window of an endpoint's capture records with the labels that
arrived for it, write the merged records by capture hour, and write the merge report last (a marker
says a merge of the window is running meanwhile, so a monitor never takes a half-done merge for a
finished one). The logic lives in tasks/groundtruth.py.

The labels are read and resolved (latest per id) first; then a few workers, one per core, each merge
a run of the window's hours: they read an hour's capture files, and every FLUSH_BYTES of capture
merge what they hold with the labels and write those hours' files. Memory follows the labels plus
a flush per worker, not the window.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prefect import flow, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from modelwatch.flows.fanout import MAX_CHUNKS, chunked
from modelwatch.flows.retries import STORE_RETRY
from modelwatch.runtime import configure_arrow
from modelwatch.tasks import progress
from modelwatch.tasks.capture import SkippedFile, UnreadableFile, list_capture_hours
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.groundtruth import (
    JoinResult,
    Labels,
    MergedPart,
    MergeReport,
    ReadCounts,
    WindowMerge,
    classify,
    merge_part,
    merge_report,
    quarantine_lines,
    resolve_labels,
)
from modelwatch.tasks.groundtruth_layout import (
    LabelFile,
    is_merged_part,
    list_ground_truth,
    merged_hour_prefix,
    merged_key,
    quarantine_key,
    report_key,
    running_key,
)
from modelwatch.tasks.groundtruth_records import (
    CaptureRecords,
    LabelBatch,
    concat_captures,
    concat_labels,
    empty_captures,
    empty_labels,
    parse_ground_truth,
    read_capture_records,
)
from modelwatch.tasks.jsonl_layout import read_uri
from modelwatch.tasks.markdown import escape_markdown
from modelwatch.tasks.registry import get_endpoint
from modelwatch.tasks.sources import file_variants
from modelwatch.tasks.store import Store, check_slug, default_store_uri
from modelwatch.tasks.windows import check_window, hour_of_path, iso_z, parse_duration

HourFile = tuple[str, datetime]
HourFiles = tuple[datetime, list[str]]  # an hour of the window and its capture files, in name order
# Capture bytes a worker gathers before merging them: each flush probes every label once, so
# bigger flushes cost less time and more memory.
FLUSH_BYTES = 256 * 2**20


@dataclass
class CaptureListing:
    """Capture files of the window, and of the rest of the searched range (ids only)."""

    window: list[HourFile] = field(default_factory=list)
    context: list[HourFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class HoursMerged:
    """What one worker merged: its parts (their hours already written), the files it wrote
    (key -> URI) and what it read."""

    parts: list[MergedPart] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)
    lines_read: int = 0
    files: int = 0
    blank_lines: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)


def window_hours(files: list[HourFile], start: datetime, end: datetime) -> list[HourFiles]:
    """Every hour of the window with its capture files: an hour without any still has its merged
    file removed, so a re-run leaves exactly the keys it wrote."""
    by_hour: dict[datetime, list[str]] = {}
    for uri, hour in files:
        by_hour.setdefault(hour, []).append(uri)
    hours = []
    hour = start
    while hour < end:
        hours.append((hour, sorted(by_hour.get(hour, []))))
        hour += timedelta(hours=1)
    return hours


@task(name="list-capture-files", cache_policy=NO_CACHE, **STORE_RETRY)
def list_captures_task(capture_uri: str, start: datetime, end: datetime,
                       reach: timedelta) -> CaptureListing:
    listing = CaptureListing()
    skipped: list[SkippedFile] = []
    try:
        files = list_capture_hours(capture_uri, start - reach, end + reach, skipped)
    except UserError as missing:
        # A new endpoint may have no traffic yet; the report says so rather than failing.
        listing.notes.append(str(missing))
        return listing
    inside = [f for f in skipped if start <= (hour_of_path(f.uri) or start - reach) < end]
    if inside:
        listing.notes.append(f"{len(inside)} file(s) in the window were not read: " + "; ".join(
            f"{f.uri}: {f.reason}" for f in inside[:10]))
    for uri, hour in files:
        (listing.window if start <= hour < end else listing.context).append((uri, hour))
    return listing


@task(name="list-ground-truth", cache_policy=NO_CACHE, **STORE_RETRY)
def list_labels_task(store_uri: str, endpoint: str, start: datetime, end: datetime,
                     reach: timedelta) -> list[LabelFile]:
    """The label files labelled within the lookback of the window, before it as well as after."""
    return list_ground_truth(Store(store_uri), endpoint, start - reach, end + reach)


@task(name="read-ground-truth-chunk", cache_policy=NO_CACHE, **STORE_RETRY)
def read_labels_task(store_uri: str, files: list[LabelFile]) -> LabelBatch:
    store = Store(store_uri)
    batches = []
    for key, hour, modified in files:
        try:
            batches.append(parse_ground_truth(read_uri(store.uri(key)), key, hour, modified))
            progress.advance("labels read", batches[-1].table.num_rows)
        except UnreadableFile as problem:
            batches.append(LabelBatch(empty_labels(), files=1, quarantine=[
                {"file": key, "line": 0, "reason": str(problem), "record": ""}]))
    return concat_labels(batches)


@task(name="resolve-labels", cache_policy=NO_CACHE)
def resolve_labels_task(labels: LabelBatch) -> Labels:
    return resolve_labels(labels.table)


def _flush(store: Store, endpoint: str, held: list[tuple[datetime, pa.Table]], labels: Labels,
           merged: HoursMerged, model: str | None) -> None:
    """Merge the held hours' records and write each hour's file per variant; remove the merged
    files of those hours that no merged record has now (an earlier run may have written them)."""
    def write(hour: datetime | None, variant: str | None, data: memoryview) -> None:
        if hour is None:
            raise ValueError("capture records without an hour folder cannot be filed by hour")
        key = merged_key(endpoint, hour, model, variant)
        merged.written[key] = store.write_bytes(key, data)

    tables = [table for _, table in held if table.num_rows]
    merged.parts.append(merge_part(pa.concat_tables(tables) if tables else empty_captures(), labels,
                                   write))
    progress.advance("records merged with a label", merged.parts[-1].matched)
    for hour in sorted({hour for hour, _ in held}):
        for key in store.list(merged_hour_prefix(endpoint, hour, model)):
            if is_merged_part(key) and key not in merged.written:
                store.delete(key)


def _capture_records(uri: str, hour: datetime, keep_raw: bool = True) -> CaptureRecords:
    """A capture file's join records; a file that cannot be read at all is one quarantine entry."""
    try:
        return read_capture_records(read_uri(uri), uri, hour, keep_raw)
    except UnreadableFile as problem:
        return CaptureRecords(empty_captures(keep_raw), 0, 1,
                              [{"file": uri, "line": 0, "reason": str(problem), "record": ""}])


@task(name="merge-capture-hours", cache_policy=NO_CACHE, **STORE_RETRY)
def merge_hours_task(store_uri: str, endpoint: str, hours: list[HourFiles],
                     labels: Labels, model: str | None = None,
                     capture_root: str | None = None) -> HoursMerged:
    """Merge a run of the window's hours (in order) with the resolved labels and write them, one
    file per hour and production variant (to merged/<endpoint>/models/<model>/ for a model of a
    multi-model endpoint). The variant is the capture file's folder under `capture_root`."""
    store = Store(store_uri)
    merged = HoursMerged()
    held: list[tuple[datetime, pa.Table]] = []
    size = 0
    for hour, files in hours:
        variants = file_variants([capture_root], files) if capture_root else [None] * len(files)
        by_variant: dict[str | None, list[str]] = {}
        for uri, variant in zip(files, variants, strict=True):
            by_variant.setdefault(variant, []).append(uri)
        for variant, group in sorted(by_variant.items(), key=lambda item: item[0] or ""):
            batch = concat_captures([_capture_records(uri, hour) for uri in group])
            merged.lines_read += batch.lines_read
            merged.files += batch.files
            merged.blank_lines += batch.blank_lines
            merged.quarantine += batch.quarantine
            progress.advance("capture files read", len(group))
            table = batch.table.select(["id", "hour", "raw"])  # what merge_part uses
            held.append((hour, table.append_column(
                "variant", pa.array([variant] * table.num_rows, pa.string()))))
            size += held[-1][1].nbytes
        if not files:
            held.append((hour, empty_captures().select(["id", "hour", "raw"])))
        if size >= FLUSH_BYTES:
            _flush(store, endpoint, held, labels, merged, model)
            held, size = [], 0
    if held:
        _flush(store, endpoint, held, labels, merged, model)
    return merged


@task(name="read-capture-ids", cache_policy=NO_CACHE, **STORE_RETRY)
def read_capture_ids_task(files: list[HourFile], labels: Labels) -> pa.Table:
    """Join ids and hours of capture records outside the window, kept only where a label has that
    id: enough to call a label pending, and small however long the lookback. Filtered every
    FLUSH_BYTES of ids, as each filter hashes every label."""
    kept = [empty_captures(keep_raw=False).select(["id", "hour"])]
    held: list[pa.Table] = []
    size = 0
    for number, (uri, hour) in enumerate(files, start=1):
        held.append(_capture_records(uri, hour, keep_raw=False).table.select(["id", "hour"]))
        size += held[-1].nbytes
        if size >= FLUSH_BYTES or number == len(files):
            places = pa.concat_tables(held)
            kept.append(places.filter(pc.is_in(places["id"], value_set=labels.ids)))
            held, size = [], 0
    return pa.concat_tables(kept)


@task(name="classify-labels", cache_policy=NO_CACHE)
def classify_task(labels: Labels, merged: list[HoursMerged], context: pa.Table | None) -> JoinResult:
    window = WindowMerge.of([part for worker in merged for part in worker.parts], labels)
    pending, unknown = classify(labels, window.hits, context)
    return JoinResult(labels, window, pending, unknown)


@task(name="write-quarantine", cache_policy=NO_CACHE, **STORE_RETRY)
def write_outputs_task(store_uri: str, endpoint: str, start: datetime, end: datetime,
                       quarantine: bytes, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Write the quarantine; remove the pending files an earlier version's run of the window wrote
    (labels are now read where they lie, so those copies only repeat them)."""
    store = Store(store_uri)
    base = store.uri("") + "/"
    for uri in (previous or {}).get("pending", []):
        if uri.startswith(base):
            store.delete(uri[len(base):])
    return {"quarantine": store.write_bytes(quarantine_key(endpoint, start, end), quarantine)}


@task(name="write-merge-report", cache_policy=NO_CACHE, **STORE_RETRY)
def write_report_task(store_uri: str, key: str, report: MergeReport, running: str) -> str:
    """The report, then the running marker withdrawn: the merge is finished."""
    store = Store(store_uri)
    uri = store.write_json(key, report.dump())
    store.delete(running)
    return uri


def _read_counts(merged: list[HoursMerged], labels: LabelBatch) -> ReadCounts:
    return ReadCounts(capture_files=sum(m.files for m in merged),
                      capture_lines=sum(m.lines_read for m in merged),
                      captures_malformed=sum(len(m.quarantine) for m in merged),
                      capture_blank_lines=sum(m.blank_lines for m in merged),
                      label_files=labels.files, labels_malformed=len(labels.quarantine),
                      label_blank_lines=labels.blank_lines)


def _markdown(report: MergeReport) -> str:
    rows = [
        ("capture records in the window", report.captures_read),
        ("matched (merged)", report.captures_matched),
        ("unmatched (no label yet)", report.captures_unmatched),
        ("malformed capture lines", report.captures_malformed),
        ("labels read", report.labels_read),
        ("labels matched", report.labels_matched),
        ("labels pending (capture in another window, merged there)", report.labels_pending),
        ("labels for unknown ids", report.labels_unknown),
        ("duplicate labels superseded", report.labels_duplicate),
        ("of which conflicting", report.label_conflicts),
        ("malformed label lines", report.labels_malformed),
    ]
    lines = [
        f"### ground-truth merge · {report.endpoint}",
        f"Window {iso_z(report.window_start)} to {iso_z(report.window_end)}, lookback "
        f"{report.lookback}: labels labelled from {iso_z(report.labels_from)} to "
        f"{iso_z(report.labels_until)}; capture ids "
        f"searched from {iso_z(report.captures_searched_from)}.",
        "",
        "| | count |",
        "| --- | ---: |",
        *[f"| {name} | {count} |" for name, count in rows],
    ]
    lines += [f"\n- {escape_markdown(note)}" for note in report.notes]
    lines.append(f"\nReport: {report.outputs.get('report', 'none')}")
    return "\n".join(lines)


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


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

    Reads the endpoint's capture (all variants) from its registry record and the labels labelled in
    [start - lookback, end + lookback); capture ids in [start - lookback, end + lookback) tell
    pending labels from unknown ones. Returns the report, also written to
    merged/<endpoint>/reports/<start>_<end>.json. Re-running rewrites the same keys; the result
    depends only on the captures and labels in the store, not on which windows were merged before.
    """
    configure_arrow()
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
    # Withdraw the old report first and say a merge is running: one that dies midway must not look
    # finished, to a reader or to the model-quality monitor.
    running = running_key(endpoint, start, end)
    the_store.write_json(running, {"started_at": datetime.now(UTC).isoformat(),
                                   "flow_run_id": _flow_run_id()})
    the_store.delete(key)

    progress.step("listing capture and label files")
    # A multi-model endpoint's models are merged against the same labels, each into its own folder;
    # the labels are classified once over all of them.
    views = record.views()
    listings = [list_captures_task(view.capture_uri, start, end, reach) for view in views]
    label_files = list_labels_task(store_uri, endpoint, start, end, reach)
    # Reading and merging are CPU-bound (Arrow releases the GIL): one task per core; more would
    # only hold more files in memory at once.
    workers = max(1, min(chunks, os.cpu_count() or 1))
    progress.step("reading labels")
    label_futures = read_labels_task.map(unmapped(store_uri), chunked(label_files, workers))
    labels = concat_labels([f.result() for f in label_futures])
    resolved = resolve_labels_task(labels)

    per_view = [(view.hosted_model, view.capture_uri,
                 chunked(window_hours(listing.window, start, end), workers))
                for view, listing in zip(views, listings, strict=True)]
    progress.step("merging capture records with their labels")
    progress.expect("capture files read", sum(len(files) for _, _, hours in per_view
                                               for chunk in hours for _, files in chunk))
    merge_futures = [f for model, capture, hours in per_view for f in merge_hours_task.map(
        unmapped(store_uri), unmapped(endpoint), hours, unmapped(resolved), unmapped(model),
        unmapped(capture))]
    context_futures = read_capture_ids_task.map(
        chunked([c for listing in listings for c in listing.context], workers), unmapped(resolved))
    merged = [f.result() for f in merge_futures]
    contexts = [f.result() for f in context_futures]
    result = classify_task(resolved, merged, pa.concat_tables(contexts) if contexts else None)

    report = merge_report(result, _read_counts(merged, labels), endpoint=endpoint,
                          start=start, end=end, lookback=lookback)
    report.notes.extend(note for listing in listings for note in listing.notes)
    quarantine = quarantine_lines([q for m in merged for q in m.quarantine], labels.quarantine,
                                  result, report)
    progress.step("writing the merge's outputs")
    outputs = write_outputs_task(store_uri, endpoint, start, end, quarantine, previous)
    written = {k: uri for m in merged for k, uri in m.written.items()}
    report.outputs = {"merged": [written[k] for k in sorted(written)], **outputs,
                      "report": the_store.uri(key)}
    write_report_task(store_uri, key, report, running)
    print(f"merged {report.captures_matched} of {report.captures_read} capture records of "
          f"{endpoint}; {report.labels_pending} labels pending, {report.labels_unknown} unknown, "
          f"{report.labels_duplicate} superseded")
    create_markdown_artifact(key=artifact_key(endpoint), markdown=_markdown(report),
                             description=f"{endpoint} ground-truth merge {iso_z(start)}")
    return report.dump()

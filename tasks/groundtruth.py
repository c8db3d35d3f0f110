"""Ground truth for model-quality monitoring: SageMaker ground-truth JSONL in and out, and the merge of
a capture window with the labels that arrived for it. Plain functions; flows/merge.py orchestrates.

Store layout (see DESIGN.md, "The store"):

    groundtruth/<endpoint>/YYYY/MM/DD/HH/<name>.jsonl       labels, by the UTC hour they were labelled
    merged/<endpoint>/YYYY/MM/DD/HH/part-00000.jsonl        capture record + groundTruthData, by the
                                                            hour folder the capture was written to
    merged/<endpoint>/pending/YYYY/MM/DD/HH/<window>.jsonl  labels whose capture lies outside the merged
                                                            window, filed under that capture's hour so
                                                            the merge of that hour finds them
    merged/<endpoint>/reports/<window>.json                 the MergeReport, written last
    merged/<endpoint>/reports/<window>.quarantine.jsonl     malformed lines, unknown and superseded labels

Join id: a ground-truth record's eventMetadata.eventId holds the capture's inferenceId when the caller
sent one, else the capture's eventId. One capture line is one invocation and one join record, however
many rows its request carried (SageMaker's label `data` then carries that many labels).

Merging the window [start, end) with lookback L reads the window's capture records, the labels
labelled in [start, end + L), and the pending labels filed under the window's hours. After dropping
superseded duplicates, every label is exactly one of:
  matched  its id is a capture record of the window;
  pending  its id is a capture record elsewhere in [start - L, end + L): kept for that capture's merge;
  unknown  its id matches no capture record in [start - L, end + L): reported, never merged.
Windows are whole UTC hours, so every capture record belongs to exactly one window.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from pydantic import Field

from modelwatch.errors import UserError
from tasks.capture import arrow_owned, hour_prefixes, iso_z, parse_time
from tasks.documents import Document
from tasks.store import Store, check_slug, filesystem_for

GROUNDTRUTH = "groundtruth"
MERGED = "merged"
PART_NAME = "part-00000.jsonl"
STAMP = "%Y%m%dT%H%M%SZ"
ENCODINGS = ("CSV", "JSON")

CAPTURE_COLUMNS = ["id", "event_id", "inference_id", "inference_time", "hour", "file", "line"]
LABEL_COLUMNS = ["id", "data", "encoding", "labelled_at", "file", "line"]

_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?)?")


# ---- small helpers ----

def parse_duration(text: str, what: str = "duration") -> timedelta:
    """An ISO-8601 duration of days, hours and minutes: P7D, PT12H, PT30M, P1DT6H (zero allowed)."""
    match = _DURATION.fullmatch(text.strip().upper()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise UserError(f"{what} {text!r} is not an ISO-8601 duration: expected PnD, PTnH or PTnM "
                        "(e.g. P7D, PT12H, PT30M, or combined as P1DT6H)")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The window in UTC; both ends on whole hours, so each capture hour folder has one owner."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    for name, moment in (("start", start), ("end", end)):
        if moment.minute or moment.second or moment.microsecond:
            raise UserError(f"window {name} {iso_z(moment)} is not on a whole hour: merged records "
                            "are written per capture hour, so windows start and end on the hour")
    if end <= start:
        raise UserError(f"window end {iso_z(end)} must be after its start {iso_z(start)}")
    return start, end


def window_stamp(start: datetime, end: datetime) -> str:
    return f"{start.astimezone(UTC).strftime(STAMP)}_{end.astimezone(UTC).strftime(STAMP)}"


def groundtruth_prefix(endpoint: str) -> str:
    return f"{GROUNDTRUTH}/{check_slug(endpoint, 'endpoint name')}"


def merged_prefix(endpoint: str) -> str:
    return f"{MERGED}/{check_slug(endpoint, 'endpoint name')}"


def merged_key(endpoint: str, hour: datetime) -> str:
    return f"{merged_prefix(endpoint)}/{hour:%Y/%m/%d/%H}/{PART_NAME}"


def pending_key(endpoint: str, capture_hour: datetime, start: datetime, end: datetime) -> str:
    return f"{merged_prefix(endpoint)}/pending/{capture_hour:%Y/%m/%d/%H}/{window_stamp(start, end)}.jsonl"


def report_key(endpoint: str, start: datetime, end: datetime) -> str:
    return f"{merged_prefix(endpoint)}/reports/{window_stamp(start, end)}.json"


def quarantine_key(endpoint: str, start: datetime, end: datetime) -> str:
    return f"{merged_prefix(endpoint)}/reports/{window_stamp(start, end)}.quarantine.jsonl"


def _utc_hours(values: list[Any] | pd.Series) -> pd.Series:
    return pd.Series(pd.to_datetime(values, utc=True), dtype="datetime64[ns, UTC]")


# ---- reading capture records for the join ----

@dataclass
class CaptureRecords:
    """Capture lines as join records: one frame row per invocation, plus the quarantined lines.

    frame columns: CAPTURE_COLUMNS, and `raw` (the line's bytes) when read with keep_raw.
    """

    frame: pd.DataFrame
    lines_read: int = 0
    files: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)


def empty_captures(keep_raw: bool = True) -> pd.DataFrame:
    columns = {c: pd.Series(dtype=object) for c in CAPTURE_COLUMNS}
    columns["hour"] = pd.Series(dtype="datetime64[ns, UTC]")
    columns["line"] = pd.Series(dtype="int64")
    if keep_raw:
        columns["raw"] = pd.Series(dtype=object)
    return pd.DataFrame(columns)


def read_capture_records(data: bytes, source: str, hour: datetime | None = None,
                         keep_raw: bool = True) -> CaptureRecords:
    """Parse one capture file's lines into join records; bad lines go to quarantine with a reason.

    `hour` is the file's hour folder, the record's capture hour; without it the hour comes from
    inferenceTime (NaT when that is not a time, as in SageMaker's templated SDK fixtures). Payloads
    are not decoded: the merged line carries the captured line's bytes unchanged.
    """
    ids: list[str] = []
    event_ids: list[str] = []
    inference_ids: list[str | None] = []
    times: list[str | None] = []
    line_numbers: list[int] = []
    raws: list[bytes] = []
    quarantine: list[dict[str, Any]] = []
    lines_read = 0
    for line_no, raw in enumerate(data.splitlines(), start=1):
        raw = raw.strip()
        if not raw:
            continue
        lines_read += 1
        reason = None
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record, reason = None, "line is not valid JSON"
        if reason is None:
            if not isinstance(record, dict) or not isinstance(record.get("captureData"), dict):
                reason = "record has no captureData object"
            elif not isinstance(meta := record.get("eventMetadata"), dict):
                reason = "record has no eventMetadata object"
            elif not isinstance(event_id := meta.get("eventId"), str) or not event_id:
                reason = "eventMetadata.eventId is missing or not a string"
            elif (inference_id := meta.get("inferenceId")) is not None and (
                    not isinstance(inference_id, str) or not inference_id):
                reason = "eventMetadata.inferenceId is not a non-empty string"
        if reason is not None:
            quarantine.append({"file": source, "line": line_no, "reason": reason,
                               "record": raw.decode("utf-8", errors="replace")})
            continue
        ids.append(inference_id if inference_id is not None else event_id)
        event_ids.append(event_id)
        inference_ids.append(inference_id)
        moment = meta.get("inferenceTime")
        times.append(moment if isinstance(moment, str) else None)
        line_numbers.append(line_no)
        if keep_raw:
            raws.append(raw)
    if not ids:
        return CaptureRecords(empty_captures(keep_raw), lines_read, 1, quarantine)
    if hour is not None:
        hours = _utc_hours([hour] * len(ids))
    else:
        # Vectorised parse; a template such as "{%s}" becomes NaT rather than an error.
        hours = pd.Series(pd.to_datetime(pd.Series(times, dtype=object), utc=True, errors="coerce",
                                         format="ISO8601")).dt.floor("h")
    columns: dict[str, Any] = {
        "id": ids, "event_id": event_ids, "inference_id": inference_ids, "inference_time": times,
        "hour": hours.array, "file": [source] * len(ids), "line": line_numbers,
    }
    if keep_raw:
        columns["raw"] = raws
    return CaptureRecords(pd.DataFrame(columns), lines_read, 1, quarantine)


def concat_captures(batches: list[CaptureRecords], keep_raw: bool = True) -> CaptureRecords:
    frames = [b.frame for b in batches if len(b.frame)]
    return CaptureRecords(
        frame=pd.concat(frames, ignore_index=True) if frames else empty_captures(keep_raw),
        lines_read=sum(b.lines_read for b in batches),
        files=sum(b.files for b in batches),
        quarantine=[q for b in batches for q in b.quarantine],
    )


# ---- reading ground truth ----

@dataclass
class LabelBatch:
    """Ground-truth records as a frame (LABEL_COLUMNS) plus the quarantined lines."""

    frame: pd.DataFrame
    lines_read: int = 0
    files: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)


def empty_labels() -> pd.DataFrame:
    columns = {c: pd.Series(dtype=object) for c in LABEL_COLUMNS}
    columns["labelled_at"] = pd.Series(dtype="datetime64[ns, UTC]")
    columns["line"] = pd.Series(dtype="int64")
    return pd.DataFrame(columns)


def _label_problem(record: Any) -> str | tuple[str, str, str]:
    """A reason the record is not a ground-truth record, or its (id, data, encoding)."""
    if not isinstance(record, dict):
        return "line is not a JSON object"
    truth = record.get("groundTruthData")
    if not isinstance(truth, dict):
        return "record has no groundTruthData object"
    data = truth.get("data")
    if not isinstance(data, str):
        return "groundTruthData.data is missing or not a string"
    encoding = truth.get("encoding")
    if not isinstance(encoding, str) or encoding.upper() not in ENCODINGS:
        return f"groundTruthData.encoding {encoding!r} is not CSV or JSON"
    encoding = encoding.upper()
    if not data.strip():
        return "groundTruthData.data is empty"
    if encoding == "JSON":
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError:
            return "groundTruthData.data is not valid JSON (encoding JSON)"
    meta = record.get("eventMetadata")
    if not isinstance(meta, dict):
        return "record has no eventMetadata object"
    event_id = meta.get("eventId")
    if not isinstance(event_id, str) or not event_id:
        return "eventMetadata.eventId is missing or not a string"
    return event_id, data, encoding


def parse_ground_truth(data: bytes, source: str, labelled_at: datetime | None = None,
                       pending: bool = False) -> LabelBatch:
    """Parse one ground-truth JSONL file; bad lines go to quarantine with a reason.

    `labelled_at` is the file's hour folder (NaT when unknown: such labels rank oldest among
    duplicates). A pending file (ours) carries each label's origin in a `provenance` object, so a
    label met both there and in its own file is recognised as the same label.
    """
    ids: list[str] = []
    values: list[str] = []
    encodings: list[str] = []
    files: list[str] = []
    lines: list[int] = []
    stamps: list[Any] = []
    quarantine: list[dict[str, Any]] = []
    lines_read = 0
    for line_no, raw in enumerate(data.splitlines(), start=1):
        raw = raw.strip()
        if not raw:
            continue
        lines_read += 1
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            outcome: str | tuple[str, str, str] = "line is not valid JSON"
        else:
            outcome = _label_problem(record)
        if pending and not isinstance(outcome, str):
            origin = record.get("provenance")
            if (not isinstance(origin, dict) or not isinstance(origin.get("file"), str)
                    or not isinstance(origin.get("line"), int)):
                outcome = "pending record has no provenance (file, line)"
        if isinstance(outcome, str):
            quarantine.append({"file": source, "line": line_no, "reason": outcome,
                               "record": raw.decode("utf-8", errors="replace")})
            continue
        ids.append(outcome[0])
        values.append(outcome[1])
        encodings.append(outcome[2])
        if pending:
            files.append(origin["file"])
            lines.append(origin["line"])
            stamps.append(origin.get("labelledAt"))
        else:
            files.append(source)
            lines.append(line_no)
            stamps.append(labelled_at)
    if not ids:
        return LabelBatch(empty_labels(), lines_read, 1, quarantine)
    frame = pd.DataFrame({
        "id": ids, "data": values, "encoding": encodings,
        "labelled_at": pd.to_datetime(pd.Series(stamps, dtype=object), utc=True, errors="coerce",
                                      format="ISO8601").array,
        "file": files, "line": lines,
    })
    return LabelBatch(frame, lines_read, 1, quarantine)


def concat_labels(batches: list[LabelBatch]) -> LabelBatch:
    frames = [b.frame for b in batches if len(b.frame)]
    return LabelBatch(
        frame=pd.concat(frames, ignore_index=True) if frames else empty_labels(),
        lines_read=sum(b.lines_read for b in batches),
        files=sum(b.files for b in batches),
        quarantine=[q for b in batches for q in b.quarantine],
    )


# ---- the join ----

@dataclass
class JoinResult:
    """What a merge produced, before anything is written.

    merged: the window's matched capture records with `record` (the merged JSONL line), by hour.
    pending: labels whose capture is elsewhere in the searched range, with that `capture_hour`
    (a label whose id was captured in several hours appears once per hour).
    unknown, superseded: labels reported and not merged; superseded has `kept_file`, `kept_line`
    and `conflict` (its data differs from the label kept).
    """

    merged: pd.DataFrame
    pending: pd.DataFrame
    unknown: pd.DataFrame
    superseded: pd.DataFrame
    captures_read: int
    captures_matched: int
    capture_duplicate_ids: int
    labels_read: int
    labels_matched: int
    labels_pending: int
    labels_unknown: int

    @property
    def captures_unmatched(self) -> int:
        return self.captures_read - self.captures_matched

    @property
    def labels_duplicate(self) -> int:
        return len(self.superseded)

    @property
    def label_conflicts(self) -> int:
        return int(self.superseded["conflict"].sum()) if len(self.superseded) else 0


def merged_lines(raw: pd.Series, data: pd.Series, encoding: pd.Series) -> list[bytes]:
    """SageMaker merged records: the captured line with groundTruthData added as its first key.

    Splicing into the captured bytes (rather than re-serialising) keeps captureData and
    eventMetadata exactly as captured; readers must not depend on key order (SageMaker's own
    merge writes eventVersion first).
    """
    truth: dict[tuple[str, str], bytes] = {}  # labels repeat a few values: serialise each once
    out = []
    for r, d, e in zip(raw, data, encoding, strict=True):
        t = truth.get((d, e))
        if t is None:
            t = truth[(d, e)] = b'{"groundTruthData":' + orjson.dumps({"data": d, "encoding": e}) + b","
        out.append(t + r[1:] + b"\n")
    return out


def join_ground_truth(captures: pd.DataFrame, labels: pd.DataFrame,
                      context: pd.DataFrame | None = None) -> JoinResult:
    """Join a window's capture records with candidate labels (vectorised: hashing on the id).

    captures: the window's records (CAPTURE_COLUMNS + raw). labels: every candidate label, from the
    label range and from pending files, in any order (LABEL_COLUMNS). context: `id` and `hour` of
    the capture records in the searched range outside the window.
    """
    # The same label can arrive twice, from its own file and from a pending file: one label.
    labels = labels.drop_duplicates(["file", "line"])
    ordered = labels.sort_values(["labelled_at", "file", "line"], na_position="first", kind="stable")
    later = ordered.duplicated("id", keep="last").to_numpy()
    kept = ordered[~later]
    by_id = pd.Index(kept["id"])  # unique after dropping superseded labels: one hash table
    superseded = ordered[later]
    winner = by_id.get_indexer(superseded["id"])
    superseded = superseded.assign(
        conflict=(superseded["data"].to_numpy() != kept["data"].to_numpy()[winner])
        | (superseded["encoding"].to_numpy() != kept["encoding"].to_numpy()[winner]),
        kept_file=kept["file"].to_numpy()[winner], kept_line=kept["line"].to_numpy()[winner])

    # Position of each capture's label among the kept ones, -1 for none.
    label_of = by_id.get_indexer(captures["id"])
    hit = label_of >= 0
    in_window = pd.Series(False, index=kept.index)
    in_window.iloc[np.unique(label_of[hit])] = True
    matched_count = int(in_window.sum())
    rest = kept[~in_window.to_numpy()]
    if context is not None and len(context):
        in_context = rest["id"].isin(context["id"]).to_numpy()
        places = context[["id", "hour"]].drop_duplicates().rename(columns={"hour": "capture_hour"})
        pending = rest[in_context].merge(places, on="id", how="inner")
        pending = pending.sort_values(["capture_hour", "file", "line"], kind="stable")
        unknown = rest[~in_context]
        labels_pending = int(in_context.sum())
    else:
        pending = rest.iloc[:0].assign(capture_hour=pd.Series(dtype="datetime64[ns, UTC]"))
        unknown = rest
        labels_pending = 0

    merged = captures[hit].assign(data=kept["data"].to_numpy()[label_of[hit]],
                                  encoding=kept["encoding"].to_numpy()[label_of[hit]])
    merged = merged.sort_values(["hour", "file", "line"], kind="stable").reset_index(drop=True)
    merged["record"] = pd.Series(
        merged_lines(merged["raw"], merged["data"], merged["encoding"]), dtype=object)
    return JoinResult(
        merged=merged, pending=pending.reset_index(drop=True),
        unknown=unknown.sort_values(["file", "line"]).reset_index(drop=True),
        superseded=superseded.sort_values(["file", "line"]).reset_index(drop=True),
        captures_read=len(captures), captures_matched=len(merged),
        capture_duplicate_ids=int(captures["id"].duplicated().sum()),
        labels_read=len(labels), labels_matched=matched_count, labels_pending=labels_pending,
        labels_unknown=len(unknown),
    )


# ---- the report ----

class MergeReport(Document):
    """One merge of a capture window with its ground truth. Label counts balance:
    labels_read = labels_matched + labels_pending + labels_unknown + labels_duplicate; capture
    counts too: captures_read = captures_matched + captures_unmatched."""

    endpoint: str
    window_start: datetime
    window_end: datetime
    lookback: str
    labels_from: datetime  # labels labelled in [labels_from, labels_until) were read
    labels_until: datetime
    captures_searched_from: datetime  # the range whose capture ids make a label pending, not unknown
    captures_searched_until: datetime
    capture_files: int = 0
    captures_read: int = 0  # well-formed capture records in the window
    captures_malformed: int = 0
    captures_matched: int = 0
    captures_unmatched: int = 0  # no label yet
    capture_duplicate_ids: int = 0  # records whose join id an earlier record of the window has
    label_files: int = 0
    pending_files: int = 0
    labels_read: int = 0  # distinct well-formed labels, from label files and pending files
    labels_from_pending: int = 0  # of which only a pending file held (labelled before the range)
    labels_malformed: int = 0
    labels_matched: int = 0
    labels_pending: int = 0  # captured elsewhere in the searched range: kept for that merge
    labels_unknown: int = 0  # no capture in the searched range
    labels_duplicate: int = 0  # superseded by a later label of the same id
    label_conflicts: int = 0  # superseded labels whose data differed from the one kept
    merged_by_hour: dict[str, int] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return (self.captures_read == self.captures_matched + self.captures_unmatched
                and self.labels_read == self.labels_matched + self.labels_pending
                + self.labels_unknown + self.labels_duplicate)


def merge_window(captures: CaptureRecords, labels: LabelBatch, pending: LabelBatch | None,
                 context: pd.DataFrame | None, *, endpoint: str, start: datetime, end: datetime,
                 lookback: str = "P7D") -> tuple[MergeReport, JoinResult]:
    """The whole merge of one window as a function of what was read: the report and the result."""
    start, end = check_window(start, end)
    reach = parse_duration(lookback, "lookback")
    pending = pending or LabelBatch(empty_labels())
    direct = labels.frame
    # Pending labels whose own file was read too are the same labels, not extra ones.
    seen = pd.MultiIndex.from_frame(direct[["file", "line"]]) if len(direct) else None
    only_pending = pending.frame
    if seen is not None and len(only_pending):
        only_pending = only_pending[
            ~pd.MultiIndex.from_frame(only_pending[["file", "line"]]).isin(seen)]
    result = join_ground_truth(captures.frame, pd.concat(
        [f for f in (direct, only_pending) if len(f)] or [empty_labels()], ignore_index=True),
        context)
    by_hour = result.merged.groupby("hour").size() if len(result.merged) else pd.Series(dtype=int)
    report = MergeReport(
        endpoint=endpoint, window_start=start, window_end=end, lookback=lookback.strip().upper(),
        labels_from=start, labels_until=end + reach,
        captures_searched_from=start - reach, captures_searched_until=end + reach,
        capture_files=captures.files, captures_read=result.captures_read,
        captures_malformed=len(captures.quarantine), captures_matched=result.captures_matched,
        captures_unmatched=result.captures_unmatched,
        capture_duplicate_ids=result.capture_duplicate_ids,
        label_files=labels.files, pending_files=pending.files, labels_read=result.labels_read,
        labels_from_pending=len(only_pending.drop_duplicates(["file", "line"])),
        labels_malformed=len(labels.quarantine) + len(pending.quarantine),
        labels_matched=result.labels_matched, labels_pending=result.labels_pending,
        labels_unknown=result.labels_unknown, labels_duplicate=result.labels_duplicate,
        label_conflicts=result.label_conflicts,
        merged_by_hour={iso_z(h): int(n) for h, n in by_hour.items()},
    )
    if captures.lines_read == 0:
        report.notes.append("no capture records in the window")
    if report.labels_read == 0:
        report.notes.append("no ground truth for the window yet")
    return report, result


# ---- what a merge writes ----

def pending_lines(pending: pd.DataFrame) -> list[bytes]:
    """Ground-truth records (SageMaker shape) plus where each label came from."""
    stamps = [None if pd.isna(t) else iso_z(t) for t in pending["labelled_at"]]
    return [orjson.dumps({
        "groundTruthData": {"data": d, "encoding": e}, "eventMetadata": {"eventId": i},
        "eventVersion": "0", "provenance": {"file": f, "line": int(n), "labelledAt": t},
    }) + b"\n" for i, d, e, f, n, t in zip(pending["id"], pending["data"], pending["encoding"],
                                           pending["file"], pending["line"], stamps, strict=True)]


def quarantine_lines(captures: CaptureRecords, labels: LabelBatch, pending: LabelBatch | None,
                     result: JoinResult, report: MergeReport) -> bytes:
    """Everything the merge read but did not merge or keep pending, each with its reason."""
    entries: list[dict[str, Any]] = [{"kind": "malformed_capture", **q} for q in captures.quarantine]
    entries += [{"kind": "malformed_label", **q} for q in labels.quarantine]
    entries += [{"kind": "malformed_label", **q} for q in (pending.quarantine if pending else [])]
    searched = f"[{iso_z(report.captures_searched_from)}, {iso_z(report.captures_searched_until)})"
    entries += [{"kind": "unknown_label", "file": f, "line": int(n), "id": i,
                 "reason": f"no capture record with this id in {searched}"}
                for i, f, n in zip(result.unknown["id"], result.unknown["file"],
                                   result.unknown["line"], strict=True)]
    sup = result.superseded
    entries += [{"kind": "superseded_label", "file": f, "line": int(n), "id": i, "conflict": bool(c),
                 "reason": f"superseded by the later label at {kf} line {int(kn)}"}
                for i, f, n, c, kf, kn in zip(sup["id"], sup["file"], sup["line"], sup["conflict"],
                                              sup["kept_file"], sup["kept_line"], strict=True)]
    return b"".join(orjson.dumps(e) + b"\n" for e in entries)


def merge_outputs(endpoint: str, start: datetime, end: datetime,
                  result: JoinResult) -> dict[str, bytes]:
    """Store key -> bytes of the merged hour files and the pending files of one merge."""
    if result.merged["hour"].isna().any() or result.pending["capture_hour"].isna().any():
        raise ValueError("capture records without an hour folder cannot be filed by hour")
    documents: dict[str, bytes] = {}
    for hour, group in result.merged.groupby("hour", sort=True):
        documents[merged_key(endpoint, hour)] = b"".join(group["record"])
    if len(result.pending):
        lines = pd.Series(pending_lines(result.pending), index=result.pending.index)
        for hour, group in lines.groupby(result.pending["capture_hour"], sort=True):
            documents[pending_key(endpoint, hour, start, end)] = b"".join(group)
    return documents


# ---- listing what a merge reads (store I/O) ----

def list_ground_truth(store: Store, endpoint: str, start: datetime,
                      end: datetime) -> list[tuple[str, datetime]]:
    """(key, labelled hour) of the ground-truth files labelled in the hours overlapping [start, end)."""
    prefix = groundtruth_prefix(endpoint)
    wanted = set(hour_prefixes(start, end))
    files: list[tuple[str, datetime]] = []
    for day in sorted({h[:10] for h in wanted}):
        # One listing per day, then only hours that exist: a week of lookback is ~8 listings.
        for hh in store.list_dirs(f"{prefix}/{day}"):
            if f"{day}/{hh}" not in wanted:
                continue
            hour = datetime.strptime(f"{day}/{hh}", "%Y/%m/%d/%H").replace(tzinfo=UTC)
            files.extend((key, hour) for key in store.list(f"{prefix}/{day}/{hh}")
                         if key.endswith((".jsonl", ".json")))
    return files


def list_pending(store: Store, endpoint: str, start: datetime, end: datetime) -> list[str]:
    """Keys of the pending files filed under the window's capture hours."""
    prefix = f"{merged_prefix(endpoint)}/pending"
    return [key for hour in hour_prefixes(start, end) for key in store.list(f"{prefix}/{hour}")
            if key.endswith(".jsonl")]


# ---- writing ground truth from a labelled dataset ----

class UploadReport(Document):
    """What `groundtruth upload` wrote and what it skipped (rows are never dropped silently)."""

    endpoint: str
    source: str
    rows_read: int
    labels_written: int
    rows_skipped: dict[str, int]
    skipped_rows: dict[str, list[int]] = Field(default_factory=dict)  # first 1-based data rows
    duplicate_ids: int = 0  # ids labelled more than once in this file: the merge keeps the last
    files: list[dict[str, Any]] = Field(default_factory=list)


def read_label_table(uri: str, id_column: str, label_column: str,
                     labelled_at_column: str | None = None) -> pa.Table:
    """The id, label (and labelled-at) columns of a CSV (with a header row) or Parquet dataset.

    CSV columns are read as text, so ids such as "007" and labels such as "1.50" stay as written.
    """
    wanted = [c for c in (id_column, label_column, labelled_at_column) if c]
    fs, path = filesystem_for(uri)
    try:
        if path.lower().endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            with fs.open(path, "rb") as handle:
                table = pq.read_table(handle)
        else:
            with fs.open(path, "rb") as handle:
                data = handle.read()
            if not data.strip():
                raise UserError(f"--file {uri}: the file is empty")
            table = pacsv.read_csv(arrow_owned(data), convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in wanted}, null_values=[""],
                strings_can_be_null=True, quoted_strings_can_be_null=False))
    except FileNotFoundError:
        raise UserError(f"--file {uri}: no such file") from None
    except (pa.ArrowInvalid, OSError) as problem:
        raise UserError(f"--file {uri}: not a readable CSV or Parquet file ({problem})") from None
    for option, column in (("--id-column", id_column), ("--label-column", label_column),
                           ("--labelled-at-column", labelled_at_column)):
        if column and column not in table.column_names:
            raise UserError(f"{option} {column!r} is not a column of {uri}; columns are "
                            f"{', '.join(table.column_names)} (a CSV needs a header row)")
    return table.select(wanted)


def _as_text(value: Any) -> str | None:
    """A cell as label/id text: None for missing or blank; whole floats without '.0' (Parquet
    float ids); booleans as true/false."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    return text or None


def ground_truth_line(event_id: str, label: str, encoding: str = "CSV") -> bytes:
    return (b'{"groundTruthData":{"data":' + orjson.dumps(label) + b',"encoding":"'
            + encoding.encode() + b'"},"eventMetadata":{"eventId":' + orjson.dumps(event_id)
            + b'},"eventVersion":"0"}\n')


def ground_truth_files(table: pa.Table, id_column: str, label_column: str, *,
                       labelled_at: datetime | None = None,
                       labelled_at_column: str | None = None,
                       ) -> tuple[dict[datetime, bytes], dict[str, list[int]], int]:
    """Ground-truth JSONL per labelled hour, the skipped rows by reason, and repeated ids.

    Each row's hour comes from labelled_at_column, else labelled_at (default: now). A label cell
    is written as it reads: "1,0,1" is the CSV row of labels of a three-row request, as SageMaker
    expects, not one quoted value.
    """
    ids = [_as_text(v) for v in table.column(id_column).to_pylist()]
    labels = [_as_text(v) for v in table.column(label_column).to_pylist()]
    if labelled_at_column:
        column = table.column(labelled_at_column)
        if pa.types.is_timestamp(column.type):
            stamps = pd.Series(pd.to_datetime(column.to_pandas(), utc=True))
        else:
            stamps = pd.Series(pd.to_datetime(
                pd.Series([_as_text(v) for v in column.to_pylist()], dtype=object),
                utc=True, errors="coerce", format="ISO8601"))
    else:
        moment = (labelled_at or datetime.now(UTC)).astimezone(UTC)
        stamps = pd.Series(pd.DatetimeIndex([moment] * table.num_rows))
    hours = stamps.dt.floor("h")
    skipped: dict[str, list[int]] = {"missing_id": [], "missing_label": [], "bad_labelled_at": []}
    by_hour: dict[datetime, list[bytes]] = {}
    seen: set[str] = set()
    repeated = 0
    for row, (event_id, label, hour) in enumerate(zip(ids, labels, hours, strict=True), start=1):
        if event_id is None:
            skipped["missing_id"].append(row)
        elif label is None:
            skipped["missing_label"].append(row)
        elif pd.isna(hour):
            skipped["bad_labelled_at"].append(row)
        else:
            repeated += event_id in seen
            seen.add(event_id)
            by_hour.setdefault(hour.to_pydatetime(), []).append(
                ground_truth_line(event_id, label))
    return {h: b"".join(lines) for h, lines in sorted(by_hour.items())}, skipped, repeated


def write_ground_truth(store: Store, endpoint: str, source: str, id_column: str, label_column: str,
                       *, labelled_at: datetime | None = None,
                       labelled_at_column: str | None = None) -> UploadReport:
    """Write a labelled dataset's rows as ground truth under groundtruth/<endpoint>/YYYY/MM/DD/HH/.

    A file is named after its content (labels-<sha256 prefix>.jsonl), so uploading the same
    labels for the same hour again rewrites the same file instead of adding duplicates.
    """
    table = read_label_table(source, id_column, label_column, labelled_at_column)
    files, skipped, repeated = ground_truth_files(
        table, id_column, label_column, labelled_at=labelled_at,
        labelled_at_column=labelled_at_column)
    prefix = groundtruth_prefix(endpoint)
    report = UploadReport(
        endpoint=endpoint, source=source, rows_read=table.num_rows,
        labels_written=sum(data.count(b"\n") for data in files.values()),
        rows_skipped={reason: len(rows) for reason, rows in skipped.items()},
        skipped_rows={reason: rows[:20] for reason, rows in skipped.items() if rows},
        duplicate_ids=repeated,
    )
    for hour, data in files.items():
        name = f"labels-{hashlib.sha256(data).hexdigest()[:16]}.jsonl"
        uri = store.write_bytes(f"{prefix}/{hour:%Y/%m/%d/%H}/{name}", data)
        report.files.append({"uri": uri, "labelled_hour": iso_z(hour), "labels": data.count(b"\n")})
    return report


def parse_labelled_at(text: str | None) -> datetime | None:
    return parse_time(text, "--labelled-at") if text else None

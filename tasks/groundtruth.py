"""Ground truth for model-quality monitoring: SageMaker ground-truth JSONL in and out, and the merge of
a capture window with the labels that arrived for it. Plain functions; flows/merge.py orchestrates.

Store layout (see DESIGN.md, "The store"):

    groundtruth/<endpoint>/YYYY/MM/DD/HH/<name>.jsonl       labels, by the UTC hour they were labelled
    merged/<endpoint>/YYYY/MM/DD/HH/part-00000.jsonl        capture record + groundTruthData, by the
                                                            hour folder the capture was written to
    merged/<endpoint>/reports/<window>.json                 the MergeReport, written last
    merged/<endpoint>/reports/<window>.quarantine.jsonl     malformed lines, unknown and superseded labels
    merged/<endpoint>/reports/<window>.running.json         while a merge of the window runs

Join id: a ground-truth record's eventMetadata.eventId holds the capture's inferenceId when the caller
sent one, else the capture's eventId. One capture line is one invocation and one join record, however
many rows its request carried (SageMaker's label `data` then carries that many labels).

Merging the window [start, end) with lookback L reads the window's capture records and the labels
labelled in [start - L, end + L): a label may be labelled before its capture's hour folder (clocks,
late capture files) as well as after. The merge is a function of the captures and labels in the store
alone, so the order in which windows are merged never changes what is merged. Of the labels read,
the latest of each id wins (by the label's own eventMetadata.labelledAt when it has one, else its
hour folder; then by upload: the file written last; then file name and line). Every label read is
exactly one of:
  matched   its id is a capture record of the window;
  pending   its id is a capture record elsewhere in [start - L, end + L): that window's merge reads it;
  unknown   its id matches no capture record in [start - L, end + L): reported, not merged;
  duplicate superseded by a later label of its id.
Windows are whole UTC hours, so every capture record belongs to exactly one window.

Records are Arrow tables, never Python objects per line: lines in SageMaker's compact layout are read
by tasks/jsonl_layout.py, other lines by orjson; a merged record is the captured line's bytes with the
label spliced in. The merge runs in parts (resolve the labels once, then `merge_part` over bounded
groups of capture hours, then `classify`), so memory follows the labels and one part, not the window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import Field

from modelwatch.tasks.capture import arrow_owned, quarantine_entry, record_time
from modelwatch.tasks.documents import Document
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.jsonl_layout import (
    PLAIN,
    STRING,
    Layout,
    LayoutMatch,
    arrow_lines,
    as_text,
    match_layouts,
)
from modelwatch.tasks.store import Store, check_slug, filesystem_for
from modelwatch.tasks.windows import check_window, iso_z, parse_duration, parse_time

GROUNDTRUTH = "groundtruth"
MERGED = "merged"
PART_NAME = "part-00000.jsonl"
STAMP = "%Y%m%dT%H%M%SZ"
ENCODINGS = ("CSV", "JSON")

TEXT = pa.large_string()
BYTES = pa.large_binary()
HOUR = pa.timestamp("us", tz="UTC")
FILE = pa.dictionary(pa.int32(), TEXT)  # one file name for thousands of rows
# raw: the captured line's bytes, newline-terminated; only when read with keep_raw.
CAPTURE_SCHEMA = pa.schema([("id", TEXT), ("event_id", TEXT), ("inference_id", TEXT),
                            ("inference_time", TEXT), ("hour", HOUR), ("file", FILE),
                            ("line", pa.int64()), ("raw", BYTES)])
# truth: the groundTruthData object as merged records carry it, {"data":...,"encoding":...}.
# labelled_at: the hour folder; labelled_time: eventMetadata.labelledAt when the line has it, else the
# hour folder; uploaded: when its file was written (the store's modification time).
LABEL_SCHEMA = pa.schema([("id", TEXT), ("data", TEXT), ("encoding", TEXT), ("truth", BYTES),
                          ("labelled_at", HOUR), ("labelled_time", HOUR), ("uploaded", HOUR),
                          ("file", FILE), ("line", pa.int64())])
LABEL_COLUMNS = LABEL_SCHEMA.names

_ID = PLAIN + "+"
_VALUE = f"(?:{STRING}|null)"
_FLAT = r"\{(?:" + STRING + ":" + _VALUE + "(?:," + STRING + ":" + _VALUE + r")*)?\}"
# captureData holds flat objects of strings (endpointInput, endpointOutput); the layout's tail closes it.
_CAPTURE_HEAD = r'\{"captureData":\{(?:' + STRING + ":" + _FLAT + "(?:," + STRING + ":" + _FLAT + ")*)?"
_METADATA = ('},"eventMetadata":{"eventId":"<event_id>"{inference},"inferenceTime":"<inference_time>"},'
             '"eventVersion":"0"}')
UUID = 36  # characters of SageMaker's eventId
SECONDS = 20  # characters of SageMaker's inferenceTime, 2026-11-23T00:30:00Z
_NO_INFERENCE_ID = _METADATA.replace("{inference}", "")
# SageMaker's capture line, without and with the caller's InferenceId; the first (the usual line)
# has its fields cut by position, the others by splitting its tail at quotes.
CAPTURE_LAYOUTS = [
    Layout(_CAPTURE_HEAD, _NO_INFERENCE_ID, {"event_id": UUID, "inference_time": SECONDS}),
    Layout(_CAPTURE_HEAD, _NO_INFERENCE_ID, {"event_id": _ID, "inference_time": PLAIN + "*"}),
    Layout(_CAPTURE_HEAD, _METADATA.replace("{inference}", ',"inferenceId":"<inference_id>"'),
           {"event_id": _ID, "inference_id": _ID, "inference_time": PLAIN + "*"}),
]
# The ground-truth line `groundtruth upload` writes; data holds a non-blank character. The first
# layout (ids are UUIDs) is cut by position.
_LABEL = ('{"groundTruthData":{"data":"<data>","encoding":"CSV"},"eventMetadata":{"eventId":"<id>"},'
          '"eventVersion":"0"}')
_LABEL_DATA = PLAIN + r"*[!#-\[\]-~]" + PLAIN + "*"
# ... and with the label's own time, as `groundtruth upload` writes it (LABEL_TIME characters).
_TIMED_LABEL = _LABEL.replace('"<id>"}', '"<id>","labelledAt":"<at>"}')
LABEL_TIME = 27  # 2026-11-24T10:30:00.000000Z
LABEL_LAYOUTS = [Layout("", _TIMED_LABEL, {"data": _LABEL_DATA, "id": UUID, "at": LABEL_TIME}),
                 Layout("", _TIMED_LABEL, {"data": _LABEL_DATA, "id": _ID, "at": LABEL_TIME}),
                 Layout("", _LABEL, {"data": _LABEL_DATA, "id": UUID}),
                 Layout("", _LABEL, {"data": _LABEL_DATA, "id": _ID})]



# ---- small helpers ----

def window_stamp(start: datetime, end: datetime) -> str:
    return f"{start.astimezone(UTC).strftime(STAMP)}_{end.astimezone(UTC).strftime(STAMP)}"


def groundtruth_prefix(endpoint: str) -> str:
    return f"{GROUNDTRUTH}/{check_slug(endpoint, 'endpoint name')}"


def merged_prefix(endpoint: str) -> str:
    return f"{MERGED}/{check_slug(endpoint, 'endpoint name')}"


def merged_key(endpoint: str, hour: datetime) -> str:
    return f"{merged_prefix(endpoint)}/{hour:%Y/%m/%d/%H}/{PART_NAME}"


def report_key(endpoint: str, start: datetime, end: datetime) -> str:
    return f"{merged_prefix(endpoint)}/reports/{window_stamp(start, end)}.json"


def quarantine_key(endpoint: str, start: datetime, end: datetime) -> str:
    return f"{merged_prefix(endpoint)}/reports/{window_stamp(start, end)}.quarantine.jsonl"


def running_key(endpoint: str, start: datetime, end: datetime) -> str:
    """Present while a merge of the window runs (or after one died midway)."""
    return f"{merged_prefix(endpoint)}/reports/{window_stamp(start, end)}.running.json"


def _times(values: list[Any]) -> pa.Array:
    """Datetimes or ISO-8601 texts as UTC timestamps; anything else (a template such as "{%s}") null."""
    parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601")
    return pa.array(parsed, from_pandas=True).cast(HOUR, safe=False)


def _constant(value: Any, kind: pa.DataType, size: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, kind), size)


def _file_column(source: str, size: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(size, np.int32)), pa.array([source], TEXT))


def _sorted(table: pa.Table, keys: list[str]) -> pa.Table:
    """The table sorted by the keys, ascending, nulls last (Arrow sorts no dictionary column: file
    names are sorted as text)."""
    if table.num_rows < 2:
        return table
    columns = {k: pc.cast(table[k], TEXT) if pa.types.is_dictionary(table[k].type) else table[k]
               for k in keys}
    order = pc.sort_indices(pa.table(columns), sort_keys=[(k, "ascending") for k in keys])
    return table.take(order)


def _concat_in_line_order(parts: list[pa.Table]) -> pa.Table:
    """Rows read by layout and rows read by the full parser, back in line order."""
    if len(parts) == 1:
        return parts[0]
    return _sorted(pa.concat_tables(parts).combine_chunks(), ["line"])


def _layout_lines(data: bytes | pa.Buffer,
                  layouts: list[Layout]) -> tuple[pa.LargeBinaryArray | None, LayoutMatch | None]:
    """The file's lines and what the layouts read of them; (None, None) when the whole file is left
    to the full parser (a carriage return, or bytes that are not UTF-8)."""
    lines = arrow_lines(data)
    text = as_text(lines) if lines is not None else None
    if lines is None or text is None:
        return None, None
    return lines, match_layouts(text, layouts)


def _other_lines(data: bytes | pa.Buffer, lines: pa.LargeBinaryArray | None,
                 found: LayoutMatch | None, blank: list[int]) -> Iterator[tuple[int, bytes]]:
    """(1-based number, stripped bytes) of the non-blank lines no layout read, for the full parser;
    blank lines are counted in blank[0]."""
    if lines is None or found is None:
        whole = data if isinstance(data, bytes) else data.to_pybytes()
        numbered: Iterator[tuple[int, bytes]] = enumerate(whole.splitlines(), start=1)
    else:
        numbered = ((int(i) + 1, lines[int(i)].as_py()) for i in found.rest)
    for number, raw in numbered:
        raw = raw.strip()
        if raw:
            yield number, raw
        else:
            blank[0] += 1


# ---- reading capture records for the join ----

@dataclass
class CaptureRecords:
    """Capture lines as join records: one CAPTURE_SCHEMA row per invocation (`raw` only when read
    with keep_raw), plus the quarantined lines."""

    table: pa.Table
    lines_read: int = 0
    files: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    blank_lines: int = 0


def capture_schema(keep_raw: bool = True) -> pa.Schema:
    return CAPTURE_SCHEMA if keep_raw else CAPTURE_SCHEMA.remove(CAPTURE_SCHEMA.get_field_index("raw"))


def empty_captures(keep_raw: bool = True) -> pa.Table:
    return capture_schema(keep_raw).empty_table()


def _capture_fields(raw: bytes) -> str | tuple[str, str | None, str | None]:
    """Why a line is not a capture record, or its (eventId, inferenceId, inferenceTime)."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "line is not valid JSON"
    if not isinstance(record, dict) or not isinstance(record.get("captureData"), dict):
        return "record has no captureData object"
    meta = record.get("eventMetadata")
    if not isinstance(meta, dict):
        return "record has no eventMetadata object"
    event_id = meta.get("eventId")
    if not isinstance(event_id, str) or not event_id:
        return "eventMetadata.eventId is missing or not a string"
    inference_id = meta.get("inferenceId")
    if inference_id is not None and (not isinstance(inference_id, str) or not inference_id):
        return "eventMetadata.inferenceId is not a non-empty string"
    moment = meta.get("inferenceTime")
    return event_id, inference_id, moment if isinstance(moment, str) else None


def _captures_by_layout(lines: pa.LargeBinaryArray, found: LayoutMatch, keep_raw: bool) -> pa.Table:
    columns = {name: found.columns[name] for name in ("event_id", "inference_id", "inference_time")}
    columns["line"] = pa.array(found.rows + 1)
    if keep_raw:
        columns["raw"] = lines if len(found.rows) == len(lines) else lines.take(pa.array(found.rows))
    return pa.table(columns)


def read_capture_records(data: bytes | pa.Buffer, source: str, hour: datetime | None = None,
                         keep_raw: bool = True) -> CaptureRecords:
    """Parse one capture file's lines into join records; bad lines go to quarantine with a reason.

    `hour` is the file's hour folder, the record's capture hour; without it the hour comes from
    inferenceTime (null when that is not a time, as in SageMaker's templated SDK fixtures). Payloads
    are not decoded: the merged line carries the captured line's bytes unchanged.
    """
    lines, found = _layout_lines(data, CAPTURE_LAYOUTS)
    rows: dict[str, list[Any]] = {"event_id": [], "inference_id": [], "inference_time": [], "line": [],
                                  "raw": []}
    quarantine: list[dict[str, Any]] = []
    lines_read = len(found.rows) if found is not None else 0
    blank = [0]
    for number, raw in _other_lines(data, lines, found, blank):
        lines_read += 1
        outcome = _capture_fields(raw)
        if isinstance(outcome, str):
            quarantine.append(quarantine_entry(source, number, outcome, raw))
            continue
        for name, value in zip(rows, (*outcome, number, raw + b"\n"), strict=True):
            rows[name].append(value)
    parts = []
    if lines is not None and found is not None and len(found.rows):
        parts.append(_captures_by_layout(lines, found, keep_raw))
    if rows["line"]:
        if not keep_raw:
            del rows["raw"]
        parts.append(pa.table(rows, schema=pa.schema(
            [capture_schema(keep_raw).field(name) for name in rows])))
    if not parts:
        return CaptureRecords(empty_captures(keep_raw), lines_read, 1, quarantine, blank[0])
    table = _concat_in_line_order(parts)
    return CaptureRecords(_join_records(table, source, hour, keep_raw), lines_read, 1, quarantine,
                          blank[0])


def _join_records(table: pa.Table, source: str, hour: datetime | None, keep_raw: bool) -> pa.Table:
    """Capture rows completed with the join id, the capture hour and the file, in schema order."""
    size = table.num_rows
    hours = (_constant(hour, HOUR, size) if hour is not None
             else pc.floor_temporal(_times(table["inference_time"].to_pylist()), unit="hour"))
    columns = {
        "id": pc.coalesce(table["inference_id"], table["event_id"]),
        "hour": hours,
        "file": _file_column(source, size),
    }
    return pa.table({name: columns[name] if name in columns else table[name]
                     for name in capture_schema(keep_raw).names}, schema=capture_schema(keep_raw))


def concat_captures(batches: list[CaptureRecords], keep_raw: bool = True) -> CaptureRecords:
    tables = [b.table for b in batches if b.table.num_rows]
    return CaptureRecords(
        table=pa.concat_tables(tables) if tables else empty_captures(keep_raw),
        lines_read=sum(b.lines_read for b in batches),
        files=sum(b.files for b in batches),
        quarantine=[q for b in batches for q in b.quarantine],
        blank_lines=sum(b.blank_lines for b in batches),
    )


# ---- reading ground truth ----

@dataclass
class LabelBatch:
    """Ground-truth records (LABEL_SCHEMA rows) plus the quarantined lines."""

    table: pa.Table
    lines_read: int = 0
    files: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    blank_lines: int = 0


def empty_labels() -> pa.Table:
    return LABEL_SCHEMA.empty_table()


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
    # Ours, optional: a labelledAt that is not a time leaves the label ranked by its hour folder.
    at = meta.get("labelledAt")
    return event_id, data, encoding, at if record_time(at) is not None else None


def _label_fields(raw: bytes) -> str | tuple[str, str, str, str | None]:
    """Why a line is not a label, or its (id, data, encoding, labelledAt or None)."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "line is not valid JSON"
    return _label_problem(record)


def _labels_by_layout(found: LayoutMatch, source: str, labelled_at: datetime | None,
                      uploaded: datetime | None) -> pa.Table:
    size = len(found.rows)
    data = found.columns["data"]
    truth = pc.binary_join_element_wise(pa.scalar('{"data":"', TEXT), data,
                                        pa.scalar('","encoding":"CSV"}', TEXT), pa.scalar("", TEXT))
    hours = _constant(labelled_at, HOUR, size)
    at = found.columns.get("at")
    exact = _label_times(at) if at is not None and size else pa.nulls(size, HOUR)
    return pa.table({
        "id": found.columns["id"], "data": data, "encoding": _constant("CSV", TEXT, size),
        "truth": truth.cast(BYTES), "labelled_at": hours,
        "labelled_time": pc.coalesce(exact, hours), "uploaded": _constant(uploaded, HOUR, size),
        "file": _file_column(source, size), "line": pa.array(found.rows + 1),
    }, schema=LABEL_SCHEMA)


def _label_times(texts: pa.Array) -> pa.Array:
    """labelledAt texts as UTC times; one that is not a time is null (its hour folder ranks it)."""
    try:
        return pc.cast(texts, HOUR)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if t is None else record_time(t) for t in texts.to_pylist()], HOUR)


def parse_ground_truth(data: bytes | pa.Buffer, source: str, labelled_at: datetime | None = None,
                       uploaded: datetime | None = None) -> LabelBatch:
    """Parse one ground-truth JSONL file; bad lines go to quarantine with a reason.

    `labelled_at` is the file's hour folder and `uploaded` when the file was written (null when
    unknown: such labels rank oldest among duplicates). A label's eventMetadata.labelledAt, when
    present, is its own time and ranks it among duplicates before the hour folder does.
    """
    lines, found = _layout_lines(data, LABEL_LAYOUTS)
    rows: dict[str, list[Any]] = {name: [] for name in ("id", "data", "encoding", "truth", "at",
                                                         "line")}
    quarantine: list[dict[str, Any]] = []
    lines_read = len(found.rows) if found is not None else 0
    blank = [0]
    for number, raw in _other_lines(data, lines, found, blank):
        lines_read += 1
        outcome = _label_fields(raw)
        if isinstance(outcome, str):
            quarantine.append(quarantine_entry(source, number, outcome, raw))
            continue
        event_id, value, encoding, at = outcome
        rows["id"].append(event_id)
        rows["data"].append(value)
        rows["encoding"].append(encoding)
        rows["truth"].append(orjson.dumps({"data": value, "encoding": encoding}))
        rows["at"].append(record_time(at) if at is not None else labelled_at)
        rows["line"].append(number)
    parts = []
    if found is not None and len(found.rows):
        parts.append(_labels_by_layout(found, source, labelled_at, uploaded))
    if rows["id"]:
        size = len(rows["id"])
        parts.append(pa.table({
            "id": pa.array(rows["id"], TEXT), "data": pa.array(rows["data"], TEXT),
            "encoding": pa.array(rows["encoding"], TEXT), "truth": pa.array(rows["truth"], BYTES),
            "labelled_at": _constant(labelled_at, HOUR, size),
            "labelled_time": pa.array(rows["at"], HOUR),
            "uploaded": _constant(uploaded, HOUR, size), "file": _file_column(source, size),
            "line": pa.array(rows["line"], pa.int64())}, schema=LABEL_SCHEMA))
    table = _concat_in_line_order(parts) if parts else empty_labels()
    return LabelBatch(table, lines_read, 1, quarantine, blank[0])


def concat_labels(batches: list[LabelBatch]) -> LabelBatch:
    tables = [b.table for b in batches if b.table.num_rows]
    return LabelBatch(
        table=pa.concat_tables(tables) if tables else empty_labels(),
        lines_read=sum(b.lines_read for b in batches),
        files=sum(b.files for b in batches),
        quarantine=[q for b in batches for q in b.quarantine],
        blank_lines=sum(b.blank_lines for b in batches),
    )


# ---- resolving labels: one per id, the latest ----

@dataclass
class Labels:
    """The labels read for a merge, resolved to the latest label of each id.

    table: every distinct label read (LABEL_SCHEMA). ids: the distinct ids; latest[k] is the table
    row of the latest label of ids[k] and truth[k] its groundTruthData, ready to splice. superseded:
    the other labels, each with the label that replaced it (`kept_file`, `kept_line`) and whether
    its data differed (`conflict`).
    """

    table: pa.Table
    ids: pa.Array
    latest: np.ndarray
    truth: pa.Array
    superseded: pa.Table

    @property
    def read(self) -> int:
        return self.table.num_rows

    @property
    def conflicts(self) -> int:
        return int(pc.sum(self.superseded["conflict"]).as_py() or 0)

    def kept(self, which: np.ndarray | None = None) -> pa.Table:
        """The latest labels (LABEL_SCHEMA): all, or those of the ids `which` selects."""
        return _take(self.table, self.latest if which is None else self.latest[which])


def _take(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """Rows of a table, in the given order, chunk by chunk: Arrow's take on a chunked column first
    concatenates all its chunks, a copy of every label read for a handful of rows."""
    rows = np.asarray(rows, np.int64)
    order = np.argsort(rows, kind="stable")
    ascending = rows[order]
    pieces, start = [], 0
    for batch in table.to_batches():
        low, high = np.searchsorted(ascending, [start, start + batch.num_rows])
        if high > low:
            pieces.append(batch.take(pa.array(ascending[low:high] - start)))
        start += batch.num_rows
    taken = pa.Table.from_batches(pieces, schema=table.schema).combine_chunks()
    return taken.take(pa.array(np.argsort(order))) if len(rows) > 1 else taken


@dataclass
class _Latest:
    ids: pa.Array
    latest: np.ndarray
    superseded: np.ndarray  # rows replaced by a later label of their id
    winners: np.ndarray  # for each, the row that replaced it


def _latest_per_id(labels: pa.Table) -> _Latest:
    """The latest label of each id by its own time, upload, file, line (unknown times oldest).
    Hashing finds the repeated ids; only their rows are sorted."""
    chunks = pc.dictionary_encode(labels["id"]).chunks  # chunks share one dictionary
    ids = chunks[0].dictionary if chunks else pa.array([], TEXT)
    codes = (np.concatenate([c.indices.to_numpy() for c in chunks]) if chunks
             else np.zeros(0, np.int32))
    repeated = np.bincount(codes, minlength=len(ids))[codes] > 1
    latest = np.empty(len(ids), np.int64)
    single = np.flatnonzero(~repeated)
    latest[codes[single]] = single
    rows = np.flatnonzero(repeated)
    if len(rows) == 0:
        return _Latest(ids, latest, rows, rows)
    ranked = _take(labels.select(["labelled_time", "uploaded", "file", "line"]), rows)
    oldest = np.iinfo(np.int64).min
    keys = pa.table({
        "code": codes[rows],
        "at": pc.fill_null(pc.cast(ranked["labelled_time"], pa.int64()), oldest),
        "uploaded": pc.fill_null(pc.cast(ranked["uploaded"], pa.int64()), oldest),
        "file": pc.cast(ranked["file"], TEXT), "line": ranked["line"],
    })
    order = rows[pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in keys.column_names])
                 .to_numpy()]
    grouped = codes[order]
    starts = np.r_[True, grouped[1:] != grouped[:-1]]
    last = np.r_[starts[1:], True]
    winners = order[last]
    latest[grouped[last]] = winners
    return _Latest(ids, latest, order[~last], winners[(np.cumsum(starts) - 1)[~last]])


def _superseded(labels: pa.Table, found: _Latest) -> pa.Table:
    old = _take(labels, found.superseded)
    new = _take(labels.select(["file", "line", "truth"]), found.winners)
    old = old.append_column("kept_file", new["file"]).append_column("kept_line", new["line"])
    old = old.append_column("conflict", pc.not_equal(old["truth"], new["truth"]))
    return _sorted(old, ["file", "line"])


def resolve_labels(labels: pa.Table) -> Labels:
    """Labels read from label files, in any order, down to the latest label per id."""
    found = _latest_per_id(labels)
    truth = _array(pc.take(labels["truth"], pa.array(found.latest)))
    return Labels(labels, found.ids, found.latest, truth, _superseded(labels, found))


# ---- merging capture records with the labels ----

def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if not isinstance(values, pa.ChunkedArray):
        return values
    return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()


def label_positions(ids: pa.Array | pa.ChunkedArray, labelled: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """For each capture id, its position among the distinct labelled ids (-1 for none), and the
    distinct capture ids without a label.

    Arrow builds its hash table on the value set at every call: this builds it on the captures
    (a bounded part of the window) and probes the labels, rather than hashing every label again.
    """
    encoded = pc.dictionary_encode(_array(ids))
    distinct, codes = encoded.dictionary, encoded.indices.to_numpy()
    where = pc.index_in(labelled, value_set=distinct)
    matched = where.is_valid().to_numpy(zero_copy_only=False)
    of_distinct = np.full(len(distinct), -1, np.int64)
    # labelled ids are distinct, so each distinct capture id has at most one position.
    of_distinct[where.drop_null().to_numpy()] = np.flatnonzero(matched)
    return of_distinct[codes], distinct.filter(pa.array(of_distinct < 0))


def _hour_runs(hours: pa.ChunkedArray) -> Iterator[tuple[datetime | None, int, int]]:
    """(hour, start, stop) of each run of equal hours in a column sorted by hour."""
    values = pc.fill_null(pc.cast(hours, pa.int64()), np.iinfo(np.int64).max).to_numpy()
    bounds = np.r_[0, np.flatnonzero(values[1:] != values[:-1]) + 1, len(values)]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        yield hours[int(start)].as_py(), int(start), int(stop)


_OPEN = pa.scalar(b'{"groundTruthData":', BYTES)
_COMMA = pa.scalar(b",", BYTES)
_NOTHING = pa.scalar(b"", BYTES)


def merged_jsonl(truth: pa.Array, raw: pa.Array) -> memoryview:
    """SageMaker merged records: each captured line with groundTruthData spliced in as its first key;
    a line whose truth is null is left out. A view of Arrow memory: written as it is, not copied.

    Splicing into the captured bytes (rather than re-serialising) keeps captureData and
    eventMetadata exactly as captured; readers must not depend on key order (SageMaker's own
    merge writes eventVersion first).
    """
    body = pc.binary_replace_slice(raw, 0, 1, b"")  # the line without its opening brace
    # A null truth makes a null line, which adds no bytes: no copy of the matched lines first.
    lines = pc.binary_join_element_wise(_OPEN, truth, _COMMA, body, _NOTHING)
    return _concatenated(lines)


def _concatenated(values: pa.Array) -> memoryview:
    """The bytes of a (large) binary or text array's values, end to end, without a copy (a null
    value adds nothing)."""
    if len(values) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(values.buffers()[1], np.int64)[values.offset:values.offset + len(values) + 1]
    return memoryview(values.buffers()[2][int(offsets[0]):int(offsets[-1])])


@dataclass
class MergedPart:
    """What merging some capture records made: records merged per capture hour, what the records
    used (`labels_hit`: positions in Labels.ids, repeats allowed) and the distinct ids of the
    records without a label (to count repeated ids across parts)."""

    counts: dict[datetime | None, int]
    captures: int
    matched: int
    labels_hit: np.ndarray
    unlabelled_ids: pa.Array


HourWriter = Callable[[datetime | None, memoryview], None]


def merge_part(captures: pa.Table, labels: Labels, write: HourWriter) -> MergedPart:
    """Merge capture records (with raw), given in output order: capture hour, file, line. Each
    capture hour's merged JSONL goes to `write` as soon as it is made, so a part holds one hour of
    output at a time (an hour without a merged record is not written)."""
    positions, distinct = label_positions(captures["id"], labels.ids)
    hit = positions >= 0
    counts: dict[datetime | None, int] = {}
    for hour, start, stop in _hour_runs(captures["hour"]) if captures.num_rows else ():
        found = positions[start:stop]
        if count := int(hit[start:stop].sum()):
            truth = labels.truth.take(pa.array(found, mask=found < 0))
            write(hour, merged_jsonl(truth, _array(captures["raw"].slice(start, stop - start))))
            counts[hour] = count
    return MergedPart(counts, captures.num_rows, int(hit.sum()), positions[hit], distinct)


@dataclass
class WindowMerge:
    """The merged parts of a window added up: capture counts, and which labels were matched."""

    hits: np.ndarray  # one boolean per id of Labels.ids
    captures_read: int = 0
    captures_matched: int = 0
    capture_duplicate_ids: int = 0  # records whose join id an earlier record of the window has
    merged_by_hour: dict[datetime, int] = field(default_factory=dict)

    @classmethod
    def of(cls, parts: list[MergedPart], labels: Labels) -> WindowMerge:
        hits = np.zeros(len(labels.ids), bool)
        by_hour: dict[datetime, int] = {}
        for part in parts:
            hits[part.labels_hit] = True
            for hour, count in part.counts.items():
                if hour is not None:
                    by_hour[hour] = by_hour.get(hour, 0) + count
        read = sum(p.captures for p in parts)
        matched = sum(p.matched for p in parts)
        # Records sharing an id share its label, if any: repeats are the records beyond one per
        # label hit, and beyond one per distinct unlabelled id (a much smaller set to hash).
        unlabelled = [p.unlabelled_ids for p in parts if len(p.unlabelled_ids)]
        distinct = pc.count_distinct(pa.chunked_array(unlabelled, TEXT)).as_py() if unlabelled else 0
        repeats = matched - int(hits.sum()) + (read - matched) - distinct
        return cls(hits, read, matched, repeats, dict(sorted(by_hour.items())))


def classify(labels: Labels, hits: np.ndarray, context: pa.Table | None) -> tuple[pa.Table, pa.Table]:
    """The latest labels no window record matched, as pending (with `capture_hour`, one row per
    hour their id was captured in the searched range outside the window: that window's merge reads
    them) and unknown."""
    rest = labels.kept(~hits)
    if context is None or not context.num_rows or not rest.num_rows:
        pending = rest.slice(0, 0).append_column("capture_hour", pa.array([], HOUR))
        return pending, _sorted(rest, ["file", "line"])
    in_context = pc.is_in(rest["id"], value_set=context["id"])
    waiting = rest.filter(in_context)
    places = context.filter(pc.is_in(context["id"], value_set=waiting["id"])).select(["id", "hour"])
    places = places.group_by(["id", "hour"]).aggregate([]).rename_columns(["id", "capture_hour"])
    pending = waiting.join(places, keys="id", join_type="inner").select([*LABEL_COLUMNS, "capture_hour"])
    return (_sorted(pending, ["capture_hour", "file", "line"]),
            _sorted(rest.filter(pc.invert(in_context)), ["file", "line"]))


@dataclass
class JoinResult:
    """A window's capture records joined with its labels.

    merged: the merged JSONL by capture hour (None: records without an hour). pending: labels
    (LABEL_SCHEMA + capture_hour) for a capture elsewhere in the searched range, one row per such
    hour (that hour's merge reads them). unknown: labels reported and not merged. superseded:
    labels replaced by a later one.
    """

    labels: Labels
    window: WindowMerge
    pending: pa.Table
    unknown: pa.Table
    merged: dict[datetime | None, bytes] = field(default_factory=dict)

    def merged_lines(self) -> list[bytes]:
        return [line for data in self.merged.values() for line in data.splitlines()]

    @property
    def superseded(self) -> pa.Table:
        return self.labels.superseded

    @property
    def captures_read(self) -> int:
        return self.window.captures_read

    @property
    def captures_matched(self) -> int:
        return self.window.captures_matched

    @property
    def captures_unmatched(self) -> int:
        return self.window.captures_read - self.window.captures_matched

    @property
    def capture_duplicate_ids(self) -> int:
        return self.window.capture_duplicate_ids

    @property
    def labels_read(self) -> int:
        return self.labels.read

    @property
    def labels_matched(self) -> int:
        return int(self.window.hits.sum())

    @property
    def labels_pending(self) -> int:  # labels, not rows: a label can wait under several hours
        return len(self.labels.ids) - self.labels_matched - self.unknown.num_rows

    @property
    def labels_unknown(self) -> int:
        return self.unknown.num_rows

    @property
    def labels_duplicate(self) -> int:
        return self.labels.superseded.num_rows

    @property
    def label_conflicts(self) -> int:
        return self.labels.conflicts


def join_ground_truth(captures: pa.Table, labels: pa.Table,
                      context: pa.Table | None = None) -> JoinResult:
    """Join a window's capture records (CAPTURE_SCHEMA, with raw, in any order) with every
    candidate label (LABEL_SCHEMA, from the label range, in any order). context: `id` and `hour` of
    the capture records in the searched range outside the window. The flow runs the same steps in
    parts; this is the whole window at once.
    """
    resolved = resolve_labels(labels)
    merged: dict[datetime | None, bytes] = {}
    part = merge_part(_sorted(captures, ["hour", "file", "line"]), resolved,
                      lambda hour, data: merged.__setitem__(hour, bytes(data)))
    window = WindowMerge.of([part], resolved)
    pending_labels, unknown = classify(resolved, window.hits, context)
    return JoinResult(resolved, window, pending_labels, unknown, merged)


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
    capture_blank_lines: int = 0
    label_files: int = 0
    labels_read: int = 0  # distinct well-formed labels read
    labels_malformed: int = 0
    label_blank_lines: int = 0
    labels_matched: int = 0
    labels_pending: int = 0  # captured elsewhere in the searched range: that window's merge reads them
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


@dataclass
class ReadCounts:
    """What a merge read besides the records it joined: files, lines and malformed lines."""

    capture_files: int = 0
    capture_lines: int = 0
    captures_malformed: int = 0
    capture_blank_lines: int = 0
    label_files: int = 0
    labels_malformed: int = 0
    label_blank_lines: int = 0


def merge_report(result: JoinResult, read: ReadCounts, *, endpoint: str, start: datetime,
                 end: datetime, lookback: str) -> MergeReport:
    """The report of one window's merge, from its join result and what it read."""
    start, end = check_window(start, end)
    reach = parse_duration(lookback, "lookback")
    report = MergeReport(
        endpoint=endpoint, window_start=start, window_end=end, lookback=lookback.strip().upper(),
        labels_from=start - reach, labels_until=end + reach,
        captures_searched_from=start - reach, captures_searched_until=end + reach,
        capture_files=read.capture_files, captures_read=result.captures_read,
        captures_malformed=read.captures_malformed, captures_matched=result.captures_matched,
        captures_unmatched=result.captures_unmatched,
        capture_duplicate_ids=result.capture_duplicate_ids,
        capture_blank_lines=read.capture_blank_lines, label_files=read.label_files,
        labels_read=result.labels_read, labels_malformed=read.labels_malformed,
        label_blank_lines=read.label_blank_lines,
        labels_matched=result.labels_matched, labels_pending=result.labels_pending,
        labels_unknown=result.labels_unknown, labels_duplicate=result.labels_duplicate,
        label_conflicts=result.label_conflicts,
        merged_by_hour={iso_z(h): n for h, n in result.window.merged_by_hour.items()},
    )
    if read.capture_lines == 0:
        report.notes.append("no capture records in the window")
    if report.labels_read == 0:
        report.notes.append("no ground truth for the window yet")
    return report


def merge_window(captures: CaptureRecords, labels: LabelBatch, context: pa.Table | None, *,
                 endpoint: str, start: datetime, end: datetime,
                 lookback: str = "P7D") -> tuple[MergeReport, JoinResult]:
    """The whole merge of one window as a function of what was read: the report and the result."""
    check_window(start, end)
    parse_duration(lookback, "lookback")
    result = join_ground_truth(captures.table, labels.table, context)
    read = ReadCounts(capture_files=captures.files, capture_lines=captures.lines_read,
                      captures_malformed=len(captures.quarantine),
                      capture_blank_lines=captures.blank_lines, label_files=labels.files,
                      labels_malformed=len(labels.quarantine), label_blank_lines=labels.blank_lines)
    return merge_report(result, read, endpoint=endpoint, start=start, end=end, lookback=lookback), result


# ---- what a merge writes ----

def quarantine_lines(malformed_captures: list[dict[str, Any]], malformed_labels: list[dict[str, Any]],
                     result: JoinResult, report: MergeReport) -> bytes:
    """Everything the merge read but did not merge or keep pending, each with its reason. Unknown
    and superseded labels can be many: their lines are built column-wise, in orjson's bytes."""
    entries: list[dict[str, Any]] = [{"kind": "malformed_capture", **q} for q in malformed_captures]
    entries += [{"kind": "malformed_label", **q} for q in malformed_labels]
    searched = f"[{iso_z(report.captures_searched_from)}, {iso_z(report.captures_searched_until)})"
    unknown, sup = result.unknown, result.superseded
    unknown_lines = _joined(
        '{"kind":"unknown_label","file":', _json_text(unknown["file"]),
        ',"line":', pc.cast(unknown["line"], TEXT), ',"id":', _json_text(unknown["id"]),
        ',"reason":' + orjson.dumps(f"no capture record with this id in {searched}").decode() + "}\n")
    reasons = _joined("superseded by the later label at ", pc.cast(sup["kept_file"], TEXT),
                      " line ", pc.cast(sup["kept_line"], TEXT))
    superseded_lines = _joined(
        '{"kind":"superseded_label","file":', _json_text(sup["file"]), ',"line":',
        pc.cast(sup["line"], TEXT), ',"id":', _json_text(sup["id"]), ',"conflict":',
        pc.if_else(sup["conflict"], pa.scalar("true", TEXT), pa.scalar("false", TEXT)),
        ',"reason":', _json_text(reasons), "}\n")
    return b"".join([*(orjson.dumps(e) + b"\n" for e in entries), bytes(_concatenated(unknown_lines)),
                     bytes(_concatenated(superseded_lines))])


def _joined(*parts: str | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Texts and text columns joined row by row."""
    columns = [pa.scalar(p, TEXT) if isinstance(p, str) else p for p in parts]
    return _array(pc.binary_join_element_wise(*columns, pa.scalar("", TEXT)))


def _json_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each text as orjson writes a JSON string: quoted as it is, unless it holds a quote, a
    backslash or a control character (rare: those few go through orjson)."""
    text = _array(pc.cast(values, TEXT))
    plain = pc.match_substring_regex(text, f"^{PLAIN}*$")
    quoted = _joined('"', text, '"')
    if pc.all(plain).as_py():
        return quoted
    escaped = [None if ok else orjson.dumps(v).decode()
               for v, ok in zip(text.to_pylist(), plain.to_pylist(), strict=True)]
    return pc.if_else(plain, quoted, pa.array(escaped, TEXT))


def merge_outputs(result: JoinResult, endpoint: str) -> dict[str, bytes]:
    """Store key -> bytes of the merged hour files of one merge."""
    if None in result.merged:
        raise ValueError("capture records without an hour folder cannot be filed by hour")
    return {merged_key(endpoint, hour): data for hour, data in sorted(result.merged.items())}


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


def label_stamp(moment: datetime) -> str:
    """eventMetadata.labelledAt as uploads write it: UTC, microseconds, Z (LABEL_TIME characters)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ground_truth_line(event_id: str, label: str, labelled_at: datetime | None = None,
                      encoding: str = "CSV") -> bytes:
    """A SageMaker ground-truth record; with labelled_at, the label's own time in
    eventMetadata.labelledAt (ours: it orders relabellings within an hour)."""
    at = b',"labelledAt":"' + label_stamp(labelled_at).encode() + b'"' if labelled_at else b""
    return (b'{"groundTruthData":{"data":' + orjson.dumps(label) + b',"encoding":"'
            + encoding.encode() + b'"},"eventMetadata":{"eventId":' + orjson.dumps(event_id)
            + at + b'},"eventVersion":"0"}\n')


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
    exact = list(stamps)
    skipped: dict[str, list[int]] = {"missing_id": [], "missing_label": [], "bad_labelled_at": []}
    by_hour: dict[datetime, list[bytes]] = {}
    seen: set[str] = set()
    repeated = 0
    for row, (event_id, label, hour, moment) in enumerate(zip(ids, labels, hours, exact, strict=True),
                                                          start=1):
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
                ground_truth_line(event_id, label, moment.to_pydatetime()))
    return {h: b"".join(lines) for h, lines in sorted(by_hour.items())}, skipped, repeated


def write_ground_truth(store: Store, endpoint: str, source: str, id_column: str, label_column: str,
                       *, labelled_at: datetime | None = None,
                       labelled_at_column: str | None = None) -> UploadReport:
    """Write a labelled dataset's rows as ground truth under groundtruth/<endpoint>/YYYY/MM/DD/HH/.

    A file is named after its upload time and its content (labels-<UTC stamp>-<sha256 prefix>.jsonl):
    names in an hour folder sort in upload order (which decides between relabellings of one id with
    the same time), and uploading the same labels again replaces the earlier file of that content
    instead of adding duplicates.
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
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    for hour, data in files.items():
        digest = hashlib.sha256(data).hexdigest()[:16]
        folder = f"{prefix}/{hour:%Y/%m/%d/%H}"
        earlier = [k for k in store.list(folder) if k.endswith(f"-{digest}.jsonl")
                   or k.endswith(f"/labels-{digest}.jsonl")]
        key = f"{folder}/labels-{stamp}-{digest}.jsonl"
        uri = store.write_bytes(key, data)
        for old in earlier:
            if old != key:
                store.delete(old)
        report.files.append({"uri": uri, "labelled_hour": iso_z(hour), "labels": data.count(b"\n")})
    return report


def parse_labelled_at(text: str | None) -> datetime | None:
    return parse_time(text, "--labelled-at") if text else None

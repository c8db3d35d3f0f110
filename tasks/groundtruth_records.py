"""Capture and ground-truth lines read into Arrow tables for the merge: SageMaker's compact line
layouts (tasks/jsonl_layout.py) first, orjson for the rest; malformed lines kept with their reason.
One capture line is one join record however many rows its request carried; its join id is the
caller's inferenceId when it sent one, else the eventId.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelwatch.tasks.capture import quarantine_entry, record_time
from modelwatch.tasks.groundtruth_layout import ENCODINGS
from modelwatch.tasks.jsonl_layout import (
    PLAIN,
    STRING,
    Layout,
    LayoutMatch,
    arrow_lines,
    as_text,
    match_layouts,
)

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



def _times(values: list[Any]) -> pa.Array:
    """Datetimes or ISO-8601 texts as UTC timestamps; anything else (a template such as "{%s}") null."""
    parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601")
    return pa.array(parsed, from_pandas=True).cast(HOUR, safe=False)


def _constant(value: Any, kind: pa.DataType, size: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, kind), size)


def _file_column(source: str, size: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(size, np.int32)), pa.array([source], TEXT))


def sorted_table(table: pa.Table, keys: list[str]) -> pa.Table:
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
    return sorted_table(pa.concat_tables(parts).combine_chunks(), ["line"])


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


def _event_metadata(record: dict[str, Any]) -> str | tuple[dict[str, Any], str]:
    """(eventMetadata, its eventId) of a capture or label record, or what is wrong with them."""
    meta = record.get("eventMetadata")
    if not isinstance(meta, dict):
        return "record has no eventMetadata object"
    event_id = meta.get("eventId")
    if not isinstance(event_id, str) or not event_id:
        return "eventMetadata.eventId is missing or not a string"
    return meta, event_id


def _capture_fields(raw: bytes) -> str | tuple[str, str | None, str | None]:
    """Why a line is not a capture record, or its (eventId, inferenceId, inferenceTime)."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "line is not valid JSON"
    if not isinstance(record, dict) or not isinstance(record.get("captureData"), dict):
        return "record has no captureData object"
    found = _event_metadata(record)
    if isinstance(found, str):
        return found
    meta, event_id = found
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


@dataclass
class _ReadLines:
    """One file's lines: those in a compact layout (`found`), the others parsed one by one."""

    lines: Any
    found: LayoutMatch | None
    parsed: list[tuple[int, bytes, tuple[Any, ...]]]
    quarantine: list[dict[str, Any]]
    lines_read: int
    blank: list[int]


def _read_lines(data: bytes | pa.Buffer, source: str, layouts: list[Layout],
                fields: Callable[[bytes], str | tuple[Any, ...]]) -> _ReadLines:
    """Lines in one of `layouts` are cut over Arrow buffers; each other line goes to `fields`, which
    returns its values or why it is malformed (the line then goes to quarantine)."""
    lines, found = _layout_lines(data, layouts)
    read = _ReadLines(lines, found, [], [], len(found.rows) if found is not None else 0, [0])
    for number, raw in _other_lines(data, lines, found, read.blank):
        read.lines_read += 1
        outcome = fields(raw)
        if isinstance(outcome, str):
            read.quarantine.append(quarantine_entry(source, number, outcome, raw))
        else:
            read.parsed.append((number, raw, outcome))
    return read


def read_capture_records(data: bytes | pa.Buffer, source: str, hour: datetime | None = None,
                         keep_raw: bool = True) -> CaptureRecords:
    """Parse one capture file's lines into join records; bad lines go to quarantine with a reason.

    `hour` is the file's hour folder, the record's capture hour; without it the hour comes from
    inferenceTime (null when that is not a time, as in SageMaker's templated SDK fixtures). Payloads
    are not decoded: the merged line carries the captured line's bytes unchanged.
    """
    read = _read_lines(data, source, CAPTURE_LAYOUTS, _capture_fields)
    lines, found, quarantine, lines_read, blank = (read.lines, read.found, read.quarantine,
                                                    read.lines_read, read.blank)
    rows: dict[str, list[Any]] = {"event_id": [], "inference_id": [], "inference_time": [], "line": [],
                                  "raw": []}
    for number, raw, outcome in read.parsed:
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
    found = _event_metadata(record)
    if isinstance(found, str):
        return found
    meta, event_id = found
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
    read = _read_lines(data, source, LABEL_LAYOUTS, _label_fields)
    found, quarantine, lines_read, blank = read.found, read.quarantine, read.lines_read, read.blank
    rows: dict[str, list[Any]] = {name: [] for name in ("id", "data", "encoding", "truth", "at",
                                                         "line")}
    for number, _raw, outcome in read.parsed:
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



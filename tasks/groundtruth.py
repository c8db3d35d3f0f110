"""Ground truth for model-quality monitoring: SageMaker ground-truth JSONL in and out, and the merge of
a capture window with the labels that arrived for it. Plain functions; flows/merge.py orchestrates.

The store layout is tasks/groundtruth_layout.py's, reading lines into Arrow tables is
tasks/groundtruth_records.py's, writing labels from a dataset tasks/groundtruth_upload.py's; this
module is the join, its report and what it writes.

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

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from modelwatch.tasks.documents import Document
from modelwatch.tasks.groundtruth_layout import merged_key
from modelwatch.tasks.groundtruth_records import (
    BYTES,
    HOUR,
    LABEL_COLUMNS,
    TEXT,
    CaptureRecords,
    LabelBatch,
    sorted_table,
)
from modelwatch.tasks.jsonl_layout import (
    PLAIN,
)
from modelwatch.tasks.windows import check_window, iso_z, parse_duration

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
    return sorted_table(old, ["file", "line"])


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


def _runs(captures: pa.Table) -> Iterator[tuple[datetime | None, str | None, int, int]]:
    """(hour, variant, start, stop) of each run of records of one capture hour and one variant, in
    a table sorted by hour (a table without a `variant` column has none)."""
    hours = captures["hour"]
    values = pc.fill_null(pc.cast(hours, pa.int64()), np.iinfo(np.int64).max).to_numpy()
    change = values[1:] != values[:-1]
    variants = captures["variant"] if "variant" in captures.column_names else None
    if variants is not None:
        codes = pc.fill_null(pc.cast(pc.dictionary_encode(variants).combine_chunks().indices,
                                     pa.int64()), -1).to_numpy()
        change |= codes[1:] != codes[:-1]
    bounds = np.r_[0, np.flatnonzero(change) + 1, len(values)]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        variant = variants[int(start)].as_py() if variants is not None else None
        yield hours[int(start)].as_py(), variant, int(start), int(stop)


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


HourWriter = Callable[[datetime | None, str | None, memoryview], None]  # hour, variant, JSONL


def merge_part(captures: pa.Table, labels: Labels, write: HourWriter) -> MergedPart:
    """Merge capture records (with raw), given in output order: capture hour, variant (when the
    table has a `variant` column), file, line. Each hour's merged JSONL of a variant goes to `write`
    as soon as it is made, so a part holds one hour of output at a time (an hour without a merged
    record is not written)."""
    positions, distinct = label_positions(captures["id"], labels.ids)
    hit = positions >= 0
    counts: dict[datetime | None, int] = {}
    for hour, variant, start, stop in _runs(captures) if captures.num_rows else ():
        found = positions[start:stop]
        if count := int(hit[start:stop].sum()):
            truth = labels.truth.take(pa.array(found, mask=found < 0))
            write(hour, variant, merged_jsonl(truth, _array(captures["raw"].slice(start,
                                                                                stop - start))))
            counts[hour] = counts.get(hour, 0) + count
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
        return pending, sorted_table(rest, ["file", "line"])
    in_context = pc.is_in(rest["id"], value_set=context["id"])
    waiting = rest.filter(in_context)
    places = context.filter(pc.is_in(context["id"], value_set=waiting["id"])).select(["id", "hour"])
    places = places.group_by(["id", "hour"]).aggregate([]).rename_columns(["id", "capture_hour"])
    pending = waiting.join(places, keys="id", join_type="inner").select([*LABEL_COLUMNS, "capture_hour"])
    return (sorted_table(pending, ["capture_hour", "file", "line"]),
            sorted_table(rest.filter(pc.invert(in_context)), ["file", "line"]))


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
    part = merge_part(sorted_table(captures, ["hour", "file", "line"]), resolved,
                      lambda hour, _variant, data: merged.__setitem__(hour, bytes(data)))
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



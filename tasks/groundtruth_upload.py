"""Writing SageMaker ground-truth JSONL from a labelled dataset (`modelwatch groundtruth upload`):
one line per label, filed by the hour it was labelled, with the label's own time when known."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from pydantic import Field

from modelwatch.tasks.capture import arrow_owned
from modelwatch.tasks.documents import Document
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.groundtruth_layout import groundtruth_prefix
from modelwatch.tasks.store import Store, filesystem_for
from modelwatch.tasks.windows import iso_z, parse_time

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

"""Read SageMaker data-capture JSONL (CSV, JSON and BASE64 encodings) and plain datasets into columns.

Every capture line either becomes one or more rows or goes to quarantine with its reason; nothing is
dropped silently. Values stay strings here: typing them (Integral, Fractional, String) is profiling's
job, so a changed type is seen rather than coerced away.
"""

from __future__ import annotations

import base64
import binascii
import csv
import gzip
import hashlib
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import TEMP_SUFFIX as TEMP_NAME
from modelwatch.tasks.store import filesystem_for
from modelwatch.tasks.windows import hour_of_path, iso_z

PREDICTION = "prediction"
# Capture files as SageMaker writes them, and gzip-compressed ones; others in the window are noted.
CAPTURE_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
DATASET_SUFFIXES = (".csv", ".parquet", ".pq")  # a data-quality "capture" that is one dataset file
QUARANTINE_RECORD_BYTES = 64 * 1024  # of a quarantined line, kept verbatim; longer ones are cut
# What to do with a record whose eventMetadata.inferenceTime is missing or unreadable.
UNTIMED_CHOICES = ("quarantine", "file-hour")
NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
_YEAR = re.compile(r"^\d{4}$")
_TWO = re.compile(r"^\d{2}$")
# Keys of a JSON prediction object that name the predicted value, best first.
_PREDICTION_KEYS = ("predicted_label", "label", "prediction", "score", "probability")


@dataclass
class CaptureBatch:
    """Rows parsed from capture lines, plus what was read, quarantined or skipped.

    CSV rows come as one table typed by Arrow's CSV reader (int64, double or string per column), JSON
    rows as another of string columns; profiling takes each table as it is and merges the profiles.
    """

    tables: list[pa.Table] = field(default_factory=list)
    records_read: int = 0
    records_outside_window: int = 0
    records_without_time: int = 0  # quarantined, or placed by their file's hour (untimed="file-hour")
    blank_lines: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    @property
    def records_malformed(self) -> int:
        return len(self.quarantine)

    @property
    def num_rows(self) -> int:
        return sum(t.num_rows for t in self.tables)

    @property
    def columns(self) -> dict[str, pa.Array]:
        """All rows as string columns (a column some rows lack is null there)."""
        if not self.tables:
            return {}
        as_text = [t.cast(pa.schema([(f.name, pa.string()) for f in t.schema])) for t in self.tables]
        table = pa.concat_tables(as_text, promote_options="default")
        return {name: table.column(name).combine_chunks() for name in table.column_names}


@dataclass
class SkippedFile:
    """A file in a window's hour folders that was not read, and why."""

    uri: str
    reason: str


@dataclass
class CaptureCounts:
    """What reading a window's capture files found, summed over files: records read, outside the
    window, without a usable time, blank lines, quarantined lines and files not read."""

    records_read: int = 0
    records_outside_window: int = 0
    records_without_time: int = 0
    blank_lines: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def add(self, batch: CaptureBatch) -> None:
        """Count one parsed file in."""
        self.records_read += batch.records_read
        self.records_outside_window += batch.records_outside_window
        self.records_without_time += batch.records_without_time
        self.blank_lines += batch.blank_lines
        self.quarantine.extend(batch.quarantine)


def list_capture_hours(capture_uri: str, start: datetime, end: datetime,
                       skipped: list[SkippedFile] | None = None) -> list[tuple[str, datetime]]:
    """(URI, hour folder) of the capture files of every variant in the hours overlapping [start, end).

    Lists what exists: the year, month and day folders under each variant that fall in the window,
    then one recursive listing per day (the merge searches a week or two around its window, and on S3
    each listing is a round trip), so a long window over a short history costs a few listings. A root
    whose sub-folders are years is read as a single variant's folder. Files in the window's hours that
    are not capture files (another suffix) are appended to `skipped`, never silently passed over.
    """
    fs, base = filesystem_for(capture_uri)
    protocol = "s3://" if capture_uri.startswith("s3://") else ""
    files: list[tuple[str, datetime]] = []
    for root in variant_roots(fs, base, capture_uri):
        for path, hour in files_in_hours(fs, root, start, end):
            if path.endswith(CAPTURE_SUFFIXES):
                files.append((protocol + path, hour))
            elif skipped is not None and not TEMP_NAME.search(path):
                skipped.append(SkippedFile(protocol + path, "not a capture file (expected "
                                           + ", ".join(CAPTURE_SUFFIXES) + ")"))
    return sorted(files)


def variant_roots(fs: Any, base: str, capture_uri: str) -> list[str]:
    """The folders holding YYYY/MM/DD/HH/ under a capture root: each variant's, or the root itself
    when its sub-folders are years. A root that does not exist is a UserError."""
    try:
        children = _names(fs, base)
    except FileNotFoundError:
        raise UserError(f"capture location {capture_uri} does not exist") from None
    if any(_YEAR.match(c) for c in children):
        return [base]
    return [f"{base}/{c}" for c in sorted(children)]


def day_span(fs: Any, root: str) -> tuple[str, str] | None:
    """The first and the last YYYY/MM/DD day folder under `root` (None when it has none): a few
    listings, to tell a user whose window holds nothing where the data is."""
    def pick(choose: Any) -> str | None:
        path = []
        for pattern in (_YEAR, _TWO, _TWO):
            names = [n for n in _listing(fs, "/".join([root, *path])) if pattern.match(n)]
            if not names:
                return None
            path.append(choose(names))
        return "/".join(path)

    first, last = pick(min), pick(max)
    return (first, last) if first and last else None


def files_in_hours(fs: Any, root: str, start: datetime, end: datetime) -> Iterator[tuple[str, datetime]]:
    """(path, hour) of the files right in the hour folders (<root>/YYYY/MM/DD/HH/<file>) of the hours
    overlapping [start, end): the day folders that exist, one recursive listing each."""
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    for day in existing_days(fs, root, start, end):
        try:
            found = fs.find(f"{root}/{day}", detail=False)
        except FileNotFoundError:
            continue
        for path in found:
            hour = hour_of_path(path)
            if hour is not None and first <= hour < end and path[len(root) + 1:].count("/") == 4:
                yield path, hour


def _names(fs: Any, path: str) -> list[str]:
    return [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)]


def existing_days(fs: Any, root: str, start: datetime, end: datetime) -> list[str]:
    """The YYYY/MM/DD folders under root that exist and overlap [start, end)."""
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    days: list[str] = []
    for year in sorted(n for n in _listing(fs, root) if _YEAR.match(n)
                       and first.year <= int(n) <= last.year):
        for month in sorted(n for n in _listing(fs, f"{root}/{year}") if _TWO.match(n)
                            and (first.year, first.month) <= (int(year), int(n))
                            <= (last.year, last.month)):
            for day in sorted(n for n in _listing(fs, f"{root}/{year}/{month}") if _TWO.match(n)):
                try:
                    moment = date(int(year), int(month), int(day))
                except ValueError:
                    continue
                if first <= moment <= last:
                    days.append(f"{year}/{month}/{day}")
    return days


def _listing(fs: Any, path: str) -> list[str]:
    try:
        return _names(fs, path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def list_capture_files(capture_uri: str, start: datetime, end: datetime,
                       skipped: list[SkippedFile] | None = None) -> list[str]:
    """URIs of capture files under <capture_uri>/<variant>/YYYY/MM/DD/HH/ for the window's hours."""
    return [uri for uri, _ in list_capture_hours(capture_uri, start, end, skipped)]


class UnreadableFile(Exception):
    """A whole file that cannot be read as capture (a broken gzip stream); the message says why."""


def decompressed(data: bytes, source: str) -> bytes:
    """The bytes of a capture file, gunzipped when they are gzip (by content, not by name)."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as problem:
        raise UnreadableFile(f"not a readable gzip file ({problem})") from None


class MalformedRecord(Exception):
    """A capture, ground-truth or merged line that cannot be read; the message is its reason."""


def quarantine_entry(source: str, line: int, reason: str, raw: bytes) -> dict[str, Any]:
    """One quarantine.jsonl entry: the file, the line number, why, and the line as it was; a line
    over QUARANTINE_RECORD_BYTES is cut there, with its full length and SHA-256 kept."""
    entry: dict[str, Any] = {"file": source, "line": line, "reason": reason}
    if len(raw) > QUARANTINE_RECORD_BYTES:
        entry["record"] = raw[:QUARANTINE_RECORD_BYTES].decode("utf-8", errors="replace")
        entry.update(record_truncated=True, record_bytes=len(raw),
                     record_sha256=hashlib.sha256(raw).hexdigest())
    else:
        entry["record"] = raw.decode("utf-8", errors="replace")
    return entry


def record_time(value: Any) -> datetime | None:
    """An inferenceTime as a UTC time, or None when it is missing or not an ISO-8601 time."""
    if not isinstance(value, str) or not value[:4].isdigit():
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _is_canonical(value: str) -> bool:
    """SageMaker's own form, 2026-11-23T00:30:00Z: such times order as text."""
    return (len(value) == 20 and value[19] == "Z" and value[4] == "-" and value[7] == "-"
            and value[10] == "T" and value[13] == ":" and value[16] == ":"
            and value[:4].isdigit() and value[5:7].isdigit() and value[8:10].isdigit()
            and value[11:13].isdigit() and value[14:16].isdigit() and value[17:19].isdigit()
            and "01" <= value[5:7] <= "12" and "01" <= value[8:10] <= "28"
            and value[11:13] < "24" and value[14:16] < "60" and value[17:19] < "60")


def _untimed_reason(value: Any) -> str:
    if value is None:
        return "eventMetadata.inferenceTime is missing"
    if not isinstance(value, str):
        return f"eventMetadata.inferenceTime {value!r} is not a string (expected ISO-8601 text)"
    if not value.strip():
        return "eventMetadata.inferenceTime is empty"
    return f"eventMetadata.inferenceTime {value[:60]!r} is not an ISO-8601 time"


def json_line(raw: bytes) -> Any:
    """The JSON value of one JSONL line, or a MalformedRecord."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedRecord("line is not valid JSON") from None


def decode_payload(event: Any, where: str) -> tuple[str, str]:
    """(encoding kind 'csv' or 'json', text) of a {data, encoding, observedContentType} object such as
    captureData.endpointInput or groundTruthData; `where` names it in the error."""
    if not isinstance(event, dict):
        raise MalformedRecord(f"{where} is not an object")
    data = event.get("data")
    if not isinstance(data, str):
        raise MalformedRecord(f"{where}.data is missing or not a string")
    encoding = str(event.get("encoding", "")).upper()
    content_type = str(event.get("observedContentType") or "").lower()
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise MalformedRecord(f"{where}.data is not valid base64 of UTF-8 text") from None
        if "json" in content_type:
            return "json", data
        if "csv" in content_type:
            return "csv", data
        return ("json", data) if data.lstrip()[:1] in ("{", "[") else ("csv", data)
    if encoding == "CSV":
        return "csv", data
    if encoding == "JSON":
        return "json", data
    raise MalformedRecord(f"{where}.encoding {event.get('encoding')!r} is not CSV, JSON or BASE64")


def _csv_rows(text: str) -> list[str]:
    return [row for row in text.replace("\r\n", "\n").strip("\n").split("\n")]


def _split_csv_row(row: str) -> list[str]:
    if '"' in row:
        return next(csv.reader([row]))
    return row.split(",")


def _json_body(text: str, side: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise MalformedRecord(f"captureData.{side}.data is not valid JSON") from None


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _json_input_rows(body: Any, features: list[str]) -> list[dict[str, Any] | list[Any]]:
    """Rows of a JSON request: dicts keyed by feature, or positional lists."""
    if isinstance(body, dict) and "instances" in body:
        body = body["instances"]
    elif isinstance(body, dict) and isinstance(body.get("features"), list):
        body = [body]
    if isinstance(body, dict):
        return [body]
    if not isinstance(body, list):
        body = [body]
    if body and all(not isinstance(item, dict | list) for item in body):
        # A flat list is one positional row, unless the model has a single feature.
        return [[item] for item in body] if len(features) == 1 else [body]
    rows: list[dict[str, Any] | list[Any]] = []
    for item in body:
        if isinstance(item, dict) and isinstance(item.get("features"), list) and len(item) == 1:
            rows.append(item["features"])
        elif isinstance(item, dict | list):
            rows.append(item)
        else:
            raise MalformedRecord("a JSON instance is neither an object nor a list")
    return rows


def input_rows(event: Any, features: list[str]) -> list[dict[str, Any]]:
    """Rows of one captureData.endpointInput as dicts keyed by feature: CSV values stay text, JSON
    values keep their type. A row with the wrong number of values is a MalformedRecord."""
    kind, text = decode_payload(event, "captureData.endpointInput")
    n_features = len(features)
    rows: list[dict[str, Any]] = []
    if kind == "csv":
        for row in _csv_rows(text):
            values = _split_csv_row(row)
            if len(values) != n_features:
                raise MalformedRecord(f"CSV row has {len(values)} values, expected {n_features}")
            rows.append(dict(zip(features, values, strict=True)))
        return rows
    for row in _json_input_rows(_json_body(text, "endpointInput"), features):
        if isinstance(row, list):
            if len(row) != n_features:
                raise MalformedRecord(f"JSON row has {len(row)} values, expected {n_features}")
            rows.append(dict(zip(features, row, strict=True)))
        else:
            rows.append(_flatten(row))
    return rows


def _json_outputs(body: Any) -> list[Any]:
    if isinstance(body, dict) and "predictions" in body:
        body = body["predictions"]
    return body if isinstance(body, list) else [body]


def _output_values(event: Any) -> list[Any]:
    kind, text = decode_payload(event, "captureData.endpointOutput")
    if kind == "csv":
        return [row.split(",")[0] if "," in row else row for row in _csv_rows(text)]
    return _json_outputs(_json_body(text, "endpointOutput"))


def _text(value: Any) -> str | None:
    """A JSON value as the text a CSV capture would carry (None for missing)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return orjson.dumps(value).decode()


def _prediction_text(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in _PREDICTION_KEYS:
            if key in value:
                return _text(value[key])
        return _text(next(iter(value.values()), None))
    return _text(value)


def parse_capture(
    data: bytes,
    source: str,
    features: list[str],
    window: tuple[datetime, datetime] | None = None,
    untimed: str = "quarantine",
) -> CaptureBatch:
    """Parse one capture file's bytes (gzip or not) into string columns named after `features`
    (+ prediction).

    CSV rows map by position and must carry len(features) values; JSON rows map by key, keeping keys
    the baseline does not know (the extra-column check needs them). With a window, each record's
    inferenceTime is parsed (any ISO-8601 offset): records outside the window are counted and
    skipped; a record without a usable time is counted and quarantined, or with untimed="file-hour"
    placed at the start of its file's hour folder.
    """
    if untimed not in UNTIMED_CHOICES:
        raise UserError(f"untimed records {untimed!r}: expected one of {', '.join(UNTIMED_CHOICES)}")
    data = decompressed(data, source)
    batch = CaptureBatch()
    lo, hi = (iso_z(window[0]), iso_z(window[1])) if window else (None, None)
    file_hour = hour_of_path(source) if untimed == "file-hour" else None
    csv_rows: list[str] = []
    csv_predictions: list[str | None] = []
    json_rows: list[dict[str, Any]] = []
    json_predictions: list[str | None] = []
    n_features = len(features)
    commas = n_features - 1
    for line_no, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            batch.blank_lines += 1
            continue
        batch.records_read += 1
        try:
            record = json_line(raw)
            capture = record.get("captureData") if isinstance(record, dict) else None
            if not isinstance(capture, dict) or "endpointInput" not in capture:
                raise MalformedRecord("record has no captureData.endpointInput")
            if window is not None:
                meta = record.get("eventMetadata")
                moment = meta.get("inferenceTime") if isinstance(meta, dict) else None
                if isinstance(moment, str) and _is_canonical(moment):
                    inside = lo <= moment < hi
                else:
                    when = record_time(moment)
                    if when is None:
                        batch.records_without_time += 1
                        if file_hour is None:
                            raise MalformedRecord(_untimed_reason(moment))
                        when = file_hour
                    inside = window[0] <= when < window[1]
                if not inside:
                    batch.records_outside_window += 1
                    continue
            simple = _simple_csv(capture, commas)
            if simple is not None:
                csv_rows.append(simple[0])
                csv_predictions.append(simple[1])
                continue
            kind, text = decode_payload(capture["endpointInput"], "captureData.endpointInput")
            outputs = (
                _output_values(capture["endpointOutput"]) if "endpointOutput" in capture else None
            )
            if kind == "csv":
                rows = _csv_rows(text)
                for row in rows:
                    count = len(_split_csv_row(row))
                    if count != n_features:
                        raise MalformedRecord(
                            f"CSV row has {count} values, expected {n_features} "
                            f"({', '.join(features[:5])}{', ...' if n_features > 5 else ''})"
                        )
                _check_outputs(outputs, len(rows))
                csv_rows.extend(rows)
                csv_predictions.extend(
                    [_prediction_text(o) for o in outputs] if outputs else [None] * len(rows)
                )
            else:
                rows_json = _json_input_rows(_json_body(text, "endpointInput"), features)
                mapped = []
                for row in rows_json:
                    if isinstance(row, list):
                        if len(row) != n_features:
                            raise MalformedRecord(
                                f"JSON row has {len(row)} values, expected {n_features}"
                            )
                        mapped.append(dict(zip(features, row, strict=True)))
                    else:
                        mapped.append(_flatten(row))
                _check_outputs(outputs, len(mapped))
                json_rows.extend(mapped)
                json_predictions.extend(
                    [_prediction_text(o) for o in outputs] if outputs else [None] * len(mapped)
                )
        except MalformedRecord as problem:
            batch.quarantine.append(quarantine_entry(source, line_no, str(problem), raw))
    if csv_rows:
        table = csv_table(csv_rows, features)
        batch.tables.append(table.append_column(PREDICTION, pa.array(csv_predictions, pa.string())))
    if json_rows:
        batch.tables.append(_json_table(json_rows, json_predictions, features))
    return batch


def simple_csv_row(event: Any, commas: int) -> str | None:
    """The row of a one-row, unquoted CSV endpointInput with `commas` commas (the common case, checked
    with string methods only); None sends the record through the general path."""
    if type(event) is not dict or event.get("encoding") != "CSV":
        return None
    row = event.get("data")
    if type(row) is not str:
        return None
    row = row.rstrip("\r\n")
    if "\n" in row or '"' in row or row.count(",") != commas:
        return None
    return row


def _simple_csv(capture: dict[str, Any], commas: int) -> tuple[str, str | None] | None:
    """(row, prediction) of the common case, a one-row CSV request with a one-value CSV response,
    checked with string methods only; None sends the record through the general path."""
    row = simple_csv_row(capture["endpointInput"], commas)
    if row is None:
        return None
    output = capture.get("endpointOutput")
    if output is None:
        return row, None
    if type(output) is not dict or output.get("encoding") != "CSV":
        return None
    prediction = output.get("data")
    if type(prediction) is not str:
        return None
    prediction = prediction.rstrip("\r\n")
    if "\n" in prediction or "," in prediction:
        return None
    return row, prediction or None


def _check_outputs(outputs: list[Any] | None, rows: int) -> None:
    if outputs is not None and len(outputs) != rows:
        raise MalformedRecord(f"request has {rows} rows but the response has {len(outputs)} predictions")


def arrow_owned(data: bytes) -> pa.BufferReader:
    """Bytes copied into Arrow-owned memory for Arrow's readers. Reading a Python-owned buffer lets
    Arrow release it from a background thread after read_csv returns, which aborts a process that is
    already exiting (apache/arrow#34314; seen as exit 134 in ~3% of short CLI runs)."""
    buffer = pa.allocate_buffer(len(data))
    memoryview(buffer).cast("B")[:] = data
    return pa.BufferReader(buffer)


def csv_table(rows: list[str], features: list[str]) -> pa.Table:
    """Headerless CSV rows as a table typed by Arrow's CSV reader, columns named after `features`."""
    return pacsv.read_csv(
        arrow_owned("\n".join(rows).encode("utf-8")),
        read_options=pacsv.ReadOptions(column_names=features, block_size=1 << 26),
        # An empty line is a row (of one missing value), or predictions would misalign.
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
        # Arrow types each column as it parses (int64, double, string): far cheaper than typing
        # strings afterwards. Booleans stay text, as JSON captures deliver them.
        convert_options=pacsv.ConvertOptions(
            null_values=NULL_VALUES, strings_can_be_null=True, quoted_strings_can_be_null=False,
            true_values=[], false_values=[],
        ),
    )


def _json_table(rows: list[dict[str, Any]], predictions: list[str | None],
                features: list[str]) -> pa.Table:
    names = list(features)
    seen = set(names)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                names.append(key)
    # A feature no row carries is absent, not all-null: the missing-column check tells them apart.
    present = {key for row in rows for key in row}
    columns = {
        name: pa.array([_text(row.get(name)) for row in rows], pa.string())
        for name in names if name in present
    }
    columns[PREDICTION] = pa.array(predictions, pa.string())
    return pa.table(columns)


def _looks_like_header(first: list[str]) -> bool:
    def numeric(text: str) -> bool:
        try:
            float(text)
            return True
        except ValueError:
            return False

    return all(field.strip() and not numeric(field) for field in first)


def read_dataset(uri: str, header: bool | None = None) -> pa.Table:
    """Read a CSV or Parquet dataset. A CSV without a header row gets SageMaker's _c0.._cN names."""
    fs, path = filesystem_for(uri)
    lowered = path.lower()
    try:
        if lowered.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            with fs.open(path, "rb") as handle:
                return _unique_columns(pq.read_table(handle), uri)
        with fs.open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise UserError(f"dataset {uri}: no such file") from None
    except (pa.ArrowInvalid, OSError) as problem:
        raise UserError(f"dataset {uri}: not a readable Parquet file ({problem})") from None
    if not data.strip():
        raise UserError(f"dataset {uri}: the file is empty")
    first = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8", errors="replace")]))
    has_header = _looks_like_header(first) if header is None else header
    names = None if has_header else [f"_c{i}" for i in range(len(first))]
    try:
        table = pacsv.read_csv(
            arrow_owned(data),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 26),
            convert_options=pacsv.ConvertOptions(null_values=NULL_VALUES, strings_can_be_null=True,
                                                 true_values=[], false_values=[]),
        )
    except pa.ArrowInvalid as problem:
        raise UserError(f"dataset {uri}: not a well-formed CSV file ({problem})") from None
    return _unique_columns(table, uri)


HEADER_LIMIT = 1 << 20  # bytes: a CSV header longer than this is not a header


def _first_line(handle: Any) -> bytes:
    """The first line of an open binary file, read in blocks (s3fs files take no readline size)."""
    head = b""
    while len(head) < HEADER_LIMIT:
        block = handle.read(1 << 16)
        if not block:
            break
        head += block
        if b"\n" in block:
            break
    return head.split(b"\n", 1)[0][:HEADER_LIMIT]


def dataset_columns(uri: str) -> list[str]:
    """A dataset's column names from its header alone (CSV first line, Parquet schema), checked
    for repeats: what the CLI verifies before any long work starts."""
    fs, path = filesystem_for(uri)
    parquet = path.lower().endswith((".parquet", ".pq"))
    try:
        if parquet:
            import pyarrow.parquet as pq

            with fs.open(path, "rb") as handle:
                names = pq.read_schema(handle).names
        else:
            with fs.open(path, "rb") as handle:
                first = _first_line(handle).decode("utf-8", errors="replace")
            names = next(csv.reader([first]), []) if first.strip() else []
            if names and not _looks_like_header(names):
                names = [f"_c{i}" for i in range(len(names))]
    except FileNotFoundError:
        raise UserError(f"dataset {uri}: no such file") from None
    except (pa.ArrowInvalid, OSError) as problem:
        kind = "Parquet" if parquet else "CSV"
        raise UserError(f"dataset {uri}: not a readable {kind} file ({problem})") from None
    _refuse_repeats(names, uri)
    return names


def _refuse_repeats(names: list[str], uri: str) -> None:
    """Two columns sharing a name: which one a feature means would be a guess."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"dataset {uri}: column name(s) {', '.join(map(repr, repeated))} appear more "
                        "than once in the header; expected each column named once")


def _unique_columns(table: pa.Table, uri: str) -> pa.Table:
    """The table, unless two columns share a name."""
    _refuse_repeats(table.column_names, uri)
    return table

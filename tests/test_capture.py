"""Capture parsing: the three encodings, multi-row requests, quarantine reasons, windows, files."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from modelwatch.errors import UserError
from modelwatch.tasks.capture import list_capture_files, parse_capture
from modelwatch.tasks.windows import hour_prefixes, parse_time
from tests.sagemaker_samples import sample

FEATURES = ["a", "b", "c"]


def line(inp: str, out: str, encoding: str = "CSV", content: str = "text/csv",
         time: str = "2026-11-23T10:15:00Z", **meta) -> bytes:
    if encoding == "BASE64":
        inp, out = base64.b64encode(inp.encode()).decode(), base64.b64encode(out.encode()).decode()
    record = {
        "captureData": {
            "endpointInput": {"observedContentType": content, "mode": "INPUT", "data": inp,
                              "encoding": encoding},
            "endpointOutput": {"observedContentType": content, "mode": "OUTPUT", "data": out,
                               "encoding": encoding},
        },
        "eventMetadata": {"eventId": "e1", "inferenceTime": time, **meta},
        "eventVersion": "0",
    }
    return json.dumps(record).encode()


def column(batch, name):
    return batch.columns[name].to_pylist()


def test_three_encodings_map_to_the_same_columns() -> None:
    data = b"\n".join([
        line("1,2.5,x", "0.1"),
        line('{"a": 3, "b": 4.5, "c": "y"}', '{"predictions": [{"score": 0.7}]}', "JSON",
             "application/json"),
        line("5,,z", "0.9", "BASE64"),
    ])
    batch = parse_capture(data, "f.jsonl", FEATURES)
    assert batch.records_read == 3 and batch.records_malformed == 0 and batch.num_rows == 3
    assert sorted(column(batch, "a")) == ["1", "3", "5"]
    assert sorted(v for v in column(batch, "b") if v) == ["2.5", "4.5"]
    assert column(batch, "b").count(None) == 1
    assert sorted(column(batch, "prediction")) == ["0.1", "0.7", "0.9"]


def test_multi_row_requests() -> None:
    data = b"\n".join([
        line("1,2,x\n3,4,y", "0.1\n0.2"),
        line('{"instances": [{"features": [1, 2, "p"]}, {"features": [3, 4, "q"]}]}',
             '{"predictions": [{"score": 0.5, "predicted_label": 1}, '
             '{"score": 0.1, "predicted_label": 0}]}', "JSON", "application/json"),
    ])
    batch = parse_capture(data, "f.jsonl", FEATURES)
    assert batch.num_rows == 4 and batch.records_malformed == 0
    assert sorted(column(batch, "c")) == ["p", "q", "x", "y"]
    assert sorted(column(batch, "prediction")) == ["0", "0.1", "0.2", "1"]


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "not valid JSON"),
    (b'{"eventVersion": "0"}', "no captureData.endpointInput"),
    (line("1,2", "0.1"), "CSV row has 2 values, expected 3"),
    (line('{"a": 1', "0.1", "JSON", "application/json"), "endpointInput.data is not valid JSON"),
    (line("1,2,3\n4,5,6", "0.1"), "2 rows but the response has 1 predictions"),
    (line("1,2,3", "0.1", "XML"), "is not CSV, JSON or BASE64"),
])
def test_malformed_lines_are_quarantined_with_reason(raw: bytes, reason: str) -> None:
    data = b"\n".join([line("1,2,x", "0.1"), raw, line("2,3,y", "0.2")])
    batch = parse_capture(data, "s3://b/f.jsonl", FEATURES)
    assert batch.records_read == 3 and batch.num_rows == 2
    [entry] = batch.quarantine
    assert reason in entry["reason"]
    assert entry["line"] == 2 and entry["file"] == "s3://b/f.jsonl"
    assert entry["record"] == raw.decode()


def test_window_filter_counts_records_outside() -> None:
    data = b"\n".join([
        line("1,2,x", "0.1", time="2026-11-23T09:59:59Z"),
        line("1,2,x", "0.1", time="2026-11-23T10:00:00Z"),
        line("1,2,x", "0.1", time="2026-11-23T10:30:00Z"),
    ])
    window = (datetime(2026, 11, 23, 10, tzinfo=UTC), datetime(2026, 11, 23, 10, 30, tzinfo=UTC))
    batch = parse_capture(data, "f", FEATURES, window)
    assert batch.num_rows == 1 and batch.records_outside_window == 2


def test_hours_and_file_listing(tmp_path) -> None:
    start, end = parse_time("2026-11-23T22:30:00Z"), parse_time("2026-11-24T01:00:00")
    assert hour_prefixes(start, end) == ["2026/11/23/22", "2026/11/23/23", "2026/11/24/00"]
    for variant in ("AllTraffic", "Canary"):
        for hour in ("2026/11/23/22", "2026/11/24/00", "2026/11/24/01"):
            folder = tmp_path / variant / hour
            folder.mkdir(parents=True)
            (folder / "00-00-000-x.jsonl").write_text("")
    files = list_capture_files(str(tmp_path), start, end)
    assert len(files) == 4 and all("/2026/11/24/01/" not in f for f in files)
    single = list_capture_files(str(tmp_path / "Canary"), start, end)
    assert len(single) == 2


def test_bad_inputs_are_user_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="not an ISO-8601 time"):
        parse_time("yesterday")
    with pytest.raises(UserError, match="does not exist"):
        list_capture_files(str(tmp_path / "nope"), parse_time("2026-01-01"),
                           parse_time("2026-01-02"))


# ---- the real SageMaker capture files ----

def test_sdk_csv_capture() -> None:
    data = sample("capture.jsonl").read_bytes()
    batch = parse_capture(data, "capture.jsonl", [f"_c{i}" for i in range(7)])
    lines = len(data.splitlines())
    assert batch.records_read == lines and batch.records_malformed == 0
    assert batch.num_rows == lines
    first = json.loads(data.splitlines()[0])
    assert column(batch, "_c0")[0] == first["captureData"]["endpointInput"]["data"].split(",")[0]
    assert column(batch, "prediction")[0] == first["captureData"]["endpointOutput"]["data"]


def test_sdk_json_capture_with_instance_arrays() -> None:
    batch = parse_capture(sample("captured-data.jsonl").read_bytes(), "c", ["x"])
    assert batch.records_malformed == 0 and batch.num_rows == 6
    assert column(batch, "x") == ["1.0", "2.0", "5.0"] * 2
    assert column(batch, "prediction") == ["3.5", "4.0", "5.5"] * 2


def test_real_multirow_json_endpoint_capture() -> None:
    features = [f"f{i}" for i in range(14)]
    batch = parse_capture(sample("capture_json_multirow_endpoint.jsonl").read_bytes(), "c",
                          features)
    assert batch.records_read == 2 and batch.records_malformed == 0 and batch.num_rows == 3
    assert column(batch, "f0") == ["28", "28", "43"]
    assert column(batch, "prediction") == ["1", "1", "1"]


def test_real_csv_capture_with_inference_id() -> None:
    batch = parse_capture(sample("capture_csv_with_inference_id.jsonl").read_bytes(), "c",
                          [f"_c{i}" for i in range(69)])
    assert batch.records_malformed == 0 and batch.num_rows == 2
    assert column(batch, "_c0") == ["41", "132"]
    assert column(batch, "prediction") == ["0.01216088142246008", "0.036397725343704224"]


def test_merged_record_reads_as_capture() -> None:
    data = sample("merged_capture_groundtruth_record.jsonl").read_bytes()
    record = json.loads(data.splitlines()[0])
    body = json.loads(record["captureData"]["endpointInput"]["data"])
    width = len(body["instances"][0]["features"])
    batch = parse_capture(data, "m", [f"f{i}" for i in range(width)])
    assert batch.records_malformed == 0 and batch.num_rows == len(body["instances"])


# ---- inferenceTime, compressed and odd files, long windows, quarantine size ----

WINDOW = (datetime(2026, 11, 23, 10, tzinfo=UTC), datetime(2026, 11, 23, 11, tzinfo=UTC))


def test_inference_times_are_parsed_not_compared_as_text() -> None:
    inside = ["2026-11-23T10:15:00Z", "2026-11-23T15:20:00+05:00", "2026-11-23T10:59:59.9Z",
              "2026-11-23T10:00:00"]  # 15:20+05:00 is 10:20 UTC; a naive time is UTC
    outside = ["2026-11-23T10:15:00-05:00", "2026-11-23T11:00:00.5Z", "2026-11-23T09:59:59Z"]
    data = b"\n".join(line(f"{i},2,x", "0.1", time=t) for i, t in enumerate(inside + outside))
    batch = parse_capture(data, "f", FEATURES, WINDOW)
    assert sorted(column(batch, "a")) == [str(i) for i in range(len(inside))]
    assert batch.records_outside_window == len(outside) and batch.records_malformed == 0


@pytest.mark.parametrize("value, reason", [
    (None, "missing"), ("", "empty"), (1732356900, "not a string"), ("yesterday", "ISO-8601"),
    ("2026-13-45T99:00:00Z", "ISO-8601"), ("{%s}", "ISO-8601"),
])
def test_a_record_without_a_usable_time_is_counted_and_quarantined(value, reason) -> None:
    record = json.loads(line("1,2,x", "0.1"))
    record["eventMetadata"]["inferenceTime"] = value
    if value is None:
        del record["eventMetadata"]["inferenceTime"]
    data = line("1,2,x", "0.1") + b"\n" + json.dumps(record).encode()
    batch = parse_capture(data, "capture/AllTraffic/2026/11/23/10/f.jsonl", FEATURES, WINDOW)
    assert batch.num_rows == 1 and batch.records_without_time == 1
    [entry] = batch.quarantine
    assert reason in entry["reason"] and entry["line"] == 2
    # ... or, when the user says so, placed at its file's hour folder.
    placed = parse_capture(data, "capture/AllTraffic/2026/11/23/10/f.jsonl", FEATURES, WINDOW,
                           untimed="file-hour")
    assert placed.num_rows == 2 and placed.records_without_time == 1 and not placed.quarantine
    elsewhere = parse_capture(data, "capture/AllTraffic/2026/11/23/12/f.jsonl", FEATURES, WINDOW,
                              untimed="file-hour")
    assert elsewhere.num_rows == 1 and elsewhere.records_outside_window == 1


def test_gzip_capture_is_read_and_other_files_are_noted(tmp_path) -> None:
    import gzip

    from modelwatch.tasks.capture import SkippedFile

    hour = tmp_path / "cap" / "AllTraffic" / "2026" / "11" / "23" / "10"
    hour.mkdir(parents=True)
    (hour / "a.jsonl").write_bytes(line("1,2,x", "0.1") + b"\n")
    (hour / "b.jsonl.gz").write_bytes(gzip.compress(line("3,4,y", "0.2") + b"\n"))
    (hour / "c.parquet").write_bytes(b"PAR1")
    skipped: list[SkippedFile] = []
    files = list_capture_files(str(tmp_path / "cap"), *WINDOW, skipped)
    assert [f.rsplit("/", 1)[-1] for f in files] == ["a.jsonl", "b.jsonl.gz"]
    assert [s.uri.rsplit("/", 1)[-1] for s in skipped] == ["c.parquet"]
    batch = parse_capture((hour / "b.jsonl.gz").read_bytes(), files[1], FEATURES, WINDOW)
    assert column(batch, "a") == ["3"]


def test_blank_lines_are_counted_and_huge_lines_quarantined_in_part() -> None:
    import hashlib

    huge = b'{"captureData": {"endpointInput": "' + b"x" * 5_000_000 + b'"}}'
    data = line("1,2,x", "0.1") + b"\n\n  \n" + huge + b"\n"
    batch = parse_capture(data, "f", FEATURES)
    assert batch.blank_lines == 2 and batch.records_read == 2
    [entry] = batch.quarantine
    assert entry["record_truncated"] and entry["record_bytes"] == len(huge)
    assert entry["record_sha256"] == hashlib.sha256(huge).hexdigest()
    assert len(entry["record"]) <= 64 * 1024


def test_windows_are_bounded_and_listed_by_what_exists(tmp_path, monkeypatch) -> None:
    import time

    from modelwatch.tasks.windows import utc_window

    with pytest.raises(UserError, match="MODELWATCH_MAX_WINDOW"):
        utc_window(datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
    monkeypatch.setenv("MODELWATCH_MAX_WINDOW", "P3700000D")
    start, end = utc_window(datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
    hour = tmp_path / "cap" / "AllTraffic" / "2026" / "11" / "23" / "10"
    hour.mkdir(parents=True)
    (hour / "a.jsonl").write_bytes(line("1,2,x", "0.1") + b"\n")
    began = time.monotonic()
    assert len(list_capture_files(str(tmp_path / "cap"), start, end)) == 1
    assert time.monotonic() - began < 30  # a few listings, not 87 million hour folders


def test_dataset_columns_reads_a_header_longer_than_one_block_and_refuses_repeats(tmp_path) -> None:
    from modelwatch.tasks.capture import dataset_columns

    names = [f"feature_with_a_long_name_{i:05d}" for i in range(4_000)]  # ~130 KiB of header
    path = tmp_path / "wide.csv"
    path.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    assert dataset_columns(str(path)) == names
    (tmp_path / "twice.csv").write_text("a,b,a\n1,2,3\n")
    with pytest.raises(UserError, match="'a' appear more than once"):
        dataset_columns(str(tmp_path / "twice.csv"))

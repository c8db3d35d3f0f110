"""The ground-truth core without Prefect: SageMaker's samples join, uploads round-trip, malformed
lines are quarantined, duplicates keep the latest label, labels are classified matched / pending /
unknown, lines in the compact layout read as the JSON parser reads them, a merge in parts adds up to
the merge at once, and a merge is a pure function of what it read."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from modelwatch.errors import UserError
from modelwatch.flows.demo_data import capture_line, capture_record
from modelwatch.tasks.groundtruth import (
    WindowMerge,
    join_ground_truth,
    merge_outputs,
    merge_part,
    merge_window,
    quarantine_lines,
    resolve_labels,
)
from modelwatch.tasks.groundtruth_records import (
    HOUR,
    concat_labels,
    parse_ground_truth,
    read_capture_records,
)
from modelwatch.tasks.groundtruth_upload import ground_truth_line, write_ground_truth
from modelwatch.tasks.store import Store
from modelwatch.tasks.windows import check_window, parse_duration
from tests.sagemaker_samples import sample

H0 = datetime(2026, 11, 23, tzinfo=UTC)


def hours(n: int) -> datetime:
    return H0 + timedelta(hours=n)


def capture(event_id: str, inference_id: str | None = None, at: datetime = H0,
            row: str = "1,2,3", score: str = "0.5") -> bytes:
    return capture_line(capture_record(row, score, encoding="CSV", event_id=event_id,
                                       inference_time=at, inference_id=inference_id)).encode()


def label(event_id: str, data: str = "1") -> bytes:
    return ground_truth_line(event_id, data)


# ---- SageMaker samples ----

def test_sdk_actuals_join_the_sdk_capture() -> None:
    captures = read_capture_records(sample("capture.jsonl").read_bytes(), "capture.jsonl")
    labels = parse_ground_truth(sample("actuals.jsonl").read_bytes(), "actuals.jsonl")
    assert not captures.quarantine and not labels.quarantine
    assert captures.table.num_rows == labels.table.num_rows == 44
    # inferenceTime is the fixture's "{%s}" template: joinable, with no hour of its own.
    assert captures.table["hour"].null_count == 44
    assert set(labels.table["id"].to_pylist()) <= set(captures.table["event_id"].to_pylist())
    result = join_ground_truth(captures.table, labels.table)
    assert result.captures_matched == result.labels_matched == 44
    assert result.labels_unknown == result.labels_pending == result.labels_duplicate == 0
    first = json.loads(result.merged_lines()[0])
    original = json.loads(sample("capture.jsonl").read_bytes().splitlines()[0])
    assert first["groundTruthData"] == {"data": "1", "encoding": "CSV"}
    assert first["captureData"] == original["captureData"]
    assert first["eventMetadata"] == original["eventMetadata"]
    # Same top-level keys as the merged record SageMaker wrote.
    merged_sample = json.loads(sample("merged_capture_groundtruth_record.jsonl").read_text())
    assert set(first) == set(merged_sample)


def test_join_id_is_the_inference_id_when_there_is_one() -> None:
    records = read_capture_records(sample("capture_csv_with_inference_id.jsonl").read_bytes(), "f")
    assert records.table["id"].to_pylist() == records.table["inference_id"].to_pylist() == ["58", "59"]
    assert records.table["hour"][0].as_py() == datetime(2021, 5, 18, tzinfo=UTC)


def test_a_multirow_capture_is_one_join_record() -> None:
    data = sample("capture_json_multirow_endpoint.jsonl").read_bytes()
    records = read_capture_records(data, "f")
    assert records.table.num_rows == 2  # two invocations, three rows between them
    rows = json.loads(data.splitlines()[1])["captureData"]["endpointInput"]["data"]
    assert len(json.loads(rows)["instances"]) == 2
    labels = parse_ground_truth(b"".join(label(i, "1,0") for i in records.table["id"].to_pylist()), "gt")
    result = join_ground_truth(records.table, labels.table)
    assert result.captures_matched == 2 and result.captures_unmatched == 0


def test_the_merged_sample_reads_as_ground_truth_and_capture() -> None:
    data = sample("merged_capture_groundtruth_record.jsonl").read_bytes()
    truth = parse_ground_truth(data, "merged")
    assert truth.table["encoding"].to_pylist() == ["JSON"] and not truth.quarantine
    assert read_capture_records(data, "merged").table["id"].to_pylist() == ["7"]


# ---- malformed lines ----

@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"eventMetadata": {"eventId": "a"}}', "no groundTruthData object"),
    (b'{"groundTruthData": {"data": 1, "encoding": "CSV"}, "eventMetadata": {"eventId": "a"}}',
     "data is missing or not a string"),
    (b'{"groundTruthData": {"data": "1", "encoding": "XML"}, "eventMetadata": {"eventId": "a"}}',
     "encoding 'XML' is not CSV or JSON"),
    (b'{"groundTruthData": {"data": "{oops", "encoding": "JSON"}, "eventMetadata": {"eventId": "a"}}',
     "not valid JSON (encoding JSON)"),
    (b'{"groundTruthData": {"data": " ", "encoding": "CSV"}, "eventMetadata": {"eventId": "a"}}',
     "data is empty"),
    (b'{"groundTruthData": {"data": "1", "encoding": "CSV"}}', "no eventMetadata object"),
    (b'{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": ""}}',
     "eventId is missing"),
])
def test_malformed_label_lines_are_quarantined(raw: bytes, reason: str) -> None:
    data = label("a") + raw + b"\n\n" + label("b")
    batch = parse_ground_truth(data, "groundtruth/ep/f.jsonl", hours(1))
    assert batch.lines_read == 3 and batch.table["id"].to_pylist() == ["a", "b"]
    [entry] = batch.quarantine
    assert reason in entry["reason"] and entry["line"] == 2 and entry["record"] == raw.decode()
    assert batch.table["labelled_at"].to_pylist() == [hours(1)] * 2


@pytest.mark.parametrize("raw, reason", [
    (b'{"captureData": {"endpointInput"', "not valid JSON"),
    (b'{"eventMetadata": {"eventId": "x"}, "eventVersion": "0"}', "no captureData object"),
    (b'{"captureData": {}, "eventVersion": "0"}', "no eventMetadata object"),
    (b'{"captureData": {}, "eventMetadata": {"inferenceTime": "2026-11-23T00:00:00Z"}}',
     "eventId is missing"),
    (b'{"captureData": {}, "eventMetadata": {"eventId": "x", "inferenceId": 7}}',
     "inferenceId is not a non-empty string"),
])
def test_malformed_capture_lines_are_quarantined(raw: bytes, reason: str) -> None:
    data = capture("e1") + raw + b"\n" + capture("e2", "i2")
    batch = read_capture_records(data, "cap.jsonl", hours(0))
    assert batch.table["id"].to_pylist() == ["e1", "i2"] and batch.table["line"].to_pylist() == [1, 3]
    [entry] = batch.quarantine
    assert reason in entry["reason"] and entry["line"] == 2


# ---- duplicates, classification ----

def test_duplicates_keep_the_latest_label() -> None:
    captures = read_capture_records(capture("a") + capture("b") + capture("c"), "cap", hours(0))
    early = parse_ground_truth(label("a", "0") + label("b", "1") + label("c", "1"),
                               "groundtruth/ep/2026/11/23/01/x.jsonl", hours(1))
    late = parse_ground_truth(label("a", "1") + label("b", "1") + label("c", "0") + label("c", "1"),
                              "groundtruth/ep/2026/11/23/03/y.jsonl", hours(3))
    # Listed in any order: the labelled hour decides, then the file, then the line.
    labels = concat_labels([late, early]).table
    result = join_ground_truth(captures.table, labels)
    kept = {json.loads(r)["eventMetadata"]["eventId"]: json.loads(r)["groundTruthData"]["data"]
            for r in result.merged_lines()}
    assert kept == {"a": "1", "b": "1", "c": "1"}
    assert result.labels_duplicate == 4  # a, b, c from the early file; the first c of the late one
    assert result.label_conflicts == 2  # a 0 -> 1, c 0 -> 1 (within y.jsonl); b and early c agree
    assert result.labels_read == result.labels_matched + result.labels_duplicate == 7
    [[kept_file, kept_line]] = [[r["kept_file"], r["kept_line"]] for r in result.superseded.to_pylist()
                                if r["id"] == "c" and r["file"].endswith("y.jsonl")]
    assert kept_file.endswith("y.jsonl") and kept_line == 4


def test_labels_are_matched_pending_or_unknown() -> None:
    window = read_capture_records(capture("w1") + capture("w2", "inf-2"), "cap", hours(5))
    outside = read_capture_records(capture("o1") + capture("o2"), "cap2", hours(30), keep_raw=False)
    labels = parse_ground_truth(
        label("w1") + label("inf-2") + label("o1") + label("ghost") + label("w2"), "gt", hours(6))
    result = join_ground_truth(window.table, labels.table, outside.table.select(["id", "hour"]))
    assert (result.labels_matched, result.labels_pending, result.labels_unknown) == (2, 1, 2)
    assert result.unknown["id"].to_pylist() == ["ghost", "w2"]  # w2 joins on its inferenceId only
    assert result.pending["capture_hour"].to_pylist() == [hours(30)]
    assert result.captures_unmatched == 0


def test_the_later_upload_wins_within_an_hour_and_a_label_time_wins_over_both() -> None:
    window = read_capture_records(capture("a") + capture("b"), "cap", hours(0))
    folder = "groundtruth/ep/2026/11/23/01/"
    # Two uploads into the same hour: file names (content hashes) sort against upload order.
    first = parse_ground_truth(label("a", "0") + label("b", "0"), folder + "labels-ffff.jsonl", hours(1),
                               uploaded=hours(1) + timedelta(minutes=5))
    second = parse_ground_truth(label("a", "1"), folder + "labels-0000.jsonl", hours(1),
                                uploaded=hours(1) + timedelta(minutes=40))
    # b relabelled by a later upload whose labels carry their own, earlier, time: the time wins.
    timed = parse_ground_truth(
        ground_truth_line("b", "1", hours(1) + timedelta(minutes=1)), folder + "labels-8888.jsonl",
        hours(1), uploaded=hours(1) + timedelta(minutes=50))
    again = parse_ground_truth(
        ground_truth_line("b", "0", hours(1) + timedelta(minutes=2)), folder + "labels-1111.jsonl",
        hours(1), uploaded=hours(1) + timedelta(minutes=45))
    for order in ([first, second, timed, again], [again, timed, second, first]):
        report, result = merge_window(window, concat_labels(order), None, endpoint="ep",
                                      start=hours(0), end=hours(1), lookback="PT6H")
        kept = {json.loads(r)["eventMetadata"]["eventId"]: json.loads(r)["groundTruthData"]["data"]
                for r in result.merged_lines()}
        assert kept == {"a": "1", "b": "0"}
        assert report.labels_duplicate == 3 and report.balanced


def test_labels_are_read_from_before_the_window_too() -> None:
    """A label labelled before its capture's hour folder (clocks, a late capture file)."""
    window = read_capture_records(capture("early"), "cap", hours(5))
    labels = parse_ground_truth(label("early", "1"), "groundtruth/ep/2026/11/23/03/x.jsonl", hours(3))
    report, result = merge_window(window, labels, None, endpoint="ep", start=hours(5), end=hours(6),
                                  lookback="PT6H")
    assert report.labels_matched == 1 and report.labels_from == hours(-1)


# ---- the compact layout and the full parser read the same ----

def _varied_captures() -> bytes:
    """Lines in SageMaker's compact layout: UUID and other ids, with and without an InferenceId,
    JSON payloads with escapes and non-ASCII text."""
    lines = []
    for i in range(12):
        event_id = f"{i:08x}-0000-4000-8000-{i:012x}" if i % 3 else f"event {i} ü"
        inference_id = f"inf-{i}" if i % 4 == 1 else None
        body = {"instances": [{"text": 'say "hi" \\ \n é \u2028', "n": i}]} if i % 2 else f"{i},1,2"
        record = capture_record(body, {"predictions": [0.5]} if i % 2 else "0.5",
                                encoding="JSON" if i % 2 else "CSV", event_id=event_id,
                                inference_time=hours(i % 3), inference_id=inference_id)
        lines.append(orjson.dumps(record) + b"\n")  # as SageMaker writes: UTF-8, not \u escapes
    return b"".join(lines)


def test_the_layout_and_the_json_parser_read_the_same_records(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _varied_captures()
    # A carriage return leaves a file to the full parser (its line numbering is bytes.splitlines').
    parsed = read_capture_records(data.replace(b"\n", b"\r\n"), "f", hours(0))
    monkeypatch.setattr("modelwatch.tasks.groundtruth_records._capture_fields",
                        lambda raw: pytest.fail(raw.decode()))
    by_layout = read_capture_records(data, "f", hours(0))
    assert by_layout.table.to_pylist() == parsed.table.to_pylist()
    assert by_layout.table["inference_id"].null_count == 9 and by_layout.lines_read == 12

    labels = b"".join(label(i, v) for i, v in [("a" * 36, "1"), ("ghost-1", "0"), ("b" * 36, "0,1"),
                                               ("c", ' spaced ')])
    parsed_labels = parse_ground_truth(labels.replace(b"\n", b"\r\n"), "gt", hours(2))
    assert parse_ground_truth(labels, "gt", hours(2)).table.to_pylist() == parsed_labels.table.to_pylist()


def test_lines_outside_the_layout_are_parsed_in_full() -> None:
    compact = capture("e1")
    spaced = json.dumps(json.loads(capture("e2", "i2"))).encode() + b"\n"
    data = (compact + b"\n  \n" + b"   " + spaced + capture("e3")[:-1] + b"\xff\n" + capture("e4")
            + b'{"captureData":{},"eventMetadata":{"eventId":""},"eventVersion":"0"}')
    batch = read_capture_records(data, "f", hours(0))
    assert batch.table["id"].to_pylist() == ["e1", "i2", "e4"]
    assert batch.table["line"].to_pylist() == [1, 4, 6]
    assert batch.table["raw"].to_pylist() == [compact, spaced, capture("e4")]
    assert [(q["line"], q["reason"]) for q in batch.quarantine] == [
        (5, "line is not valid JSON"), (7, "eventMetadata.eventId is missing or not a string")]
    assert batch.lines_read == 5
    assert read_capture_records(b"", "f", hours(0)).table.num_rows == 0
    assert parse_ground_truth(b"\n\n", "gt").lines_read == 0


def test_merged_lines_splice_the_label_into_the_captured_bytes() -> None:
    raw = [capture("e1", at=hours(0)), capture("e2", "i2", at=hours(0)), capture("e3", at=hours(1))]
    captures = read_capture_records(b"".join(raw), "cap")
    labels = parse_ground_truth(label("e1", "1") + label("i2", 'say "1"\t') + label("e3", "0,1"), "gt")
    result = join_ground_truth(captures.table, labels.table)
    expected = [b'{"groundTruthData":' + orjson.dumps({"data": d, "encoding": "CSV"}) + b"," + r[1:]
                for r, d in zip(raw, ["1", 'say "1"\t', "0,1"], strict=True)]
    assert result.merged == {hours(0): expected[0] + expected[1], hours(1): expected[2]}


def test_a_merge_in_parts_adds_up_to_the_merge_at_once() -> None:
    records = [capture(f"e{i}", at=hours(i % 4)) for i in range(40)]
    records += [capture("e3", at=hours(0)), capture("e6", at=hours(0)), capture("x9", at=hours(2)),
                capture("x9", at=hours(1))]  # repeated ids, labelled (e3, e6) and not (x9)
    captures = read_capture_records(b"".join(records), "cap").table.sort_by([("hour", "ascending"),
                                                                            ("line", "ascending")])
    labels = resolve_labels(parse_ground_truth(
        b"".join(label(f"e{i}", str(i % 2)) for i in range(0, 40, 3)) + label("nobody"), "gt").table)
    whole_docs: dict = {}
    whole = WindowMerge.of([merge_part(captures, labels, lambda h, _v, d: whole_docs.__setitem__(h, d))],
                           labels)
    part_docs: dict = {}
    parts = [merge_part(captures.filter(pc.equal(captures["hour"], pa.scalar(hours(h), HOUR))),
                        labels, lambda h, _v, d: part_docs.__setitem__(h, d)) for h in range(4)]
    added = WindowMerge.of(parts, labels)
    assert np.array_equal(added.hits, whole.hits)
    assert vars(added) | {"hits": None} == vars(whole) | {"hits": None}
    assert {h: bytes(d) for h, d in part_docs.items()} == {h: bytes(d) for h, d in whole_docs.items()}
    assert (whole.captures_read, whole.captures_matched, whole.capture_duplicate_ids) == (44, 16, 3)


def test_quarantine_lines_are_what_orjson_writes() -> None:
    odd = 'say "hi" \\ \x01 é'
    captures = read_capture_records(capture("e1"), "cap", hours(0))
    labels = parse_ground_truth(label(odd, "1") + label(odd, "0") + label("plain", "1"),
                                'groundtruth/ep/"odd".jsonl', hours(1))
    report, result = merge_window(captures, labels, None, endpoint="ep", start=hours(0),
                                  end=hours(1), lookback="PT1H")
    lines = quarantine_lines([], [], result, report).splitlines()
    searched = "[2026-11-22T23:00:00Z, 2026-11-23T02:00:00Z)"
    source = 'groundtruth/ep/"odd".jsonl'
    assert lines == [orjson.dumps(e) for e in [
        {"kind": "unknown_label", "file": source, "line": 2, "id": odd,
         "reason": f"no capture record with this id in {searched}"},
        {"kind": "unknown_label", "file": source, "line": 3, "id": "plain",
         "reason": f"no capture record with this id in {searched}"},
        {"kind": "superseded_label", "file": source, "line": 1, "id": odd, "conflict": True,
         "reason": f"superseded by the later label at {source} line 2"}]]


# ---- idempotence ----

def _window_inputs(seed: int):
    captures = read_capture_records(
        b"".join(capture(f"e{i}", f"i{i}" if i % 2 else None, at=hours(0)) for i in range(50)),
        "s3://b/capture/ep/AllTraffic/2026/11/23/00/00-00-000-x.jsonl", hours(0))
    context = read_capture_records(b"".join(capture(f"n{i}") for i in range(10)), "c", hours(3),
                                   keep_raw=False).table.select(["id", "hour"])
    lines = [label(f"i{i}" if i % 2 else f"e{i}", str(i % 2)) for i in range(0, 50, 3)]
    lines += [label(f"n{i}") for i in range(5)] + [label("ghost"), label("e0", "1")]
    random.Random(seed).shuffle(lines)
    files = [parse_ground_truth(b"".join(lines[:10]), "groundtruth/ep/2026/11/23/01/a.jsonl",
                                hours(1)),
             parse_ground_truth(b"".join(lines[10:]), "groundtruth/ep/2026/11/23/02/b.jsonl",
                                hours(2))]
    return captures, files, context


def test_a_merge_is_a_function_of_its_inputs() -> None:
    outputs = []
    for order in (0, 1):
        captures, files, context = _window_inputs(seed=7)
        labels = concat_labels(files if order == 0 else files[::-1])
        if order:
            captures.table = captures.table.take(
                np.random.default_rng(order).permutation(captures.table.num_rows))
        report, result = merge_window(captures, labels, context, endpoint="ep",
                                      start=hours(0), end=hours(1), lookback="PT6H")
        outputs.append((report.dump(), merge_outputs(result, "ep")))
    assert outputs[0] == outputs[1]
    report, documents = outputs[0]
    assert set(documents) == {"merged/ep/2026/11/23/00/part-00000.jsonl"}
    assert report["labels_pending"] == 5 and report["labels_unknown"] == 1
    assert report["labels_duplicate"] == 1 and report["captures_matched"] == 17


# ---- upload ----

def test_upload_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "labels.csv"
    source.write_text("request,truth,when\n007,1,2026-11-23T10:15:00Z\n008,0,2026-11-23T11:59:59Z\n"
                      ',1,2026-11-23T10:00:00Z\n009,,2026-11-23T10:00:00Z\n010,"a,b",yesterday\n'
                      "007,0,2026-11-23T11:00:00+00:00\n")
    store = Store(str(tmp_path / "store"))
    report = write_ground_truth(store, "ep", str(source), "request", "truth",
                                labelled_at_column="when")
    assert report.rows_read == 6 and report.labels_written == 3 and report.duplicate_ids == 1
    assert report.rows_skipped == {"missing_id": 1, "missing_label": 1, "bad_labelled_at": 1}
    assert report.skipped_rows == {"missing_id": [3], "missing_label": [4], "bad_labelled_at": [5]}
    assert [f["labelled_hour"] for f in report.files] == ["2026-11-23T10:00:00Z",
                                                          "2026-11-23T11:00:00Z"]
    keys = store.list("groundtruth/ep/2026/11/23/10") + store.list("groundtruth/ep/2026/11/23/11")
    read = concat_labels([parse_ground_truth(store.read_bytes(k), k, None) for k in keys]).table
    assert sorted(zip(read["id"].to_pylist(), read["data"].to_pylist(), strict=True)) == [
        ("007", "0"), ("007", "1"), ("008", "0")]
    # The same labels again: they replace the files of the same content, no new duplicates.
    again = write_ground_truth(store, "ep", str(source), "request", "truth",
                               labelled_at_column="when")
    assert len(again.files) == len(report.files)
    assert store.list("groundtruth/ep/2026/11/23/10") + store.list("groundtruth/ep/2026/11/23/11") == \
        sorted(f["uri"][len(store.uri("")) + 1:] for f in again.files)


def test_upload_parquet_with_one_labelled_at(tmp_path: Path) -> None:
    source = tmp_path / "labels.parquet"
    pd.DataFrame({"id": [1, 2, 3], "y": [0.5, None, 2.0]}).to_parquet(source)
    store = Store(str(tmp_path / "store"))
    report = write_ground_truth(store, "ep", str(source), "id", "y", labelled_at=hours(4) +
                                timedelta(minutes=20))
    assert report.labels_written == 2 and report.rows_skipped["missing_label"] == 1
    [key] = store.list("groundtruth/ep/2026/11/23/04")
    batch = parse_ground_truth(store.read_bytes(key), key, hours(4))
    assert [[r["id"], r["data"]] for r in batch.table.to_pylist()] == [["1", "0.5"], ["3", "2"]]


def test_upload_names_a_missing_column(tmp_path: Path) -> None:
    source = tmp_path / "labels.csv"
    source.write_text("id,label\n1,0\n")
    with pytest.raises(UserError, match="--label-column 'truth' is not a column"):
        write_ground_truth(Store(str(tmp_path / "s")), "ep", str(source), "id", "truth")


# ---- durations and windows ----

@pytest.mark.parametrize("text, expected", [
    ("P7D", timedelta(days=7)), ("PT12H", timedelta(hours=12)), ("PT30M", timedelta(minutes=30)),
    ("P1DT6H", timedelta(days=1, hours=6)), ("p0d", timedelta(0)),
])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7D", "P", "PT", "P1W", "-P1D", "P1.5D", "PT1S", ""])
def test_bad_durations_are_user_errors(text: str) -> None:
    with pytest.raises(UserError, match="not an ISO-8601 duration"):
        parse_duration(text)


def test_windows_are_whole_hours() -> None:
    with pytest.raises(UserError, match="not on a whole hour"):
        check_window(hours(0) + timedelta(minutes=5), hours(2))
    with pytest.raises(UserError, match="must be after"):
        check_window(hours(2), hours(2))

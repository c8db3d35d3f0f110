"""The ground-truth merge flow through the CLI on the session's Prefect API: labels uploaded early,
late and twice, labels for ids never captured, and merges of two days re-run after late labels
arrive. Every label ends up matched, pending, unknown or superseded; every capture record matched or
unmatched; a re-run rewrites the same files."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelwatch.flows.demo_data import capture_file_name, capture_hour_dir, capture_line, capture_record
from modelwatch.tasks.registry import (
    EndpointRecord,
    ModelRecord,
    ModelVersion,
    register_endpoint,
    register_model,
)
from modelwatch.tasks.store import Store
from modelwatch.tasks.windows import iso_z
from tests.cli_run import invoke, run

pytestmark = pytest.mark.usefixtures("prefect_api")
ENDPOINT = "churn-ep"
D1 = datetime(2026, 11, 23, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
D3 = D2 + timedelta(days=1)




def write_captures(root: Path) -> tuple[list[str], list[str], dict[str, dict]]:
    """Two days of two records an hour (one with an InferenceId, one without; hour 5 holds a
    three-row JSON request), a Canary variant's record, a malformed line, and a capture three days
    before the first day. Returns the join ids of day one and day two, and the records by id."""
    records: dict[str, dict] = {}
    days: list[list[str]] = [[], []]
    for h in range(48):
        at = D1 + timedelta(hours=h, minutes=17)
        lines = []
        for j in range(2):
            inference_id = f"inf-{h}-{j}" if j == 0 else None
            if h == 5 and j == 1:
                body = {"instances": [{"age": a} for a in (31, 42, 53)]}
                record = capture_record(body, {"predictions": [0.1, 0.7, 0.4]}, encoding="JSON",
                                        event_id=f"ev-{h}-{j}", inference_time=at)
            else:
                record = capture_record(f"{h},{j},0.5", "0.42", encoding="CSV",
                                        event_id=f"ev-{h}-{j}", inference_time=at,
                                        inference_id=inference_id)
            join_id = inference_id or f"ev-{h}-{j}"
            records[join_id] = record
            days[h // 24].append(join_id)
            lines.append(capture_line(record))
        if h == 7:
            lines.insert(1, '{"captureData": {"endpointInput": \n')
        path = capture_hour_dir(root, at) / capture_file_name(at, 0, f"file-{h}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines))
    canary_at = D1 + timedelta(hours=10, minutes=3)
    canary = capture_record("1,1,1", "0.9", encoding="CSV", event_id="canary-1",
                            inference_time=canary_at)
    path = capture_hour_dir(root, canary_at, "Canary") / capture_file_name(canary_at, 0, "c")
    path.parent.mkdir(parents=True)
    path.write_text(capture_line(canary))
    records["canary-1"] = canary
    days[0].insert(0, "canary-1")
    old_at = D1 - timedelta(days=3)
    old = capture_record("0,0,0", "0.1", encoding="CSV", event_id="ev-old", inference_time=old_at)
    path = capture_hour_dir(root, old_at) / capture_file_name(old_at, 0, "old")
    path.parent.mkdir(parents=True)
    path.write_text(capture_line(old))
    return days[0], days[1], records


def upload(store: str, tmp_path: Path, name: str, rows: list[tuple[str, str]], at: datetime) -> dict:
    source = tmp_path / f"{name}.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "churned"])
        writer.writerows(rows)
    return run("groundtruth", "upload", "--endpoint", ENDPOINT, "--file", str(source),
               "--id-column", "request_id", "--label-column", "churned",
               "--labelled-at", iso_z(at), "--store", store)


def merge(store: str, start: datetime, end: datetime) -> dict:
    report = run("groundtruth", "merge", "--endpoint", ENDPOINT, "--start", iso_z(start),
                 "--end", iso_z(end), "--lookback", "P1D", "--store", store)
    assert report["labels_read"] == (report["labels_matched"] + report["labels_pending"]
                                     + report["labels_unknown"] + report["labels_duplicate"])
    assert report["captures_read"] == report["captures_matched"] + report["captures_unmatched"]
    return report


def counts(report: dict) -> dict[str, int]:
    names = ("captures_read", "captures_malformed", "captures_matched", "captures_unmatched",
             "labels_read", "labels_malformed", "labels_matched",
             "labels_pending", "labels_unknown", "labels_duplicate", "label_conflicts")
    return {n: report[n] for n in names}


def merged_labels(store: Store) -> dict[str, str]:
    """Join id -> label of every merged record in the store."""
    out: dict[str, str] = {}
    for day in ("2026/11/23", "2026/11/24"):
        for hour in store.list_dirs(f"merged/{ENDPOINT}/{day}"):
            for key in store.list(f"merged/{ENDPOINT}/{day}/{hour}"):
                for line in store.read_bytes(key).splitlines():
                    record = json.loads(line)
                    meta = record["eventMetadata"]
                    out[meta.get("inferenceId") or meta["eventId"]] = record["groundTruthData"]["data"]
    return out


def snapshot(store: Store) -> dict[str, bytes]:
    root = Path(store.path(f"merged/{ENDPOINT}"))
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_late_labels_duplicates_and_unknown_ids_through_merges(tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    store = Store(store_uri)
    day1, day2, records = write_captures(Path(store.path(f"capture/{ENDPOINT}")))
    register_model(store, ModelRecord(name="churn", problem_type="binary",
                                      versions=[ModelVersion(version="1")]))
    register_endpoint(store, EndpointRecord(name=ENDPOINT, model="churn", model_version="1",
                                            capture_uri=store.uri(f"capture/{ENDPOINT}")))
    assert len(day1) == 49 and len(day2) == 48

    # Before day one ends: 30 of its records, 4 of day two's (early), 4 ids never captured in
    # range (ev-old is three days old), and a row without a label.
    first = [(i, "1" if n % 3 else "0") for n, i in enumerate(day1[:30])]
    first[day1.index("ev-5-1")] = ("ev-5-1", "1,0,1")
    batch_a = first + [(i, "1") for i in day2[:4]]
    batch_a += [("ghost-1", "0"), ("ghost-2", "1"), ("ghost-3", "1"), ("ev-old", "0"), ("inf-9-0", "")]
    uploaded = upload(store_uri, tmp_path, "a", batch_a, D1 + timedelta(hours=23, minutes=10))
    assert uploaded["labels_written"] == 38 and uploaded["rows_skipped"]["missing_label"] == 1
    assert uploaded["skipped_rows"] == {"missing_label": [39]}
    # Relabelled the next hour: five change their label, one repeats it.
    relabel = [(i, "0" if v != "0" else "1") for i, v in first[20:25]] + [first[25]]
    upload(store_uri, tmp_path, "b", relabel, D2 + timedelta(minutes=30))
    # A hand-written file with two broken lines.
    store.write_bytes(f"groundtruth/{ENDPOINT}/2026/11/23/23/manual.jsonl",
                      b'{"groundTruthData": {"data": "1"}, "eventMetadata": {"eventId": "x"}}\n'
                      b"not json\n")

    report = merge(store_uri, D1, D2)
    assert counts(report) == {
        "captures_read": 49, "captures_malformed": 1, "captures_matched": 30,
        "captures_unmatched": 19, "labels_read": 44,
        "labels_malformed": 2, "labels_matched": 30, "labels_pending": 4, "labels_unknown": 4,
        "labels_duplicate": 6, "label_conflicts": 5}
    quarantine = [json.loads(q) for q in Path(report["outputs"]["quarantine"]).read_text().splitlines()]
    assert sorted(q["id"] for q in quarantine if q["kind"] == "unknown_label") == [
        "ev-old", "ghost-1", "ghost-2", "ghost-3"]
    assert sum(q["kind"] == "malformed_label" for q in quarantine) == 2
    assert sum(q["kind"] == "malformed_capture" for q in quarantine) == 1
    # The early labels stay where they are: day two's merge reads them (nothing is copied).
    assert "pending" not in report["outputs"]
    assert not store.list_dirs(f"merged/{ENDPOINT}/pending")

    # Late labels, the next morning: day one's remaining 19 records and 20 more of day two's.
    upload(store_uri, tmp_path, "c", [(i, "1") for i in day1[30:] + day2[4:24]],
           D2 + timedelta(hours=3))
    report2 = merge(store_uri, D2, D3)
    assert counts(report2) == {
        "captures_read": 48, "captures_malformed": 0, "captures_matched": 24,
        "captures_unmatched": 24, "labels_read": 83,
        "labels_malformed": 2, "labels_matched": 24, "labels_pending": 49, "labels_unknown": 4,
        "labels_duplicate": 6, "label_conflicts": 5}

    # Day one again: its late labels are matched now; nothing is left unmatched.
    again = merge(store_uri, D1, D2)
    assert counts(again) == {
        "captures_read": 49, "captures_malformed": 1, "captures_matched": 49,
        "captures_unmatched": 0, "labels_read": 83,
        "labels_malformed": 2, "labels_matched": 49, "labels_pending": 24, "labels_unknown": 4,
        "labels_duplicate": 6, "label_conflicts": 5}
    assert again["outputs"]["report"] == report["outputs"]["report"]

    # Nothing lost: every captured id that was labelled is merged once, with its latest label.
    merged = merged_labels(store)
    assert set(merged) == set(day1) | set(day2[:24])
    latest = dict(first) | dict(relabel)
    assert all(merged[i] == v for i, v in latest.items())
    assert merged["ev-5-1"] == "1,0,1"  # the three-row request is one record with three labels
    line = next(json.loads(raw) for raw in Path(store.path(
        f"merged/{ENDPOINT}/2026/11/23/05/part-00000.AllTraffic.jsonl")).read_text().splitlines()
        if '"ev-5-1"' in raw)
    assert line["captureData"] == records["ev-5-1"]["captureData"]
    assert line["eventMetadata"] == records["ev-5-1"]["eventMetadata"]

    # A re-run is idempotent: the same report, the same files, byte for byte.
    before = snapshot(store)
    assert merge(store_uri, D1, D2) == again
    assert snapshot(store) == before


def test_merging_hour_by_hour_writes_what_one_flush_writes(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store_uri = str(tmp_path / "store")
    store = Store(store_uri)
    day1, day2, _ = write_captures(Path(store.path(f"capture/{ENDPOINT}")))
    register_model(store, ModelRecord(name="churn", problem_type="binary",
                                      versions=[ModelVersion(version="1")]))
    register_endpoint(store, EndpointRecord(name=ENDPOINT, model="churn", model_version="1",
                                            capture_uri=store.uri(f"capture/{ENDPOINT}")))
    upload(store_uri, tmp_path, "a", [(i, "1") for i in day1[::2] + day2[:6]] + [("ghost", "0")],
           D2 + timedelta(hours=1))
    monkeypatch.setattr("modelwatch.flows.merge.FLUSH_BYTES", 1)  # a flush per hour, a filter per file
    by_hour = merge(store_uri, D1, D2)
    files = snapshot(store)
    monkeypatch.undo()
    assert merge(store_uri, D1, D2) == by_hour and snapshot(store) == files
    assert (by_hour["captures_matched"], by_hour["labels_pending"], by_hour["labels_unknown"]) == (25, 6, 1)


def test_merge_leaves_a_markdown_artifact_and_refuses_bad_input(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    store_uri = str(tmp_path / "store")
    store = Store(store_uri)
    register_model(store, ModelRecord(name="churn", problem_type="binary",
                                      versions=[ModelVersion(version="1")]))
    register_endpoint(store, EndpointRecord(name=ENDPOINT, model="churn", model_version="1",
                                            capture_uri=store.uri(f"capture/{ENDPOINT}")))
    # No traffic yet: a report that says so, not a failure.
    report = merge(store_uri, D1, D1 + timedelta(hours=2))
    assert report["captures_read"] == 0 and any("does not exist" in n for n in report["notes"])
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/artifacts/filter", json={
            "artifacts": {"key": {"any_": [f"merge-{ENDPOINT}"]}},
            "sort": "CREATED_DESC", "limit": 1, "offset": 0})
    [latest] = response.json()
    assert "ground-truth merge" in latest["data"] and "labels for unknown ids" in latest["data"]

    code, _ = invoke("groundtruth", "merge", "--endpoint", "ghost", "--start", iso_z(D1),
                     "--end", iso_z(D2), "--store", store_uri)
    assert code == 2
    code, _ = invoke("groundtruth", "merge", "--endpoint", ENDPOINT, "--start", iso_z(D1),
                     "--end", iso_z(D2), "--lookback", "7 days", "--store", store_uri)
    assert code == 2
    code, _ = invoke("groundtruth", "upload", "--endpoint", ENDPOINT, "--file",
                     str(tmp_path / "missing.csv"), "--id-column", "id", "--label-column", "y",
                     "--store", store_uri)
    assert code == 2


def test_s3_store_and_a_rerun_after_labels_are_withdrawn(s3_bucket: str, tmp_path: Path) -> None:
    store = Store(s3_bucket)
    register_model(store, ModelRecord(name="churn", problem_type="binary",
                                      versions=[ModelVersion(version="1")]))
    register_endpoint(store, EndpointRecord(name=ENDPOINT, model="churn", model_version="1",
                                            capture_uri=f"{s3_bucket}/capture/{ENDPOINT}"))
    for h in range(3):  # hours 0 and 1 are the window; hour 2 lies in its lookahead
        at = D1 + timedelta(hours=h, minutes=1)
        lines = [capture_line(capture_record(f"{h},{j}", "0.3", encoding="CSV", event_id=f"e{h}{j}",
                                             inference_time=at)) for j in range(3)]
        store.write_text(f"capture/{ENDPOINT}/AllTraffic/{at:%Y/%m/%d/%H}/00-01-000-f{h}.jsonl",
                         "".join(lines))
    uploaded = upload(s3_bucket, tmp_path, "labels",
                      [("e00", "1"), ("e01", "0"), ("e10", "1"), ("e11", "1"), ("e20", "0"),
                       ("nobody", "1")], D1 + timedelta(hours=1, minutes=30))
    [written] = uploaded["files"]
    assert written["uri"].startswith(s3_bucket + "/groundtruth/")

    end = D1 + timedelta(hours=2)
    report = merge(s3_bucket, D1, end)
    assert (report["captures_matched"], report["captures_unmatched"], report["labels_pending"],
            report["labels_unknown"]) == (4, 2, 1, 1)
    assert report["outputs"]["report"].startswith(s3_bucket)
    assert [u[len(s3_bucket) + 1:] for u in report["outputs"]["merged"]] == [
        f"merged/{ENDPOINT}/2026/11/23/00/part-00000.AllTraffic.jsonl",
        f"merged/{ENDPOINT}/2026/11/23/01/part-00000.AllTraffic.jsonl"]
    assert len(Store(s3_bucket).read_bytes(report["outputs"]["merged"][0][len(s3_bucket) + 1:])
               .splitlines()) == 2

    # The labels are withdrawn: the re-run leaves no merged file of the earlier run.
    store.delete(written["uri"][len(s3_bucket) + 1:])
    again = merge(s3_bucket, D1, end)
    assert again["captures_matched"] == 0 and again["labels_read"] == 0
    assert again["outputs"]["merged"] == []
    fresh = Store(s3_bucket)
    assert not any(k.endswith(".running.json") for k in fresh.list(f"merged/{ENDPOINT}/reports"))
    for uri in report["outputs"]["merged"]:
        assert not fresh.exists(uri[len(s3_bucket) + 1:]), uri
    assert fresh.exists(f"merged/{ENDPOINT}/reports/20261123T000000Z_20261123T020000Z.json")


def _endpoint_store(root: Path) -> Store:
    store = Store(str(root))
    register_model(store, ModelRecord(name="churn", problem_type="binary",
                                      versions=[ModelVersion(version="1")]))
    register_endpoint(store, EndpointRecord(name=ENDPOINT, model="churn", model_version="1",
                                            capture_uri=store.uri(f"capture/{ENDPOINT}")))
    return store


def _write_capture(store: Store, event_id: str, at: datetime) -> None:
    record = capture_record("1,2,3", "0.4", encoding="CSV", event_id=event_id, inference_time=at)
    store.write_text(f"capture/{ENDPOINT}/AllTraffic/{at:%Y/%m/%d/%H}/{event_id}.jsonl",
                     capture_line(record))


@pytest.mark.parametrize("order", ["earlier window first", "later window first"])
def test_a_label_older_than_its_capture_is_merged_whatever_the_order(tmp_path: Path,
                                                                     order: str) -> None:
    """A label labelled at 10:50 for a record whose capture file landed in hour 11, and a record
    captured after the earlier window's merge ran: both are merged, in either order of merges."""
    store = _endpoint_store(tmp_path / "store")
    ten, eleven = D1 + timedelta(hours=10), D1 + timedelta(hours=11)
    _write_capture(store, "skewed", eleven + timedelta(minutes=1))
    upload(str(tmp_path / "store"), tmp_path, "early", [("skewed", "1"), ("late-capture", "0")],
           ten + timedelta(minutes=50))
    windows = [(ten, eleven), (eleven, eleven + timedelta(hours=1))]
    if order == "later window first":
        windows.reverse()
    merge(str(tmp_path / "store"), *windows[0])
    _write_capture(store, "late-capture", eleven + timedelta(minutes=5))  # after the first merge
    merge(str(tmp_path / "store"), *windows[1])
    if order == "later window first":
        # Hour 11 was merged before its late capture existed: its next merge picks that up.
        merge(str(tmp_path / "store"), eleven, eleven + timedelta(hours=1))
    assert merged_labels(store) == {"skewed": "1", "late-capture": "0"}


def test_the_later_of_two_uploads_in_one_hour_wins(tmp_path: Path) -> None:
    store = _endpoint_store(tmp_path / "store")
    ids = [f"r{i}" for i in range(6)]
    for i, event_id in enumerate(ids):
        _write_capture(store, event_id, D1 + timedelta(hours=i, minutes=2))
    for i, event_id in enumerate(ids):  # each hour: "1" uploaded, then corrected to "0"
        at = D1 + timedelta(hours=i, minutes=30)
        upload(str(tmp_path / "store"), tmp_path, f"first-{i}", [(event_id, "1")], at)
        upload(str(tmp_path / "store"), tmp_path, f"second-{i}", [(event_id, "0")], at)
    report = merge(str(tmp_path / "store"), D1, D1 + timedelta(hours=6))
    assert report["labels_duplicate"] == 6 and report["label_conflicts"] == 6
    assert merged_labels(store) == dict.fromkeys(ids, "0")

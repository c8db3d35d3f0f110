"""Tests for the synthetic credit-default capture generator in modelwatch.flows.demo_data."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from modelwatch.flows.demo_data import (
    CATEGORICAL,
    FEATURES,
    LABEL,
    NUMERIC,
    VARIANT,
    DemoCase,
    capture_line,
    capture_record,
    generate_demo,
    training_frame,
    write_csv_capture_file,
)

ROWS_PER_HOUR = 20
START = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> DemoCase:
    out = tmp_path_factory.mktemp("demo")
    return generate_demo(out, rows_per_hour=ROWS_PER_HOUR, training_rows=3_000, seed=11)


def _files(case: DemoCase) -> list[Path]:
    return sorted((case.capture_root / VARIANT).rglob("*.jsonl"))


def _parse_line(line: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(record, rows keyed by feature) for a well-formed line, None for a malformed one."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if "captureData" not in record:
        return None
    inp = record["captureData"]["endpointInput"]
    if inp["encoding"] in ("CSV", "BASE64"):
        text = inp["data"]
        if inp["encoding"] == "BASE64":
            text = base64.b64decode(inp["data"]).decode()
        values = text.split(",")
        if len(values) != len(FEATURES):
            return None
        return record, [dict(zip(FEATURES, values, strict=True))]
    try:
        body = json.loads(inp["data"])
    except json.JSONDecodeError:
        return None
    return record, body["instances"]


def _day_rows(case: DemoCase) -> tuple[dict[int, pd.DataFrame], int]:
    """Well-formed rows per day index, plus the count of malformed lines."""
    rows: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    malformed = 0
    for path in _files(case):
        for line in path.read_text().splitlines():
            parsed = _parse_line(line)
            if parsed is None:
                malformed += 1
                continue
            record, instances = parsed
            when = datetime.strptime(
                record["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ"
            ).replace(tzinfo=UTC)
            day = next(i for i, (lo, hi) in enumerate(case.days) if lo <= when < hi)
            rows[day].extend(instances)
    frames = {}
    for day, items in rows.items():
        frame = pd.DataFrame(items, columns=FEATURES).replace("", np.nan)
        frame["income"] = pd.to_numeric(frame["income"])
        frames[day] = frame
    return frames, malformed


def test_layout_and_days(case: DemoCase) -> None:
    assert case.days == [
        (START, datetime(2026, 11, 24, tzinfo=UTC)),
        (datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)),
    ]
    files = _files(case)
    hour_dirs = {p.parent for p in files}
    assert len(hour_dirs) == 48
    for path in files:
        rel = path.relative_to(case.capture_root)
        assert rel.parts[0] == VARIANT
        year, month, day, hour = (int(x) for x in rel.parts[1:5])
        assert len(rel.parts) == 6
        assert year == 2026 and month == 11 and day in (23, 24) and 0 <= hour < 24
        minute, second, millis, *uuid_parts = path.stem.split("-")
        assert len(minute) == len(second) == 2 and len(millis) == 3 and len(uuid_parts) == 5
    per_hour = pd.Series([p.parent for p in files]).value_counts()
    assert set(per_hour) <= {1, 2}


def test_records_are_well_formed(case: DemoCase) -> None:
    n_records = 0
    for path in _files(case):
        hour_dir = path.parent.relative_to(case.capture_root / VARIANT)
        hour_prefix = "{}-{}-{}T{}:".format(*hour_dir.parts)
        for line in path.read_text().splitlines():
            if _parse_line(line) is None:
                continue
            record = json.loads(line)
            n_records += 1
            assert record["eventVersion"] == "0"
            meta = record["eventMetadata"]
            assert len(meta["eventId"]) == 36 and meta["eventId"][14] == "4"
            assert meta["inferenceTime"].startswith(hour_prefix)
            assert meta["inferenceTime"].endswith("Z") and len(meta["inferenceTime"]) == 20
            for key, mode in (("endpointInput", "INPUT"), ("endpointOutput", "OUTPUT")):
                part = record["captureData"][key]
                assert part["mode"] == mode
                assert set(part) == {"observedContentType", "mode", "data", "encoding"}
    assert n_records > 0


def test_every_hour_has_all_encodings_and_rows(case: DemoCase) -> None:
    by_hour: dict[Path, set[str]] = {}
    rows_by_hour: dict[Path, int] = {}
    for path in _files(case):
        for line in path.read_text().splitlines():
            parsed = _parse_line(line)
            if parsed is None:
                continue
            record, instances = parsed
            by_hour.setdefault(path.parent, set()).add(
                record["captureData"]["endpointInput"]["encoding"]
            )
            rows_by_hour[path.parent] = rows_by_hour.get(path.parent, 0) + len(instances)
    assert all(encs == {"CSV", "JSON", "BASE64"} for encs in by_hour.values())
    assert set(rows_by_hour.values()) == {ROWS_PER_HOUR}


def test_base64_and_json_payloads(case: DemoCase) -> None:
    seen_json_missing = seen_csv_missing = False
    for path in _files(case):
        for line in path.read_text().splitlines():
            parsed = _parse_line(line)
            if parsed is None:
                continue
            record, instances = parsed
            inp = record["captureData"]["endpointInput"]
            out = record["captureData"]["endpointOutput"]
            if inp["encoding"] == "BASE64":
                row = base64.b64decode(inp["data"]).decode()
                assert len(row.split(",")) == len(FEATURES)
                assert inp["observedContentType"] == "text/csv"
                assert 0.0 <= float(base64.b64decode(out["data"]).decode()) <= 1.0
            elif inp["encoding"] == "JSON":
                assert 1 <= len(instances) <= 3
                assert all(list(row) == FEATURES for row in instances)
                seen_json_missing |= any(row["utilization"] is None for row in instances)
                preds = json.loads(out["data"])["predictions"]
                assert len(preds) == len(instances)
                assert all(p["predicted_label"] == int(p["score"] >= 0.5) for p in preds)
            else:
                values = inp["data"].split(",")
                # integers stay integers, floats carry at most 4 decimals
                assert "." not in values[0] and "." not in values[3] and "." not in values[7]
                assert all(len(v.split(".")[-1]) <= 4 for v in values[1:5] if "." in v)
                seen_csv_missing |= values[4] == ""
                assert 0.0 <= float(out["data"]) <= 1.0
    assert seen_json_missing and seen_csv_missing


def test_malformed_lines_counted(case: DemoCase) -> None:
    _, malformed = _day_rows(case)
    assert case.malformed_lines == 20
    assert malformed == case.malformed_lines


def test_day_two_drift(case: DemoCase) -> None:
    frames, _ = _day_rows(case)
    day1, day2 = frames[0], frames[1]
    assert day2["income"].mean() > 1.4 * day1["income"].mean()
    assert "central" not in set(day1["region"])
    assert 0.15 < (day2["region"] == "central").mean() < 0.35
    assert day2["utilization"].isna().mean() > day1["utilization"].isna().mean() + 0.15
    assert set(case.drifted_features) == {"income", "region", "utilization"}


def test_training_csv_and_model(case: DemoCase) -> None:
    train = pd.read_csv(case.training_csv)
    assert list(train.columns) == FEATURES + [LABEL]
    assert len(train) == 3_000
    assert 0.02 < train["utilization"].isna().mean() < 0.1
    assert set(train["region"]) == {"north", "south", "east", "west"}
    model = joblib.load(case.model_path)
    probs = model.predict_proba(train[FEATURES])[:, 1]
    assert probs.shape == (3_000,) and ((probs >= 0) & (probs <= 1)).all()
    # scores must follow the label or monitoring a quality metric would be meaningless
    assert probs[train[LABEL] == 1].mean() > probs[train[LABEL] == 0].mean() + 0.05


def test_training_frame_ranges() -> None:
    frame = training_frame(5_000, np.random.default_rng(0))
    assert frame["age"].between(18, 90).all()
    assert frame["debt_ratio"].between(0, 1.5).all()
    assert frame["utilization"].dropna().between(0, 1).all()
    assert set(frame["has_mortgage"]) == {0, 1}
    assert set(NUMERIC) | set(CATEGORICAL) == set(FEATURES)


def test_deterministic(case: DemoCase, tmp_path: Path) -> None:
    again = generate_demo(tmp_path, rows_per_hour=ROWS_PER_HOUR, training_rows=3_000, seed=11)
    first = [p.relative_to(case.capture_root) for p in _files(case)]
    second = [p.relative_to(again.capture_root) for p in _files(again)]
    assert first == second
    for rel in (first[0], first[len(first) // 2], first[-1]):
        assert (case.capture_root / rel).read_bytes() == (again.capture_root / rel).read_bytes()
    other = generate_demo(tmp_path / "other", rows_per_hour=ROWS_PER_HOUR, training_rows=3_000)
    assert [p.relative_to(other.capture_root) for p in _files(other)] != first


def test_fast_writer_matches_capture_record(tmp_path: Path) -> None:
    rows = ["42,26583.66,0.239,3,,north,retired,0", "30,1000.5,1.2,0,0.5,east,salaried,1"]
    outputs = ["0.129", "0.8"]
    times = ["2026-11-23T00:02:37Z", "2026-11-23T00:02:38Z"]
    ids = ["8964e988-2d31-4949-80aa-7b68d0fc4297", "19734419-fcb5-4655-8f69-aa6af7d3b7c3"]
    path = tmp_path / "x" / "f.jsonl"
    write_csv_capture_file(path, rows, outputs, times, ids)
    expected = "".join(
        capture_line(capture_record(r, o, encoding="CSV", event_id=e, inference_time=t))
        for r, o, t, e in zip(rows, outputs, times, ids, strict=True)
    )
    assert path.read_text() == expected


def test_capture_record_base64_and_json() -> None:
    when = datetime(2026, 11, 23, 5, 6, 7, 890000, tzinfo=UTC)
    rec = capture_record(
        "1,2", "0.5", encoding="BASE64", event_id="e", inference_time=when, inference_id="9"
    )
    assert base64.b64decode(rec["captureData"]["endpointInput"]["data"]) == b"1,2"
    assert rec["eventMetadata"] == {
        "eventId": "e",
        "inferenceId": "9",
        "inferenceTime": "2026-11-23T05:06:07Z",
    }
    rec = capture_record(
        {"instances": [{"age": 1}]},
        {"predictions": []},
        encoding="JSON",
        event_id="e",
        inference_time=when,
    )
    assert json.loads(rec["captureData"]["endpointInput"]["data"]) == {"instances": [{"age": 1}]}
    assert rec["captureData"]["endpointInput"]["observedContentType"] == "application/json"
    with pytest.raises(TypeError):
        capture_record({"a": 1}, "0", encoding="CSV", event_id="e", inference_time=when)

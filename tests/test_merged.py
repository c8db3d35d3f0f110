"""Reading merged records: labels, predictions, scores and the captured inputs stay aligned row for row
whatever mix of CSV, multi-row JSON and base64 requests a window holds, and malformed records are
quarantined with their reason, not dropped."""

from __future__ import annotations

import orjson

from modelwatch.flows.demo_data import capture_line, capture_record
from modelwatch.tasks.merged import MergedBatch, read_merged
from tests.sagemaker_samples import sample

FEATURES = ["age", "region", "score_in"]


def merged(record: dict, label: str) -> str:
    record["groundTruthData"] = {"data": label, "encoding": "CSV"}
    return capture_line(record)


def window() -> bytes:
    lines = [
        merged(capture_record("41,north,0.5", "0.81", encoding="CSV", event_id="a",
                              inference_time="2026-11-20T00:00:01Z"), "1"),
        merged(capture_record({"instances": [{"age": 30, "region": "south", "score_in": 0.1},
                                             {"age": 52, "region": "east", "score_in": 0.9}]},
                              {"predictions": [{"predicted_label": 0, "score": 0.2},
                                               {"predicted_label": 1, "score": 0.7}]},
                              encoding="JSON", event_id="b", inference_time="2026-11-20T00:00:02Z"),
               "0,1"),
        merged(capture_record("19,west,0.25", "0.33", encoding="BASE64", event_id="c",
                              inference_time="2026-11-20T00:00:03Z"), "0"),
        merged(capture_record("77,north", "0.4", encoding="CSV", event_id="d",  # a value short
                              inference_time="2026-11-20T00:00:04Z"), "1"),
        merged(capture_record("60,east,0.75", "0.91", encoding="CSV", event_id="e",
                              inference_time="2026-11-20T00:00:05Z"), "1"),
    ]
    return "".join(lines).encode()


def test_inputs_stay_aligned_with_labels() -> None:
    batch = read_merged(window(), "w.jsonl", FEATURES)
    assert batch.records_read == 5
    assert [q["line"] for q in batch.quarantine] == [4]
    assert "2 values, expected 3" in batch.quarantine[0]["reason"]
    frame = batch.input_frame(FEATURES)
    assert list(frame["age"].astype(int)) == [41, 30, 52, 19, 60]
    assert list(frame["region"]) == ["north", "south", "east", "west", "east"]
    assert [str(v) for v in batch.labels] == ["1", "0", "1", "0", "1"]
    assert batch.scores == [0.81, 0.2, 0.7, 0.33, 0.91]
    assert batch.predictions[1:3] == [0, 1]


def test_batches_extend_in_order() -> None:
    first, second = read_merged(window(), "a", FEATURES), read_merged(window(), "b", FEATURES)
    total = MergedBatch()
    total.extend(first)
    total.extend(second)
    frame = total.input_frame(FEATURES)
    assert len(frame) == len(total.labels) == 10
    assert list(frame["age"].astype(int)) == [41, 30, 52, 19, 60] * 2
    assert len(total.quarantine) == 2


def test_without_features_no_inputs_are_kept() -> None:
    # Inputs are not read, so the short CSV row is not a problem here (model quality needs no inputs).
    batch = read_merged(window(), "w", None)
    assert len(batch.labels) == 6 and batch.quarantine == []
    assert batch.input_frame(FEATURES).shape == (6, 0)


def test_sagemaker_merged_sample_reads() -> None:
    data = sample("merged_capture_groundtruth_record.jsonl").read_bytes()
    record = orjson.loads(data.splitlines()[0])
    truth = orjson.loads(record["groundTruthData"]["data"])["instances"]
    instances = orjson.loads(record["captureData"]["endpointInput"]["data"])["instances"]
    features = [f"f{i}" for i in range(len(instances[0]["features"]))]
    batch = read_merged(data, "sample", features)
    assert batch.quarantine == []
    assert batch.labels == [t["label"] for t in truth]
    frame = batch.input_frame(features)
    assert frame.shape == (len(truth), len(features))
    assert frame.to_numpy().tolist() == [i["features"] for i in instances]

"""Two models behind one multi-model endpoint, one of them drifting: the capture middleware's writer
files each model's records apart, and each model's monitor, merge and dashboard row see only its own."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from modelwatch.capture import CaptureConfig, CaptureWriter
from modelwatch.tasks.store import Store
from tests.cli_run import run

pytestmark = pytest.mark.usefixtures("prefect_api")
FEATURES = ["f0", "f1", "f2"]
HOUR = datetime(2026, 11, 23, 10, tzinfo=UTC)
WINDOW = ("--start", "2026-11-23T10:00:00Z", "--end", "2026-11-23T11:00:00Z")
ROWS = 400


def test_each_model_of_a_multi_model_endpoint_is_monitored_on_its_own(tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    rng = np.random.default_rng(5)
    train = tmp_path / "train.csv"
    with train.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, "label"])
        writer.writerows([*row, int(row[0] > 0)] for row in rng.normal(size=(5000, 3)).round(6))
    for model in ("churn-a", "churn-b"):
        run("models", "register", "--model", model, "--problem-type", "binary", "--features-from",
            str(train), "--label", "label", "--store", store_uri)
        run("baseline", "suggest", "--model", model, "--dataset", str(train), "--label", "label",
            "--store", store_uri)
    record = run("endpoints", "register", "--endpoint", "shared", "--model", "churn-a",
                 "--model-version", "1", "--hosts", "churn-b=1", "--store", store_uri)
    assert [h["model"] for h in record["hosted"]] == ["churn-a", "churn-b"]

    # Traffic for both models through one endpoint's writer; churn-b's f1 has moved by 1.5 sd.
    capture = CaptureWriter(CaptureConfig(store=store_uri, endpoint="shared", flush_seconds=30,
                                          target_model_header="X-Amzn-SageMaker-Target-Model"))
    sent: dict[str, list[str]] = {"churn-a": [], "churn-b": []}
    for i in range(2 * ROWS):
        model = "churn-a" if i % 2 else "churn-b"
        row = rng.normal(size=3) + (np.array([0, 1.5, 0]) if model == "churn-b" else 0)
        ident = f"{model}-{i}"
        assert capture.record(",".join(f"{v:.6f}" for v in row), "0.5", target=model, inference_id=ident,
                              at=(HOUR + timedelta(seconds=4 * i)).timestamp(), seconds=0.002)
        sent[model].append(ident)
    capture.close()

    executions = {m: run("monitor", "run", "--model", m, *WINDOW, "--no-report", "--store", store_uri)
                  for m in sent}
    assert {m: e["records_read"] for m, e in executions.items()} == {"churn-a": ROWS, "churn-b": ROWS}
    assert executions["churn-a"]["status"] == "Completed"
    assert executions["churn-b"]["status"] == "CompletedWithViolations"
    violations = json.loads(Path(executions["churn-b"]["outputs"]["constraint_violations.json"]).read_text())
    assert {v["feature_name"] for v in violations["violations"]} == {"f1"}

    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{i},1\n" for ids in sent.values() for i in ids))
    run("groundtruth", "upload", "--endpoint", "shared", "--file", str(labels), "--id-column", "id",
        "--label-column", "label", "--labelled-at", "2026-11-23T10:45:00Z", "--store", store_uri)
    merged = run("groundtruth", "merge", "--endpoint", "shared", *WINDOW, "--lookback", "PT1H",
                 "--store", store_uri)
    assert merged["captures_read"] == merged["labels_matched"] == 2 * ROWS
    assert merged["labels_pending"] == merged["labels_unknown"] == 0
    store = Store(store_uri)
    for model, ids in sent.items():
        folder = f"merged/shared/models/{model}/2026/11/23/10"
        lines = [json.loads(line) for key in store.list(folder)
                 for line in store.read_bytes(key).splitlines()]
        assert sorted(r["eventMetadata"]["inferenceId"] for r in lines) == sorted(ids)

    dashboard = run("dashboard", "--refresh", "--json", "--store", store_uri)
    rows = {r["model"]: r for r in dashboard["models"]}
    assert rows["churn-a"]["endpoints"] == rows["churn-b"]["endpoints"] == ["shared"]

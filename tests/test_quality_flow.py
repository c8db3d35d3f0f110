"""The model-quality baseline and monitor flows through the CLI on a real (temporary) Prefect API:
metrics of merged windows against scikit-learn, NoData below the minimum, a violation when the model
degrades, and the alert moving to ALARM."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

from modelwatch.flows.demo_data import capture_line, capture_record
from modelwatch.tasks.alerts import read_alert
from modelwatch.tasks.html_templates import fmt_number
from modelwatch.tasks.store import Store
from tests.cli_run import run
from tests.report_pages import read_report

pytestmark = pytest.mark.usefixtures("prefect_api")
MODEL = "scorer"
START = datetime(2026, 11, 20, tzinfo=UTC)




def scored(n: int, rng: np.random.Generator, flip: float = 0.0) -> pd.DataFrame:
    """Labels, and scores of a fair model; `flip` of the labels are inverted (a degraded model)."""
    score = rng.uniform(0, 1, n)
    label = (rng.uniform(0, 1, n) < score).astype(int)
    flipped = rng.uniform(0, 1, n) < flip
    label[flipped] = 1 - label[flipped]
    return pd.DataFrame({"x": rng.normal(size=n), "label": label, "score": score.round(4),
                         "prediction": (score >= 0.5).astype(int)})


def write_merged(root: Path, frame: pd.DataFrame, hour: datetime, rng: np.random.Generator) -> None:
    folder = root / hour.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, row in enumerate(frame.itertuples()):
        if i % 3 == 0:  # a JSON response with label and score
            record = capture_record({"instances": [{"x": row.x}]},
                                    {"predictions": [{"score": row.score,
                                                      "predicted_label": int(row.prediction)}]},
                                    encoding="JSON", event_id=f"e{i}", inference_time=hour)
        else:  # a CSV response: the score alone, thresholded by the monitor
            record = capture_record(f"{row.x:.4f}", f"{row.score}", encoding="CSV",
                                    event_id=f"e{i}", inference_time=hour)
        record["groundTruthData"] = {"data": str(row.label), "encoding": "CSV"}
        lines.append(capture_line(record))
    lines.append("{broken\n")
    (folder / "part-00000.jsonl").write_text("".join(lines))


def test_model_quality_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    store = str(tmp_path / "store")
    validation = scored(20_000, rng)
    validation.to_csv(tmp_path / "validation.csv", index=False)
    uris = run("baseline", "suggest", "--model", MODEL, "--type", "model-quality", "--dataset",
               str(tmp_path / "validation.csv"), "--label", "label", "--prediction", "prediction",
               "--probability", "score", "--problem-type", "binary", "--store", store)
    statistics = json.loads(Path(uris["statistics"]).read_text())["binary_classification_metrics"]
    assert statistics["accuracy"]["value"] == pytest.approx(
        accuracy_score(validation["label"], validation["prediction"]))
    assert statistics["auc"]["value"] == pytest.approx(
        roc_auc_score(validation["label"], validation["score"]))

    merged = tmp_path / "merged"
    healthy, degraded = scored(1_500, rng), scored(1_500, rng, flip=0.25)
    write_merged(merged, healthy, START, rng)
    write_merged(merged, degraded, START + timedelta(days=1), rng)
    write_merged(merged, scored(50, rng), START + timedelta(days=2), rng)

    def monitor(day: int) -> dict:
        start = START + timedelta(days=day)
        return run("monitor", "run", "--model", MODEL, "--type", "model-quality", "--merged",
                   str(merged), "--start", start.isoformat(), "--end",
                   (start + timedelta(days=1)).isoformat(), "--store", store)

    day1 = monitor(0)
    assert day1["status"] == "Completed" and day1["rows_profiled"] == 1_500
    assert day1["records_malformed"] == 1
    window = json.loads(Path(day1["outputs"]["statistics.json"]).read_text())
    metrics = window["binary_classification_metrics"]
    assert metrics["accuracy"]["value"] == pytest.approx(
        accuracy_score(healthy["label"], healthy["prediction"]))
    assert metrics["f1"]["value"] == pytest.approx(f1_score(healthy["label"], healthy["prediction"]))
    assert metrics["auc"]["value"] == pytest.approx(roc_auc_score(healthy["label"], healthy["score"]))
    # report.html: every constrained metric's row, the confusion matrix and both curves.
    page = read_report(day1)
    rows = {c["subject"]: c for c in page.checks}
    assert rows["accuracy"]["value"] == fmt_number(accuracy_score(healthy["label"],
                                                                  healthy["prediction"]))
    assert rows["accuracy"]["verdict"] == "Pass" and rows["accuracy"]["threshold"].startswith("≥")
    matrix = next(t for t in page.tables if t and t[0][0] in ("0", "1"))
    expected = confusion_matrix(healthy["label"], healthy["prediction"], labels=[0, 1])
    assert [[int(v.replace(",", "")) for v in row[1:]] for row in matrix] == expected.tolist()
    assert {"ROC curve", "Precision-recall curve"} <= set(page.charts)

    day2 = monitor(1)
    assert day2["status"] == "CompletedWithViolations"
    violations = json.loads(Path(day2["outputs"]["constraint_violations.json"]).read_text())
    assert {v["metric_name"] for v in violations["violations"]} >= {"accuracy"}
    page = read_report(day2)
    assert [c["verdict"] for c in page.checks][:1] == ["Violation"]  # failed checks lead
    assert read_alert(Store(store), MODEL, "model-quality").state == "ALARM"

    day3 = monitor(2)
    assert day3["status"] == "NoData" and day3["rows_profiled"] == 50
    assert "at least 200" in day3["notes"][0]
    assert read_report(day3).checks == []


def test_a_regression_whose_predictions_lie_in_zero_one_keeps_every_row(tmp_path: Path) -> None:
    """Predicted shares (a regression into [0, 1]) are predictions, not scores: no row vanishes."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(11)
    store = str(tmp_path / "store")
    model = "share-estimator"

    def frame(n: int) -> pd.DataFrame:
        truth = rng.uniform(0, 1.4, n).round(4)  # some labels above 1, predictions mostly below
        return pd.DataFrame({"label": truth, "prediction": np.clip(truth + rng.normal(0, 0.1, n),
                                                                  0, None).round(4)})

    frame(5_000).to_csv(tmp_path / "validation.csv", index=False)
    run("baseline", "suggest", "--model", model, "--type", "model-quality", "--dataset",
        str(tmp_path / "validation.csv"), "--label", "label", "--prediction", "prediction",
        "--problem-type", "regression", "--store", store)
    window = frame(1_000)
    folder = tmp_path / "merged" / START.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True)
    lines = []
    for i, row in enumerate(window.itertuples()):
        record = capture_record("1.0", f"{row.prediction}", encoding="CSV", event_id=f"r{i}",
                                inference_time=START)
        record["groundTruthData"] = {"data": str(row.label), "encoding": "CSV"}
        lines.append(capture_line(record))
    (folder / "part-00000.jsonl").write_text("".join(lines))
    execution = run("monitor", "run", "--model", model, "--type", "model-quality", "--merged",
                    str(tmp_path / "merged"), "--start", START.isoformat(), "--end",
                    (START + timedelta(hours=1)).isoformat(), "--store", store)
    assert execution["rows_profiled"] == 1_000
    metrics = json.loads(Path(execution["outputs"]["statistics.json"]).read_text())[
        "regression_metrics"]
    assert metrics["mae"]["value"] == pytest.approx(mean_absolute_error(window.label, window.prediction))
    assert metrics["mse"]["value"] == pytest.approx(mean_squared_error(window.label, window.prediction))
    assert metrics["r2"]["value"] == pytest.approx(r2_score(window.label, window.prediction))

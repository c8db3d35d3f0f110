"""The feature-attribution-drift baseline and monitor flows through the CLI on a real (temporary)
Prefect API, with a linear model whose SHAP values have a closed form: the window's global attributions
against that form computed here, nDCG against scikit-learn's, a violation naming the feature whose
importance collapsed, NoData below the minimum, and user errors (exit 2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import ndcg_score

from modelwatch.flows.demo_data import write_csv_capture_file
from modelwatch.tasks.alerts import read_alert
from modelwatch.tasks.html_templates import fmt_number
from modelwatch.tasks.registry import FeatureSpec, ModelRecord, ModelVersion, register_model
from modelwatch.tasks.store import Store
from tests.cli_run import invoke, run
from tests.report_pages import read_report

pytestmark = pytest.mark.usefixtures("prefect_api")
MODEL = "pricer"
FEATURES = ["x1", "x2", "x3", "x4"]
WEIGHTS = np.array([3.0, -2.0, 1.0, 0.25])
START = datetime(2026, 11, 20, tzinfo=UTC)


def inputs(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(rng.normal(0, 1, (n, 4)).round(4), columns=FEATURES)


def write_capture(root: Path, frame: pd.DataFrame, model: LinearRegression, hour: datetime) -> None:
    rows = [",".join(repr(float(v)) for v in r) for r in frame[FEATURES].itertuples(index=False)]
    outputs = [repr(float(v)) for v in model.predict(frame[FEATURES]).round(4)]
    stamp = hour.strftime("%Y-%m-%dT%H:%M:%SZ")
    write_csv_capture_file(root / "AllTraffic" / hour.strftime("%Y/%m/%d/%H") / "00-00-000-a.jsonl",
                           rows, outputs, [stamp] * len(rows), [f"e{i}" for i in range(len(rows))])


def global_values(analysis: dict) -> dict[str, float]:
    (labels,) = analysis["explanations"].values()
    (label,) = labels.values()
    return label["global_shap_values"]


def test_attribution_drift_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    store = str(tmp_path / "store")
    training = inputs(5_000, rng)
    training["y"] = training[FEATURES].to_numpy() @ WEIGHTS + rng.normal(0, 0.1, len(training))
    training.to_csv(tmp_path / "training.csv", index=False)
    model = LinearRegression().fit(training[FEATURES], training["y"])
    joblib.dump(model, tmp_path / "model.joblib")
    register_model(Store(store), ModelRecord(
        name=MODEL, problem_type="regression", label="y",
        features=[FeatureSpec(name=f) for f in FEATURES],
        versions=[ModelVersion(version="1", artifact_uri=str(tmp_path / "model.joblib"))]))

    uris = run("baseline", "suggest", "--model", MODEL, "--type", "feature-attribution-drift",
               "--dataset", str(tmp_path / "training.csv"), "--label", "y", "--sample-size", "600",
               "--background-size", "100", "--store", store)
    baseline = global_values(json.loads(Path(uris["analysis"]).read_text()))
    assert max(baseline, key=baseline.get) == "x1" and min(baseline, key=baseline.get) == "x4"

    capture = tmp_path / "capture"
    healthy = inputs(500, rng)
    broken = inputs(500, rng)
    broken["x1"] = 0.0  # an upstream change: x1 arrives as a constant
    write_capture(capture, healthy, model, START)
    write_capture(capture, broken, model, START + timedelta(days=1))
    write_capture(capture, inputs(50, rng), model, START + timedelta(days=2))

    def monitor(day: int) -> dict:
        start = START + timedelta(days=day)
        return run("monitor", "run", "--model", MODEL, "--type", "feature-attribution-drift",
                   "--capture", str(capture), "--start", start.isoformat(), "--end",
                   (start + timedelta(days=1)).isoformat(), "--store", store)

    day1 = monitor(0)
    assert day1["status"] == "Completed", day1
    assert day1["records_read"] == 500 and day1["rows_profiled"] == 500  # all explained (<= 600)
    window = global_values(json.loads(Path(day1["outputs"]["analysis.json"]).read_text()))
    background = pd.read_parquet(uris["background"])
    # A linear model on independent features: SHAP_i(x) = w_i (x_i - E_background[x_i]).
    expected = np.abs(model.coef_) * np.abs(healthy[FEATURES] - background[FEATURES].mean()).mean()
    assert [window[f] for f in FEATURES] == pytest.approx(list(expected), rel=1e-6)
    reference = ndcg_score([[baseline[f] for f in FEATURES]], [[window[f] for f in FEATURES]])
    assert reference >= 0.9
    page = read_report(day1)
    (check,) = page.checks
    assert check["check"] == "feature_attribution_drift_check" and check["verdict"] == "Pass"
    assert check["value"] == fmt_number(reference) and check["threshold"] == "≥ 0.9"
    ranking = page.tables[0]  # baseline order, baseline rank first
    assert [row[1] for row in ranking] == sorted(FEATURES, key=lambda f: -baseline[f])
    assert [row[4] for row in ranking] == [
        str(1 + sorted(FEATURES, key=lambda f: -window[f]).index(row[1])) for row in ranking]

    day2 = monitor(1)
    assert day2["status"] == "CompletedWithViolations"
    violations = json.loads(Path(day2["outputs"]["constraint_violations.json"]).read_text())
    (violation,) = violations["violations"]
    assert violation["constraint_check_type"] == "feature_attribution_drift_check"
    current = global_values(json.loads(Path(day2["outputs"]["analysis.json"]).read_text()))
    score = ndcg_score([[baseline[f] for f in FEATURES]], [[current[f] for f in FEATURES]])
    assert score < 0.9
    assert f"{score}"[:6] in violation["description"] and "0.9" in violation["description"]
    assert "x1" in violation["description"]
    (check,) = read_report(day2).checks
    assert check["verdict"] == "Violation" and check["value"] == fmt_number(score)
    assert read_alert(Store(store), MODEL, "feature-attribution-drift").state == "ALARM"

    day3 = monitor(2)
    assert day3["status"] == "NoData" and "at least 100" in " ".join(day3["notes"])


def test_attribution_user_errors(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    inputs(50, np.random.default_rng(0)).to_csv(tmp_path / "t.csv", index=False)
    register_model(Store(store), ModelRecord(name=MODEL, problem_type="regression",
                                             versions=[ModelVersion(version="1")]))
    code, _ = invoke("baseline", "suggest", "--model", MODEL, "--type", "feature-attribution-drift",
                     "--dataset", str(tmp_path / "t.csv"), "--store", store)
    assert code == 2  # the version has no artifact to explain
    code, _ = invoke("monitor", "run", "--model", MODEL, "--type", "feature-attribution-drift",
                     "--start", START.isoformat(), "--end", (START + timedelta(days=1)).isoformat(),
                     "--store", store)
    assert code == 2  # no baseline

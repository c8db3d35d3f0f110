"""The bias-drift baseline and monitor flows through the CLI on a real (temporary) Prefect API: the
window's metrics against numpy and fairlearn computed here, no violation on a window drawn like the
baseline, DPPL/DI violations and the alarm when one group's approvals drop, too-small facets noted,
NoData below the minimum, and user errors (exit 2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, demographic_parity_ratio

from modelwatch.flows.demo_data import capture_line, capture_record
from modelwatch.tasks.alerts import read_alert
from modelwatch.tasks.html_templates import fmt_number
from modelwatch.tasks.store import Store
from tests.cli_run import invoke, run
from tests.report_pages import read_report

pytestmark = pytest.mark.usefixtures("prefect_api")
MODEL = "lender"
START = datetime(2026, 11, 20, tzinfo=UTC)


def applicants(n: int, rng: np.random.Generator, penalty: float = 0.0, women: float = 0.45
               ) -> pd.DataFrame:
    """Scored applicants; `penalty` lowers the score of group sex=1 (a model turning unfair)."""
    sex = (rng.random(n) < women).astype(int)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    truth = 1 / (1 + np.exp(-(0.4 + 1.2 * x1 - 0.8 * x2)))
    label = (rng.random(n) < truth).astype(int)
    score = np.clip(truth - penalty * sex + rng.normal(0, 0.05, n), 0, 1).round(4)
    return pd.DataFrame({"x1": x1.round(4), "x2": x2.round(4), "sex": sex,
                         "site": rng.integers(0, 3, n), "label": label, "score": score})


def write_merged(root: Path, frame: pd.DataFrame, hour: datetime) -> None:
    folder = root / hour.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, row in enumerate(frame.itertuples()):
        if i % 4 == 0:  # JSON request keyed by feature, JSON response with a score
            record = capture_record({"instances": [{"x1": row.x1, "x2": row.x2, "sex": row.sex,
                                                    "site": row.site}]},
                                    {"predictions": [{"score": row.score}]}, encoding="JSON",
                                    event_id=f"e{i}", inference_time=hour)
        else:  # CSV request in the baseline's feature order, the score alone as response
            record = capture_record(f"{row.x1},{row.x2},{row.sex},{row.site}", f"{row.score}",
                                    encoding="CSV", event_id=f"e{i}", inference_time=hour)
        record["groundTruthData"] = {"data": str(row.label), "encoding": "CSV"}
        lines.append(capture_line(record))
    lines.append('{"captureData": {}}\n')
    (folder / "part-00000.jsonl").write_text("".join(lines))


def metric(analysis: dict, name: str, facet: str = "sex") -> float | None:
    entry = analysis["post_training_bias_metrics"]["facets"][facet][0]
    return next(m.get("value") for m in entry["metrics"] if m["name"] == name)


def test_bias_drift_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    store = str(tmp_path / "store")
    validation = applicants(20_000, rng)
    validation.to_csv(tmp_path / "validation.csv", index=False)
    uris = run("baseline", "suggest", "--model", MODEL, "--type", "bias-drift", "--dataset",
               str(tmp_path / "validation.csv"), "--label", "label", "--prediction", "score",
               "--facet", "sex=1", "--group", "site", "--bound", "DI=0.8:1.25", "--store", store)
    baseline = json.loads(Path(uris["analysis"]).read_text())
    predicted = (validation["score"] >= 0.5).astype(int)
    women = validation["sex"] == 1
    assert metric(baseline, "DPPL") == pytest.approx(predicted[~women].mean() - predicted[women].mean())
    constraints = json.loads(Path(uris["constraints"]).read_text())
    ranges = constraints["facets"]["sex"][0]["metrics"]
    assert ranges["DI"]["lower"] == 0.8 and ranges["DI"]["upper"] == 1.25
    assert ranges["DI"]["source"] == "absolute"

    merged = tmp_path / "merged"
    healthy, unfair = applicants(3_000, rng), applicants(3_000, rng, penalty=0.25)
    write_merged(merged, healthy, START)
    write_merged(merged, unfair, START + timedelta(days=1))
    write_merged(merged, applicants(400, rng, women=0.02), START + timedelta(days=2))
    write_merged(merged, applicants(60, rng), START + timedelta(days=3))

    def monitor(day: int) -> dict:
        start = START + timedelta(days=day)
        return run("monitor", "run", "--model", MODEL, "--type", "bias-drift", "--merged", str(merged),
                   "--start", start.isoformat(), "--end", (start + timedelta(days=1)).isoformat(),
                   "--store", store)

    day1 = monitor(0)
    assert day1["status"] == "Completed", day1
    assert day1["rows_profiled"] == 3_000 and day1["records_malformed"] == 1
    window = json.loads(Path(day1["outputs"]["analysis.json"]).read_text())
    guess = (healthy["score"] >= 0.5).astype(int)
    assert abs(metric(window, "DPPL")) == pytest.approx(
        abs(demographic_parity_difference(healthy["label"], guess, sensitive_features=healthy["sex"])),
        abs=1e-12)
    ratio = demographic_parity_ratio(healthy["label"], guess, sensitive_features=healthy["sex"])
    assert metric(window, "DI") in (pytest.approx(ratio), pytest.approx(1 / ratio))
    f = healthy["sex"] == 1
    recall = [(guess[g] & healthy["label"][g]).sum() / healthy["label"][g].sum() for g in (~f, f)]
    assert metric(window, "RD") == pytest.approx(recall[0] - recall[1])
    page = read_report(day1)
    dppl = next(c for c in page.checks if c["subject"] == "sex=1" and c["check"] == "DPPL")
    assert dppl["value"] == fmt_number(metric(window, "DPPL")) and dppl["verdict"] == "Pass"
    assert dppl["threshold"].startswith("in [")
    sizes = next(row for row in page.tables[0] if row[0] == "1" and row[3] == "DPPL")
    assert int(sizes[1].replace(",", "")) == int(f.sum())  # group d's members

    day2 = monitor(1)
    assert day2["status"] == "CompletedWithViolations"
    violations = json.loads(Path(day2["outputs"]["constraint_violations.json"]).read_text())
    named = {v["metric_name"] for v in violations["violations"]}
    assert {"DPPL", "DI"} <= named
    di = next(v for v in violations["violations"] if v["metric_name"] == "DI")
    assert di["facet"] == "sex" and di["facet_value"] == "1"
    assert di["constraint_check_type"] == "bias_drift_check" and "[0.8, 1.25]" in di["description"]
    assert read_alert(Store(store), MODEL, "bias-drift").state == "ALARM"
    failed = [c for c in read_report(day2).checks if c["verdict"] == "Violation"]
    assert {c["check"] for c in failed} == named and {c["subject"] for c in failed} == {"sex=1"}

    day3 = monitor(2)  # about 8 women: too few for a figure, noted rather than flagged
    assert day3["status"] == "Completed"
    assert any("sex=1" in note and "at least 30" in note for note in day3["notes"]), day3["notes"]

    day4 = monitor(3)
    assert day4["status"] == "NoData" and day4["rows_profiled"] == 60


def test_bias_user_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = str(tmp_path / "store")
    applicants(500, rng).to_csv(tmp_path / "v.csv", index=False)
    base = ["baseline", "suggest", "--model", MODEL, "--type", "bias-drift", "--dataset",
            str(tmp_path / "v.csv"), "--label", "label", "--prediction", "score", "--store", store]
    code, _ = invoke(*base)  # no facet
    assert code == 2
    code, _ = invoke(*base, "--facet", "gender=1")  # no such column
    assert code == 2
    code, _ = invoke(*base, "--facet", "sex=1", "--bound", "XYZ=0:1")  # unknown metric
    assert code == 2
    code, _ = invoke("monitor", "run", "--model", "nobody", "--type", "bias-drift", "--start",
                     START.isoformat(), "--end", (START + timedelta(days=1)).isoformat(),
                     "--store", store)
    assert code == 2

"""The baseline and monitor flows end to end through the CLI, on a real (temporary) Prefect API:
local and S3 stores, re-runs, empty and failing windows, reviewed constraints overriding suggested."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from flows.demo_data import LABEL, generate_demo
from tasks.documents import ConstraintViolations, Statistics
from tasks.store import Store
from tasks.windows import iso_z
from tests.cli_run import invoke, run

pytestmark = pytest.mark.usefixtures("prefect_api")
MODEL = "credit-default"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("demo"), rows_per_hour=40, training_rows=5_000)




def suggest(case, store: str) -> dict:
    return run("baseline", "suggest", "--model", MODEL, "--dataset", str(case.training_csv),
               "--label", LABEL, "--store", store)


def monitor(case, store: str, day: int, capture: str | None = None) -> dict:
    start, end = case.days[day]
    return run("monitor", "run", "--model", MODEL, "--capture", capture or str(case.capture_root),
               "--start", iso_z(start), "--end", iso_z(end), "--store", store)


def test_baseline_then_two_days(case, tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    uris = suggest(case, store_uri)
    assert set(uris) >= {"statistics", "constraints"}
    statistics = Statistics.model_validate_json(Path(uris["statistics"]).read_text())
    assert statistics.dataset.item_count == 5_000
    assert LABEL not in {f.name for f in statistics.features}

    day1 = monitor(case, store_uri, 0)
    assert day1["status"] == "Completed" and day1["violation_count"] == 0
    assert day1["records_malformed"] == case.malformed_lines // 2
    assert day1["rows_profiled"] == 24 * 40
    day2 = monitor(case, store_uri, 1)
    assert day2["status"] == "CompletedWithViolations"
    violations = ConstraintViolations.model_validate_json(
        Path(day2["outputs"]["constraint_violations.json"]).read_text())
    found = {(v.feature_name, v.constraint_check_type) for v in violations.violations}
    assert found >= {("income", "baseline_drift_check"), ("region", "categorical_values_check"),
                     ("utilization", "completeness_check")}
    assert {f for f, _ in found} <= set(case.drifted_features)

    quarantine = Path(day2["outputs"]["quarantine.jsonl"]).read_text().splitlines()
    assert len(quarantine) == day2["records_malformed"]
    assert all(json.loads(q)["reason"] for q in quarantine)
    report = Path(day2["outputs"]["report.html"]).read_text()
    assert "income" in report and "<html" in report.lower()
    current = Statistics.model_validate_json(Path(day2["outputs"]["statistics.json"]).read_text())
    assert current.dataset.item_count == day2["rows_profiled"]

    # Re-running a window rewrites the same execution.
    again = monitor(case, store_uri, 1)
    assert again["outputs"] == day2["outputs"] and again["violation_count"] == day2["violation_count"]
    store = Store(store_uri)
    assert len(store.list_dirs(f"monitoring/{MODEL}/data-quality")) == 2


def test_execution_leaves_a_markdown_artifact(case, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    store_uri = str(tmp_path / "store")
    suggest(case, store_uri)
    execution = monitor(case, store_uri, 1)
    # The REST filter directly: the 3.8.8 sync client sends nulls the server rejects.
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/artifacts/filter", json={
            "artifacts": {"key": {"any_": [f"{MODEL}-data-quality"]}},
            "sort": "CREATED_DESC", "limit": 1, "offset": 0})
    [latest] = response.json()
    assert "CompletedWithViolations" in latest["data"] and "income" in latest["data"]
    assert latest["flow_run_id"] == execution["flow_run_id"]


def test_empty_window_is_no_data(case, tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    suggest(case, store_uri)
    start = case.days[1][1] + timedelta(days=3)
    execution = run("monitor", "run", "--model", MODEL, "--capture", str(case.capture_root),
                    "--start", iso_z(start), "--end", iso_z(start + timedelta(hours=1)),
                    "--store", store_uri)
    assert execution["status"] == "NoData" and execution["records_read"] == 0


def test_an_internal_error_fails_the_execution(case, tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    uris = suggest(case, store_uri)
    # A statistics.json that validates but whose sketch holds text: the drift check cannot run.
    statistics = json.loads(Path(uris["statistics"]).read_text())
    statistics["features"][1]["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"] = [
        ["not a number"]]
    Path(uris["statistics"]).write_text(json.dumps(statistics))
    start, end = case.days[0]
    code, stdout = invoke(
        "monitor", "run", "--model", MODEL, "--capture", str(case.capture_root),
        "--start", iso_z(start), "--end", iso_z(end), "--store", store_uri)
    assert code == 1
    execution = json.loads(stdout)
    assert execution["status"] == "Failed" and "not a number" in execution["failure_reason"]
    assert Path(execution["outputs"]["execution"]).is_file()


def test_reviewed_constraints_override_suggested(case, tmp_path: Path, monkeypatch) -> None:
    store_uri = str(tmp_path / "store")
    uris = suggest(case, store_uri)
    constraints = json.loads(Path(uris["constraints"]).read_text())
    for feature in constraints["features"]:
        if feature["name"] == "region":
            feature["string_constraints"]["domains"].append("central")
    constraints["monitoring_config"]["distribution_constraints"]["comparison_threshold"] = 0.9
    constraints["monitoring_config"]["distribution_constraints"]["categorical_comparison_threshold"] = 0.9
    reviewed = tmp_path / "project" / "baselines" / MODEL / "data-quality" / "constraints.json"
    reviewed.parent.mkdir(parents=True)
    reviewed.write_text(json.dumps(constraints, indent=2))
    monkeypatch.setenv("MODELWATCH_BASELINES", str(tmp_path / "project" / "baselines"))
    execution = monitor(case, store_uri, 1)
    assert execution["baseline"]["constraints"] == str(reviewed)
    assert execution["violation_types"] == {"completeness_check": 1}


def test_a_plain_dataset_can_be_monitored(case, tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    suggest(case, store_uri)
    execution = monitor(case, store_uri, 0, capture=str(case.training_csv))
    # The training set itself: the label is an extra column, nothing else differs.
    assert execution["violation_types"] == {"extra_column_check": 1}
    assert execution["rows_profiled"] == 5_000


def test_s3_store_and_capture(case, s3_bucket: str) -> None:
    store = Store(s3_bucket)
    for path in sorted(Path(case.capture_root).rglob("*.jsonl")):
        key = "capture/" + str(path.relative_to(case.capture_root))
        store.write_bytes(key, path.read_bytes())
    store.write_bytes("datasets/training.csv", Path(case.training_csv).read_bytes())
    uris = run("baseline", "suggest", "--model", MODEL, "--dataset",
               f"{s3_bucket}/datasets/training.csv", "--label", LABEL, "--store", s3_bucket)
    assert uris["constraints"].startswith("s3://")
    day2 = monitor(case, s3_bucket, 1, capture=f"{s3_bucket}/capture")
    assert day2["status"] == "CompletedWithViolations"
    assert day2["outputs"]["execution"].startswith(s3_bucket)
    execution_key = day2["outputs"]["execution"][len(s3_bucket) + 1:]
    assert Store(s3_bucket).read_json(execution_key)["status"] == "CompletedWithViolations"

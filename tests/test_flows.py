"""The baseline and monitor flows end to end through the CLI, on a real (temporary) Prefect API:
local and S3 stores, re-runs, empty and failing windows, reviewed constraints overriding suggested."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from modelwatch.flows.demo_data import LABEL, generate_demo
from modelwatch.tasks.documents import ConstraintViolations, Statistics
from modelwatch.tasks.store import Store
from modelwatch.tasks.windows import iso_z
from tests.cli_run import invoke, run
from tests.report_pages import read_report

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
    # The report leads with the execution's own verdict: its status, and one Violation row per
    # violation in constraint_violations.json.
    page = read_report(day2)
    assert "income" in page.charts and violations.violations
    assert [(c["subject"], c["check"]) for c in page.checks if c["verdict"] == "Violation"] == [
        (v.feature_name or "(window)", v.constraint_check_type) for v in violations.violations]
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
                    "--store", store_uri, "--allow-empty")
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
        for method in feature.get("drift_methods", []):  # a feature's own methods win
            # Wasserstein is in baseline standard deviations: unbounded.
            method["threshold"] = 100.0 if method["method"] == "Wasserstein" else 0.9
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


def test_two_extreme_values_do_not_blind_the_window(case, tmp_path: Path) -> None:
    """1e308 twice and an integer beyond 2**63 among ordinary traffic: the execution still has
    finite statistics and its verdict; the report is rendered or its failure noted."""
    import csv as csvlib

    from modelwatch.flows.demo_data import (
        FEATURES,
        capture_file_name,
        capture_hour_dir,
        capture_line,
        capture_record,
    )

    store_uri = str(tmp_path / "store")
    suggest(case, store_uri)
    start = case.days[0][0]
    with case.training_csv.open() as handle:
        rows = [row for _, row in zip(range(300), csvlib.DictReader(handle), strict=False)]
    rows[0]["income"] = rows[1]["income"] = "1e308"
    rows[2]["age"] = str(2**64)
    lines = [capture_line(capture_record(",".join(row[f] for f in FEATURES), "0.3", encoding="CSV",
                                         event_id=f"x{i}", inference_time=start))
             for i, row in enumerate(rows)]
    folder = capture_hour_dir(tmp_path / "capture", start)
    folder.mkdir(parents=True)
    (folder / capture_file_name(start, 0, "extreme")).write_text("".join(lines))
    execution = monitor(case, store_uri, 0, capture=str(tmp_path / "capture"))
    assert execution["status"] in ("Completed", "CompletedWithViolations")
    assert execution["rows_profiled"] == 300
    statistics = Statistics.model_validate_json(
        Path(execution["outputs"]["statistics.json"]).read_text())
    income = statistics.feature("income").numerical_statistics
    values = [float(r["income"]) for r in rows]
    assert income.mean == pytest.approx(sum(v / 1e300 for v in values) / 300 * 1e300, rel=1e-9)
    assert income.std_dev < float("inf") and income.max == 1e308
    assert "report.html" in execution["outputs"] or any(
        "report.html not rendered" in note for note in execution["notes"])


def test_weak_baselines_are_warned_about_and_empty_ones_refused(tmp_path: Path) -> None:
    one_row = tmp_path / "one.csv"
    one_row.write_text("a,b,empty,default\n1,x,,0\n")
    uris = run("baseline", "suggest", "--model", "tiny", "--dataset", str(one_row), "--label",
               "default", "--store", str(tmp_path / "store"))
    assert any("1 row(s)" in w for w in uris["warnings"])
    assert any("empty" in w and "Unknown" in w for w in uris["warnings"])
    only_label = tmp_path / "label.csv"
    only_label.write_text("default\n1\n0\n")
    code, _ = invoke("baseline", "suggest", "--model", "tiny", "--dataset", str(only_label),
                     "--label", "default", "--store", str(tmp_path / "store"))
    assert code == 2


def test_an_unknown_drift_method_is_refused_before_the_run(case, tmp_path: Path,
                                                            monkeypatch) -> None:
    store_uri = str(tmp_path / "store")
    uris = suggest(case, store_uri)
    constraints = json.loads(Path(uris["constraints"]).read_text())
    constraints["monitoring_config"]["distribution_constraints"]["categorical_drift_method"] = "Vibes"
    reviewed = tmp_path / "project" / "baselines" / MODEL / "data-quality" / "constraints.json"
    reviewed.parent.mkdir(parents=True)
    reviewed.write_text(json.dumps(constraints))
    monkeypatch.setenv("MODELWATCH_BASELINES", str(tmp_path / "project" / "baselines"))
    start, end = case.days[0]
    code, _ = invoke("monitor", "run", "--model", MODEL, "--capture", str(case.capture_root),
                     "--start", iso_z(start), "--end", iso_z(end), "--store", store_uri)
    assert code == 2  # it used to fall back to LInfinity without a word
    assert not Store(store_uri).list_dirs(f"monitoring/{MODEL}/data-quality")


def test_with_chi_squared_the_headline_is_still_a_distance(tmp_path: Path) -> None:
    """A p-value (near 1 when nothing moved) is not a distance: the headline drift metric takes the
    distances alone, and equals the largest numeric KS distance (KSDistance, the first method of
    each numeric feature)."""
    from scipy import stats

    from modelwatch.flows.demo_data import training_frame

    rng = np.random.default_rng(3)
    train, window = training_frame(5000, rng), training_frame(3000, rng)
    train.to_csv(tmp_path / "train.csv", index=False)
    window.drop(columns=[LABEL]).to_csv(tmp_path / "window.csv", index=False)
    p_values = []
    for name in ("region", "employment"):
        shares = train[name].value_counts(normalize=True)
        seen = window[name].value_counts().reindex(shares.index, fill_value=0)
        p_values.append(stats.chisquare(seen, shares * seen.sum()).pvalue)
    assert max(p_values) > 0.2  # the old headline took the largest value: a p-value, not a drift
    expected = 0.0
    for name in ("age", "income", "debt_ratio", "num_accounts", "utilization"):
        a, b = train[name].dropna(), window[name].dropna()
        expected = max(expected, stats.ks_2samp(a, b).statistic)
    store_uri = str(tmp_path / "store")
    run("baseline", "suggest", "--model", MODEL, "--dataset", str(tmp_path / "train.csv"),
        "--label", LABEL, "--categorical-drift-method", "ChiSquared", "--store", store_uri)
    execution = run("monitor", "run", "--model", MODEL, "--capture", str(tmp_path / "window.csv"),
                    "--start", "2026-01-01", "--end", "2026-01-02", "--no-report",
                    "--store", store_uri)
    assert execution["metric_name"] == "max drift distance"
    assert execution["metric"] == pytest.approx(max(expected, 0.0), abs=0.01)


def test_prefect_run_states_carry_the_execution_status(case, tmp_path: Path) -> None:
    """Prefect's run list tells drifted and empty windows from clean ones: each monitor flow run ends
    in a Completed state named as its execution's status (it was "Completed" whatever happened)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    store_uri = str(tmp_path / "store")
    suggest(case, store_uri)
    clean, drifted = monitor(case, store_uri, 0), monitor(case, store_uri, 1)
    start = case.days[1][1] + timedelta(days=3)
    empty = run("monitor", "run", "--model", MODEL, "--capture", str(case.capture_root),
                "--start", iso_z(start), "--end", iso_z(start + timedelta(hours=1)),
                "--store", store_uri, "--allow-empty")
    assert [e["status"] for e in (clean, drifted, empty)] == ["Completed", "CompletedWithViolations",
                                                              "NoData"]
    with get_client(sync_client=True) as client:
        for execution in (clean, drifted, empty):
            state = client.read_flow_run(execution["flow_run_id"]).state
            assert state.type.value == "COMPLETED" and state.name == execution["status"]
        # limit and sort given: prefect 3.8.8's sync client sends nulls its server rejects.
        named = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
            name=FlowRunFilterStateName(any_=["CompletedWithViolations", "NoData"]))),
            limit=200, sort=FlowRunSort.START_TIME_DESC)
    found = {str(r.id): r.state.name for r in named}
    assert found[drifted["flow_run_id"]] == "CompletedWithViolations"
    assert found[empty["flow_run_id"]] == "NoData"
    assert f"{drifted['violation_count']} violation(s)" in client_message(drifted["flow_run_id"])


def client_message(flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state.message or ""

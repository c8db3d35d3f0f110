"""Great Expectations suites: exported from a suggested baseline and checked with GX itself (training
frame passes, a broken frame fails where it should); committed suites (hand-written, in the store's
and the project's baseline folders) run in real data-quality executions, their failures counted as
gx_expectation_check violations, alerted and shown in report.html; GX stays unimported without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from modelwatch.flows.demo_data import LABEL, generate_demo
from modelwatch.tasks.alerts import alert_key
from modelwatch.tasks.documents import ConstraintViolations, Statistics
from modelwatch.tasks.store import Store
from modelwatch.tasks.windows import iso_z
from tests.cli_run import invoke, run

pytestmark = pytest.mark.usefixtures("prefect_api")
MODEL = "credit-default"
CHECK = "gx_expectation_check"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    # 240 rows a day; day two drifts: income x1.6, a new region "central", utilization 30% missing.
    return generate_demo(tmp_path_factory.mktemp("gx-demo"), rows_per_hour=10, training_rows=600,
                         malformed_per_day=2, validation_rows=100)


@pytest.fixture(scope="module")
def suggested(case, tmp_path_factory) -> str:
    """A store holding one suggested data-quality baseline (version 1)."""
    store = str(tmp_path_factory.mktemp("gx-store") / "store")
    run("baseline", "suggest", "--model", MODEL, "--dataset", str(case.training_csv), "--label",
        LABEL, "--store", store)
    return store


def copy_store(source: str, tmp_path: Path) -> str:
    import shutil

    target = tmp_path / "store"
    shutil.copytree(source, target)
    return str(target)


def monitor(case, store: str, day: int) -> dict:
    start, end = case.days[day]
    return run("monitor", "run", "--model", MODEL, "--capture", str(case.capture_root),
               "--start", iso_z(start), "--end", iso_z(end), "--store", store)


def gx_validate(document: dict, frame: pd.DataFrame) -> list[dict]:
    """GX's own validation of a suite document on a frame (no modelwatch code in between)."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(**document)
    assert len(suite.expectations) == len(document["expectations"])  # GX dropped none
    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_pandas("test").add_dataframe_asset("frame")
             .add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": frame}))
    return batch.validate(suite, result_format="SUMMARY").to_json_dict()["results"]


def failing(results: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["expectation_config"]["type"], r["expectation_config"]["kwargs"].get("column")): r
            for r in results if not r["success"]}


def gx_violations(execution: dict) -> list:
    violations = ConstraintViolations.model_validate_json(
        Path(execution["outputs"]["constraint_violations.json"]).read_text())
    return [v for v in violations.violations if v.constraint_check_type == CHECK]


def test_an_exported_suite_passes_on_training_and_fails_on_a_broken_frame(
        case, suggested: str, tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    printed = run("baseline", "export", "--model", MODEL, "--type", "data-quality", "--format", "gx",
                  "--out", str(out), "--store", suggested)
    document = json.loads(out.read_text())
    assert printed == {"gx_suite": str(out.resolve()), "expectations": len(document["expectations"])}
    code, stdout = invoke("baseline", "export", "--model", MODEL, "--store", suggested)
    assert code == 0 and json.loads(stdout) == document  # stdout without --out

    training = pd.read_csv(case.training_csv)
    features = [c for c in training.columns if c != LABEL]
    kinds = {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in document["expectations"]}
    # What the training frame implies, computed with pandas: every feature exists and has a type;
    # always-present ones may not be null, utilization (about 5% missing) mostly; the non-negative
    # numbers have a lower bound of 0; the text features their set of values.
    for name in features:
        assert ("expect_column_to_exist", name) in kinds
        assert ("expect_column_values_to_be_in_type_list", name) in kinds
        not_null = kinds[("expect_column_values_to_not_be_null", name)]
        present = training[name].notna().mean()
        if present == 1.0:
            assert "mostly" not in not_null
        else:
            assert 0.8 < not_null["mostly"] < present
    numeric = training[features].select_dtypes("number")
    assert {c for (t, c), kw in kinds.items() if t == "expect_column_values_to_be_between"} == \
        {c for c in numeric.columns if numeric[c].min() >= 0}
    assert {c: sorted(kw["value_set"]) for (t, c), kw in kinds.items()
            if t == "expect_column_values_to_be_in_set"} == {
        c: sorted(training[c].dropna().unique()) for c in ("region", "employment")}

    # GX itself: every expectation holds on the training frame, as pandas reads it either way.
    assert failing(gx_validate(document, training)) == {}
    assert failing(gx_validate(document, pd.read_csv(case.training_csv,
                                                     dtype_backend="numpy_nullable"))) == {}

    broken = training.copy()
    broken.loc[:9, "region"] = "central"
    broken.loc[:59, "utilization"] = None  # 60 more missing: well below the allowance
    broken["num_accounts"] = broken["num_accounts"].astype(float)
    broken.loc[0, "num_accounts"] = 2.5  # not a whole number: Integral no more
    broken.loc[1, "debt_ratio"] = -0.1
    broken = broken.drop(columns=["employment"])
    failed = failing(gx_validate(document, broken))
    assert set(failed) == {
        ("expect_column_values_to_be_in_set", "region"),
        ("expect_column_values_to_not_be_null", "utilization"),
        ("expect_column_values_to_be_in_type_list", "num_accounts"),
        ("expect_column_values_to_be_between", "debt_ratio"),
        ("expect_column_to_exist", "employment"),
        ("expect_column_values_to_be_in_type_list", "employment"),
        ("expect_column_values_to_not_be_null", "employment"),
        ("expect_column_values_to_be_in_set", "employment"),
    }
    region = failed[("expect_column_values_to_be_in_set", "region")]["result"]
    assert region["unexpected_count"] == 10 == int((broken["region"] == "central").sum())
    utilization = failed[("expect_column_values_to_not_be_null", "utilization")]["result"]
    assert utilization["unexpected_count"] == int(broken["utilization"].isna().sum())


def test_the_exported_suite_committed_runs_in_executions(case, suggested: str,
                                                         tmp_path: Path) -> None:
    """Committed in the store's baseline folder, the exported suite passes on the good day's capture
    (CSV, JSON and base64 records typed as the baseline types them) and fails on the drifted one."""
    store = copy_store(suggested, tmp_path)
    code, stdout = invoke("baseline", "export", "--model", MODEL, "--store", store)
    assert code == 0
    Store(store).write_bytes("baselines/credit-default/1/data-quality/gx_suite.json",
                             stdout.encode())
    good = monitor(case, store, 0)
    assert gx_violations(good) == []
    assert good["baseline"]["gx_suite"].endswith("baselines/credit-default/1/data-quality/gx_suite.json")
    result = json.loads(Path(good["outputs"]["gx_validation.json"]).read_text())
    assert result["success"] is True
    assert len(result["results"]) == len(json.loads(stdout)["expectations"])
    assert any(f"all {good['rows_profiled']} rows of the window" in n for n in good["notes"])

    drifted = monitor(case, store, 1)
    found = {(v.feature_name, v.description.split(" ", 1)[0]) for v in gx_violations(drifted)}
    assert found == {("region", "expect_column_values_to_be_in_set"),
                     ("utilization", "expect_column_values_to_not_be_null")}
    assert drifted["violation_types"][CHECK] == 2


HAND_WRITTEN = {
    "name": "credit-default-reviewed",
    "expectations": [
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "age", "min_value": 18, "max_value": 90}},
        {"type": "expect_column_mean_to_be_between",
         "kwargs": {"column": "income", "min_value": 40000, "max_value": 70000}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "region", "value_set": ["north", "south", "east", "west"],
                    "mostly": 0.9}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
    ],
}


def test_a_hand_written_suite_fails_on_the_drifted_day(case, suggested: str,
                                                      tmp_path: Path) -> None:
    store = copy_store(suggested, tmp_path)
    Store(store).write_bytes("baselines/credit-default/1/data-quality/gx_suite.json",
                             json.dumps(HAND_WRITTEN).encode())
    execution = monitor(case, store, 1)
    assert execution["status"] == "CompletedWithViolations"
    statistics = Statistics.model_validate_json(
        Path(execution["outputs"]["statistics.json"]).read_text())

    found = {v.feature_name: v.description for v in gx_violations(execution)}
    assert set(found) == {"income", "region"}
    assert found["income"].startswith("expect_column_mean_to_be_between on 'income'")
    assert found["region"].startswith("expect_column_values_to_be_in_set on 'region'")
    # The numbers, against the execution's own profile of the same rows (GX saw all of them).
    mean = statistics.feature("income").numerical_statistics.mean
    results = json.loads(Path(execution["outputs"]["gx_validation.json"]).read_text())["results"]
    assert [r["expectation_config"]["type"] for r in results] == [
        e["type"] for e in HAND_WRITTEN["expectations"]]  # in the suite's order
    assert results[1]["result"]["observed_value"] == pytest.approx(mean, rel=1e-9)
    buckets = statistics.feature("region").string_statistics.distribution["categorical"]["buckets"]
    central = next(b["count"] for b in buckets if b["value"] == "central")
    assert results[2]["result"]["unexpected_count"] == central
    assert f"{central} of {execution['rows_profiled']} values unexpected" in found["region"]

    # Counted with the built-in checks, and in the report as Violation rows like theirs.
    assert execution["violation_types"][CHECK] == 2
    assert execution["violation_count"] == sum(execution["violation_types"].values())
    report = Path(execution["outputs"]["report.html"]).read_text()
    assert report.count('data-verdict="Violation"') == execution["violation_count"]
    assert "expect_column_mean_to_be_between" in report and "expect_table_row_count" in report


def test_a_project_suite_failing_on_a_good_window_raises_the_alert(
        case, suggested: str, tmp_path: Path, monkeypatch) -> None:
    store = copy_store(suggested, tmp_path)
    clean = monitor(case, store, 0)
    builtin = clean["violation_types"]
    # The project's suite wins over the store's (found as constraints.json is).
    Store(store).write_bytes("baselines/credit-default/1/data-quality/gx_suite.json",
                             json.dumps(HAND_WRITTEN).encode())
    project = tmp_path / "project" / "baselines"
    suite_file = project / MODEL / "data-quality" / "gx_suite.json"
    suite_file.parent.mkdir(parents=True)
    suite_file.write_text(json.dumps({"name": "too-strict", "expectations": [
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "income", "max_value": 1000}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "region",
                                                                   "regex": "^[a-z]+$"}},
    ]}))
    monkeypatch.setenv("MODELWATCH_BASELINES", str(project))
    # A small sample bound: the suite runs on a uniform sample and says so.
    monkeypatch.setattr("modelwatch.flows.monitor.GX_ROWS", 50)
    execution = monitor(case, store, 0)
    assert execution["baseline"]["gx_suite"] == str(suite_file.resolve())
    assert execution["status"] == "CompletedWithViolations"
    assert execution["violation_types"] == builtin | {CHECK: 1}
    [violation] = gx_violations(execution)
    assert violation.feature_name == "income"
    assert violation.description.startswith("expect_column_max_to_be_between on 'income' "
                                            "(max_value=1000): observed ")
    rows = execution["rows_profiled"]
    assert f"(on a uniform sample of 50 of {rows} rows)" in violation.description
    assert any(f"a uniform sample of 50 of the window's {rows} rows" in n and "estimates" in n
               for n in execution["notes"])
    results = json.loads(Path(execution["outputs"]["gx_validation.json"]).read_text())["results"]
    assert results[1]["result"]["element_count"] == 50
    alert = Store(store).read_json(alert_key(MODEL, "data-quality"))
    assert alert["state"] == "ALARM"


def test_a_malformed_suite_is_a_user_error(case, suggested: str, tmp_path: Path) -> None:
    store = copy_store(suggested, tmp_path)
    key = "baselines/credit-default/1/data-quality/gx_suite.json"
    start, end = case.days[0]
    for content, said in [
        (b"{not json", "not valid JSON"),
        (json.dumps({"expectations": [{"type": "expect_column_to_be_lovely", "kwargs": {}}]}).encode(),
         "expectations[0] (expect_column_to_be_lovely)"),
        (json.dumps({"expectations": [{"type": "expect_column_values_to_not_be_null",
                                       "kwargs": {}}]}).encode(),
         "expectations[0] (expect_column_values_to_not_be_null)"),
    ]:
        Store(store).write_bytes(key, content)
        code, _ = invoke("monitor", "run", "--model", MODEL, "--capture", str(case.capture_root),
                         "--start", iso_z(start), "--end", iso_z(end), "--store", store)
        assert code == 2, said


def test_export_refuses_unknown_model_type_and_format(suggested: str) -> None:
    for args in (["--model", "nobody"], ["--model", MODEL, "--format", "csv"],
                 ["--model", MODEL, "--type", "bias-drift"], ["--model", MODEL, "--type", "nope"],
                 ["--model", MODEL, "--version", "9"]):
        code, stdout = invoke("baseline", "export", *args, "--store", suggested)
        assert code == 2 and stdout == "", args


def test_no_suite_no_great_expectations_import(case, suggested: str, tmp_path: Path,
                                               prefect_api: str) -> None:
    """The CLI, and a data-quality execution of a model without a suite, never import GX."""
    store = copy_store(suggested, tmp_path)
    start, end = case.days[0]
    script = (
        "import sys\n"
        "from modelwatch.cli import run\n"
        "assert 'great_expectations' not in sys.modules, 'the CLI imported GX'\n"
        f"code = run(['monitor', 'run', '--model', {MODEL!r}, '--capture', {str(case.capture_root)!r},"
        f" '--start', {iso_z(start)!r}, '--end', {iso_z(end)!r}, '--store', {store!r}])\n"
        "assert code == 0, code\n"
        "assert 'great_expectations' not in sys.modules, 'the execution imported GX'\n"
    )
    env = os.environ | {"PREFECT_API_URL": prefect_api}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

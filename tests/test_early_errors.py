"""Issue 11, "seconds, not minutes": every input a user can get wrong is refused before any flow runs
or a Prefect server is started, with exit code 2 and one line naming the thing and what was expected
(the real console script, in a state folder of its own where no server may appear); `monitor run`
without --capture reads the model's endpoints; a user's error in a task is never retried; and human
output rounds numbers to four significant digits while JSON keeps them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelwatch.tasks.capture_records import capture_line, capture_record
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store

LIMIT_S = 3.0
START, END = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
EMPTY_START, EMPTY_END = "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"


def write_data_quality_baseline(store: Store, model: str, dataset: Path, label: str) -> None:
    """A data-quality baseline from the core functions (no Prefect), as `baseline suggest` writes it."""
    from modelwatch.tasks.baselines import baseline_prefix
    from modelwatch.tasks.capture import read_dataset
    from modelwatch.tasks.constraints import suggest_constraints
    from modelwatch.tasks.profile import profile_table, to_statistics

    table = read_dataset(str(dataset))
    features = [c for c in table.column_names if c != label]
    statistics = to_statistics(profile_table(table, exclude={label}, seed=17), order=features)
    prefix = baseline_prefix(model, "1", "data-quality")
    store.write_json(f"{prefix}/statistics.json", statistics.dump())
    store.write_json(f"{prefix}/constraints.json", suggest_constraints(statistics).dump())
    store.write_json(f"{prefix}/baseline.json", {"features": features})


def write_capture(root: Path, rows: list[str], hour: datetime) -> None:
    folder = root / "AllTraffic" / f"{hour:%Y/%m/%d/%H}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.jsonl").write_text("".join(
        capture_line(capture_record(row, "0", encoding="CSV", event_id=f"e{i}",
                                    inference_time=hour.replace(minute=i)))
        for i, row in enumerate(rows)))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A store with a registered model `credit` (a data-quality baseline, an endpoint whose capture
    has one hour on 2026-01-01), a model `legacy` with a baseline only, datasets and merged data."""
    from modelwatch.tasks.registry import (
        EndpointRecord,
        ModelRecord,
        ModelVersion,
        register_endpoint,
        register_model,
    )

    root = tmp_path_factory.mktemp("fleet")
    store = Store(str(root / "store"))
    training = root / "train.csv"
    training.write_text("a,b,label,pred,score,sex\n1,x,0,0,0.1,f\n2,y,1,1,0.8,m\n3,x,0,1,0.6,f\n")
    inputs = root / "inputs.csv"  # what the endpoint's capture carries: a and b
    inputs.write_text("a,b,label\n" + "".join(f"{i},{'xyz'[i % 3]},0\n" for i in range(1, 301)))
    labels = root / "labels.csv"
    labels.write_text("id,y\ne0,1\n")
    capture = root / "capture"
    write_capture(capture, [f"{i},x" for i in range(50, 80)], datetime(2026, 1, 1, 0, tzinfo=UTC))
    merged = root / "merged"
    (merged / "2026/01/01/00").mkdir(parents=True)
    (merged / "2026/01/01/00/part-00000.jsonl").write_text("{}\n")
    register_model(store, ModelRecord(name="credit", problem_type="binary",
                                      versions=[ModelVersion(version="1")]))
    register_endpoint(store, EndpointRecord(name="credit-live", model="credit", model_version="1",
                                            capture_uri=str(capture)))
    write_data_quality_baseline(store, "credit", inputs, "label")
    write_data_quality_baseline(store, "legacy", inputs, "label")
    return {"root": root, "store": root / "store", "train": training, "labels": labels,
            "capture": capture, "merged": merged}


def modelwatch(*args: str, state: Path, api: str | None = None) -> tuple[subprocess.CompletedProcess,
                                                                          float]:
    """The console script in a fresh process with its own state folder (and no Prefect API unless
    `api`, so a failing command that reached for one would start a server there); (result, s)."""
    env = {**os.environ, "MODELWATCH_STATE_DIR": str(state), "MODELWATCH_SERVER_PORT": "0"}
    env.pop("PREFECT_API_URL", None)
    if api:
        env["PREFECT_API_URL"] = api
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "modelwatch.cli", *args], capture_output=True,
                            text=True, timeout=120, env=env, cwd=state.parent)
    return result, time.monotonic() - began


def assert_early_error(args: list[str], message: str, tmp_path: Path) -> str:
    state = tmp_path / "state"
    try:
        result, took = modelwatch(*args, state=state)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert message in lines[0], lines[0]
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert took < LIMIT_S, f"{took:.1f} s"
        assert not (state / "server.json").exists(), "the failing command started a Prefect server"
        return lines[0]
    finally:
        if (state / "server.json").exists():
            from modelwatch.flows.local_server import stop

            stop(state)


def fill(args: list[str], fleet: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in fleet.items()}) for a in args]


RUN = ["monitor", "run", "--store", "{store}"]
SUGGEST = ["baseline", "suggest", "--store", "{store}", "--model", "credit", "--dataset", "{train}"]


@pytest.mark.parametrize("args, message", [
    pytest.param([*RUN, "--model", "ghost", "--start", START, "--end", END],
                 "model 'ghost' is not registered", id="unknown-model"),
    pytest.param([*RUN, "--model", "credit", "--type", "model-quality", "--merged", "{merged}",
                  "--start", START, "--end", END],
                 "model 'credit' version 1 has no model-quality baseline", id="no-baseline-of-type"),
    pytest.param([*RUN, "--model", "credit", "--type", "feature-attribution-drift", "--start", START,
                  "--end", END], "has no feature-attribution-drift baseline",
                 id="no-attribution-baseline-before-shap"),
    pytest.param([*RUN, "--model", "credit", "--capture", "{root}/captrue", "--start", START,
                  "--end", END], "--capture {root}/captrue does not exist", id="mistyped-capture"),
    pytest.param([*RUN, "--model", "credit", "--capture", "{root}/trian.csv", "--start", START, "--end", END],
                 "no such file (expected a CSV or Parquet dataset", id="missing-dataset-capture"),
    pytest.param([*RUN, "--model", "credit", "--capture", "{root}/store/registry/models/credit.json",
                  "--start", START, "--end", END], "is a file; expected a folder",
                 id="capture-is-a-file"),
    pytest.param([*RUN, "--model", "legacy", "--start", START, "--end", END],
                 "model 'legacy' has no registered endpoint to read capture from; pass --capture",
                 id="no-endpoint-no-capture"),
    pytest.param([*RUN, "--model", "credit", "--type", "bias-drift", "--merged", "{root}/mergde",
                  "--start", START, "--end", END], "--merged {root}/mergde does not exist",
                 id="merged-missing"),
    pytest.param([*RUN, "--model", "credit", "--type", "model-quality", "--start", START, "--end",
                  END], "/merged/credit-live (the merged root of an endpoint of 'credit') does not "
                        "exist: no ground truth was merged", id="endpoint-never-merged"),
    pytest.param([*RUN, "--model", "credit", "--type", "model-quality", "--capture", "{capture}",
                  "--start", START, "--end", END], "--capture does not apply to --type model-quality",
                 id="capture-for-a-merged-type"),
    pytest.param([*RUN, "--model", "credit", "--start", END, "--end", START],
                 "must be after --start", id="end-before-start"),
    pytest.param([*RUN, "--model", "credit", "--start", "tuesday", "--end", END],
                 "not an ISO-8601 time", id="unparseable-time"),
    pytest.param([*SUGGEST[:-1], "{root}/trian.csv"], "--dataset {root}/trian.csv: no such file",
                 id="dataset-missing"),
    pytest.param([*SUGGEST, "--label", "lable"], "--label 'lable' is not a column of", id="label"),
    pytest.param([*SUGGEST, "--type", "model-quality", "--label", "label", "--prediction", "prd"],
                 "--prediction 'prd' is not a column of", id="prediction"),
    pytest.param([*SUGGEST, "--type", "model-quality", "--label", "label", "--probability", "scor"],
                 "--probability 'scor' is not a column of", id="probability"),
    pytest.param([*SUGGEST, "--type", "bias-drift", "--label", "label", "--prediction", "pred",
                  "--facet", "gender=f"], "--facet 'gender=f': 'gender' is not a column of",
                 id="facet-column"),
    pytest.param([*SUGGEST, "--type", "bias-drift", "--label", "label", "--prediction", "pred",
                  "--facet", "=f"], "facet '=f' names no column", id="facet-syntax"),
    pytest.param([*SUGGEST, "--type", "bias-drift", "--label", "label", "--prediction", "pred",
                  "--facet", "sex", "--label-values", ">x"], "label values '>x'", id="label-values"),
    pytest.param(["groundtruth", "merge", "--store", "{store}", "--endpoint", "credit-lve",
                  "--start", START, "--end", END],
                 "unknown endpoint 'credit-lve': not registered in {store} (registered: credit-live)",
                 id="merge-unknown-endpoint"),
    pytest.param(["groundtruth", "merge", "--store", "{store}", "--endpoint", "credit-live",
                  "--start", "2026-01-01T00:30:00Z", "--end", END], "is not on a whole hour",
                 id="merge-window-not-whole-hours"),
    pytest.param(["groundtruth", "merge", "--store", "{store}", "--endpoint", "credit-live",
                  "--start", START, "--end", END, "--lookback", "a week"], "--lookback",
                 id="merge-lookback"),
    pytest.param(["groundtruth", "upload", "--store", "{store}", "--endpoint", "credit-live",
                  "--file", "{root}/lables.csv", "--id-column", "id", "--label-column", "y"],
                 "--file {root}/lables.csv: no such file", id="upload-file-missing"),
    pytest.param(["groundtruth", "upload", "--store", "{store}", "--endpoint", "credit-live",
                  "--file", "{labels}", "--id-column", "event", "--label-column", "y"],
                 "--id-column 'event' is not a column of", id="upload-id-column"),
    pytest.param(["groundtruth", "upload", "--store", "{store}", "--endpoint", "nobody",
                  "--file", "{labels}", "--id-column", "id", "--label-column", "y"],
                 "unknown endpoint 'nobody'", id="upload-unknown-endpoint"),
])
def test_an_early_error_is_one_line_exit_2_within_3_s(args: list[str], message: str,
                                                      fleet: dict[str, Path], tmp_path: Path) -> None:
    assert_early_error(fill(args, fleet), fill([message], fleet)[0], tmp_path)


def test_the_unknown_model_lists_the_models_there(fleet: dict[str, Path], tmp_path: Path) -> None:
    line = assert_early_error(fill([*RUN, "--model", "ghost", "--start", START, "--end", END],
                                   fleet), "model 'ghost' is not registered", tmp_path)
    assert "registered: credit" in line and "with a baseline only: legacy" in line
    assert "baseline suggest" not in line  # a misspelt name is not a model to baseline


def test_a_window_without_capture_names_the_folders_and_hours(fleet: dict[str, Path],
                                                              tmp_path: Path) -> None:
    for given in (["--capture", "{capture}"], []):  # given, or the endpoint's root
        line = assert_early_error(fill([*RUN, "--model", "credit", *given, "--start", EMPTY_START,
                                        "--end", EMPTY_END], fleet), "no capture files", tmp_path)
        assert f"{fleet['capture']}/AllTraffic (days 2026/01/01 to 2026/01/01)" in line, line
        assert "hour folders 2026/02/01/00 to 2026/02/01/23" in line and "--allow-empty" in line


def test_a_window_without_merged_data_says_so(fleet: dict[str, Path], tmp_path: Path) -> None:
    line = assert_early_error(fill([*RUN, "--model", "credit", "--type", "bias-drift", "--merged",
                                    "{merged}", "--start", EMPTY_START, "--end", EMPTY_END], fleet),
                              "no merged files", tmp_path)
    assert f"{fleet['merged']} (days 2026/01/01 to 2026/01/01)" in line


def test_the_api_checks_before_any_prefect_work(fleet: dict[str, Path], monkeypatch) -> None:
    import modelwatch
    import modelwatch.api

    def no_prefect() -> None:
        raise AssertionError("Prefect was reached before the inputs were checked")

    monkeypatch.setattr(modelwatch.api, "_api", no_prefect)
    store = str(fleet["store"])
    with pytest.raises(UserError, match="no capture files"):
        modelwatch.run_monitor("credit", EMPTY_START, EMPTY_END, store=store)
    with pytest.raises(UserError, match="is not registered"):
        modelwatch.run_monitor("ghost", START, END, store=store)
    with pytest.raises(UserError, match="unknown endpoint 'nobody'"):
        modelwatch.merge_ground_truth("nobody", START, END, store=store)
    with pytest.raises(UserError, match="not on a whole hour"):
        modelwatch.merge_ground_truth("credit-live", "2026-01-01T00:30:00Z", END, store=store)


def test_scheduled_runs_skip_the_empty_window_check() -> None:
    """The check lives in the API (on demand); the scheduled flow calls `Monitor.run` directly, so an
    hour without traffic still records NoData there."""
    import inspect

    from modelwatch.flows import scheduled

    assert "check_run_inputs" not in inspect.getsource(scheduled)


def test_monitor_run_without_capture_reads_the_models_endpoints(fleet: dict[str, Path],
                                                                prefect_api: str,
                                                                tmp_path: Path) -> None:
    from modelwatch.tasks.numbers import human_number

    result, _ = modelwatch("monitor", "run", "--model", "credit", "--start", START, "--end", END,
                           "--no-report", "--store", str(fleet["store"]), state=tmp_path / "state",
                           api=prefect_api)
    assert result.returncode == 0, result.stderr
    execution = json.loads(result.stdout)
    assert execution["capture"] == str(fleet["capture"])
    assert execution["records_read"] == execution["rows_profiled"] == 30
    # JSON keeps every digit; the human line on stderr rounds to four significant digits.
    metric = execution["metric"]
    assert metric is not None and len(repr(metric).lstrip("0.")) > 4, metric
    [line] = [s for s in result.stderr.splitlines()
              if s.startswith("credit data-quality 2026-01-01 00:00 to 2026-01-02 00:00 UTC: ")]
    assert line.endswith(f"max drift distance {human_number(metric)}") and repr(metric) not in line


@pytest.mark.usefixtures("prefect_api")
def test_allow_empty_records_no_data(fleet: dict[str, Path]) -> None:
    from tests.cli_run import run

    execution = run("monitor", "run", "--model", "credit", "--start", EMPTY_START, "--end", EMPTY_END,
                    "--no-report", "--allow-empty", "--store", str(fleet["store"]))
    assert execution["status"] == "NoData" and execution["records_read"] == 0


@pytest.mark.usefixtures("prefect_api")
def test_a_user_error_in_a_task_is_not_retried_nor_a_traceback(caplog) -> None:
    from prefect import flow, task

    from modelwatch.flows.retries import STORE_RETRY

    calls: list[str] = []

    @task(**{**STORE_RETRY, "retry_delay_seconds": 0})
    def fails(kind: str) -> None:
        calls.append(kind)
        raise UserError("capture location /nowhere does not exist") if kind == "user" else \
            RuntimeError("the network hiccupped")

    @flow
    def runs(kind: str) -> None:
        fails(kind)

    assert runs("user", return_state=True).is_failed()
    assert calls == ["user"]  # tried once: the same input fails the same way
    about = [r for r in caplog.records if "/nowhere does not exist" in r.getMessage()]
    assert about and all(r.exc_info is None for r in about)  # logged in one line, no traceback
    calls.clear()
    assert runs("other", return_state=True).is_failed()
    assert calls == ["other"] * 3  # other failures are retried (2 retries)


def test_human_numbers_round_to_four_significant_digits() -> None:
    from modelwatch.tasks.numbers import human_number, human_text

    assert [human_number(v) for v in (0.123456789, 12345.678, 1.5e-07, 0.1, 3, None, 99.99999)] == [
        "0.1235", "12350", "1.5e-07", "0.1", "3", "-", "100"]
    assert human_text("Metric accuracy with 0.8123456789 +/- 0.00123456 was LessThanThreshold "
                      "'0.9' at 2026-01-01T00:00:00.123456Z, v1.2.3456, 100.0%.") == (
        "Metric accuracy with 0.8123 +/- 0.001235 was LessThanThreshold '0.9' at "
        "2026-01-01T00:00:00.123456Z, v1.2.3456, 100.0%.")


def test_a_bias_violation_line_names_facet_value_and_metric() -> None:
    from modelwatch.human import execution_line, violation_line

    violation = {"facet": "gender", "facet_value": "F", "metric_name": "DI",
                 "constraint_check_type": "bias_drift_check",
                 "description": "Metric value 0.712345678 doesn't meet the baseline constraint "
                                "requirement [0.8, 1.25]"}
    line = violation_line("bias-drift", violation)
    assert line.startswith("gender=F: DI: ") and "0.7123 " in line and "0.712345678" not in line
    head = execution_line({"model": "loans", "monitor_type": "bias-drift",
                           "window_start": START, "window_end": END,
                           "status": "CompletedWithViolations", "violation_count": 1,
                           "metric": -0.123456789, "metric_name": "DPPL"})
    assert head == ("loans bias-drift 2026-01-01 00:00 to 2026-01-02 00:00 UTC: "
                    "CompletedWithViolations, 1 violation(s), DPPL -0.1235")


def test_the_demo_help_says_what_it_builds(tmp_path: Path) -> None:
    result, _ = modelwatch("demo", "--help", state=tmp_path / "state")
    said = " ".join(result.stdout.split())
    assert result.returncode == 0
    for name in ("four models", "credit-default", "loan-approval", "credit-default-canary",
                 "income-estimator", "two days", "retrained", "bias drift"):
        assert name in said, name

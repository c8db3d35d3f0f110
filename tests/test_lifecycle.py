"""The execution life cycle under awkward histories: an alert whose only datapoint goes away, the fleet's
summary beside a broken model, concurrent writers of one model's index and alert, and executions that
die without an outcome. Through the CLI on the session's Prefect API, and the core under real
concurrency (processes on a local folder, threads on the S3 test server)."""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelwatch.flows.demo_data import LABEL, generate_demo
from modelwatch.tasks.alerts import read_alert
from modelwatch.tasks.documents import Execution
from modelwatch.tasks.executions import index_key, read_index, record_execution
from modelwatch.tasks.store import Store
from modelwatch.tasks.windows import iso_z
from tests.cli_run import invoke, run

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("demo"), rows_per_hour=30, training_rows=3_000)


def _register(store: str, model: str, training: Path) -> None:
    run("models", "register", "--model", model, "--problem-type", "binary", "--features-from",
        str(training), "--label", LABEL, "--store", store)


def _monitored(store: str, model: str, training: Path, *bystanders: str) -> None:
    """Register the model (and bystanders without a baseline) and suggest its data-quality baseline."""
    for name in (model, *bystanders):
        _register(store, name, training)
    run("baseline", "suggest", "--model", model, "--dataset", str(training), "--label", LABEL,
        "--store", store)


def _monitor(model: str, store: str, window: tuple[datetime, datetime], capture: Path) -> tuple[int, dict]:
    code, out = invoke("monitor", "run", "--model", model, "--capture", str(capture), "--start",
                       iso_z(window[0]), "--end", iso_z(window[1]), "--store", store,
                       "--allow-empty")  # one window is re-run on an empty capture, for NoData
    return code, json.loads(out)


@pytest.mark.usefixtures("prefect_api")
def test_alarm_resolves_when_its_only_datapoint_is_gone_and_the_fleet_summary_survives(
        case, tmp_path: Path) -> None:
    from tests.prefect_events import wait_for_events

    store = str(tmp_path / "store")
    model = f"cd-{uuid.uuid4().hex[:8]}"  # this test's events alone
    _monitored(store, model, case.training_csv, "bystander")
    code, drifted = _monitor(model, store, case.days[1], case.capture_root)
    assert code == 0 and drifted["status"] == "CompletedWithViolations"
    assert read_alert(Store(store), model, "data-quality").state == "ALARM"

    # The same window re-run on a capture that holds nothing: NoData, no datapoint left.
    empty = tmp_path / "empty-capture"
    empty.mkdir()
    code, again = _monitor(model, store, case.days[1], empty)
    assert code == 0 and again["status"] == "NoData"
    alert = read_alert(Store(store), model, "data-quality")
    assert alert.state == "INSUFFICIENT_DATA" and alert.raised_at is None
    assert [h.state for h in alert.history] == ["ALARM", "INSUFFICIENT_DATA"]
    resource = f"modelwatch.model.{model}"
    assert len(wait_for_events("modelwatch.alert.resolved", resource)) == 1
    assert len(wait_for_events("modelwatch.alert.raised", resource)) == 1

    # Edited criteria are re-evaluated by the summary, for the whole fleet.
    run("alerts", "set", "--model", model, "--datapoints-to-alert", "1", "--evaluation-period", "2",
        "--store", store)
    document = run("dashboard", "--refresh", "--json", "--store", store)
    assert sorted(r["model"] for r in document["models"]) == sorted(["bystander", model])


@pytest.mark.usefixtures("prefect_api")
def test_one_broken_model_never_stops_the_fleet_summary(case, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    for name in ("healthy", "broken"):
        _register(store, name, case.training_csv)
    Store(store).write_bytes("alerts/broken/data-quality.json", b'{"model": "broken", "state": "ODD"')
    code, out = invoke("dashboard", "--refresh", "--json", "--store", store)
    assert code == 1  # a model could not be summarised: said, not hidden
    rows = {r["model"]: r for r in json.loads(out)["models"]}
    assert set(rows) == {"healthy", "broken"}
    assert not rows["healthy"].get("problems")
    assert any("data-quality" in p for p in rows["broken"]["problems"])
    assert Store(store).exists("dashboard/models/healthy.html")


def _execution(model: str, hour: int) -> Execution:
    start = T0 + timedelta(hours=hour)
    return Execution(model=model, model_version="1", monitor_type="data-quality", window_start=start,
                     window_end=start + timedelta(hours=1), status="Completed",
                     finished_at=start + timedelta(hours=2))


def _index_writer(root: str, model: str, hours: list[int], start: object) -> None:
    store = Store(root)
    start.wait(60)  # both writers at once, each well into its imports
    for hour in hours:
        record_execution(store, _execution(model, hour))


def test_concurrent_writers_keep_every_index_entry_on_a_local_folder(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [context.Process(target=_index_writer, args=(root, "m", list(range(i, 50, 2)), start))
               for i in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
        assert writer.exitcode == 0
    entries = read_index(Store(root), "m", "data-quality").executions
    assert [e.window_start for e in entries] == [T0 + timedelta(hours=h) for h in range(50)]


def test_concurrent_writers_keep_every_index_entry_and_alert_on_s3(s3_bucket: str) -> None:
    from modelwatch.tasks.alerts import reevaluate_alert

    def writer(hours: list[int]) -> None:
        store = Store(s3_bucket)
        for hour in hours:
            record_execution(store, _execution("m", hour))
            reevaluate_alert(store, "m", "data-quality", cause=f"test {hour}")

    threads = [threading.Thread(target=writer, args=(list(range(i, 50, 2)),)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    store = Store(s3_bucket)
    entries = read_index(store, "m", "data-quality").executions
    assert [e.window_start for e in entries] == [T0 + timedelta(hours=h) for h in range(50)]
    alert = read_alert(store, "m", "data-quality")
    assert alert.state == "OK" and alert.last_execution.window_start == T0 + timedelta(hours=49)
    assert store.exists(index_key("m", "data-quality"))


def test_a_running_entry_without_heartbeat_is_settled_as_failed(tmp_path: Path) -> None:
    from modelwatch.tasks.executions import Attempt, attempt_key, execution_prefix, reconcile, record_running

    store = Store(str(tmp_path / "store"))
    dead = _execution("m", 0).model_copy(update={"flow_run_id": "run-dead", "started_at": T0})
    alive = _execution("m", 1).model_copy(update={"flow_run_id": "run-alive", "started_at": T0})
    done = _execution("m", 2).model_copy(update={"flow_run_id": "run-done", "started_at": T0})
    for execution in (dead, alive, done):
        record_running(store, execution)
    now = T0 + timedelta(minutes=30)
    prefix = execution_prefix("m", "data-quality", alive.window_start, alive.window_end)
    store.write_json(attempt_key(prefix), Attempt(flow_run_id="run-alive", started_at=T0,
                                                  heartbeat_at=now - timedelta(seconds=5)).dump())
    # "done" died between writing execution.json and indexing it: its own document settles it.
    prefix = execution_prefix("m", "data-quality", done.window_start, done.window_end)
    store.write_json(f"{prefix}/execution.json", done.model_copy(update={
        "status": "CompletedWithViolations", "violation_count": 3}).dump())
    index, interrupted = reconcile(store, "m", "data-quality", now, timedelta(minutes=5))
    states = {e.flow_run_id: (e.status, e.violation_count) for e in index.executions}
    assert states == {"run-dead": ("Failed", 0), "run-alive": ("Running", 0),
                      "run-done": ("CompletedWithViolations", 3)}
    assert [e.flow_run_id for e in interrupted] == ["run-dead"]
    assert "interrupted" in index.executions[0].failure_reason
    # No entry links a document that is not there.
    for entry in index.executions:
        assert entry.execution_uri is None or Path(entry.execution_uri).exists()


@pytest.mark.usefixtures("prefect_api")
def test_an_alarm_of_an_unscheduled_monitor_shows_on_the_dashboard(case, tmp_path: Path) -> None:
    """On-demand executions raise alarms too: the cell keeps None for the schedule, says ALARM with its
    time, and the model counts as in alarm (the dashboard said None and "0 models in alarm")."""
    store = str(tmp_path / "store")
    model = f"od-{uuid.uuid4().hex[:8]}"
    _monitored(store, model, case.training_csv)
    code, drifted = _monitor(model, store, case.days[1], case.capture_root)
    assert code == 0 and drifted["status"] == "CompletedWithViolations"
    alert = read_alert(Store(store), model, "data-quality")
    document = run("dashboard", "--refresh", "--json", "--store", store)
    [row] = [r for r in document["models"] if r["model"] == model]
    cell = row["monitors"]["data-quality"]
    assert cell["status"] == "None" and cell["alarm"] is True
    assert cell["alert_raised_at"].startswith(alert.raised_at.strftime("%Y-%m-%dT%H:%M"))
    index = Store(store).read_bytes("dashboard/index.html").decode()
    assert '<span class="n">1</span>models in alarm' in index
    assert f"ALARM since {alert.raised_at:%Y-%m-%d %H:%M} UTC" in index
    assert re.search(rf'data-model="{model}"[^>]*data-statuses="[^"]*Alarm', index)


@pytest.mark.usefixtures("prefect_api")
def test_an_execution_refreshes_its_models_row_and_no_other(case, tmp_path: Path) -> None:
    """Once a dashboard exists, each execution brings its own model's row and page up to date (the
    dashboard is never older than the last execution); every other model's row and page stay
    as they were."""
    store = str(tmp_path / "store")
    model = f"rf-{uuid.uuid4().hex[:8]}"
    _monitored(store, model, case.training_csv, "bystander")
    code, quiet = _monitor(model, store, case.days[0], case.capture_root)
    assert code == 0 and quiet["status"] == "Completed"
    before = run("dashboard", "--refresh", "--json", "--store", store)
    rows = {r["model"]: r for r in before["models"]}
    assert rows[model]["monitors"]["data-quality"]["last_status"] == "Completed"
    bystander_page = Path(store) / "dashboard" / "models" / "bystander.html"
    page_bytes, page_mtime = bystander_page.read_bytes(), bystander_page.stat().st_mtime_ns

    code, drifted = _monitor(model, store, case.days[1], case.capture_root)
    assert code == 0 and drifted["status"] == "CompletedWithViolations"
    after = Store(store).read_json("dashboard/models.json")  # no summary ran in between
    rows_after = {r["model"]: r for r in after["models"]}
    cell = rows_after[model]["monitors"]["data-quality"]
    assert cell["last_status"] == "CompletedWithViolations" and cell["alarm"] is True
    assert cell["last_violation_count"] == drifted["violation_count"]
    assert rows_after["bystander"] == rows["bystander"]
    assert bystander_page.read_bytes() == page_bytes
    assert bystander_page.stat().st_mtime_ns == page_mtime
    index = Store(store).read_bytes("dashboard/index.html").decode()
    assert '<span class="n">1</span>models in alarm' in index
    page = (Path(store) / "dashboard" / "models" / f"{model}.html").read_text()
    assert "monitoring/" + drifted["outputs"]["report.html"].split("/monitoring/")[-1] in page

"""`make demo`'s story, checked: on day one every monitor of every model is quiet; on day two
credit-default's quality drops (its labels arrive a day late) and loan-approval's bias and attributions
move, so the dashboard carries an alarm in all four monitor columns."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from modelwatch.demo import LOANS, MODEL, run_demo
from modelwatch.tasks.store import Store
from tests.chromium import needs_chromium
from tests.report_pages import read_report

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("demo")
    return run_demo(str(out)), out


def test_day_one_quiet_day_two_alarms(demo: tuple[dict, Path]) -> None:
    result, _ = demo
    executions = result["executions"]
    day_one = [e for e in executions if e["window_start"].day == 23]
    day_two = [e for e in executions if e["window_start"].day == 24]
    assert {e["status"] for e in day_one} == {"Completed"}, [
        (e["model"], e["monitor_type"], e["status"]) for e in day_one]
    flagged = {(e["model"], e["monitor_type"]) for e in day_two
               if e["status"] == "CompletedWithViolations"}
    assert {(MODEL, "data-quality"), (MODEL, "model-quality"), (LOANS, "bias-drift"),
            (LOANS, "feature-attribution-drift")} <= flagged


def test_labels_a_day_late_are_merged(demo: tuple[dict, Path]) -> None:
    _, out = demo
    store = Store(str(out / "store"))
    keys = [k for k in store.list("merged/credit-default-prod/reports") if k.endswith(".json")]
    assert len(keys) == 2
    for key in keys:
        report = store.read_json(key)
        # Every well-formed capture record got its label; the unmatched ones are the planted
        # malformed lines that still carry an id.
        assert report["captures_matched"] >= 0.99 * report["captures_read"]
        assert report["labels_unknown"] == 0


def test_dashboard_has_every_monitor_column(demo: tuple[dict, Path]) -> None:
    _, out = demo
    rows = {r["model"]: r for r in Store(str(out / "store")).read_json("dashboard/models.json")["models"]}
    loans = rows[LOANS]["monitors"]
    assert {t: loans[t]["status"] for t in loans} == {
        "data-quality": "Alarm", "model-quality": "Alarm", "bias-drift": "Alarm",
        "feature-attribution-drift": "Alarm"}
    assert rows[MODEL]["monitors"]["model-quality"]["status"] == "Alarm"
    assert rows[MODEL]["latest_version"] == "2"  # retrained on its alert


@pytest.mark.parametrize("monitor_type", ["model-quality", "bias-drift", "feature-attribution-drift"])
def test_scheduled_runs_of_the_label_and_attribution_monitors(demo: tuple[dict, Path],
                                                              monitor_type: str) -> None:
    """What a schedule runs for day two: the merge first where the monitor reads merged data, then
    the monitor, on the endpoints the registry names."""
    from modelwatch.flows.scheduled import scheduled_monitor

    result, out = demo
    day_two_end = max(e["window_end"] for e in result["executions"] if e["model"] == LOANS)
    execution = scheduled_monitor(model=LOANS, monitor_type=monitor_type, period="P1D",
                                  store=str(out / "store"), window_end=day_two_end, summarize=False)
    assert execution["status"] == "CompletedWithViolations"
    assert execution["rows_profiled"] > 1_000


def test_merge_job_is_a_scheduled_deployment(demo: tuple[dict, Path]) -> None:
    from modelwatch.flows.prefect_api import merge_schedules
    from modelwatch.flows.scheduled import scheduled_merge
    from tests.cli_run import invoke, run

    result, out = demo
    store = str(out / "store")
    created = run("groundtruth", "schedule", "--endpoint", "credit-default-prod", "--cron",
                  "30 * * * *", "--store", store)
    assert created["deployment"] == "scheduled-merge/merge-credit-default-prod"
    info = merge_schedules()["credit-default-prod"]
    assert info.cron == "30 * * * *"
    assert info.parameters["period"] == "PT1H" and info.parameters["lookback"] == "P7D"
    code, _ = invoke("groundtruth", "schedule", "--endpoint", "nowhere", "--cron", "30 * * * *",
                     "--store", store)
    assert code == 2
    day_two_end = max(e["window_end"] for e in result["executions"] if e["model"] == LOANS)
    report = scheduled_merge(endpoint="credit-default-prod", period="P1D", store=store,
                             window_end=day_two_end)
    assert report["captures_matched"] > 2_000 and report["labels_unknown"] == 0


@needs_chromium
def test_every_monitor_types_report_opens_with_the_executions_verdict(
        demo: tuple[dict, Path], browser) -> None:
    """Each type's report.html, opened in a browser from the model page's link, leads with the
    status execution.json holds."""
    result, out = demo
    store = out / "store"
    day_two = [e for e in result["executions"] if e["window_start"].day == 24]
    for model in (MODEL, LOANS):
        page = (store / "dashboard" / "models" / f"{model}.html").read_text()
        linked = {unquote(href) for href in re.findall(r'href="([^"]+report\.html)"', page)}
        for execution in (e for e in day_two if e["model"] == model):
            report = Path(execution["outputs"]["report.html"])
            relative = report.relative_to(store).as_posix()
            assert any(href.endswith(relative) for href in linked), (relative, linked)
            dom = browser(report.as_uri(), "--dump-dom")
            statuses = re.findall(r'data-status="([^"]+)"', dom)
            assert statuses and statuses[0] == execution["status"], (execution["monitor_type"],
                                                                      statuses[:1])
            assert "checks failed" in dom or execution["status"] == "NoData"
            read_report(execution)


def test_the_live_endpoint_is_served_captured_and_shown(demo: tuple[dict, Path]) -> None:
    from modelwatch.demo import LIVE, LIVE_REQUESTS

    result, out = demo
    [live] = [e for e in result["executions"] if e["model"] == LIVE]
    assert live["records_read"] == live["rows_profiled"] == LIVE_REQUESTS
    assert live["records_malformed"] == 0
    page = (out / "store" / "dashboard" / "endpoints" / f"{LIVE}.html").read_text()
    assert f'<span class="invocations">{LIVE_REQUESTS}</span> invocations' in page
    assert f'href="endpoints/{LIVE}.html"' in (out / "store" / "dashboard" / "index.html").read_text()

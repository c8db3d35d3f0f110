"""End to end on real parts: a `prefect server` and an S3 endpoint (moto's server mode) on loopback,
`modelwatch serve` in its own process. A scheduled monitor run lands on a drifted window; through the
Prefect API we see its flow run, the alert event, the automation's retrain run, the new model version
with a Draft card, and the dashboard table artifact showing the alert."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelwatch.flows.child_processes import stop_child
from tests.prefect_server import running_prefect_server, server_env

MODEL = "credit-default"
ENDPOINT = "credit-default-prod"
WAIT = 300.0


@pytest.fixture(scope="module")
def prefect_server(s3_endpoint: str) -> Iterator[str]:
    with running_prefect_server() as api:
        yield api


def wait_for(what: str, probe: Callable[[], Any], timeout: float = WAIT,
             serve_log: Path | None = None, api: str | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(2)
    tail = serve_log.read_text()[-6000:] if serve_log and serve_log.exists() else ""
    runs = ""
    if api:
        runs = "\n".join(f"{r['name']} {r['state_type']} {r.get('state_name')} "
                         f"{r.get('expected_start_time')}"
                         for r in api_post(api, "/flow_runs/filter", {"limit": 30, "offset": 0,
                                                                     "sort": "ID_DESC"}))
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{runs}\n{tail}")


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> dict:
    result = subprocess.run([sys.executable, "-m", "modelwatch.cli", *args], env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout) if result.stdout.strip() else {}


def api_post(api: str, path: str, body: dict) -> Any:
    import urllib.request

    request = urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def flow_runs(api: str, flow_name: str, states: tuple[str, ...] = ("COMPLETED",)) -> list[dict]:
    """Runs of a flow in the given state types (a cron schedule queues many future runs)."""
    return api_post(api, "/flow_runs/filter", {
        "flows": {"name": {"any_": [flow_name]}},
        "flow_runs": {"state": {"type": {"any_": list(states)}}},
        "sort": "EXPECTED_START_TIME_DESC", "limit": 50, "offset": 0})


def completed(runs: list[dict]) -> list[dict]:
    return [r for r in runs if (r.get("state") or {}).get("type") == "COMPLETED"]


def test_scheduled_drift_raises_alert_and_retrains(prefect_server: str, s3_bucket: str,
                                                   tmp_path: Path) -> None:
    from modelwatch.flows.demo_data import LABEL, generate_demo
    from modelwatch.tasks.store import Store

    api = prefect_server
    env = {**server_env(tmp_path / "client-home", api), "MODELWATCH_STORE": s3_bucket,
           "MODELWATCH_BASELINES": str(tmp_path / "no-overrides")}
    # Day two (the drifted one) is yesterday, so "the previous day" of a run now is drifted.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    case = generate_demo(tmp_path / "demo", start=today - timedelta(days=2), rows_per_hour=20,
                         training_rows=3_000)
    store = Store(s3_bucket)
    for path in sorted(Path(case.capture_root).rglob("*.jsonl")):
        store.write_bytes(f"capture/{ENDPOINT}/{path.relative_to(case.capture_root)}",
                          path.read_bytes())
    store.write_bytes("datasets/training.csv", Path(case.training_csv).read_bytes())
    store.write_bytes("models/credit-default/1/model.joblib", Path(case.model_path).read_bytes())
    dataset = f"{s3_bucket}/datasets/training.csv"

    cli(env, "models", "register", "--model", MODEL, "--problem-type", "binary",
        "--features-from", dataset, "--label", LABEL, "--artifact",
        f"{s3_bucket}/models/credit-default/1/model.joblib", "--training-dataset", dataset,
        "--training-entry-point", "modelwatch.flows.demo_data:train")
    cli(env, "endpoints", "register", "--endpoint", ENDPOINT, "--model", MODEL,
        "--model-version", "1")
    cli(env, "cards", "create", "--model", MODEL, "--risk-rating", "Medium",
        "--description", "credit default risk")
    cli(env, "baseline", "suggest", "--model", MODEL, "--dataset", dataset, "--label", LABEL)
    cli(env, "monitor", "schedule", "create", "--model", MODEL, "--type", "data-quality",
        "--cron", "* * * * *", "--period", "P1D")

    serve_log = tmp_path / "serve.log"
    with open(serve_log, "wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "modelwatch.cli", "serve", "--summary-cron", "0 0 1 1 *"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=os.getcwd())
        try:
            monitor_run = wait_for("a completed scheduled monitor run",
                                   lambda: completed(flow_runs(api, "scheduled-monitor")),
                                   serve_log=serve_log, api=api)[0]
            events = wait_for("the alert.raised event", lambda: api_post(api, "/events/filter", {
                "filter": {"event": {"name": ["modelwatch.alert.raised"]},
                           "occurred": {"since": (today - timedelta(days=1)).isoformat()}},
                "limit": 10})["events"], serve_log=serve_log, api=api)
            assert events[0]["resource"]["prefect.resource.id"] == f"modelwatch.model.{MODEL}"
            assert events[0]["resource"]["modelwatch.monitor-type"] == "data-quality"
            retrain_run = wait_for("a completed retrain run",
                                   lambda: completed(flow_runs(api, "retrain")),
                                   serve_log=serve_log, api=api)[0]
            assert retrain_run["parameters"]["model"] == MODEL
            assert retrain_run["parameters"]["alert_event_id"] == events[0]["id"]
            # The monitor keeps running every minute on the same window: still one alarm, one retrain.
            time.sleep(65)
            assert len(flow_runs(api, "retrain", ("COMPLETED", "RUNNING", "PENDING", "SCHEDULED",
                                                   "FAILED", "CRASHED"))) == 1
            assert len(api_post(api, "/events/filter", {
                "filter": {"event": {"name": ["modelwatch.alert.raised"]}}, "limit": 10
            })["events"]) == 1
        finally:
            stop_child(serve, signal.SIGTERM, 15.0, group=True)

    from modelwatch.tasks.cards import latest_card
    from modelwatch.tasks.registry import get_model

    record = get_model(store, MODEL)
    assert [v.version for v in record.versions] == ["1", "2"]
    assert record.versions[1].source == "retrain" and record.versions[1].parent_version == "1"
    card = latest_card(store, MODEL)
    assert card.status == "Draft" and card.content["model_overview"]["model_version"] == "2"
    assert store.exists("baselines/credit-default/2/data-quality/constraints.json")

    artifacts = api_post(api, "/artifacts/filter", {
        "artifacts": {"key": {"any_": ["model-dashboard"]}}, "sort": "CREATED_DESC",
        "limit": 1, "offset": 0})
    table = artifacts[0]["data"]
    table = json.loads(table) if isinstance(table, str) else table  # stored as JSON text
    [row] = [r for r in table if r["model"] == MODEL]
    assert row["data_quality"] not in ("None", "Inactive", "OK")  # the time the alert was raised
    assert row["risk_rating"] == "Medium"
    assert monitor_run["parameters"]["model"] == MODEL

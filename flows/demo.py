"""The demo, on the embedded defaults (a local folder store and Prefect's ephemeral API): a fleet of
three models. credit-default drifts on day two, raises its data-quality alert and is retrained;
credit-default-canary has a paused schedule; income-estimator is registered but never monitored."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flows.baseline import suggest_baseline
from flows.demo_data import LABEL, generate_demo
from flows.monitor import monitor_data_quality
from tasks.store import Store

MODEL = "credit-default"
CANARY = "credit-default-canary"
UNMONITORED = "income-estimator"


def _register(store: Store, name: str, problem_type: str, training_csv: Path, artifact: Path,
              entry_point: str | None, endpoint: str | None, capture: Path | None) -> None:
    from tasks.registry import (
        EndpointRecord,
        ModelRecord,
        ModelVersion,
        infer_features,
        register_endpoint,
        register_model,
    )

    register_model(store, ModelRecord(
        name=name, problem_type=problem_type, label=LABEL,
        features=infer_features(str(training_csv), LABEL),
        training_entry_point=entry_point,
        versions=[ModelVersion(version="1", artifact_uri=str(artifact),
                               training_dataset_uri=str(training_csv), training_run="demo-fit-1")],
    ), replace=True)
    if endpoint and capture:
        register_endpoint(store, EndpointRecord(name=endpoint, model=name, model_version="1",
                                                capture_uri=str(capture)))


def _card(store: Store, model: str, risk: str, purpose: str, approve: bool) -> None:
    from tasks.cards import create_card, set_status

    create_card(store, model, {
        "model_overview": {"model_description": purpose, "model_owner": "credit-risk team",
                           "algorithm_type": "logistic regression"},
        "intended_uses": {"purpose_of_model": purpose, "risk_rating": risk},
    }, by="demo")
    if approve:
        set_status(store, model, "PendingReview", by="demo")
        set_status(store, model, "Approved", by="risk-officer", note="reviewed in the demo")


def run_demo(out: str = "demo-output") -> dict[str, Any]:
    """Build the fleet, run two days of monitoring, retrain on the alert, print the dashboard."""
    from deployments.prefect_api import monitor_schedules, set_schedules_active
    from deployments.schedules import monitor_deployment
    from flows.batch import batch_transform
    from flows.retrain import retrain
    from flows.summary import summarize_fleet
    from modelwatch.commands.operations import print_dashboard
    from tasks.alerts import read_alert

    console = Console(width=max(Console().width, 150))
    began = time.perf_counter()
    root = Path(out).resolve()
    if (root / "store").exists():
        shutil.rmtree(root / "store")  # a re-run starts a fresh fleet
    store_uri = str(root / "store")
    store = Store(store_uri)
    console.print(f"[bold]modelwatch demo[/] writing to {root}")
    case = generate_demo(root / "data")
    console.print(f"generated {case.training_csv} and two days of capture under {case.capture_root} "
                  f"({case.malformed_lines} malformed lines planted; day two drifts in "
                  f"{', '.join(case.drifted_features)})")

    # The fleet: registry, endpoints, cards.
    canary_capture = root / "data" / "capture" / "credit-default-canary"
    if canary_capture.exists():
        shutil.rmtree(canary_capture)
    day_one = case.days[0][0].strftime("%Y/%m/%d")
    shutil.copytree(case.capture_root / "AllTraffic" / day_one,
                    canary_capture / "AllTraffic" / day_one)
    _register(store, MODEL, "binary", case.training_csv, case.model_path,
              "flows.demo_data:train", "credit-default-prod", case.capture_root)
    _register(store, CANARY, "binary", case.training_csv, case.model_path, None,
              "credit-default-canary", canary_capture)
    _register(store, UNMONITORED, "binary", case.training_csv, case.model_path, None, None, None)
    _card(store, MODEL, "Medium", "Decide who is offered credit", approve=True)
    _card(store, CANARY, "Low", "Shadow copy receiving a slice of traffic", approve=True)
    _card(store, UNMONITORED, "High", "Estimate income for affordability checks", approve=False)

    # Baselines and schedules (Prefect deployments); the canary's schedule is paused.
    for model in (MODEL, CANARY):
        suggest_baseline(model=model, dataset=str(case.training_csv), label=LABEL, store=store_uri)
        monitor_deployment(model, "data-quality", "0 1 * * *", store_uri).apply()
    set_schedules_active(monitor_schedules()[(CANARY, "data-quality")], False)

    # Two days of monitoring, as the daily schedule would run them.
    executions = [monitor_data_quality(model=MODEL, capture=str(case.capture_root), start=start,
                                       end=end, store=store_uri) for start, end in case.days]
    executions.append(monitor_data_quality(model=CANARY, capture=str(canary_capture),
                                           start=case.days[0][0], end=case.days[0][1],
                                           store=store_uri))
    batch_transform(model=MODEL, input=str(case.training_csv), store=store_uri,
                    job_id="credit-default-backtest")
    _print_executions(console, store, executions)

    # Under `modelwatch serve`, a Prefect automation turns the alert event into this retrain run.
    alert = read_alert(store, MODEL, "data-quality")
    retrained = None
    if alert.state == "ALARM":
        console.print(f"\n[bold red]alert raised[/] for {MODEL} data-quality: "
                      f"{alert.history[-1].reason}; retraining (what the automation does)")
        retrained = retrain(model=MODEL, store=store_uri, monitor_type="data-quality",
                            alert_event_id="demo")
        console.print(f"registered {MODEL} v{retrained['version']} with a "
                      f"{retrained['card_status']} card; `modelwatch endpoints promote` moves the "
                      "endpoint once the card is Approved")

    summary = summarize_fleet(store=store_uri)
    console.print()
    print_dashboard(store.read_json("dashboard/models.json"), summary["outputs"]["html"], console)
    console.print(f"\ndone in {time.perf_counter() - began:.0f} s")
    return {"executions": executions, "retrained": retrained, "summary": summary}


def _print_executions(console: Console, store: Store, executions: list[dict]) -> None:
    table = Table(title="data-quality executions")
    for column in ("model", "window (UTC)", "status", "records", "malformed", "violations",
                   "report"):
        table.add_column(column, overflow="fold")
    for ex in executions:
        violations = _violations(store, ex)
        found = "\n".join(f"{v['feature_name'] or '-'}: {v['constraint_check_type']}"
                          for v in violations)
        table.add_row(ex["model"], f"{ex['window_start']:%Y-%m-%d %H:%M}\nto "
                      f"{ex['window_end']:%Y-%m-%d %H:%M}", ex["status"], str(ex["records_read"]),
                      str(ex["records_malformed"]), found or "none",
                      ex["outputs"].get("report.html", "-"))
    console.print(table)
    for ex in executions:
        for v in _violations(store, ex):
            console.print(f"  {ex['model']} {ex['window_start']:%Y-%m-%d} "
                          f"{v['feature_name'] or '-'}: {v['description']}")


def _violations(store: Store, execution: dict) -> list[dict]:
    uri = execution["outputs"].get("constraint_violations.json")
    if not uri:
        return []
    return store.read_json(uri[len(store.uri("")) + 1 :])["violations"]

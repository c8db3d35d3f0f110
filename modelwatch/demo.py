"""The demo (`modelwatch demo`), on the embedded defaults (a local folder store and the local
background Prefect server): a fleet of four models. credit-default drifts on day two and its labels,
arriving a day late, show its quality dropping: both alerts are raised and it is retrained;
loan-approval runs all four monitors and an upstream change on day two moves its bias and
attributions; credit-default-canary has a paused schedule; income-estimator is registered but never
monitored."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from modelwatch.flows import demo_lending
from modelwatch.flows.attribution import monitor_feature_attribution_drift, suggest_attribution_baseline
from modelwatch.flows.baseline import suggest_baseline
from modelwatch.flows.bias import monitor_bias_drift, suggest_bias_baseline
from modelwatch.flows.demo_data import LABEL, SCORE, generate_demo
from modelwatch.flows.merge import merge_ground_truth
from modelwatch.flows.monitor import monitor_data_quality
from modelwatch.flows.quality import monitor_model_quality, suggest_model_quality_baseline
from modelwatch.tasks.store import Store

MODEL = "credit-default"
CANARY = "credit-default-canary"
UNMONITORED = "income-estimator"
LOANS = "loan-approval"
ENDPOINT = "credit-default-prod"
LIVE = "credit-default-live"  # served by a real local uvicorn behind the capture middleware
LIVE_REQUESTS = 400


def _register(store: Store, name: str, problem_type: str, training_csv: Path, artifact: Path,
              entry_point: str | None, endpoint: str | None, capture: Path | None,
              label: str = LABEL) -> None:
    from modelwatch.tasks.registry import (
        EndpointRecord,
        ModelRecord,
        ModelVersion,
        infer_features,
        register_endpoint,
        register_model,
    )

    register_model(store, ModelRecord(
        name=name, problem_type=problem_type, label=label,
        features=infer_features(str(training_csv), label),
        training_entry_point=entry_point,
        versions=[ModelVersion(version="1", artifact_uri=str(artifact),
                               training_dataset_uri=str(training_csv), training_run="demo-fit-1")],
    ), replace=True)
    if endpoint and capture:
        register_endpoint(store, EndpointRecord(name=endpoint, model=name, model_version="1",
                                                capture_uri=str(capture)))


def _card(store: Store, model: str, risk: str, purpose: str, approve: bool,
          algorithm: str = "logistic regression") -> None:
    from modelwatch.flows.cards import set_status
    from modelwatch.tasks.cards import create_card

    create_card(store, model, {
        "model_overview": {"model_description": purpose, "model_owner": "credit-risk team",
                           "algorithm_type": algorithm},
        "intended_uses": {"purpose_of_model": purpose, "risk_rating": risk},
    }, by="demo")
    if approve:
        set_status(store, model, "PendingReview", by="demo")
        set_status(store, model, "Approved", by="risk-officer", note="reviewed in the demo")


def run_demo(out: str = "demo-output") -> dict[str, Any]:
    """Build the fleet, run two days of monitoring, retrain on the alert, print the dashboard."""
    from modelwatch.commands.operations import print_dashboard
    from modelwatch.deployments.schedules import monitor_deployment
    from modelwatch.flows.batch import batch_transform
    from modelwatch.flows.local_server import ensure_api
    from modelwatch.flows.prefect_api import monitor_schedules, set_schedules_active
    from modelwatch.flows.retrain import retrain
    from modelwatch.flows.summary import summarize_fleet
    from modelwatch.tasks.alerts import read_alert
    from modelwatch.tasks.groundtruth_upload import write_ground_truth

    console = Console(width=max(Console().width, 150))
    began = time.perf_counter()
    ensure_api()
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
              "modelwatch.flows.demo_data:train", ENDPOINT, case.capture_root)
    _register(store, CANARY, "binary", case.training_csv, case.model_path, None,
              "credit-default-canary", canary_capture)
    _register(store, UNMONITORED, "binary", case.training_csv, case.model_path, None, None, None)
    loans = demo_lending.generate_lending(root / "data" / "lending", start=case.days[0][0])
    _register(store, LOANS, "binary", loans.training_csv, loans.model_path,
              "modelwatch.flows.demo_lending:train", demo_lending.ENDPOINT, loans.capture_root,
              label=demo_lending.LABEL)
    _register(store, LIVE, "binary", case.training_csv, case.model_path, None, LIVE,
              root / "store" / "capture" / LIVE)
    _card(store, LIVE, "Low", "The credit model on a live local endpoint", approve=True)
    _card(store, MODEL, "Medium", "Decide who is offered credit", approve=True)
    _card(store, CANARY, "Low", "Shadow copy receiving a slice of traffic", approve=True)
    _card(store, UNMONITORED, "High", "Estimate income for affordability checks", approve=False)
    _card(store, LOANS, "High", "Approve or decline loan applications", approve=True,
          algorithm="gradient-boosted trees")

    # Baselines and schedules (Prefect deployments); the canary's schedule is paused.
    for model, training, label in ((MODEL, case.training_csv, LABEL), (CANARY, case.training_csv, LABEL),
                                   (LIVE, case.training_csv, LABEL),
                                   (LOANS, loans.training_csv, demo_lending.LABEL)):
        suggest_baseline(model=model, dataset=str(training), label=label, store=store_uri)
    for model, validation, label in ((MODEL, case.validation_csv, LABEL),
                                     (LOANS, loans.validation_csv, demo_lending.LABEL)):
        suggest_model_quality_baseline(model=model, dataset=str(validation), label=label,
                                       probability=SCORE, store=store_uri)
    suggest_bias_baseline(model=LOANS, dataset=str(loans.validation_csv), label=demo_lending.LABEL,
                          prediction=demo_lending.SCORE, facets=[demo_lending.FACET],
                          group=demo_lending.GROUP, bounds=["DI=0.8:1.25"], store=store_uri)
    suggest_attribution_baseline(model=LOANS, dataset=str(loans.training_csv),
                                 label=demo_lending.LABEL, store=store_uri)
    schedules = [(MODEL, "data-quality"), (MODEL, "model-quality"), (CANARY, "data-quality")] + [
        (LOANS, t) for t in ("data-quality", "model-quality", "bias-drift",
                             "feature-attribution-drift")]
    for model, monitor_type in schedules:
        monitor_deployment(model, monitor_type, "0 1 * * *", store_uri).apply()
    set_schedules_active(monitor_schedules()[(CANARY, "data-quality")], False)

    # Labels are collected a day after each prediction; `modelwatch groundtruth upload` files them
    # by the hour they were labelled.
    for endpoint, labels, label in ((ENDPOINT, case.labels_csv, LABEL),
                                    (demo_lending.ENDPOINT, loans.labels_csv, demo_lending.LABEL)):
        upload = write_ground_truth(store, endpoint, str(labels), "event_id", label,
                                    labelled_at_column="labelled_at")
        console.print(f"uploaded {upload.labels_written} labels for {endpoint} "
                      f"(labelled a day after the prediction)")

    # Two days of monitoring, as the daily schedules would run them.
    executions = []
    for start, end in case.days:
        executions.append(monitor_data_quality(model=MODEL, capture=str(case.capture_root),
                                               start=start, end=end, store=store_uri))
        executions.append(monitor_data_quality(model=LOANS, capture=str(loans.capture_root),
                                               start=start, end=end, store=store_uri))
        for endpoint in (ENDPOINT, demo_lending.ENDPOINT):
            report = merge_ground_truth(endpoint=endpoint, start=start, end=end, store=store_uri)
            console.print(f"merge {endpoint} {start:%Y-%m-%d}: {report['captures_matched']} of "
                          f"{report['captures_read']} predictions labelled")
        for model in (MODEL, LOANS):
            executions.append(monitor_model_quality(model=model, start=start, end=end,
                                                    store=store_uri))
        executions.append(monitor_bias_drift(model=LOANS, start=start, end=end, store=store_uri))
        executions.append(monitor_feature_attribution_drift(model=LOANS, start=start, end=end,
                                                            store=store_uri))
    executions.append(monitor_data_quality(model=CANARY, capture=str(canary_capture),
                                           start=case.days[0][0], end=case.days[0][1],
                                           store=store_uri))
    batch_transform(model=MODEL, input=str(case.training_csv), store=store_uri,
                    job_id="credit-default-backtest")
    executions.append(_live_endpoint(console, store_uri, case.training_csv))
    _print_executions(console, executions)

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


def _live_endpoint(console: Console, store_uri: str, training_csv: Path) -> dict[str, Any]:
    """Serve the live model for a moment, send it real requests, and monitor the hour they fell in."""
    import csv
    from datetime import UTC, datetime, timedelta

    from modelwatch.flows.demo_serving import serve_live_traffic

    with training_csv.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        keep = [i for i, name in enumerate(header) if name != LABEL]
        rows = [",".join(row[i] for i in keep) for _, row in zip(range(LIVE_REQUESTS), reader,
                                                                strict=False)]
    began = datetime.now(UTC)
    load = serve_live_traffic(store_uri, LIVE, LIVE, rows)
    console.print(f"{LIVE}: a local uvicorn behind the capture middleware answered {load['answered']} of "
                  f"{load['sent']} requests")
    start = began.replace(minute=0, second=0, microsecond=0)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return monitor_data_quality(model=LIVE, capture=str(Path(store_uri) / "capture" / LIVE), start=start,
                                end=end, store=store_uri)


def _print_executions(console: Console, executions: list[dict]) -> None:
    """The executions as a table (headline metric rounded), then a line per violation."""
    from modelwatch.flows.monitor_types import get_monitor
    from modelwatch.human import violation_line, violations_of
    from modelwatch.tasks.numbers import human_number

    table = Table(title="monitoring executions")
    for column in ("model", "monitor", "window (UTC)", "status", "records", "headline", "violations"):
        table.add_column(column, overflow="fold")
    found = [(ex, violations_of(ex)) for ex in executions]
    for ex, violations in found:
        describe = get_monitor(ex["monitor_type"]).describe_violation
        headline = (f"{ex.get('metric_name') or 'metric'} {human_number(ex['metric'])}"
                    if ex.get("metric") is not None else "-")
        table.add_row(ex["model"], ex["monitor_type"], f"{ex['window_start']:%Y-%m-%d}",
                      ex["status"], str(ex["records_read"]), headline,
                      "\n".join(describe(v) for v in violations) or "none")
    console.print(table)
    for ex, violations in found:
        for v in violations:
            console.print(f"  {ex['model']} {ex['monitor_type']} {ex['window_start']:%Y-%m-%d}: "
                          f"{violation_line(ex['monitor_type'], v)}", markup=False, highlight=False)

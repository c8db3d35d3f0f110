"""The demo: a drifting credit-default model monitored over two days, on the embedded defaults
(a local folder store and Prefect's ephemeral API)."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from flows.baseline import suggest_baseline
from flows.demo_data import LABEL, generate_demo
from flows.monitor import monitor_data_quality
from tasks.store import Store

MODEL = "credit-default"


def run_demo(out: str = "demo-output") -> list[dict]:
    """Generate the case, suggest the baseline, run one execution per day, print the outcome."""
    console = Console(width=max(Console().width, 140))
    began = time.perf_counter()
    root = Path(out).resolve()
    store = str(root / "store")
    console.print(f"[bold]modelwatch demo[/] writing to {root}")
    case = generate_demo(root / "data")
    console.print(f"generated {case.training_csv} and two days of capture under "
                  f"{case.capture_root} ({case.malformed_lines} malformed lines planted; "
                  f"drift on day two in {', '.join(case.drifted_features)})")
    uris = suggest_baseline(model=MODEL, dataset=str(case.training_csv), label=LABEL, store=store)
    console.print(f"baseline: {uris['statistics']}\n          {uris['constraints']}")
    executions = [
        monitor_data_quality(model=MODEL, capture=str(case.capture_root), start=start, end=end,
                             store=store)
        for start, end in case.days
    ]
    table = Table(title=f"{MODEL}: data-quality executions")
    for column in ("window (UTC)", "status", "records", "malformed", "violations", "report"):
        table.add_column(column, overflow="fold")
    violations_by_window = [_violations(store, ex) for ex in executions]
    for ex, violations in zip(executions, violations_by_window, strict=True):
        found = "\n".join(f"{v['feature_name'] or '-'}: {v['constraint_check_type']}"
                          for v in violations)
        table.add_row(f"{ex['window_start']:%Y-%m-%d %H:%M}\nto {ex['window_end']:%Y-%m-%d %H:%M}",
                      ex["status"], str(ex["records_read"]), str(ex["records_malformed"]),
                      found or "none", ex["outputs"].get("report.html", "-"))
    console.print(table)
    for ex, violations in zip(executions, violations_by_window, strict=True):
        if violations:
            console.print(f"\n[bold]{ex['window_start']:%Y-%m-%d}[/] "
                          f"{ex['outputs']['constraint_violations.json']}")
            for v in violations:
                console.print(f"  {v['feature_name'] or '-'}: {v['description']}")
    console.print(f"\nquarantined lines: {executions[0]['outputs'].get('quarantine.jsonl')} (day one)")
    console.print(f"\ndone in {time.perf_counter() - began:.0f} s")
    return executions


def _violations(store: str, execution: dict) -> list[dict]:
    uri = execution["outputs"].get("constraint_violations.json")
    if not uri:
        return []
    return Store(store).read_json(uri[len(Store(store).uri("")) + 1 :])["violations"]

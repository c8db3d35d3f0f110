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

MODEL = "credit-default"


def run_demo(out: str = "demo-output") -> list[dict]:
    """Generate the case, suggest the baseline, run one execution per day, print the outcome."""
    console = Console()
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
    for column in ("window (UTC)", "status", "records", "malformed", "violations"):
        table.add_column(column)
    for ex in executions:
        found = "\n".join(f"{name}: {count}" for name, count in ex["violation_types"].items())
        table.add_row(f"{ex['window_start']:%Y-%m-%d %H:%M} to {ex['window_end']:%Y-%m-%d %H:%M}",
                      ex["status"], str(ex["records_read"]), str(ex["records_malformed"]),
                      found or "none")
    console.print(table)
    for ex in executions:
        console.print(f"{ex['window_start']:%Y-%m-%d}: report {ex['outputs'].get('report.html')}")
        console.print(f"            violations {ex['outputs'].get('constraint_violations.json')}")
    for ex in executions:
        if ex["violation_count"]:
            import json

            from tasks.store import Store

            violations = json.loads(Store(store).read_bytes(
                ex["outputs"]["constraint_violations.json"].removeprefix(store + "/")))
            console.print(f"\n[bold]{ex['window_start']:%Y-%m-%d} violations[/]")
            for v in violations["violations"]:
                console.print(f"  {v['feature_name'] or '-':14} {v['constraint_check_type']:26} "
                              f"{v['description']}")
    console.print(f"\ndone in {time.perf_counter() - began:.0f} s")
    return executions

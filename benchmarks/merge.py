"""Ground-truth merge and model-quality benchmark: 1,000,000 captured records (CSV encoding, 24 hour
folders) joined with 1,000,000 labels (90% for captured ids, 5% duplicates, 5% unknown ids) by the
merge flow, then the model-quality execution over the merged window.

    python -m benchmarks.merge [--rows 1000000] [--out benchmarks/out/merge]

Setup runs in a child process so the measured process's peak RSS covers only the timed steps (plus
imports and Prefect's warm-up). Targets: merge >= 200,000 records/s, peak memory < 2 GB.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.measure import log, write_results

START = datetime(2026, 11, 23, tzinfo=UTC)
RESULTS_MD = Path(__file__).resolve().parent / "results" / "merge.md"


def event_id(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def setup(out: Path, rows: int) -> None:
    """Write the capture, the labels, the model, its endpoint and a model-quality baseline."""
    import numpy as np

    from modelwatch.flows.demo_data import capture_file_name, capture_hour_dir, write_csv_capture_file
    from modelwatch.tasks.groundtruth_upload import ground_truth_line
    from modelwatch.tasks.registry import (
        EndpointRecord,
        ModelRecord,
        ModelVersion,
        register_endpoint,
        register_model,
    )
    from modelwatch.tasks.store import Store
    from modelwatch.tasks.windows import iso_z

    store = Store(str(out / "store"))
    rng = np.random.default_rng(1)
    capture = Path(store.path("capture/bench"))
    scores = rng.random(rows)
    labels = (rng.random(rows) < scores).astype(int)
    per_hour = rows // 24
    for hour in range(24):
        at = START + timedelta(hours=hour)
        lo, hi = hour * per_hour, rows if hour == 23 else (hour + 1) * per_hour
        values = rng.integers(0, 100, size=(hi - lo, 8)).tolist()
        write_csv_capture_file(
            capture_hour_dir(capture, at) / capture_file_name(at, 0, f"{hour:032x}"),
            [",".join(map(str, r)) for r in values], [f"{s:.4f}" for s in scores[lo:hi]],
            [iso_z(at + timedelta(minutes=30))] * (hi - lo), [event_id(i) for i in range(lo, hi)])
    matched = int(rows * 0.9)
    ids = list(range(matched)) + list(range(rows // 20)) + [-1 - i for i in range(rows // 20)]
    truth = Path(store.path("groundtruth/bench"))
    for part in range(8):  # labelled over the following day, 8 files
        at = START + timedelta(days=1, hours=part)
        chunk = ids[part::8]
        folder = truth / f"{at:%Y/%m/%d/%H}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "labels.jsonl").write_bytes(b"".join(
            ground_truth_line(event_id(i) if i >= 0 else f"ghost-{-i}", str(labels[i] if i >= 0 else 0))
            for i in chunk))
    register_model(store, ModelRecord(name="bench", problem_type="binary",
                                      versions=[ModelVersion(version="1")]), replace=True)
    register_endpoint(store, EndpointRecord(name="bench", model="bench", model_version="1",
                                            capture_uri=store.uri("capture/bench")))
    import pandas as pd

    validation = pd.DataFrame({"label": labels[:50_000], "score": scores[:50_000].round(4)})
    validation["prediction"] = (validation["score"] >= 0.5).astype(int)
    validation.to_csv(out / "validation.csv", index=False)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/merge"))
    parser.add_argument("--setup-only", action="store_true")
    args = parser.parse_args()
    out = args.out.resolve() / f"n{args.rows}"
    if args.setup_only:
        setup(out, args.rows)
        return
    if not (out / "validation.csv").exists():
        log(f"setup: {args.rows:,} captures and labels under {out}")
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "benchmarks.merge", "--setup-only", "--rows",
                        str(args.rows), "--out", str(args.out)], check=True)
        log(f"setup took {time.perf_counter() - began:.0f} s")
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="modelwatch-bench-merge-"))
    from modelwatch.runtime import configure_prefect

    configure_prefect()
    from modelwatch.flows.merge import merge_ground_truth
    from modelwatch.flows.quality import monitor_model_quality, suggest_model_quality_baseline

    store = str(out / "store")
    began = time.perf_counter()
    suggest_model_quality_baseline(model="bench", dataset=str(out / "validation.csv"), label="label",
                                   prediction="prediction", probability="score", store=store)
    startup = time.perf_counter() - began
    end = START + timedelta(days=1)
    began, cpu_began = time.perf_counter(), cpu_seconds()
    report = merge_ground_truth(endpoint="bench", start=START, end=end, lookback="P7D", store=store)
    merge_s, merge_cpu = time.perf_counter() - began, cpu_seconds() - cpu_began
    merge_rss = peak_rss_mb()
    began = time.perf_counter()
    execution = monitor_model_quality(model="bench", start=START, end=end, store=store)
    quality_s = time.perf_counter() - began
    rss = peak_rss_mb()
    rate = report["captures_read"] / merge_s
    rows = [
        ("Prefect ephemeral start-up + baseline flow (not counted)", "-", f"{startup:.2f}", "-", "-",
         "-", "-"),
        ("merge: captures x labels", f"{report['captures_read']:,} x {report['labels_read']:,}",
         f"{merge_s:.2f}", f"{rate:,.0f}", f"{merge_rss:.0f}", ">= 200,000 records/s; < 2 GB",
         "yes" if rate >= 200_000 and merge_rss < 2048 else "**NO**"),
        ("model-quality execution on the merged window", f"{execution['rows_profiled']:,}",
         f"{quality_s:.2f}", f"{execution['rows_profiled'] / quality_s:,.0f}", f"{rss:.0f}",
         "< 2 GB", "yes" if rss < 2048 else "**NO**"),
    ]
    lines = [f"# Merge and model-quality benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)", "",
             f"`python -m benchmarks.merge --rows {args.rows}`", "",
             "| step | records | seconds | records/s | peak RSS MB (process so far) | target | met? |",
             "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"- merge report: matched {report['captures_matched']:,}, unmatched "
              f"{report['captures_unmatched']:,}, labels matched {report['labels_matched']:,}, "
              f"duplicates {report['labels_duplicate']:,}, unknown {report['labels_unknown']:,}, "
              f"pending {report['labels_pending']:,}, malformed {report['labels_malformed']:,}",
              f"- model-quality execution: {execution['status']}, {execution['violation_count']} "
              "violations (the window is drawn like the baseline)",
              f"- merge CPU time (user + system, all threads): {merge_cpu:.2f} s. Flow times include "
              "Prefect's run overhead: a flow run ends when its heartbeat thread wakes from its current "
              "1 s sleep, so they land just above a whole second",
              f"- machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
              f"python {platform.python_version()}"]
    text = "\n".join(lines) + "\n"
    write_results(RESULTS_MD, text)


if __name__ == "__main__":
    main()

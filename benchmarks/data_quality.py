"""Data-quality benchmark: the monitoring execution flow, our profile+check path versus Evidently, and
peak memory, on synthetic data drawn from one fixed distribution (so no check should fire).

    .venv/bin/python -m benchmarks.data_quality [--rows 1000000] [--evidently-rows 100000]
                                                [--out benchmarks/out] [--repeat 3] [--fresh]

Setup (not timed): a 100,000-row x 20-feature training CSV, a baseline suggested from it by the
`suggest_baseline` flow into a local store under --out, and --rows CSV-encoded capture records from
the same distribution in 24 hour folders (4 files per hour). The generated data is reused by later
runs with the same parameters (--fresh regenerates it); the baseline is suggested again every run.

Measured steps, each in its own child process (`--step NAME`) so its peak RSS (VmHWM, reset once the
step's inputs are loaded) is its own:

* execution: `monitor_data_quality(..., report=False)` end to end from the call, after a warm-up
  flow run in the same child. The Prefect API is the ephemeral server started (and timed, reported
  as start-up) by the parent; children reach it through PREFECT_API_URL.
* ours: pyarrow table from the current DataFrame -> profile_table -> check_data_quality against the
  stored baseline, at --evidently-rows and at --rows.
* ours+ref: the same, also profiling the reference frame and suggesting constraints from it (what
  Evidently does with its reference on every run), at --evidently-rows.
* evidently: Evidently's DataDriftPreset on the same current and reference frames.

The in-memory steps run --repeat times in their child and the fastest run counts; the execution runs
once. Besides wall seconds, each step records its process's CPU seconds, and the parent records the
CPU other processes used meanwhile (from /proc/stat), since a shared 2-core machine makes wall times
noisy. The markdown results table goes to stdout and to benchmarks/results/data_quality.md (with the date);
progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from benchmarks.measure import (
    SERVER_PID_ENV,
    cpu_seconds,
    log,
    machine,
    machine_section,
    mb,
    prefect_warmup,
    process_cpu_seconds,
    reset_peak_rss,
    run_child_step,
    start_ephemeral_api,
    status_kib,
    stop_ephemeral_api,
    write_results,
    yes,
)

MODEL = "bench"
VARIANT = "AllTraffic"
WINDOW_START = datetime(2026, 11, 23, tzinfo=UTC)
HOURS = 24
FILES_PER_HOUR = 4
TRAINING_ROWS = 100_000
SEED = 20261123
DATA_VERSION = 2  # bump when the generated data changes, so cached setups are rebuilt

TARGET_RECORDS_PER_S = 100_000
TARGET_SPEEDUP = 20.0
TARGET_PEAK_MB = 2048.0
ROW_GROUP = 50_000  # current.parquet row groups, so a step reads only the rows it needs

INTEGRAL = ["age", "num_accounts", "tenure_days", "has_mortgage", "visits_30d"]
FRACTIONAL = ["income", "debt_ratio", "utilization", "balance", "score_a", "score_b",
              "latency_ms", "temperature", "discount"]
MISSING_SHARE = {"utilization": 0.02, "balance": 0.02, "latency_ms": 0.02, "discount": 0.02}
CATEGORIES = {"region": 4, "channel": 3, "device": 5, "segment": 7, "product": 9, "state": 12}
NUMERIC = INTEGRAL + FRACTIONAL
CATEGORICAL = list(CATEGORIES)
FEATURES = [
    "age", "income", "region", "debt_ratio", "num_accounts", "utilization", "channel",
    "tenure_days", "balance", "device", "score_a", "has_mortgage", "segment", "score_b",
    "latency_ms", "product", "visits_30d", "temperature", "state", "discount",
]
assert sorted(FEATURES) == sorted(NUMERIC + CATEGORICAL)

RESULTS_MD = Path(__file__).resolve().parent / "results" / "data_quality.md"




# --------------------------------------------------------------------------- data


def category_shares() -> dict[str, np.ndarray]:
    """Fixed, skewed category shares per categorical feature (independent of any sample)."""
    rng = np.random.default_rng(SEED)
    return {name: rng.dirichlet(np.full(k, 2.0)) for name, k in CATEGORIES.items()}


def draw_frame(n: int, seed: int) -> pd.DataFrame:
    """n rows of the benchmark's distribution: int64, float64 (NaN = missing) and str columns.

    Values are rounded as a client would send them, so the CSV text round-trips exactly.
    """
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {
        "age": np.clip(np.rint(rng.normal(44, 14, n)), 18, 90).astype(np.int64),
        "num_accounts": rng.poisson(4.0, n).astype(np.int64),
        "tenure_days": rng.integers(0, 3650, n, dtype=np.int64),
        "has_mortgage": (rng.random(n) < 0.38).astype(np.int64),
        "visits_30d": rng.negative_binomial(3, 0.3, n).astype(np.int64),
        "income": np.round(rng.lognormal(np.log(52_000), 0.55, n), 2),
        "debt_ratio": np.round(np.clip(rng.gamma(2.0, 0.17, n), 0.0, 1.5), 4),
        "utilization": np.round(rng.beta(2.0, 3.0, n), 4),
        "balance": np.round(rng.exponential(2_500.0, n), 2),
        "score_a": np.round(rng.normal(0.0, 1.0, n), 4),
        "score_b": np.round(rng.standard_t(5, n) * 10 + 50, 3),
        "latency_ms": np.round(rng.lognormal(3.0, 0.4, n), 3),
        "temperature": np.round(rng.normal(21.5, 3.2, n), 2),
        "discount": np.round(rng.uniform(0.0, 0.3, n), 4),
    }
    for name, share in MISSING_SHARE.items():
        cols[name][rng.random(n) < share] = np.nan
    for name, shares in category_shares().items():
        labels = np.array([f"{name}_{i}" for i in range(len(shares))], dtype=object)
        cols[name] = labels[rng.choice(len(shares), size=n, p=shares)]
    return pd.DataFrame({name: cols[name] for name in FEATURES})


def csv_text(frame: pd.DataFrame) -> bytes:
    """Headerless unquoted CSV (a missing value is an empty field), by Arrow's C++ writer."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(
        pa.Table.from_pandas(frame, preserve_index=False), sink,
        write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
    )
    return sink.getvalue().to_pybytes()


def write_capture(frame: pd.DataFrame, capture_root: Path, seed: int) -> int:
    """CSV capture files for the frame's rows, spread over HOURS hour folders; returns files."""
    from modelwatch.flows.demo_data import capture_file_name, capture_hour_dir, write_csv_capture_file

    n = len(frame)
    rng = np.random.default_rng(seed)
    rows = csv_text(frame).decode("utf-8").split("\n")[:n]
    scores = pa.array(np.round(rng.random(n), 4)).cast(pa.string()).to_pylist()
    ids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(n)]
    if capture_root.exists():
        shutil.rmtree(capture_root)
    bounds = np.linspace(0, n, HOURS + 1).astype(int)
    files = 0
    for hour in range(HOURS):
        hour_start = WINDOW_START + timedelta(hours=hour)
        lo, hi = int(bounds[hour]), int(bounds[hour + 1])
        seconds = np.sort(rng.integers(0, 3600, hi - lo))
        stamps = [(hour_start + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")
                  for s in range(3600)]
        times = [stamps[s] for s in seconds]
        cuts = np.linspace(0, hi - lo, FILES_PER_HOUR + 1).astype(int)
        for f in range(FILES_PER_HOUR):
            a, b = int(cuts[f]), int(cuts[f + 1])
            if a == b:
                continue
            first = hour_start + timedelta(seconds=int(seconds[a]))
            name = capture_file_name(first, int(rng.integers(1000)), ids[lo + a])
            write_csv_capture_file(capture_hour_dir(capture_root, first, VARIANT) / name,
                                   rows[lo + a : lo + b], scores[lo + a : lo + b],
                                   times[a:b], ids[lo + a : lo + b])
            files += 1
    return files


class Paths:
    """Where the benchmark keeps its data, store and per-step results under --out."""

    def __init__(self, out: Path) -> None:
        self.out = out.resolve()
        self.data = self.out / "data"
        self.training_csv = self.data / "training.csv"
        self.training_parquet = self.data / "training.parquet"
        self.current_parquet = self.data / "current.parquet"
        self.manifest = self.data / "setup.json"
        self.capture_root = self.out / "capture" / MODEL
        self.store = self.out / "store"
        self.results = self.out / "results"
        self.no_overrides = self.out / "no-baseline-overrides"


def setup_data(paths: Paths, rows: int, fresh: bool) -> dict[str, Any]:
    """Generate (or reuse) the training set, the current frame and the capture files."""
    wanted = {"data_version": DATA_VERSION, "rows": rows, "training_rows": TRAINING_ROWS,
              "seed": SEED, "hours": HOURS, "files_per_hour": FILES_PER_HOUR}
    if not fresh and paths.manifest.exists():
        found = json.loads(paths.manifest.read_text())
        if {k: found.get(k) for k in wanted} == wanted and paths.current_parquet.exists():
            log(f"setup: reusing data in {paths.data} ({found['files']} capture files)")
            return found
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.manifest.unlink(missing_ok=True)
    t0 = time.perf_counter()
    training = draw_frame(TRAINING_ROWS, SEED + 1)
    # Arrow quotes header names; a plain header row is what most exporters write.
    header = (",".join(FEATURES) + "\n").encode("utf-8")
    paths.training_csv.write_bytes(header + csv_text(training))
    pq.write_table(pa.Table.from_pandas(training, preserve_index=False), paths.training_parquet)
    log(f"setup: training set {TRAINING_ROWS:,} x {len(FEATURES)} written "
        f"({time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    current = draw_frame(rows, SEED + 2)
    pq.write_table(pa.Table.from_pandas(current, preserve_index=False), paths.current_parquet,
                   row_group_size=ROW_GROUP)
    files = write_capture(current, paths.capture_root, SEED + 3)
    size = sum(p.stat().st_size for p in paths.capture_root.rglob("*.jsonl"))
    log(f"setup: {rows:,} capture records in {files} files ({size / 1e6:,.0f} MB) written "
        f"({time.perf_counter() - t0:.1f} s)")
    found = {**wanted, "files": files, "capture_bytes": size}
    paths.manifest.write_text(json.dumps(found, indent=2))
    return found


def load_frame(path: Path, rows: int | None = None) -> pd.DataFrame:
    """The first `rows` rows (all by default), reading only the row groups they need."""
    source = pq.ParquetFile(path)
    groups, covered = [], 0
    for i in range(source.num_row_groups):
        if rows is not None and covered >= rows:
            break
        groups.append(i)
        covered += source.metadata.row_group(i).num_rows
    table = source.read_row_groups(groups)
    frame = (table.slice(0, rows) if rows is not None else table).to_pandas()
    del table
    pa.default_memory_pool().release_unused()  # the step's peak should not hold Arrow leftovers
    return frame


# --------------------------------------------------------------------------- child steps








def step_execution(paths: Paths, rows: int, repeat: int) -> dict[str, Any]:
    """One flow run: each run rewrites the same execution, and a warm second run flatters."""
    from modelwatch.flows.monitor import monitor_data_quality

    warmup = prefect_warmup()
    log(f"execution: warm-up flow run took {warmup:.2f} s")
    inputs: dict[str, Any] = {"warmup_s": warmup}

    server_pid = int(os.environ.get(SERVER_PID_ENV) or 0)

    def run() -> dict[str, Any]:
        before = process_cpu_seconds(server_pid) if server_pid else None
        result = monitor_data_quality(
            model=MODEL, capture=str(paths.capture_root), start=WINDOW_START,
            end=WINDOW_START + timedelta(hours=HOURS), store=str(paths.store), report=False,
        )
        after = process_cpu_seconds(server_pid) if server_pid else None
        if before is not None and after is not None:
            inputs["server_cpu_s"] = after - before
        return result

    return _measure(run, inputs, repeat=1, summarize=lambda r: {
        "records": r["records_read"], "status": r["status"],
        "violations": r["violation_count"], "violation_types": r["violation_types"],
        "rows_profiled": r["rows_profiled"], "records_malformed": r["records_malformed"],
        "files_read": r["files_read"], "failure_reason": r.get("failure_reason"),
    })


def _baseline() -> Any:
    from modelwatch.tasks.baselines import load_baseline
    from modelwatch.tasks.store import Store

    return load_baseline(Store(os.environ["MODELWATCH_STORE"]), MODEL, "data-quality",
                         with_sample=False)


def step_ours(paths: Paths, rows: int, repeat: int, with_reference: bool = False) -> dict[str, Any]:
    from modelwatch.tasks.constraints import check_data_quality, suggest_constraints
    from modelwatch.tasks.profile import profile_table, to_statistics

    baseline = _baseline()
    categorical = {f.name for f in baseline.constraints.features if f.inferred_type == "String"}
    current = load_frame(paths.current_parquet, rows)
    reference = load_frame(paths.training_parquet) if with_reference else None

    def run() -> Any:
        constraints, statistics = baseline.constraints, baseline.statistics
        if reference is not None:
            ref_table = pa.Table.from_pandas(reference, preserve_index=False)
            statistics = to_statistics(profile_table(ref_table, seed=17),
                                       order=ref_table.column_names)
            constraints = suggest_constraints(statistics)
        table = pa.Table.from_pandas(current, preserve_index=False)
        profile = profile_table(table, categorical=categorical, seed=1)
        return check_data_quality(constraints, statistics, profile,
                                  records_read=table.num_rows, records_malformed=0)

    return _measure(run, {}, repeat=repeat, summarize=lambda v: {
        "records": len(current), "violations": len(v.violations),
        "violation_types": sorted({x.constraint_check_type for x in v.violations}),
    })


def step_ours_ref(paths: Paths, rows: int, repeat: int) -> dict[str, Any]:
    return step_ours(paths, rows, repeat, with_reference=True)


def step_evidently(paths: Paths, rows: int, repeat: int) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    current = load_frame(paths.current_parquet, rows)
    reference = load_frame(paths.training_parquet)
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)

    def run() -> Any:
        return Report([DataDriftPreset()]).run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
        )

    def summarize(snapshot: Any) -> dict[str, Any]:
        drifted = None
        for metric in snapshot.dict().get("metrics", []):
            if str(metric.get("metric_name", "")).startswith("DriftedColumnsCount"):
                value = metric.get("value")
                drifted = value.get("count") if isinstance(value, dict) else value
        return {"records": len(current), "drifted_columns": drifted}

    return _measure(run, {}, repeat=repeat, summarize=summarize)


def _measure(run: Callable[[], Any], extra: dict[str, Any], repeat: int,
             summarize: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """Time run() `repeat` times and keep the fastest (the least disturbed by other work).

    The peak RSS is reset first, so it covers the runs plus the inputs already loaded.
    """
    gc.collect()
    hwm_before = status_kib("VmHWM")
    reset = reset_peak_rss()
    rss_start = status_kib("VmRSS")
    runs: list[tuple[float, float]] = []
    value: Any = None
    for _ in range(max(1, repeat)):
        value = None  # the previous result is not kept alive through the next run
        cpu0 = cpu_seconds(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        value = run()
        runs.append((time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_SELF) - cpu0))
    seconds, cpu = min(runs)
    peak = status_kib("VmHWM")
    return {**extra, **summarize(value), "seconds": seconds, "cpu_s": cpu,
            "runs_s": [round(r[0], 4) for r in runs], "peak_rss_kib": peak,
            "rss_at_start_kib": rss_start, "peak_reset": reset, "peak_before_kib": hwm_before}








STEPS: dict[str, Callable[[Paths, int, int], dict[str, Any]]] = {
    "execution": step_execution,
    "ours": step_ours,
    "ours_ref": step_ours_ref,
    "evidently": step_evidently,
}


def run_child(args: argparse.Namespace) -> None:
    paths = Paths(Path(args.out))
    result = STEPS[args.step](paths, args.rows, args.repeat)
    Path(args.result_file).write_text(json.dumps(result, indent=2, default=str))


def spawn_step(paths: Paths, step: str, rows: int, repeat: int,
               env: dict[str, str]) -> dict[str, Any]:
    paths.results.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "benchmarks.data_quality", "--step", step, "--out",
               str(paths.out), "--rows", str(rows), "--repeat", str(repeat)]
    log(f"step {step} at {rows:,} rows: starting a child process")
    result = run_child_step(command, paths.results / f"{step}-{rows}.json", env)
    result["rows"] = rows
    log(f"step {step} at {rows:,} rows: {result['seconds']:.2f} s, peak RSS "
        f"{result['peak_rss_kib'] / 1024:,.0f} MB, CPU {result['cpu_s']:.2f} s "
        f"(child wall {result['child_wall_s']:.1f} s; other processes used "
        f"{result['other_cpu_s']:.1f} CPU-s meanwhile)")
    return result


# --------------------------------------------------------------------------- report


def _count(value: Any) -> str:
    return "?" if value is None else f"{float(value):g}"


def render(results: dict[str, Any], startup_s: float, baseline_s: float, setup: dict[str, Any],
           total_s: float, args: argparse.Namespace) -> str:
    ex, ev = results["execution"], results["evidently"]
    ours_small, ours_big, ours_ref = results["ours_small"], results["ours_big"], results["ours_ref"]
    ex_rate = ex["records"] / ex["seconds"]
    speedup = ev["seconds"] / ours_small["seconds"]
    speedup_ref = ev["seconds"] / ours_ref["seconds"]
    peak_ok = all(r["peak_rss_kib"] / 1024 < TARGET_PEAK_MB
                  for r in (ex, ours_small, ours_big, ours_ref))
    info = machine(("prefect", "pandas", "pyarrow", "numpy", "evidently"))
    labelled = [("execution", ex), (f"ours {ours_small['records']:,}", ours_small),
                (f"ours+ref {ours_ref['records']:,}", ours_ref),
                (f"ours {ours_big['records']:,}", ours_big),
                (f"Evidently {ev['records']:,}", ev)]

    def row(step: str, r: dict[str, Any], target: str, met: str) -> str:
        rate = r["records"] / r["seconds"]
        return (f"| {step} | {r['records']:,} | {r['seconds']:.2f} | {rate:,.0f} | "
                f"{mb(r['peak_rss_kib'])} | {target} | {met} |")

    mem = f"< {TARGET_PEAK_MB / 1024:.0f} GB peak"
    lines = [
        "| step | rows | seconds | records/s | peak RSS MB | target | met? |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
        f"| Prefect ephemeral API start-up (warm-up flow, not counted) | - | {startup_s:.2f} | - "
        "| - | - | - |",
        row("execution: monitor_data_quality flow, report=False", ex,
            f">= {TARGET_RECORDS_PER_S:,} records/s; {mem}",
            yes(ex_rate >= TARGET_RECORDS_PER_S and ex["peak_rss_kib"] / 1024 < TARGET_PEAK_MB)),
        row("profile+check: ours", ours_small, f">= {TARGET_SPEEDUP:.0f}x Evidently; {mem}",
            yes(speedup >= TARGET_SPEEDUP
                 and ours_small["peak_rss_kib"] / 1024 < TARGET_PEAK_MB)),
        row("profile+check: Evidently DataDriftPreset", ev, "(reference)", "-"),
        row("profile+check: ours, also profiling the reference", ours_ref, mem,
            yes(ours_ref["peak_rss_kib"] / 1024 < TARGET_PEAK_MB)),
        row("profile+check: ours", ours_big, mem,
            yes(ours_big["peak_rss_kib"] / 1024 < TARGET_PEAK_MB)),
    ]
    table = "\n".join(lines)
    notes = [
        f"- Speed-up at {ev['records']:,} current rows ({TRAINING_ROWS:,}-row reference): ours "
        f"**{speedup:,.1f}x** faster than Evidently (target >= {TARGET_SPEEDUP:.0f}x: "
        f"{yes(speedup >= TARGET_SPEEDUP)}); {speedup_ref:,.1f}x when ours also profiles the "
        "reference frame instead of reading the stored baseline. In CPU seconds (less sensitive "
        f"to other work on the machine): {ev['cpu_s'] / ours_small['cpu_s']:,.1f}x and "
        f"{ev['cpu_s'] / ours_ref['cpu_s']:,.1f}x. In-memory steps: fastest of "
        f"{len(ev['runs_s'])} runs in one child (all runs, s: ours "
        f"{ours_small['runs_s']}, Evidently {ev['runs_s']}); the execution is a single run.",
        f"- Execution: status **{ex['status']}**, {ex['violations']} violations "
        f"({ex['violation_types'] or 'none'}), {ex['records']:,} records read from "
        f"{ex['files_read']} files, {ex['rows_profiled']:,} rows profiled, "
        f"{ex['records_malformed']} malformed. Undrifted data raised "
        f"{'nothing' if ex['violations'] == 0 else 'VIOLATIONS'}.",
        f"- Profile+check verdicts on undrifted data: ours {ours_small['violations']} violations "
        f"at {ours_small['records']:,} rows, {ours_big['violations']} at "
        f"{ours_big['records']:,}; Evidently: {_count(ev['drifted_columns'])} of {len(FEATURES)} "
        "columns drifted.",
        "- CPU seconds of the measured process (all its threads) over wall seconds: "
        + "; ".join(f"{label} {r['cpu_s']:.2f}/{r['seconds']:.2f}" for label, r in labelled)
        + (f". The Prefect API server process used {ex['server_cpu_s']:.2f} s of CPU during the "
           "execution (same 2 cores)." if ex.get("server_cpu_s") is not None else "."),
        "- CPU used by other processes on the machine while each child ran (CPU-s / child wall "
        "s): " + ", ".join(f"{label} {r['other_cpu_s']:.1f}/{r['child_wall_s']:.1f}"
                           for label, r in labelled)
        + (" - other work competed for the 2 cores: timings are pessimistic."
           if any(r["other_cpu_s"] > 0.1 * r["child_wall_s"] for _, r in labelled)
           else " (a quiet machine)."),
        f"- Peak RSS is each child's VmHWM, reset after its inputs were loaded (and after the "
        f"warm-up flow): it includes the resident input frames and imported libraries. "
        f"All ours under {TARGET_PEAK_MB / 1024:.0f} GB: {yes(peak_ok)}. The Prefect API server "
        "is a separate process and is not counted.",
        f"- Warm-up flow run in the execution child (API already up): {ex['warmup_s']:.2f} s. "
        f"Setup (not timed here): baseline flow {baseline_s:.2f} s; capture "
        f"{setup['files']} files, {setup['capture_bytes'] / 1e6:,.0f} MB.",
        f"- Total benchmark wall time: {total_s:.0f} s.",
    ]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"# Data-quality benchmark ({stamp})",
        "",
        f"`python -m benchmarks.data_quality --rows {args.rows} --evidently-rows "
        f"{args.evidently_rows}`: {len(FEATURES)} features ({len(INTEGRAL)} Integral, "
        f"{len(FRACTIONAL)} Fractional of which {len(MISSING_SHARE)} ~2% missing, "
        f"{len(CATEGORICAL)} categorical with 3-12 categories); capture in CSV encoding over "
        f"{HOURS} hour folders x {FILES_PER_HOUR} files.",
        "",
        table,
        "",
        *notes,
        "",
        *machine_section(info),
    ])


# --------------------------------------------------------------------------- main




def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="capture records (N)")
    parser.add_argument("--evidently-rows", type=int, default=100_000,
                        help="current rows for the Evidently comparison")
    parser.add_argument("--out", default="benchmarks/out", help="data, store and results folder")
    parser.add_argument("--fresh", action="store_true", help="regenerate the data")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each in-memory step; the fastest counts")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        run_child(args)
        return

    started = time.perf_counter()
    paths = Paths(Path(args.out))
    prefect_home = tempfile.mkdtemp(prefix="modelwatch-bench-prefect-")
    os.environ["PREFECT_HOME"] = prefect_home
    os.environ["MODELWATCH_STORE"] = str(paths.store)
    os.environ["MODELWATCH_BASELINES"] = str(paths.no_overrides)  # no project overrides
    os.environ["DO_NOT_TRACK"] = "1"  # Evidently telemetry
    from modelwatch.runtime import configure_arrow, configure_prefect

    configure_prefect()
    configure_arrow()  # as the flows do: the in-memory profile below runs outside them
    try:
        setup = setup_data(paths, args.rows, args.fresh)
        if paths.store.exists():
            shutil.rmtree(paths.store)

        startup, api_url = start_ephemeral_api()

        from modelwatch.flows.baseline import suggest_baseline

        t0 = time.perf_counter()
        suggest_baseline(MODEL, str(paths.training_csv), store=str(paths.store))
        baseline_s = time.perf_counter() - t0
        log(f"setup: baseline suggested ({baseline_s:.1f} s)")

        env = {**os.environ, "PREFECT_API_URL": api_url}
        small = min(args.evidently_rows, args.rows)
        results = {
            "execution": spawn_step(paths, "execution", args.rows, 1, env),
            "ours_small": spawn_step(paths, "ours", small, args.repeat, env),
            "ours_ref": spawn_step(paths, "ours_ref", small, args.repeat, env),
            "ours_big": spawn_step(paths, "ours", args.rows, args.repeat, env),
            "evidently": spawn_step(paths, "evidently", small, args.repeat, env),
        }
        total = time.perf_counter() - started
        text = render(results, startup, baseline_s, setup, total, args)
        write_results(RESULTS_MD, text, total)
    finally:
        stop_ephemeral_api()
        shutil.rmtree(prefect_home, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Bias-drift benchmark: the `monitor_bias_drift` execution over 1,000,000 merged records (captured CSV
inputs, the model's score and a late label per record), on a window drawn like the baseline and on one
where the model turned unfair to one group.

    .venv/bin/python -m benchmarks.bias_drift [--rows 1000000] [--validation-rows 100000]
                                              [--out benchmarks/out/bias_drift] [--fresh] [--profile]

Setup (not timed): a validation CSV (--validation-rows) of scored, labelled applicants: numeric features
x1..x5, the facet `sex` (0/1, 45% ones), the group variable `site` (0..3), `label` and `score` (a
probability); a bias-drift baseline suggested from it by `suggest_bias_baseline` (facet sex=1, group site,
absolute bound DI=0.8:1.25; the model is not registered, so its features are the dataset's columns less
label and score, and the captured CSV rows carry them in that order); and two days of merged records,
--rows per day in 24 hour folders x 4 files (`<root>/YYYY/MM/DD/HH/*.jsonl`, SageMaker's merged layout):
day 1 is drawn like the validation set, day 2 lowers the scores of sex=1 by 0.25 (a model turning unfair).
Merged lines are written by string concatenation, as demo_data.write_csv_capture_file writes capture
lines, and the first is checked against the record demo_data.capture_record builds. The data is
reused by later runs with the same parameters (--fresh regenerates it).

Measured, each in its own child process (`--step NAME`) whose peak RSS (VmHWM, reset after a warm-up flow
run) is its own; the Prefect API is the ephemeral server the parent starts (its start-up is timed and
reported apart) and the children reach through PREFECT_API_URL:

* execution: `monitor_bias_drift(model, start, end, merged=<root>, store)` end to end from the call, on
  day 1 (Completed and 0 violations expected) and on day 2 (CompletedWithViolations naming DPPL and DI
  expected). Wall seconds of the flow's task runs (read-merged, compute-bias, ...) come from the Prefect API.
* split: the same work without Prefect, phase by phase (importing modelwatch.tasks.bias, listing, reading and
  parsing the merged files, building the window's frame, compute_bias, check_bias), on day 1.
* profile (--profile, or automatically when a phase of the split takes over 20 s): the split's work under
  cProfile; the top functions by own time go to the results and the full listing to
  <out>/results/profile-bias.txt.

Target: the execution on 1,000,000 records in under 60 s. The markdown table goes to stdout and to
benchmarks/results/bias_drift.md (with the date and the machine); progress goes to stderr. The helpers for
child processes, the Prefect API and the machine description are shared with benchmarks.attribution_drift.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.measure import (
    ROOT,
    cpu_seconds,
    log,
    machine,
    machine_section,
    mb,
    measure_flow,
    other_work_note,
    profile_table,
    profile_top,
    reset_peak_rss,
    spawn_step,
    start_prefect,
    status_kib,
    stop_prefect,
    write_results,
    yes,
)

MODEL = "bench-bias"
WINDOW_START = datetime(2026, 11, 23, tzinfo=UTC)
HOURS = 24
FILES_PER_HOUR = 4
SEED = 20261123
DATA_VERSION = 1  # bump when the generated data changes, so cached setups are rebuilt
FEATURES = ["x1", "x2", "x3", "x4", "x5", "sex", "site"]
WOMEN = 0.45  # share of sex=1
PENALTY = 0.25  # day 2: scores of sex=1 lowered by this much
FACET = "sex=1"
BOUND = "DI=0.8:1.25"

TARGET_SECONDS = 60.0
PROFILE_OVER_S = 20.0  # a split phase slower than this gets profiled
RESULTS_MD = ROOT / "benchmarks" / "results" / "bias_drift.md"

# The tail of a CSV capture line (modelwatch.flows.demo_data.write_csv_capture_file) with the label appended:
# a merged record, as SageMaker's merge job writes it.
_MERGED_TAIL = '"},"eventVersion":"0","groundTruthData":{"data":"'
_MERGED_END = '","encoding":"CSV"}}\n'


# --------------------------------------------------------------------------- data


class Paths:
    def __init__(self, out: Path) -> None:
        self.out = out.resolve()
        self.data = self.out / "data"
        self.validation_csv = self.data / "validation.csv"
        self.manifest = self.data / "setup.json"
        self.merged = self.out / "merged" / MODEL
        self.store = self.out / "store"
        self.results = self.out / "results"
        self.no_overrides = self.out / "no-baseline-overrides"


def applicants(n: int, rng: np.random.Generator, penalty: float = 0.0) -> dict[str, np.ndarray]:
    """n scored, labelled applicants; `penalty` lowers the scores of sex=1 (the model turning unfair)."""
    x = np.round(rng.normal(size=(n, 5)), 4)
    sex = (rng.random(n) < WOMEN).astype(np.int64)
    site = rng.integers(0, 4, n)
    truth = 1 / (1 + np.exp(-(0.3 + 1.1 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] + 0.1 * site)))
    label = (rng.random(n) < truth).astype(np.int64)
    score = np.round(np.clip(truth - penalty * sex + rng.normal(0, 0.05, n), 0.0001, 0.9999), 4)
    columns = {f"x{i + 1}": x[:, i] for i in range(5)}
    return {**columns, "sex": sex, "site": site, "label": label, "score": score}


def as_text(values: np.ndarray) -> list[str]:
    """Numbers as a client sends them (Arrow's shortest round-trip formatting)."""
    import pyarrow as pa

    return pa.array(values).cast(pa.string()).to_pylist()


def write_merged_day(root: Path, day: int, rows: int, seed: int, penalty: float) -> int:
    """--rows merged records of one day in HOURS hour folders x FILES_PER_HOUR files; returns bytes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from modelwatch.flows.demo_data import CSV_LINE_EVENT, CSV_LINE_HEAD, CSV_LINE_MID, CSV_LINE_TIME
    from modelwatch.tasks.windows import iso_z

    rng = np.random.default_rng(seed)
    data = applicants(rows, rng, penalty)
    inputs = pc.binary_join_element_wise(
        *(pa.array(data[name]).cast(pa.string()) for name in FEATURES), ",").to_pylist()
    scores, labels = as_text(data["score"]), as_text(data["label"])
    first = day * rows
    ids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(first, first + rows)]
    day_start = WINDOW_START + timedelta(days=day)
    bounds = np.linspace(0, rows, HOURS + 1).astype(int)
    written = 0
    for hour in range(HOURS):
        hour_start = day_start + timedelta(hours=hour)
        lo, hi = int(bounds[hour]), int(bounds[hour + 1])
        stamps = [iso_z(hour_start + timedelta(seconds=s)) for s in range(3600)]
        times = [stamps[s] for s in np.sort(rng.integers(0, 3600, hi - lo))]
        folder = root / f"{hour_start:%Y/%m/%d/%H}"
        folder.mkdir(parents=True, exist_ok=True)
        cuts = np.linspace(lo, hi, FILES_PER_HOUR + 1).astype(int)
        for part in range(FILES_PER_HOUR):
            a, b = int(cuts[part]), int(cuts[part + 1])
            text = "".join([
                CSV_LINE_HEAD + inputs[i] + CSV_LINE_MID + scores[i] + CSV_LINE_EVENT + ids[i] + CSV_LINE_TIME
                + times[i - lo] + _MERGED_TAIL + labels[i] + _MERGED_END for i in range(a, b)])
            path = folder / f"part-{part:05d}.jsonl"
            path.write_text(text, encoding="utf-8")
            written += len(text)
    return written


def check_merged_line(root: Path) -> None:
    """The fast writer's first line must read back as the record the reference writer builds."""
    import orjson

    from modelwatch.flows.demo_data import capture_record

    first = sorted(root.rglob("*.jsonl"))[0]
    with first.open("rb") as handle:
        line = orjson.loads(handle.readline())
    capture = line["captureData"]
    expected = capture_record(capture["endpointInput"]["data"], capture["endpointOutput"]["data"],
                              encoding="CSV", event_id=line["eventMetadata"]["eventId"],
                              inference_time=datetime.fromisoformat(
                                  line["eventMetadata"]["inferenceTime"].replace("Z", "+00:00")))
    expected["groundTruthData"] = {"data": line["groundTruthData"]["data"], "encoding": "CSV"}
    if orjson.loads(orjson.dumps(expected)) != line:
        raise RuntimeError(f"merged line of {first} differs from capture_record's: {line} != {expected}")


def setup_data(paths: Paths, rows: int, validation_rows: int, fresh: bool) -> dict[str, Any]:
    """Generate (or reuse) the validation set and the two days of merged records."""
    import pandas as pd

    wanted = {"data_version": DATA_VERSION, "rows": rows, "validation_rows": validation_rows,
              "seed": SEED, "hours": HOURS, "files_per_hour": FILES_PER_HOUR, "penalty": PENALTY}
    if not fresh and paths.manifest.exists():
        found = json.loads(paths.manifest.read_text())
        if {k: found.get(k) for k in wanted} == wanted and paths.validation_csv.exists():
            log(f"setup: reusing data in {paths.out} ({found['merged_bytes'] / 1e6:,.0f} MB merged)")
            return found
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.manifest.unlink(missing_ok=True)
    t0 = time.perf_counter()
    pd.DataFrame(applicants(validation_rows, np.random.default_rng(SEED))).to_csv(
        paths.validation_csv, index=False)
    if paths.merged.exists():
        shutil.rmtree(paths.merged)
    size = 0
    for day, penalty in ((0, 0.0), (1, PENALTY)):
        size += write_merged_day(paths.merged, day, rows, SEED + 1 + day, penalty)
        log(f"setup: merged day {day + 1} written ({time.perf_counter() - t0:.1f} s so far)")
    check_merged_line(paths.merged)
    found = {**wanted, "merged_bytes": size, "setup_s": time.perf_counter() - t0}
    paths.manifest.write_text(json.dumps(found, indent=2))
    return found


def suggest_baseline(paths: Paths) -> tuple[float, dict[str, str]]:
    from modelwatch.flows.bias import suggest_bias_baseline

    t0 = time.perf_counter()
    uris = suggest_bias_baseline(model=MODEL, dataset=str(paths.validation_csv), label="label",
                                 prediction="score", facets=[FACET], group="site", bounds=[BOUND],
                                 store=str(paths.store))
    return time.perf_counter() - t0, uris


# --------------------------------------------------------------------------- child steps


def window(day: int) -> tuple[datetime, datetime]:
    start = WINDOW_START + timedelta(days=day)
    return start, start + timedelta(hours=HOURS)


def step_execution(paths: Paths, day: int) -> dict[str, Any]:
    from modelwatch.flows.bias import monitor_bias_drift

    start, end = window(day)
    measured = measure_flow(lambda: monitor_bias_drift(model=MODEL, start=start, end=end,
                                                        merged=str(paths.merged), store=str(paths.store)),
                            paths.store, MODEL, "bias-drift", start, end)
    result = measured.pop("result")
    violations: list[dict[str, Any]] = []
    analysis: dict[str, Any] = {}
    outputs = result.get("outputs") or {}
    if "constraint_violations.json" in outputs:
        violations = json.loads(Path(outputs["constraint_violations.json"]).read_text())["violations"]
    if "analysis.json" in outputs:
        analysis = json.loads(Path(outputs["analysis.json"]).read_text())
    return {**measured, "day": day, "status": result["status"], "records_read": result["records_read"],
            "rows_profiled": result["rows_profiled"], "records_malformed": result["records_malformed"],
            "files_read": result["files_read"], "violation_count": result["violation_count"],
            "violations": [f"{v['facet']}={v['facet_value']} {v['metric_name']}" for v in violations],
            "metrics": facet_metrics(analysis), "notes": result.get("notes", []),
            "failure_reason": result.get("failure_reason")}


def facet_metrics(analysis: dict[str, Any]) -> dict[str, Any]:
    """DPPL, DI and FT of the sex=1 entry, and the group sizes."""
    section = analysis.get("post_training_bias_metrics") or {}
    for entries in (section.get("facets") or {}).values():
        for entry in entries:
            values = {m["name"]: m.get("value") for m in entry["metrics"]
                      if m["name"] in ("DPPL", "DI", "FT")}
            return {**values, "members": entry.get("members"), "non_members": entry.get("non_members"),
                    "flip_test_sampled": entry.get("flip_test_sampled")}
    return {}


def core(paths: Paths, day: int, clock: Callable[[str], None]) -> dict[str, Any]:
    """The execution's work without Prefect (the flow's task functions called directly)."""
    from modelwatch.flows.bias import PREDICTED, bias_settings, load_bias_baseline, window_frame
    from modelwatch.flows.quality import merged_files, read_merged_task
    from modelwatch.tasks.bias import compute_bias
    from modelwatch.tasks.bias_constraints import check_bias
    from modelwatch.tasks.store import Store

    start, end = window(day)
    _, constraints, manifest, _ = load_bias_baseline(Store(str(paths.store)), MODEL, None)
    settings = bias_settings(manifest)
    features = manifest["features"]
    clock("load baseline")
    files = merged_files([str(paths.merged)], start, end)
    clock("list merged files")
    batch = read_merged_task.fn(files, features)
    clock("read + parse merged JSONL (read_merged_task)")
    frame = window_frame(batch, manifest["label"], features)
    clock("window frame (input_frame: Arrow CSV + numeric_where_possible)")
    analysis = compute_bias(frame, label=manifest["label"], predicted=PREDICTED,
                            features=[f for f in features if f in frame.columns],
                            min_members=manifest.get("min_members", 30), **settings)
    clock("compute_bias")
    violations = check_bias(constraints, analysis)
    clock("check_bias")
    return {"records": batch.records_read, "rows": len(frame), "violations": len(violations.violations)}


def step_split(paths: Paths, day: int) -> dict[str, Any]:
    phases: dict[str, float] = {}
    last = [time.perf_counter()]

    def clock(name: str) -> None:
        now = time.perf_counter()
        phases[name] = now - last[0]
        last[0] = now

    import modelwatch.flows.bias  # noqa: F401 - the flow module is imported before the flow is called

    gc.collect()
    reset = reset_peak_rss()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    last[0] = t0
    import modelwatch.tasks.bias  # noqa: F401 - the flow imports it when called

    clock("import modelwatch.tasks.bias (fairlearn, scikit-learn)")
    found = core(paths, day, clock)
    return {**found, "day": day, "phases": phases, "seconds": time.perf_counter() - t0,
            "cpu_s": cpu_seconds() - cpu0, "peak_rss_kib": status_kib("VmHWM"), "peak_reset": reset}


def step_profile(paths: Paths, day: int) -> dict[str, Any]:
    import modelwatch.flows.bias  # noqa: F401
    import modelwatch.tasks.bias  # noqa: F401

    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    found = core(paths, day, lambda _: None)
    profiler.disable()
    seconds = time.perf_counter() - t0
    listing = paths.results / "profile-bias.txt"
    return {**found, "day": day, "profiled_s": seconds, "listing": str(listing),
            "top": profile_top(profiler, listing)}


STEPS: dict[str, Callable[[Paths, int], dict[str, Any]]] = {
    "execution": step_execution, "split": step_split, "profile": step_profile,
}


# --------------------------------------------------------------------------- report


def render(results: dict[str, Any], startup_s: float, baseline_s: float, setup: dict[str, Any],
           total_s: float, args: argparse.Namespace) -> str:
    ok, bad, split = results["undrifted"], results["drifted"], results["split"]
    info = machine(("prefect", "pandas", "pyarrow", "numpy", "fairlearn", "scikit-learn", "orjson"))

    def row(case: str, r: dict[str, Any], target: str, met: str) -> str:
        return (f"| {case} | {r['rows_profiled']:,} | {r['seconds']:.2f} | "
                f"{r['rows_profiled'] / r['seconds']:,.0f} | {mb(r['peak_rss_kib'])} | {r['status']} | "
                f"{r['violation_count']} | {target} | {met} |")

    drift_named = {v.split(" ")[-1] for v in bad["violations"]}
    ok_met = ok["seconds"] < TARGET_SECONDS and ok["status"] == "Completed" and ok["violation_count"] == 0
    bad_met = (bad["seconds"] < TARGET_SECONDS and bad["status"] == "CompletedWithViolations"
               and {"DPPL", "DI"} <= drift_named)
    lines = [
        "| case | labelled records | seconds | records/s | peak RSS MB | status | violations | target "
        "| met? |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |",
        f"| Prefect ephemeral API start-up (warm-up flow, not counted) | - | {startup_s:.2f} | - | - | - | - "
        "| - | - |",
        row("monitor_bias_drift, undrifted day", ok,
            f"< {TARGET_SECONDS:.0f} s; Completed, 0 violations", yes(ok_met)),
        row(f"monitor_bias_drift, drifted day (sex=1 scores -{PENALTY})", bad,
            f"< {TARGET_SECONDS:.0f} s; CompletedWithViolations naming DPPL and DI", yes(bad_met)),
    ]
    split_total = split["seconds"]
    phase_lines = ["| phase (undrifted day, no Prefect) | seconds | share |", "| --- | ---: | ---: |"]
    phase_lines += [f"| {name} | {s:.2f} | {100 * s / split_total:.0f}% |"
                    for name, s in split["phases"].items()]
    phase_lines.append(f"| total | {split_total:.2f} | 100% |")

    def tasks_text(r: dict[str, Any]) -> str:
        flow_s = r["tasks"].get("flow run (server)")
        parts = [f"{name} {s:.2f} s" for name, s in r["tasks"].items() if name != "flow run (server)"]
        outside = r["seconds"] - sum(s for name, s in r["tasks"].items() if name != "flow run (server)")
        return (f"flow run (server) {flow_s:.2f} s; " if flow_s is not None else "") + ", ".join(parts) + \
            f"; outside tasks (imports, baseline, building the window's frame, flow engine) {outside:.2f} s"

    def metrics_text(r: dict[str, Any]) -> str:
        m = r["metrics"]
        if not m:
            return "no analysis"
        return (f"DPPL {m.get('DPPL'):.4f}, DI {m.get('DI'):.4f}, FT {m.get('FT'):.4f} "
                f"(sex=1: {m.get('members'):,} members, {m.get('non_members'):,} others; flip-test rows per "
                f"group {m.get('flip_test_sampled') or 'all'})")

    labelled = [("undrifted", ok), ("drifted", bad), ("split", split)]
    notes = [
        f"- Undrifted day: status **{ok['status']}**, {ok['violation_count']} violations, "
        f"{ok['records_read']:,} records read from {ok['files_read']} files, {ok['rows_profiled']:,} "
        f"labelled rows, {ok['records_malformed']} malformed; {metrics_text(ok)}."
        + (f" Notes: {'; '.join(ok['notes'])}." if ok["notes"] else ""),
        f"- Drifted day: status **{bad['status']}**, {bad['violation_count']} violations "
        f"({', '.join(bad['violations']) or 'none'}); {metrics_text(bad)}.",
        "- Where the undrifted execution's time goes, task-run wall seconds recorded by Prefect: "
        f"{tasks_text(ok)}. Drifted: {tasks_text(bad)}.",
        f"- CPU seconds of the measured process (all threads) / wall seconds: undrifted {ok['cpu_s']:.2f}/"
        f"{ok['seconds']:.2f}, drifted {bad['cpu_s']:.2f}/{bad['seconds']:.2f}, split {split['cpu_s']:.2f}/"
        f"{split['seconds']:.2f}. The Prefect API server (a separate process, same cores) used "
        f"{ok['server_cpu_s'] or 0:.2f} and {bad['server_cpu_s'] or 0:.2f} CPU-s during the two executions.",
        other_work_note(labelled),
        "- Peak RSS is each child's VmHWM, reset after its warm-up flow run: it includes the imported "
        "libraries (Prefect, pandas, pyarrow, sklearn, fairlearn). Split step peak: "
        f"{mb(split['peak_rss_kib'])} MB. The Prefect API server is a separate process and is not counted.",
        f"- Warm-up flow run in each execution child (API already up): {ok['warmup_s']:.2f} s, "
        f"{bad['warmup_s']:.2f} s. Setup (not timed here): baseline flow on {args.validation_rows:,} rows "
        f"{baseline_s:.2f} s; merged data {setup['merged_bytes'] / 1e6:,.0f} MB for 2 days "
        f"({2 * HOURS * FILES_PER_HOUR} files)"
        + (f", generated in {setup['setup_s']:.0f} s." if setup.get("setup_s") else "."),
        f"- Total benchmark wall time: {total_s:.0f} s.",
    ]
    profile_lines: list[str] = []
    if "profile" in results:
        p = results["profile"]
        listing = Path(p["listing"])
        shown = listing.relative_to(ROOT) if listing.is_relative_to(ROOT) else listing
        profile_lines = ["", f"cProfile of the split's work on the undrifted day ({p['profiled_s']:.1f} s "
                         f"under the profiler; full listing in `{shown}`), top functions by own time:",
                         "", *profile_table(p["top"])]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"# Bias-drift benchmark ({stamp})",
        "",
        f"`.venv/bin/python -m benchmarks.bias_drift --rows {args.rows} --validation-rows "
        f"{args.validation_rows}{' --profile' if args.profile else ''}`: {args.rows:,} merged records a day "
        "(CSV inputs "
        f"{','.join(FEATURES)}; score; CSV label) in {HOURS} hour folders x {FILES_PER_HOUR} files; baseline "
        f"facet {FACET}, group site, bound {BOUND}, suggested from {args.validation_rows:,} validation rows.",
        "",
        *lines,
        "",
        *phase_lines,
        "",
        *notes,
        *profile_lines,
        "",
        *machine_section(info),
    ])


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="merged records per day")
    parser.add_argument("--validation-rows", type=int, default=100_000)
    parser.add_argument("--out", default="benchmarks/out/bias_drift", help="data, store and results folder")
    parser.add_argument("--fresh", action="store_true", help="regenerate the data")
    parser.add_argument("--profile", action="store_true", help="always profile the core")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--day", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    paths = Paths(Path(args.out))
    if args.step:
        result = STEPS[args.step](paths, args.day)
        Path(args.result_file).write_text(json.dumps(result, indent=2, default=str))
        return

    started = time.perf_counter()
    os.environ["MODELWATCH_STORE"] = str(paths.store)
    os.environ["MODELWATCH_BASELINES"] = str(paths.no_overrides)  # no project overrides
    home = None
    try:
        setup = setup_data(paths, args.rows, args.validation_rows, args.fresh)
        if paths.store.exists():
            shutil.rmtree(paths.store)
        home, startup, env = start_prefect("modelwatch-bench-bias-")
        baseline_s, _ = suggest_baseline(paths)
        log(f"setup: baseline suggested ({baseline_s:.1f} s)")
        module = "benchmarks.bias_drift"
        results = {
            "undrifted": spawn_step(module, paths.out, "execution", ["--day", "0"], env),
            "drifted": spawn_step(module, paths.out, "execution", ["--day", "1"], env),
            "split": spawn_step(module, paths.out, "split", ["--day", "0"], env),
        }
        slowest = max(results["split"]["phases"].values())
        if args.profile or slowest > PROFILE_OVER_S:
            results["profile"] = spawn_step(module, paths.out, "profile", ["--day", "0"], env)
        total = time.perf_counter() - started
        text = render(results, startup, baseline_s, setup, total, args)
        write_results(RESULTS_MD, text, total)
    finally:
        stop_prefect(home)


if __name__ == "__main__":
    main()

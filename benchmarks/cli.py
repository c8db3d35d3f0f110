"""Whole-process timings of the `modelwatch` console script, as a user meets them: `--help`, the very
first command on a fresh machine (no local Prefect server yet, a new database), a data-quality
execution over a 10,000-record window of 30 features with the local server running (with and
without its report), and `cards status`. Several runs of each, medians reported against the targets
of issue 11; the report's render time comes from the render-report task Prefect recorded.

    .venv/bin/python -m benchmarks.cli [--runs 5] [--cold-runs 3] [--out DIR]

Each command runs in its own process with the environment a user has (a state folder, a store),
both under a temporary folder; the local server the benchmark starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.data_quality import HOURS, WINDOW_START, draw_frame, write_capture
from benchmarks.measure import ROOT, log, machine, machine_section, task_durations, write_results

MODELWATCH = str(Path(sys.executable).with_name("modelwatch"))
MODEL = "bench-cli"
WINDOW_RECORDS = 10_000
TRAINING_ROWS = 5_000
EXTRA_FEATURES = 10  # draw_frame's 20 features + 10 = the 30
COMMAND_TIMEOUT_S = 300
TARGETS = {"help": 0.5, "monitor": 4.0, "cards": 2.0, "cold": 30.0, "render": 3.0}
RESULTS = ROOT / "benchmarks" / "results" / "cli.md"


def frame_of(rows: int, seed: int) -> Any:
    """draw_frame's columns plus EXTRA_FEATURES numeric ones (30 features in all)."""
    frame = draw_frame(rows, seed)
    rng = np.random.default_rng(seed + 1000)
    for i in range(EXTRA_FEATURES):
        frame[f"extra_{i}"] = np.round(rng.normal(i, 1.0 + i / 10, rows), 4)
    return frame


def environment(base: Path, state: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"MODELWATCH_STATE_DIR": str(base / state), "MODELWATCH_SERVER_PORT": "0",
                "MODELWATCH_STORE": str(base / "store"), "PREFECT_HOME": str(base / "prefect-home")})
    return env


def timed(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of one whole `modelwatch` process; a failing command stops the benchmark."""
    t0 = time.perf_counter()
    done = subprocess.run([MODELWATCH, *args], env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT_S, cwd=Path(env["MODELWATCH_STATE_DIR"]).parent)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"`modelwatch {' '.join(args)}` exited {done.returncode}:\n"
                         f"{done.stderr[-3000:]}")
    return seconds, done


def stop_server(env: dict[str, str]) -> None:
    subprocess.run([MODELWATCH, "server", "stop"], env=env, capture_output=True,
                   timeout=COMMAND_TIMEOUT_S)


def setup(base: Path) -> dict[str, str]:
    """Training set and a 10,000-record capture window (30 features), written as files."""
    data = base / "data"
    data.mkdir(parents=True)
    training = frame_of(TRAINING_ROWS, 11)
    training.to_csv(data / "training.csv", index=False)
    files = write_capture(frame_of(WINDOW_RECORDS, 12), base / "capture", 13)
    log(f"setup: {TRAINING_ROWS:,}-row training set, {WINDOW_RECORDS:,} capture records in "
        f"{files} files, {training.shape[1]} features")
    return {"training": str(data / "training.csv"), "capture": str(base / "capture")}


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def run(runs: int, cold_runs: int, out: Path) -> dict[str, Any]:
    inputs = setup(out)
    results: dict[str, Any] = {}
    warm = environment(out, "state")
    Path(warm["MODELWATCH_STATE_DIR"]).mkdir(parents=True, exist_ok=True)

    log("--help")
    results["help"] = summary([timed(["--help"], warm)[0] for _ in range(runs)])

    # The first command on a fresh machine: a baseline suggestion that starts the server itself
    # (a new state folder and database each time).
    cold: list[float] = []
    waiting_line = False
    for i in range(cold_runs):
        env = environment(out, f"cold-{i}")
        Path(env["MODELWATCH_STATE_DIR"]).mkdir(parents=True)
        env["MODELWATCH_STORE"] = str(out / f"cold-store-{i}")
        try:
            seconds, done = timed(["baseline", "suggest", "--model", MODEL, "--dataset",
                                   inputs["training"], "--store", env["MODELWATCH_STORE"]], env)
        finally:
            stop_server(env)
        cold.append(seconds)
        waiting_line = waiting_line or "waiting for its API" in done.stderr
        log(f"cold first command {i + 1}/{cold_runs}: {seconds:.1f} s")
    results["cold"] = summary(cold)
    results["cold_says_what_it_waits_for"] = waiting_line

    try:
        timed(["server", "start"], warm)
        timed(["models", "register", "--model", MODEL, "--problem-type", "binary",
               "--features-from", inputs["training"]], warm)
        timed(["baseline", "suggest", "--model", MODEL, "--dataset", inputs["training"]], warm)
        start, end = WINDOW_START.isoformat(), (WINDOW_START + timedelta(hours=HOURS)).isoformat()
        window = ["monitor", "run", "--model", MODEL, "--type", "data-quality", "--capture",
                  inputs["capture"], "--start", start, "--end", end]
        timed(window, warm)  # the first execution writes the model's first index and alert
        for label, extra in (("monitor", []), ("monitor_no_report", ["--no-report"])):
            seconds, renders, records = [], [], 0
            for _ in range(runs):
                took, done = timed([*window, *extra], warm)
                seconds.append(took)
                execution = json.loads(done.stdout)
                records = execution["records_read"]
                if not extra and execution.get("flow_run_id"):
                    os.environ["PREFECT_API_URL"] = json.loads(
                        timed(["server", "status"], warm)[1].stdout)["url"]
                    renders.append(task_durations(execution["flow_run_id"]).get("render-report",
                                                                                 float("nan")))
            results[label] = summary(seconds) | {"records": records}
            if renders:
                results["render"] = summary(renders)
            log(f"{label}: median {results[label]['median']:.2f} s over {records:,} records")
        timed(["cards", "create", "--model", MODEL], warm)
        moves = ["PendingReview", "Draft"]
        results["cards"] = summary([timed(["cards", "status", "--model", MODEL, "--to",
                                           moves[i % 2]], warm)[0] for i in range(runs)])
    finally:
        stop_server(warm)
    return results


ROWS = (("help", "`modelwatch --help`"),
        ("cold", "first command on a fresh machine (`baseline suggest`, server cold, new database)"),
        ("monitor", "`monitor run --type data-quality`, 10,000 records × 30 features, server warm"),
        ("monitor_no_report", "the same with `--no-report`"),
        ("render", "report.html rendering in that execution (render-report task)"),
        ("cards", "`cards status` (a card moved, its event sent)"))


def render(results: dict[str, Any], runs: int, cold_runs: int) -> str:
    lines = ["# CLI benchmark (`python -m benchmarks.cli`)", "",
             f"Whole-process wall seconds; {runs} runs per command ({cold_runs} for the cold "
             "start), median (min–max).", "",
             "| what | median s | min–max s | target | met |", "| --- | ---: | ---: | ---: | --- |"]
    for key, label in ROWS:
        if key not in results:
            continue
        found = results[key]
        target = TARGETS.get(key)
        met = "" if target is None else ("yes" if found["median"] < target else "**NO**")
        lines.append(f"| {label} | {found['median']:.2f} | {found['min']:.2f}–{found['max']:.2f} | "
                     f"{'' if target is None else f'< {target:g}'} | {met} |")
    lines += ["", "The cold start printed the line saying what it waits for: "
              + ("yes" if results.get("cold_says_what_it_waits_for") else "**NO**"), ""]
    lines += machine_section(machine(("prefect", "pandas", "pyarrow", "jinja2")))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="modelwatch-bench-cli-"))
    t0 = time.perf_counter()
    try:
        results = run(args.runs, args.cold_runs, out)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    write_results(RESULTS, render(results, args.runs, args.cold_runs), time.perf_counter() - t0)


if __name__ == "__main__":
    main()

"""What the benchmarks share: progress logging, peak RSS (VmHWM) and CPU-second readings from /proc, the
Prefect API for child processes, timed flow runs with their task durations, child steps, cProfile tables
and the machine description."""

from __future__ import annotations

import cProfile
import gc
import io
import json
import os
import platform
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

STEP_TIMEOUT_S = 1800
SERVER_PID_ENV = "MODELWATCH_BENCH_API_PID"  # the parent's ephemeral API server, for its CPU time
ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak measured is the step's."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def system_busy_seconds() -> float:
    """CPU seconds all processes spent busy since boot (every core, from /proc/stat)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds of another process (e.g. the Prefect API server), or None."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def prefect_warmup() -> float:
    """Time one trivial flow run (in the parent this starts the ephemeral API)."""
    from prefect import flow

    @flow(name="bench-warmup")
    def warmup() -> int:
        return 1

    t0 = time.perf_counter()
    warmup()
    return time.perf_counter() - t0


def start_prefect(prefix: str) -> tuple[str, float, dict[str, str]]:
    """(PREFECT_HOME, start-up seconds, environment for children): a private Prefect home, and the
    ephemeral API started by a first flow run in this process."""
    home = tempfile.mkdtemp(prefix=prefix)
    os.environ["PREFECT_HOME"] = home
    from modelwatch.runtime import configure_prefect

    configure_prefect()
    startup, api_url = start_ephemeral_api()
    return home, startup, {**os.environ, "PREFECT_API_URL": api_url}


def start_ephemeral_api() -> tuple[float, str]:
    """(seconds, API URL): a first flow run starts Prefect's ephemeral API in this process; its
    server's pid is exported for the CPU accounting of child steps."""
    log("prefect: first flow run (starts the ephemeral API)")
    startup = prefect_warmup()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    if server.server_process is not None:
        os.environ[SERVER_PID_ENV] = str(server.server_process.pid)
    log(f"prefect: ephemeral API at {server.api_url} up, first flow run took {startup:.1f} s")
    return startup, server.api_url


def stop_ephemeral_api() -> None:
    """Stop the ephemeral API server this process started (if any)."""
    if "prefect.server.api.server" in sys.modules:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        if server.running:
            server.stop()


def stop_prefect(home: str | None) -> None:
    """Stop the ephemeral API server this process started (if any), then remove its home."""
    stop_ephemeral_api()
    if home:
        shutil.rmtree(home, ignore_errors=True)


def measure_flow(run: Callable[[], dict[str, Any]], store: Path, model: str, monitor_type: str,
                 start: datetime, end: datetime) -> dict[str, Any]:
    """Run one monitor flow call after a warm-up flow run: wall and CPU seconds, peak RSS (VmHWM reset
    after the warm-up), the API server's CPU meanwhile, and the flow's task-run durations from the API.
    A Failed execution raises after writing its execution.json: that document is the result then."""
    warmup = prefect_warmup()
    log(f"warm-up flow run took {warmup:.2f} s")
    gc.collect()
    reset = reset_peak_rss()
    rss_start = status_kib("VmRSS")
    server_pid = int(os.environ.get(SERVER_PID_ENV) or 0)
    server0 = process_cpu_seconds(server_pid)
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    try:
        result = run()
    except Exception as problem:  # noqa: BLE001 - a Failed execution is a result to report
        log(f"the flow raised {type(problem).__name__}: {problem}")
        from modelwatch.tasks.executions import execution_prefix

        document = store / execution_prefix(model, monitor_type, start, end) / "execution.json"
        result = json.loads(document.read_text())
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    peak = status_kib("VmHWM")
    server1 = process_cpu_seconds(server_pid)
    tasks = task_durations(result["flow_run_id"]) if result.get("flow_run_id") else {}
    return {"result": result, "seconds": seconds, "cpu_s": cpu, "peak_rss_kib": peak,
            "rss_at_start_kib": rss_start, "peak_reset": reset, "warmup_s": warmup,
            "server_cpu_s": None if server0 is None or server1 is None else server1 - server0,
            "tasks": tasks}


def task_durations(flow_run_id: str) -> dict[str, float]:
    """Wall seconds of the flow run and of each of its tasks (summed over runs), as Prefect recorded them."""
    from prefect.client.orchestration import get_client

    durations: dict[str, float] = {}
    runs: list[dict[str, Any]] = []
    with get_client(sync_client=True) as client:
        flow_run = client.request("GET", f"/flow_runs/{flow_run_id}").json()
        durations["flow run (server)"] = float(flow_run.get("total_run_time") or 0.0)
        for _ in range(40):  # task run states reach the server through events: may lag a little
            runs = client.request("POST", "/task_runs/filter", json={
                "flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200}).json()
            if runs and all(r.get("end_time") for r in runs):
                break
            time.sleep(0.25)
    for run in runs:
        name = str(run.get("name") or "?").rsplit("-", 1)[0]  # "read-merged-0" -> "read-merged"
        if run.get("start_time") and run.get("end_time"):
            start = datetime.fromisoformat(run["start_time"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(run["end_time"].replace("Z", "+00:00"))
            durations[name] = durations.get(name, 0.0) + (end - start).total_seconds()
    return durations


def spawn_step(module: str, out: Path, step: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `python -m module --step STEP ...` and return its result file (see run_child_step)."""
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    result_file = results / f"{step}-{'-'.join(a.lstrip('-') for a in args) or 'default'}.json"
    command = [sys.executable, "-m", module, "--step", step, "--out", str(out), *args]
    log(f"step {step} {' '.join(args)}: starting a child process")
    result = run_child_step(command, result_file, env)
    if "seconds" in result:
        log(f"step {step}: {result['seconds']:.2f} s, peak RSS {result['peak_rss_kib'] / 1024:,.0f} MB "
            f"(child wall {result['child_wall_s']:.1f} s; other processes used "
            f"{result['other_cpu_s']:.1f} CPU-s meanwhile)")
    return result


def run_child_step(command: list[str], result_file: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run a benchmark child (`command --result-file FILE`) and return the JSON it wrote, with the
    child's wall time and the CPU other processes (neither the benchmark nor its Prefect API server)
    used meanwhile."""
    result_file.unlink(missing_ok=True)
    server_pid = int(env.get(SERVER_PID_ENV) or 0)
    busy0, children0 = system_busy_seconds(), cpu_seconds(resource.RUSAGE_CHILDREN)
    self0, server0 = cpu_seconds(), process_cpu_seconds(server_pid) or 0.0
    t0 = time.perf_counter()
    # The child's stdout goes to our stderr: stdout carries only the results table.
    subprocess.run([*command, "--result-file", str(result_file)], check=True, env=env,
                   stdout=sys.stderr, timeout=STEP_TIMEOUT_S, cwd=ROOT)
    result = json.loads(result_file.read_text())
    result["child_wall_s"] = time.perf_counter() - t0
    ours = (cpu_seconds(resource.RUSAGE_CHILDREN) - children0 + cpu_seconds() - self0
            + (process_cpu_seconds(server_pid) or 0.0) - server0)
    result["other_cpu_s"] = max(0.0, system_busy_seconds() - busy0 - ours)
    return result


def profile_top(profiler: cProfile.Profile, listing: Path, top: int = 15) -> list[dict[str, Any]]:
    """Write the full cProfile listing (by own time, then cumulative) and return the top functions."""
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(60)
    stats.sort_stats("cumulative").print_stats(60)
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text(text.getvalue())
    rows = []
    raw = stats.stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, nc, tt, ct, callers)}
    for (file, line, name), (_, calls, own, cumulative, _) in sorted(
            raw.items(), key=lambda item: -item[1][2])[:top]:
        where = file if file == "~" else f"{Path(file).parent.name}/{Path(file).name}:{line}"
        rows.append({"function": name, "where": where, "calls": calls, "own_s": own,
                     "cumulative_s": cumulative})
    return rows


def profile_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| function | where | calls | own s | cumulative s |", "| --- | --- | ---: | ---: | ---: |"]
    lines += [f"| `{r['function']}` | {r['where']} | {r['calls']:,} | {r['own_s']:.2f} | "
              f"{r['cumulative_s']:.2f} |" for r in rows]
    return lines


def machine(packages: tuple[str, ...]) -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "ram": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def yes(ok: bool) -> str:
    return "yes" if ok else "**NO**"


def mb(kib: float) -> str:
    return f"{kib / 1024:,.0f}"


def other_work_note(labelled: list[tuple[str, dict[str, Any]]]) -> str:
    busy = any(r["other_cpu_s"] > 0.1 * r["child_wall_s"] for _, r in labelled)
    return ("- CPU used by other processes on the machine while each child ran (CPU-s / child wall s): "
            + ", ".join(f"{label} {r['other_cpu_s']:.1f}/{r['child_wall_s']:.1f}" for label, r in labelled)
            + (" - other work competed for the cores: timings are pessimistic." if busy
               else " (a quiet machine)."))


def machine_section(info: dict[str, str]) -> list[str]:
    """The "Machine:" section every results table ends with."""
    return ["Machine:", "", *[f"- {key}: {value}" for key, value in info.items()], ""]


def write_results(path: Path, text: str, total: float | None = None) -> None:
    """Print a benchmark's results and write them to its results file."""
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    log(f"wrote {path}" + (f" (total {total:.0f} s)" if total is not None else ""))

"""Capture middleware benchmark: what `modelwatch.capture.CaptureMiddleware` costs a real model server.

    .venv/bin/python -m benchmarks.capture [--rounds 7] [--requests 3000] [--warmup 200] [--threads 4]
                                           [--flush-seconds 1.0] [--out DIR]
    .venv/bin/python -m benchmarks.capture --profile 3000     # in-process cost breakdown, no servers

One small app (Starlette, a scikit-learn LogisticRegression of three features at POST /invocations: CSV
rows in, one CSV probability per row out) is served by a real uvicorn on 127.0.0.1, in a subprocess
(`python -m uvicorn benchmarks.capture:app`), in two configurations: (a) the bare app, (b) the app behind
the middleware at 100 % sampling, paths ("/invocations",), writing to a local temporary folder store.
The load comes from another process (`python -m benchmarks.capture --load ...`): a warm-up, then a
bounded number of requests over a few keep-alive connections (http.client, one thread each), one CSV row
per request with its own X-Amzn-SageMaker-Inference-Id. Each round serves both configurations (a fresh
server and store each time), in alternating order, since the 2-core machine is shared; the figures are
medians over the rounds. Servers are stopped with SIGINT: the ASGI lifespan's shutdown flushes the
writer, and the capture JSONL and the telemetry Parquet it wrote are then read back and checked
against what was sent (every request captured exactly once, nothing dropped). The server's CPU per
request is split by thread (the event loop's, the capture writer's, the rest) from /proc, with each
thread's wake-ups (voluntary context switches): on a shared machine the CPU per request moves much less
than requests/s and latencies do.

Targets: p99 overhead (p99 with minus p99 without, per round, median) under 1 ms; throughput loss under
5 %; zero requests blocked or failed; records captured == requests sent. The markdown table goes to
stdout and to benchmarks/results/capture.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.measure import (
    ROOT,
    cpu_seconds,
    log,
    machine,
    machine_section,
    process_cpu_seconds,
    profile_table,
    profile_top,
    system_busy_seconds,
    write_results,
)
from modelwatch.flows.child_processes import die_with_parent, free_port, stop_child

HOST = "127.0.0.1"
ENDPOINT = "bench-capture"
CONFIG_ENV = "MODELWATCH_BENCH_CAPTURE"  # the JSON of CaptureConfig's fields; absent: the bare app
ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
REQUEST_TIMEOUT_S = 10.0  # per request: a request slower than this counts as blocked
LOAD_DEADLINE_S = 120.0  # the whole load of one run; requests not sent by then count as blocked
SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 60.0  # SIGINT: the lifespan shutdown flushes the writer
BUSY_CORES = 0.25  # other work above this (cores) during a run marks its round as busy
TARGETS = {"p99_overhead_ms": 1.0, "throughput_loss_pct": 5.0}
RESULTS = ROOT / "benchmarks" / "results" / "capture.md"
CONFIGS = ("without", "with")
PACKAGES = ("uvicorn", "uvloop", "httptools", "starlette", "scikit-learn", "orjson", "pyarrow")


# --- the served app -------------------------------------------------------------------------------
def build_app(config: dict[str, Any] | None) -> Any:
    """The Starlette app serving the model, behind CaptureMiddleware(**config) when config is given."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    rng = np.random.default_rng(7)
    x = rng.normal(size=(500, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.5, size=500) > 0).astype(int)
    model = LogisticRegression().fit(x, y)

    async def invocations(request: Request) -> PlainTextResponse:
        body = await request.body()
        rows = np.array([[float(v) for v in line.split(",")] for line in body.decode().splitlines()
                         if line])
        answer = "".join(f"{p:.6f}\n" for p in model.predict_proba(rows)[:, 1])
        return PlainTextResponse(answer, media_type="text/csv")

    async def ping(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def threads(request: Request) -> JSONResponse:
        """The native ids of the event loop's thread and of the capture writer's (for the CPU split)."""
        writer = [t.native_id for t in threading.enumerate() if t.name.startswith("modelwatch-capture-")]
        return JSONResponse({"main": threading.get_native_id(), "writer": writer[0] if writer else None})

    app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping),
                            Route("/threads", threads)])
    if config is None:
        return app
    from modelwatch.capture import CaptureMiddleware

    middleware = CaptureMiddleware(app, **config)
    middleware.writer.start()  # now rather than on the first request, so /threads can name it
    return middleware


_APP: Any = None


def __getattr__(name: str) -> Any:
    """`benchmarks.capture:app` for uvicorn, built on first access (the parent and the load generator
    never import scikit-learn); configured by $MODELWATCH_BENCH_CAPTURE."""
    global _APP
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _APP is None:
        raw = os.environ.get(CONFIG_ENV)
        _APP = build_app(json.loads(raw) if raw else None)
    return _APP


def capture_config(store: Path, flush_seconds: float) -> dict[str, Any]:
    return {"store": str(store), "endpoint": ENDPOINT, "sampling_percentage": 100.0,
            "flush_seconds": flush_seconds, "paths": ["/invocations"]}


# --- the load generator (its own process) ---------------------------------------------------------
def row(rng: random.Random) -> str:
    return ",".join(f"{rng.gauss(0.0, 1.0):.6f}" for _ in range(3)) + "\n"


def generate_load(port: int, requests: int, warmup: int, threads: int, prefix: str) -> dict[str, Any]:
    """`warmup` then `requests` POSTs over `threads` keep-alive connections; the measured phase starts
    when every thread has finished its share of the warm-up. Latencies of answered measured requests,
    in ms; statuses and errors of all."""
    rng = random.Random(11)
    total = warmup + requests
    bodies = [row(rng).encode() for _ in range(total)]
    lock = threading.Lock()
    deadline = time.monotonic() + LOAD_DEADLINE_S
    next_index = {"warmup": 0, "measured": warmup}
    latencies: list[float] = []
    ok_ids: list[str] = []
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    ended: list[float] = []
    barrier = threading.Barrier(threads + 1)

    def take(phase: str, stop: int) -> int | None:
        with lock:
            i = next_index[phase]
            if i >= stop or time.monotonic() > deadline:
                return None
            next_index[phase] = i + 1
            return i

    def send(connection: http.client.HTTPConnection, i: int, measured: bool) -> http.client.HTTPConnection:
        ident = f"{prefix}-{i}"
        began = time.perf_counter()
        try:
            connection.request("POST", "/invocations", body=bodies[i],
                               headers={"Content-Type": "text/csv", ID_HEADER: ident})
            response = connection.getresponse()
            response.read()
            seconds = time.perf_counter() - began
        except (OSError, http.client.HTTPException) as problem:  # timeouts, resets: blocked requests
            with lock:
                errors[type(problem).__name__] = errors.get(type(problem).__name__, 0) + 1
            connection.close()
            return http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
        with lock:
            statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
            if response.status == 200:
                ok_ids.append(ident)
                if measured:
                    latencies.append(seconds * 1000)
        return connection

    def worker() -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
        try:
            while (i := take("warmup", warmup)) is not None:
                connection = send(connection, i, False)
            barrier.wait(timeout=LOAD_DEADLINE_S)
            while (i := take("measured", total)) is not None:
                connection = send(connection, i, True)
        finally:
            connection.close()
            with lock:
                ended.append(time.perf_counter())

    cpu0 = cpu_seconds()
    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait(timeout=LOAD_DEADLINE_S)
    t0 = time.perf_counter()
    for thread in pool:
        thread.join(max(0.0, deadline - time.monotonic()) + REQUEST_TIMEOUT_S)
    sent = next_index["warmup"] + next_index["measured"] - warmup
    return {"requests": requests, "warmup": warmup, "sent": sent, "unsent": total - sent,
            "measured_seconds": (max(ended) if ended else time.perf_counter()) - t0,
            "latencies_ms": latencies, "ok_ids": ok_ids, "statuses": statuses, "errors": errors,
            "cpu_s": cpu_seconds() - cpu0}


# --- one run: a server, its load, what it captured ------------------------------------------------
def answers(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


@contextlib.contextmanager
def serving(config: dict[str, Any] | None, log_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """uvicorn on 127.0.0.1 serving the app (behind the middleware when config is given); stopped with
    SIGINT when the block ends (killed if it does not stop in time)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    if config is not None:
        env[CONFIG_ENV] = json.dumps(config)
    command = [sys.executable, "-m", "uvicorn", "benchmarks.capture:app", "--host", HOST, "--port",
               str(port), "--log-level", "warning"]
    with open(log_path, "wb") as output:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while not answers(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start (exit {proc.poll()}): "
                                       f"{log_path.read_text(errors='replace')[-2000:]}")
                time.sleep(0.1)
            yield port, proc
        finally:
            if not stop_child(proc, grace=SERVER_STOP_TIMEOUT_S):
                log(f"uvicorn (pid {proc.pid}) did not stop within {SERVER_STOP_TIMEOUT_S:.0f} s: killed")


def threads_of(pid: int) -> dict[int, tuple[float, int]]:
    """Per thread of a process: (user+system CPU seconds, voluntary context switches, i.e. wake-ups)."""
    found: dict[int, tuple[float, int]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                switches = 0
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        switches = int(line.split()[1])
                found[int(task.name)] = ((int(fields[11]) + int(fields[12])) / tick, switches)
    return found


def server_threads(port: int) -> dict[str, int | None]:
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        connection.request("GET", "/threads")
        return dict(json.loads(connection.getresponse().read()))
    finally:
        connection.close()


def thread_split(named: dict[str, int | None], before: dict[int, tuple[float, int]],
                 after: dict[int, tuple[float, int]]) -> dict[str, float]:
    """CPU seconds and wake-ups during the load of the event loop's thread ("main"), of the capture
    writer's ("writer") and of all the others ("rest": numpy's BLAS pool, ...)."""
    who_of = {tid: who for who, tid in named.items() if tid is not None}
    split = {f"{who}_{what}": 0.0 for who in ("main", "writer", "rest") for what in ("cpu_s", "wakeups")}
    for tid, (cpu, switches) in after.items():
        cpu0, switches0 = before.get(tid, (0.0, 0))
        who = who_of.get(tid, "rest")
        split[f"{who}_cpu_s"] += cpu - cpu0
        split[f"{who}_wakeups"] += switches - switches0
    return split


def run_load(port: int, requests: int, warmup: int, threads: int, prefix: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.capture", "--load", str(port), "--requests", str(requests),
               "--warmup", str(warmup), "--threads", str(threads), "--prefix", prefix]
    done = subprocess.run(command, cwd=ROOT, capture_output=True,
                          timeout=LOAD_DEADLINE_S + 2 * REQUEST_TIMEOUT_S + 30)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator exited {done.returncode}: "
                           f"{done.stderr.decode(errors='replace')[-2000:]}")
    return dict(json.loads(done.stdout))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


def read_capture(store: Path) -> dict[str, Any]:
    """Every capture JSONL record under <store>/capture/<endpoint>/, by inference id."""
    ids: list[str] = []
    files = 0
    for path in sorted((store / "capture" / ENDPOINT).rglob("*.jsonl")):
        files += 1
        for line in path.read_bytes().splitlines():
            if line.strip():
                ids.append(json.loads(line)["eventMetadata"]["inferenceId"])
    return {"records": len(ids), "files": files, "ids": ids}


def read_writer_telemetry(store: Path, began: datetime) -> dict[str, int]:
    """The writer's per-minute telemetry summed over the run."""
    from modelwatch.tasks.store import Store
    from modelwatch.tasks.telemetry import COUNTS, per_minute, read_telemetry

    table = read_telemetry(Store(str(store)), ENDPOINT, began - timedelta(minutes=2),
                           datetime.now(UTC) + timedelta(minutes=2))
    rows = per_minute(table)
    return {name: sum(int(r[name]) for r in rows) for name in COUNTS} | {"minutes": len(rows)}


def one_run(kind: str, base: Path, round_no: int, args: argparse.Namespace) -> dict[str, Any]:
    """Serve, load, stop, read back: one configuration in one round."""
    label = f"r{round_no}-{kind}"
    store = base / f"store-{label}"
    config = capture_config(store, args.flush_seconds) if kind == "with" else None
    began = datetime.now(UTC)
    with serving(config, base / f"uvicorn-{label}.log") as (port, proc):
        named = server_threads(port)
        server0, threads0 = process_cpu_seconds(proc.pid) or 0.0, threads_of(proc.pid)
        busy0, children0 = system_busy_seconds(), cpu_seconds(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        load = run_load(port, args.requests, args.warmup, args.threads, label)
        wall = time.perf_counter() - t0
        busy = system_busy_seconds() - busy0
        load_cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - children0  # the load child (the server runs on)
        server_cpu = (process_cpu_seconds(proc.pid) or 0.0) - server0
        split = thread_split(named, threads0, threads_of(proc.pid))
    sent = load["sent"]
    blocked = load["unsent"] + sum(load["errors"].values()) + sum(
        n for status, n in load["statuses"].items() if status != "200")
    latencies = load["latencies_ms"]
    result: dict[str, Any] = {
        "kind": kind, "round": round_no, "sent": sent, "blocked": blocked,
        "statuses": load["statuses"], "errors": load["errors"], "unsent": load["unsent"],
        "rps": len(latencies) / load["measured_seconds"] if load["measured_seconds"] > 0 else 0.0,
        "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
        "server_cpu_us": server_cpu / max(1, sent) * 1e6, "load_cpu_s": load_cpu,
        **{f"{who}_cpu_us": split[f"{who}_cpu_s"] / max(1, sent) * 1e6 for who in ("main", "writer", "rest")},
        **{f"{who}_wakeups": split[f"{who}_wakeups"] / max(1, sent) for who in ("main", "writer")},
        "other_cores": max(0.0, busy - server_cpu - load_cpu) / wall, "load_wall_s": wall,
        "exit_code": proc.returncode,
        "server_log": (base / f"uvicorn-{label}.log").read_text(errors="replace").strip()[-500:],
    }
    if kind == "with":
        capture = read_capture(store)
        ids = capture.pop("ids")
        telemetry = read_writer_telemetry(store, began)
        sent_ids = set(load["ok_ids"])
        result |= {"captured": capture["records"], "capture_files": capture["files"],
                   "unique_ids": len(set(ids)), "exactly_once": len(ids) == len(set(ids)) == len(sent_ids)
                   and set(ids) == sent_ids, "telemetry": telemetry}
        result["dropped"] = (telemetry["dropped_queue_full"] + telemetry["dropped_disk_full"]
                             + telemetry["dropped_store_failed"])
    log(f"round {round_no} {kind:>7}: {result['rps']:,.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
        f"p99 {result['p99_ms']:.2f} ms, {blocked} blocked, server {result['server_cpu_us']:.0f} CPU-µs/req"
        + (f", captured {result['captured']:,}/{sent:,} (telemetry: {result['telemetry']['captured']:,} "
           f"captured, {result['dropped']} dropped)" if kind == "with" else ""))
    shutil.rmtree(store, ignore_errors=True)
    return result


def run(args: argparse.Namespace, base: Path) -> list[dict[str, Any]]:
    """Every round: both configurations, alternating which goes first."""
    rounds: list[dict[str, Any]] = []
    for r in range(1, args.rounds + 1):
        order = CONFIGS if r % 2 else CONFIGS[::-1]
        runs = {kind: one_run(kind, base, r, args) for kind in order}
        rounds.append({"round": r, "first": order[0], **runs})
    return rounds


# --- the report -----------------------------------------------------------------------------------
def machine_cores() -> int:
    return len(os.sched_getaffinity(0))


def busy_round(r: dict[str, Any]) -> bool:
    return max(r[k]["other_cores"] for k in CONFIGS) > BUSY_CORES


def met(ok: bool) -> str:
    return "PASS" if ok else "**MISS**"


def spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def render(rounds: list[dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    def of(kind: str, key: str) -> list[float]:
        return [float(r[kind][key]) for r in rounds]

    overhead = [r["with"]["p99_ms"] - r["without"]["p99_ms"] for r in rounds]
    p50_overhead = [r["with"]["p50_ms"] - r["without"]["p50_ms"] for r in rounds]
    loss = [100 * (1 - r["with"]["rps"] / r["without"]["rps"]) for r in rounds]
    cpu_loss = [100 * (1 - r["without"]["server_cpu_us"] / r["with"]["server_cpu_us"]) for r in rounds]
    blocked = {kind: sum(int(r[kind]["blocked"]) for r in rounds) for kind in CONFIGS}
    sent = {kind: sum(int(r[kind]["sent"]) for r in rounds) for kind in CONFIGS}
    captured = sum(int(r["with"]["captured"]) for r in rounds)
    telemetry = {name: sum(int(r["with"]["telemetry"][name]) for r in rounds)
                 for name in ("invocations", "captured", "sampled_out", "errors_5xx")}
    dropped = sum(int(r["with"]["dropped"]) for r in rounds)
    exactly_once = all(r["with"]["exactly_once"] for r in rounds)
    per_run = args.warmup + args.requests
    capture_ok = captured == sent["with"] == telemetry["captured"] and exactly_once and dropped == 0

    lines = [
        "# Capture middleware benchmark (`python -m benchmarks.capture`)", "",
        f"The same Starlette + scikit-learn app under uvicorn on 127.0.0.1 (its own process), without and "
        f"with `CaptureMiddleware` (100 % sampling, paths `/invocations`, local folder store, flush every "
        f"{args.flush_seconds:g} s). Load from another process: {args.threads} keep-alive connections "
        f"(http.client), {args.warmup:,} warm-up then {args.requests:,} measured requests of one CSV row "
        f"each per run; {args.rounds} rounds, the two configurations alternating which goes first, a fresh "
        f"server and store per run. Median over rounds (min–max); latencies are client-side.", "",
        "| figure | without middleware | with middleware | target | met |",
        "| --- | ---: | ---: | ---: | --- |",
        *[f"| {label} | {spread(of('without', key), fmt)} | {spread(of('with', key), fmt)} | | |"
          for label, key, fmt in (("requests/s", "rps", ",.0f"), ("p50 latency ms", "p50_ms", ".2f"),
                                  ("p99 latency ms", "p99_ms", ".2f"))],
        f"| p50 overhead ms (per round, then median) | | {spread(p50_overhead, '+.2f')} | | |",
        f"| p99 overhead ms (per round, then median) | | {spread(overhead, '+.2f')} | "
        f"< {TARGETS['p99_overhead_ms']:g} | "
        f"{met(statistics.median(overhead) < TARGETS['p99_overhead_ms'])} |",
        f"| throughput loss % (per round, then median) | | {spread(loss, '+.1f')} | "
        f"< {TARGETS['throughput_loss_pct']:g} | "
        f"{met(statistics.median(loss) < TARGETS['throughput_loss_pct'])} |",
        f"| the same from server CPU per request (a CPU-bound server; other load hardly moves it) | | "
        f"{spread(cpu_loss, '+.1f')} | | |",
        f"| requests blocked or failed (all rounds: non-200, timeouts, errors, unsent) | "
        f"{blocked['without']} | {blocked['with']} | 0 | {met(blocked['with'] == 0)} |",
        f"| records captured (JSONL) / requests sent, all rounds | | {captured:,} / {sent['with']:,} | "
        f"equal, each id once | {met(capture_ok)} |",
        f"| writer telemetry: invocations / captured / dropped | | {telemetry['invocations']:,} / "
        f"{telemetry['captured']:,} / {dropped} | dropped 0 | {met(dropped == 0)} |",
        f"| server CPU µs per request (during the load) | {spread(of('without', 'server_cpu_us'), ',.0f')} | "
        f"{spread(of('with', 'server_cpu_us'), ',.0f')} | | |",
        *[f"| {label} | {spread(of('without', key), ',.0f')} | {spread(of('with', key), ',.0f')} | | |"
          for label, key in (("of which the event-loop thread", "main_cpu_us"),
                             ("of which the capture writer's thread", "writer_cpu_us"),
                             ("of which other threads (numpy's BLAS pool, ...)", "rest_cpu_us"))],
        f"| wake-ups per request: event-loop thread | {spread(of('without', 'main_wakeups'), '.2f')} | "
        f"{spread(of('with', 'main_wakeups'), '.2f')} | | |",
        f"| wake-ups per request: capture writer's thread | | {spread(of('with', 'writer_wakeups'), '.2f')} "
        "| | |",
        "",
        "Per round:", "",
        "| round | first | req/s without | req/s with | p99 ms without | p99 ms with | p99 overhead ms | "
        "loss % | captured / sent | other cores busy (without, with) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r, o, lo in zip(rounds, overhead, loss, strict=True):
        lines.append(
            f"| {r['round']} | {r['first']} | {r['without']['rps']:,.0f} | "
            f"{r['with']['rps']:,.0f} | {r['without']['p99_ms']:.2f} | {r['with']['p99_ms']:.2f} | "
            f"{o:+.2f} | {lo:+.1f} | {r['with']['captured']:,} / {r['with']['sent']:,}"
            f"{'' if r['with']['exactly_once'] else ' (ids differ)'} | "
            f"{r['without']['other_cores']:.2f}, {r['with']['other_cores']:.2f}"
            f"{' (busy)' if busy_round(r) else ''} |")
    busy = [r[k]["other_cores"] for r in rounds for k in CONFIGS]
    noisy = sum(busy_round(r) for r in rounds)
    load_cores = [r[k]["load_cpu_s"] / r[k]["load_wall_s"] for r in rounds for k in CONFIGS]
    problems = [f"round {r['with']['round']} {k}: statuses {r[k]['statuses']}, errors {r[k]['errors']}, "
                f"unsent {r[k]['unsent']}" for r in rounds for k in CONFIGS if r[k]["blocked"]]
    problems += [f"round {r['with']['round']} {k}: uvicorn exited {r[k]['exit_code']}" for r in rounds
                 for k in CONFIGS if r[k]["exit_code"] not in (0, None)]
    problems += [f"round {r['round']} {k}: uvicorn wrote `{r[k]['server_log'][-200:]}`" for r in rounds
                 for k in CONFIGS if r[k]["server_log"]]
    lines += [
        "",
        f"- Each run sent {per_run:,} requests (warm-up included); captured counts every record in the "
        "capture JSONL files, the telemetry figures are the writer's own per-minute Parquet "
        "(`read_telemetry` + `per_minute`), read after a SIGINT stop flushed them.",
        "- Other cores busy: CPU-seconds the rest of the machine (neither the server nor the load "
        f"generator) used per second of each load, at most {max(busy):.2f} of {machine_cores()} cores"
        + (f"; {noisy} of {len(rounds)} rounds had other work above {BUSY_CORES:g} cores (busy): their "
           "wall-clock figures (requests/s, latencies) are unreliable, the CPU per request much less so."
           if noisy else " (a quiet machine)."),
        f"- The load generator itself kept {spread(load_cores, '.2f')} cores busy (one Python process, "
        "GIL-bound).",
        f"- Whole benchmark: {seconds:.0f} s.",
        *[f"- Problem: {p}" for p in problems],
        "",
    ]
    lines += machine_section(machine(PACKAGES))
    return "\n".join(lines) + "\n"


# --- in-process profile (no servers): where the middleware's time goes ----------------------------
def profile(requests: int, flush_seconds: float) -> None:
    """Where the middleware's time goes, in one process and without servers (prints to stderr):

    * the request path over httpx.ASGITransport, bare app against the app behind the middleware whose
      writer thread is held back (so only the request path runs): the best of three alternating passes;
    * the writer's work on what those requests queued (drain, encode, write a file, telemetry), timed,
      then once more under cProfile;
    * one `_check_disk` call, which the writer's loop makes on every wake-up.
    """
    import asyncio

    import httpx

    from modelwatch.capture import CaptureConfig, CaptureMiddleware, CaptureWriter
    from modelwatch.tasks.telemetry import HostSampler

    base = Path(tempfile.mkdtemp(prefix="modelwatch-bench-capture-profile-"))
    try:
        rng = random.Random(5)
        bodies = [row(rng).encode() for _ in range(requests)]
        bare = build_app(None)
        writer = CaptureWriter(CaptureConfig(**capture_config(base / "store", flush_seconds)), start=False)
        writer._thread = threading.current_thread()  # a stand-in: decide() must not start the real one
        writer._host = HostSampler(str(base))
        wrapped = CaptureMiddleware(bare, writer=writer)

        async def drive(app: Any) -> float:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for body in bodies[:200]:
                    await client.post("/invocations", content=body, headers={"content-type": "text/csv"})
                t0 = time.perf_counter()
                for i, body in enumerate(bodies):
                    await client.post("/invocations", content=body,
                                      headers={"content-type": "text/csv", ID_HEADER: f"p-{i}"})
                return (time.perf_counter() - t0) / len(bodies)

        def write_queued() -> tuple[int, dict[str, float]]:
            queued = len(writer._queue)
            took: dict[str, float] = {}
            for step, work in (("drain", writer._drain),
                               ("encode and write the capture file", writer._write_capture),
                               ("telemetry", lambda: writer._write_telemetry(everything=True))):
                t0 = time.perf_counter()
                work()
                took[step] = time.perf_counter() - t0
            return queued, took

        passes: dict[str, list[float]] = {"bare": [], "with": []}
        for _ in range(3):
            passes["bare"].append(asyncio.run(drive(bare)))
            passes["with"].append(asyncio.run(drive(wrapped)))
            queued, took = write_queued()
        bare_us, with_us = min(passes["bare"]) * 1e6, min(passes["with"]) * 1e6
        log(f"request path in-process (best of 3): bare {bare_us:.0f} µs/request, behind the middleware "
            f"{with_us:.0f} µs/request: +{with_us - bare_us:.1f} µs on the event loop")
        parts = ", ".join(f"{step} {seconds / max(1, queued) * 1e6:.1f}" for step, seconds in took.items())
        log(f"writer: {queued:,} queued records in one flush, {sum(took.values()) * 1000:.0f} ms in one "
            f"burst; µs per record: {parts}")
        asyncio.run(drive(wrapped))
        profiler = cProfile.Profile()
        profiler.enable()
        write_queued()
        profiler.disable()
        for line in profile_table(profile_top(profiler, base / "writer.prof.txt", 12)):
            print(line, file=sys.stderr)
        loops = 20_000
        t0 = time.perf_counter()
        for _ in range(loops):
            writer._check_disk()
        each = (time.perf_counter() - t0) / loops
        log(f"writer loop: one _check_disk (psutil.disk_usage) {each * 1e6:.1f} µs")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per run")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests per run")
    parser.add_argument("--threads", type=int, default=4, help="keep-alive connections of the load")
    parser.add_argument("--flush-seconds", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--load", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the load child
    parser.add_argument("--prefix", default="req", help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=int, metavar="N", help="profile N requests in-process instead")
    args = parser.parse_args(argv)
    if args.load is not None:
        json.dump(generate_load(args.load, args.requests, args.warmup, args.threads, args.prefix), sys.stdout)
        return
    if args.profile:
        profile(args.profile, args.flush_seconds)
        return
    # a SIGTERM unwinds like Ctrl-C: servers stopped, temporary folders removed
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    base = args.out or Path(tempfile.mkdtemp(prefix="modelwatch-bench-capture-"))
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    children0 = cpu_seconds(resource.RUSAGE_CHILDREN)
    try:
        rounds = run(args, base)
    finally:
        if args.out is None:
            shutil.rmtree(base, ignore_errors=True)
    log(f"children used {cpu_seconds(resource.RUSAGE_CHILDREN) - children0:.0f} CPU-s")
    write_results(RESULTS, render(rounds, args, time.perf_counter() - t0), time.perf_counter() - t0)


if __name__ == "__main__":
    main()

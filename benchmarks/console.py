"""Console benchmark: the governance console's fleet page and search over the 1,000-model benchmark store
(the summary benchmark's), served by `modelwatch ui` under uvicorn on 127.0.0.1 and asked over HTTP.

    .venv/bin/python -m benchmarks.console [--models 1000] [--days 7] [--requests 20]
                                           [--out benchmarks/out/summary] [--fresh]

Setup (not timed): the summary benchmark's store of --models models (reused when it exists), its
dashboard built once by the summary flow on an ephemeral Prefect API, one console account. Then a fresh
`modelwatch ui` is started (timed until it answers: it reads the dashboard, renders its rows and builds
the search index before serving) and a signed-in client measures, client side, wall milliseconds of:
the first fleet page and the first search after start, --requests warm fleet pages and --requests warm
searches (queries cycling over owners, lines of business, names and card text), then, after a new
dashboard document is written (as each summary run does) with a tenth of its rows changed, the first
page (the changed rows rendered again) and search (the index built again) by those requests.
Each answer is checked: the fleet page lists every model, and each search lists exactly the models
that the core's fleet search, run in this process over the same store, finds.

The table goes to stdout and to benchmarks/results/console.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measure import ROOT, log, machine, machine_section, start_ephemeral_api, write_results
from modelwatch.flows.child_processes import die_with_parent, free_port, stop_child, wait_until_answers

QUERIES = ("team-3", "mortgages", "synthetic fleet model 42", "gradient retail", "score online")
PASSWORD = "benchmark passphrase"
FIRST_PAGE_TARGET_MS, SEARCH_TARGET_MS = 300.0, 200.0
CHANGED_SHARE = 0.1  # of the rows a new dashboard document changes in the benchmark


def timed_get(client, path: str, **params) -> tuple[float, str]:
    began = time.perf_counter()
    answer = client.get(path, params=params or None)
    seconds = time.perf_counter() - began
    if answer.status_code != 200:
        raise RuntimeError(f"GET {path} {params}: {answer.status_code} {answer.text[:300]}")
    return seconds * 1000, answer.text


def listed(page: str) -> set[str]:
    return set(re.findall(r'<tr class="model-row" data-model="([^"]+)"', page))


def run(args: argparse.Namespace) -> str:
    import httpx

    from benchmarks.summary import setup_store, store_path
    from modelwatch.flows.summary import summarize_fleet
    from modelwatch.tasks.accounts import add_account, read_account
    from modelwatch.tasks.fleet_search import build_index, search
    from modelwatch.tasks.store import Store

    out = Path(args.out).resolve()
    setup = setup_store(out, args.models, args.days, args.fresh, max(1, len(os.sched_getaffinity(0))))
    root = str(store_path(out, args.models, args.days))
    _, api_url = start_ephemeral_api()
    os.environ["PREFECT_API_URL"] = api_url  # the summary's schedule lookup asks this API, not a new one
    log("summary flow: building the dashboard")
    summarize_fleet(store=root, publish=False)
    store = Store(root)
    if read_account(store, "bench-admin") is None:
        add_account(store, "bench-admin", "admin", PASSWORD, by="benchmark")
    rows = store.read_json("dashboard/models.json")["models"]
    from modelwatch.tasks.dashboard import DashboardRow

    index = build_index(store, [DashboardRow.model_validate(r) for r in rows])
    expected = {q: set(search(index, q)) for q in QUERIES}

    port = free_port()
    env = {**os.environ, "PREFECT_API_URL": api_url}
    with tempfile.TemporaryFile() as server_log:
        began = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "modelwatch.cli", "ui", "--store", root,
                                 "--port", str(port)], cwd=ROOT, env=env, stdout=server_log,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_answers(proc, url + "/health", 60, "the console")
            ready_ms = (time.perf_counter() - began) * 1000
            client = httpx.Client(base_url=url, timeout=60)
            form = client.get("/sign-in").text
            token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
            signed = client.post("/sign-in", data={"username": "bench-admin", "password": PASSWORD,
                                                   "csrf": token})
            if signed.status_code != 303:
                raise RuntimeError(f"sign-in failed: {signed.status_code}")
            first_page, page = timed_get(client, "/")
            if len(listed(page)) != len(rows):
                raise RuntimeError(f"the fleet page lists {len(listed(page))} of {len(rows)} models")
            first_search, page = timed_get(client, "/", q=QUERIES[0])
            if listed(page) != expected[QUERIES[0]]:
                raise RuntimeError(f"search {QUERIES[0]!r} differs from the core's")
            pages, searches, sizes = [], [], []
            for i in range(args.requests):
                ms, page = timed_get(client, "/")
                pages.append(ms)
                sizes.append(len(page.encode()))
                query = QUERIES[i % len(QUERIES)]
                ms, page = timed_get(client, "/", q=query)
                if listed(page) != expected[query]:
                    raise RuntimeError(f"search {query!r}: {len(listed(page))} models, the core "
                                       f"finds {len(expected[query])}")
                searches.append(ms)
            # A new dashboard document, as a summary run writes it, with CHANGED_SHARE of the rows changed:
            # those are rendered again on the next page, the others keep their HTML.
            document = store.read_json("dashboard/models.json")
            changed = document["models"][::round(1 / CHANGED_SHARE)]
            for row in changed:
                row["latest_version"] = f"{row.get('latest_version') or ''}-next"
            store.write_json("dashboard/models.json", document)
            changed_page, page = timed_get(client, "/")
            if len(listed(page)) != len(rows) or page.count("-next") < len(changed):
                raise RuntimeError("the page after the dashboard changed does not show every model "
                                   "with its changed rows")
            changed_search, page = timed_get(client, "/", q=QUERIES[1])
            if listed(page) != expected[QUERIES[1]]:
                raise RuntimeError(f"search {QUERIES[1]!r} after the change differs from the core's")
        finally:
            stop_child(proc, grace=20)
    counts = ", ".join(f"{q!r} {len(expected[q])}" for q in QUERIES)
    return "\n".join([
        f"# Console benchmark (`python -m benchmarks.console --models {args.models} --days "
        f"{args.days} --requests {args.requests}`)",
        "",
        f"`modelwatch ui` under uvicorn on 127.0.0.1 over the summary benchmark's store of "
        f"{len(rows):,} models ({args.days} days of executions per monitor; setup "
        f"{'reused' if setup.get('reused') else 'built'}), signed in; wall milliseconds measured by "
        f"an HTTP client on the same machine; warm figures are the median (p90, max) of "
        f"{args.requests} requests each. Every fleet page listed all {len(rows):,} models; every "
        f"search listed exactly the models the core's search finds ({counts}).",
        "",
        "| request | ms | target | met |",
        "| --- | ---: | ---: | --- |",
        f"| `modelwatch ui` start until it answers (warm-up: dashboard read, {len(rows):,} rows "
        f"rendered, search index built from the registry and every card) | {ready_ms:,.0f} | | |",
        f"| first fleet page after start | {first_page:,.0f} | < {FIRST_PAGE_TARGET_MS:.0f} | "
        f"{'yes' if first_page < FIRST_PAGE_TARGET_MS else '**NO**'} |",
        f"| first search after start | {first_search:,.0f} | < {SEARCH_TARGET_MS:.0f} | "
        f"{'yes' if first_search < SEARCH_TARGET_MS else '**NO**'} |",
        f"| first fleet page after a new dashboard document ({len(changed)} rows changed, rendered "
        f"again) | "
        f"{changed_page:,.0f} | < {FIRST_PAGE_TARGET_MS:.0f} | "
        f"{'yes' if changed_page < FIRST_PAGE_TARGET_MS else '**NO**'} |",
        f"| first search after it changed (index built again) | {changed_search:,.0f} | "
        f"< {SEARCH_TARGET_MS:.0f} | {'yes' if changed_search < SEARCH_TARGET_MS else '**NO**'} |",
        f"| fleet page, warm | {statistics.median(pages):,.0f} (p90 {_p90(pages):,.0f}, max "
        f"{max(pages):,.0f}) | < {FIRST_PAGE_TARGET_MS:.0f} | "
        f"{'yes' if statistics.median(pages) < FIRST_PAGE_TARGET_MS else '**NO**'} |",
        f"| search, warm | {statistics.median(searches):,.0f} (p90 {_p90(searches):,.0f}, max "
        f"{max(searches):,.0f}) | < {SEARCH_TARGET_MS:.0f} | "
        f"{'yes' if statistics.median(searches) < SEARCH_TARGET_MS else '**NO**'} |",
        "",
        f"- Fleet page size: {statistics.median(sizes) / 1024:,.0f} KiB of HTML.",
        "",
        *machine_section(machine(("prefect", "fastapi", "uvicorn", "jinja2"))),
    ])


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/out/summary")
    parser.add_argument("--fresh", action="store_true", help="rebuild the store")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    home = tempfile.mkdtemp(prefix="modelwatch-bench-console-")
    os.environ["PREFECT_HOME"] = home
    from modelwatch.runtime import configure_prefect

    configure_prefect()
    try:
        text = run(args)
    finally:
        from benchmarks.measure import stop_prefect

        stop_prefect(home)
    write_results(ROOT / "benchmarks/results/console.md", text, time.perf_counter() - started)


if __name__ == "__main__":
    main()

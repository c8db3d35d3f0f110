"""The capture middleware in front of real servers: uvicorn (ASGI) and waitress (WSGI) on 127.0.0.1
serve a scikit-learn model; a bounded load comes from a second process; the capture and telemetry
they write are read back, by hand and by the data-quality monitor and the merge."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from modelwatch.flows.child_processes import (
    die_with_parent,
    free_port,
    stop_child,
    wait_until_answers,
)
from modelwatch.tasks.dashboard_html import CONTENT_SECURITY_POLICY
from modelwatch.tasks.store import Store
from modelwatch.tasks.telemetry import per_minute, read_telemetry
from tests.capture_apps import FEATURES
from tests.cli_run import run
from tests.s3faults import Faults, faulty_proxy

ROOT = Path(__file__).resolve().parent.parent
ENDPOINT = "scoring"


@contextlib.contextmanager
def serving(kind: str, capture: dict, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real server on 127.0.0.1 with the test app behind the middleware; stopped with SIGINT (a
    graceful stop, which flushes the capture) when the block ends."""
    port = free_port()
    if kind == "asgi":
        command = [sys.executable, "-m", "uvicorn", "tests.capture_apps:asgi_app", "--host",
                   "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    else:
        command = [sys.executable, "-m", "waitress", "--host=127.0.0.1", f"--port={port}",
                   "--threads=4", "tests.capture_apps:wsgi_app"]
    environment = {**os.environ, **(env or {}), "MODELWATCH_TEST_CAPTURE": json.dumps(capture)}
    log = open(os.devnull, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.PIPE,
                            preexec_fn=die_with_parent)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_answers(proc, url + "/ping", 60, f"{kind} server")
        except RuntimeError as problem:
            raise RuntimeError(f"{problem}: {proc.stderr.read().decode()[-2000:]}") from None
        yield url
    finally:
        stop_child(proc, grace=60.0)
        log.close()


def load(url: str, n: int, prefix: str) -> dict[str, dict]:
    """Send n requests from a second process; what each request sent and got back, by its id."""
    done = subprocess.run([sys.executable, "-m", "tests.capture_load", url, str(n), "4", prefix],
                          cwd=ROOT, capture_output=True, timeout=120, check=True)
    return json.loads(done.stdout)


def keys_under(store: Store, prefix: str, suffix: str) -> list[str]:
    base = store.path(prefix)
    return sorted(f"{prefix}/{p[len(base) + 1:]}" for p in store.fs.find(base) if p.endswith(suffix))


def capture_lines(store: Store) -> list[dict]:
    keys = keys_under(store, f"capture/{ENDPOINT}", ".jsonl")
    return [json.loads(line) for k in keys for line in store.read_bytes(k).splitlines()]


def telemetry(store: Store) -> dict[str, int]:
    now = datetime.now(UTC)
    rows = per_minute(read_telemetry(store, ENDPOINT, now - timedelta(hours=2), now + timedelta(hours=1)))
    return {name: sum(r[name] for r in rows) for name in
            ("invocations", "errors_4xx", "errors_5xx", "captured", "sampled_out",
             "dropped_queue_full", "dropped_disk_full", "dropped_store_failed")}


def assert_captured_exactly_once(lines: list[dict], sent: dict[str, dict]) -> None:
    by_id: dict[str, dict] = {}
    for record in lines:
        ident = record["eventMetadata"]["inferenceId"]
        assert ident not in by_id, f"{ident} captured twice"
        by_id[ident] = record
    assert set(by_id) == set(sent)
    for ident, request in sent.items():
        data = by_id[ident]["captureData"]
        assert data["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT",
                                         "data": request["body"], "encoding": "CSV"}
        assert data["endpointOutput"]["data"] == request["answer"]
        assert data["endpointOutput"]["encoding"] == "CSV"
        assert data["endpointOutput"]["observedContentType"].startswith("text/csv")


def capture_config(store: str, **extra) -> dict:
    return {"store": store, "endpoint": ENDPOINT, "flush_seconds": 0.3, "paths": ["/invocations"],
            **extra}


@pytest.mark.usefixtures("prefect_api")
def test_uvicorn_captures_every_request_once_and_monitors_read_it(tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    began = datetime.now(UTC)
    with serving("asgi", capture_config(store_uri)) as url:
        sent = load(url, 300, "asgi")
    assert all(r["status"] == 200 for r in sent.values())
    store = Store(store_uri)
    assert_captured_exactly_once(capture_lines(store), sent)
    counted = telemetry(store)
    assert counted["invocations"] == counted["captured"] == 300  # the /ping GETs are not inferences
    assert counted["sampled_out"] == counted["errors_5xx"] == counted["dropped_queue_full"] == 0

    # The monitors read the capture as it is: a data-quality execution over the window, a merge.
    rng = np.random.default_rng(3)
    train = tmp_path / "train.csv"
    with train.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, "label"])
        writer.writerows([*row, int(row[0] > 0)] for row in rng.normal(size=(2000, 3)).round(6))
    run("models", "register", "--model", "scorer", "--problem-type", "binary", "--features-from",
        str(train), "--label", "label", "--store", store_uri)
    run("endpoints", "register", "--endpoint", ENDPOINT, "--model", "scorer", "--model-version", "1",
        "--store", store_uri)
    run("baseline", "suggest", "--model", "scorer", "--dataset", str(train), "--label", "label",
        "--store", store_uri)
    start = began.replace(minute=0, second=0, microsecond=0)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    window = ("--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"), "--end", end.strftime("%Y-%m-%dT%H:%M:%SZ"))
    execution = run("monitor", "run", "--model", "scorer", *window, "--no-report", "--store", store_uri)
    assert execution["records_read"] == execution["rows_profiled"] == 300
    assert execution["records_malformed"] == 0 and execution["status"] in ("Completed",
                                                                          "CompletedWithViolations")
    statistics = json.loads(Path(execution["outputs"]["statistics.json"]).read_text())
    sent_rows = np.array([[float(v) for v in r["body"].split(",")] for r in sent.values()])
    for j, name in enumerate(FEATURES):
        [feature] = [f for f in statistics["features"] if f["name"] == name]
        assert feature["numerical_statistics"]["mean"] == pytest.approx(sent_rows[:, j].mean(), rel=1e-9)

    # The dashboard's endpoint page and the model page show the telemetry the server wrote.
    run("dashboard", "--refresh", "--json", "--store", store_uri)
    page = (tmp_path / "store" / "dashboard" / "endpoints" / f"{ENDPOINT}.html").read_text()
    assert f'http-equiv="Content-Security-Policy" content="{escape(CONTENT_SECURITY_POLICY)}"' in page
    assert '<span class="invocations">300</span> invocations' in page
    assert re.search(r'<tr data-variant="AllTraffic"><td>AllTraffic</td><td>—</td><td>300</td>'
                     r'<td>100.0 %</td><td>0</td>', page)
    # each of the 8 day and week charts draws its first series (a dot: the load took under a minute)
    assert len(re.findall(r'class="(?:line|dot) s0"', page)) >= 8
    model_page = (tmp_path / "store" / "dashboard" / "models" / "scorer.html").read_text()
    assert f'href="../endpoints/{ENDPOINT}.html"' in model_page
    assert 'data-endpoint="scoring"' in model_page and "300</span> invocations" in model_page
    index = (tmp_path / "store" / "dashboard" / "index.html").read_text()
    assert f'href="endpoints/{ENDPOINT}.html"' in index

    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{i},{int(i.endswith(('1', '3')))}\n" for i in sent))
    run("groundtruth", "upload", "--endpoint", ENDPOINT, "--file", str(labels), "--id-column", "id",
        "--label-column", "label", "--store", store_uri)
    merged = run("groundtruth", "merge", "--endpoint", ENDPOINT, *window, "--store", store_uri)
    assert merged["captures_read"] == merged["captures_matched"] == merged["labels_matched"] == 300
    assert merged["captures_malformed"] == merged["labels_malformed"] == 0


def test_waitress_captures_every_request_once(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    with serving("wsgi", capture_config(store.root)) as url:
        sent = load(url, 200, "wsgi")
    assert all(r["status"] == 200 for r in sent.values())
    assert_captured_exactly_once(capture_lines(store), sent)
    counted = telemetry(store)
    assert counted["invocations"] == counted["captured"] == 200


def test_sampling_takes_its_share_within_the_binomial_interval(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    n, share = 500, 0.2
    with serving("wsgi", capture_config(store.root, sampling_percentage=100 * share)) as url:
        sent = load(url, n, "sample")
    lines = capture_lines(store)
    low, high = stats.binom.interval(1 - 1e-4, n, share)
    assert low <= len(lines) <= high
    ids = [r["eventMetadata"]["inferenceId"] for r in lines]
    assert len(set(ids)) == len(ids) and set(ids) <= set(sent)
    counted = telemetry(store)
    assert counted["captured"] == len(lines) and counted["captured"] + counted["sampled_out"] == n
    assert counted["invocations"] == n


def test_a_stalled_store_drops_and_counts_while_requests_answer(s3_endpoint: str, s3_bucket: str) -> None:
    import boto3

    faults = Faults(delay_share=1.0, delay_seconds=3.0)  # every S3 request hangs 3 s
    n = 200
    with faulty_proxy(s3_endpoint, faults) as proxy:
        config = capture_config(s3_bucket, queue_size=10,
                                storage_options={"ServerSideEncryption": "AES256"})
        with serving("asgi", config, env={"AWS_ENDPOINT_URL": proxy}) as url:
            load(url, 5, "warm")
            time.sleep(0.5)  # the first flush is now writing, and hangs
            sent = load(url, n, "stalled")
            faults.delay_share = 0.0  # the store recovers before the graceful stop's flush
    assert all(r["status"] == 200 for r in sent.values())
    assert max(r["seconds"] for r in sent.values()) < 1.0  # nobody waited for the store
    store = Store(s3_bucket)
    lines = capture_lines(store)
    counted = telemetry(store)
    assert counted["invocations"] == n + 5
    assert counted["dropped_queue_full"] > 0
    assert counted["captured"] == len(lines)
    assert counted["captured"] + counted["dropped_queue_full"] + counted["dropped_store_failed"] == n + 5
    # what was kept is whole, once each, and encrypted at rest as configured
    ids = [r["eventMetadata"]["inferenceId"] for r in lines]
    assert len(set(ids)) == len(ids) and set(ids) <= set(sent) | {f"warm-{i}" for i in range(5)}
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket, prefix = s3_bucket[len("s3://"):].split("/", 1)
    key = keys_under(store, f"capture/{ENDPOINT}", ".jsonl")[0]
    head = client.head_object(Bucket=bucket, Key=f"{prefix}/{key}")
    assert head["ServerSideEncryption"] == "AES256"
    telemetry_key = keys_under(store, f"telemetry/{ENDPOINT}", ".parquet")[0]
    assert pq.read_table(io.BytesIO(store.read_bytes(telemetry_key))).num_rows >= 1

"""The capture writer and telemetry in one process: encodings, capture options, content types, the
disk threshold, multi-model routing, and latency percentiles against numpy."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelwatch.capture import CaptureConfig, CaptureMiddleware, CaptureWriter
from modelwatch.errors import UserError
from modelwatch.tasks.capture import parse_capture
from modelwatch.tasks.store import Store
from modelwatch.tasks.telemetry import (
    LATENCY_RATIO,
    TelemetryAggregator,
    histogram_percentile,
    latency_bucket,
    latency_buckets,
    minute_rows,
    per_minute,
    read_telemetry,
    write_rows,
)

NOW = datetime.now(UTC)


def lines_under(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.rglob("*.jsonl")) for line in f.read_text().splitlines()]


def writer(tmp_path: Path, **options) -> CaptureWriter:
    return CaptureWriter(CaptureConfig(store=str(tmp_path / "store"), endpoint="ep", flush_seconds=30,
                                       **options))


def test_encodings_follow_the_content_types_and_the_capture_option(tmp_path: Path) -> None:
    w = writer(tmp_path, capture="input")
    w.record(b'{"x": 1}', b'{"y": 0.5}', request_type="application/json; charset=utf-8",
             response_type="application/json", inference_id="j")
    w.record(b"\x89PNG\x00\xff", b"cat", request_type="image/png", response_type="text/plain",
             inference_id="b")
    w.record(b"\xff\xfe,1", b"0", request_type="text/csv", inference_id="bad-utf8")
    assert w.flush()
    w.close()
    records = {r["eventMetadata"]["inferenceId"]: r for r in lines_under(tmp_path / "store" / "capture")}
    assert set(records["j"]["captureData"]) == {"endpointInput"}  # capture="input"
    assert records["j"]["captureData"]["endpointInput"] == {
        "observedContentType": "application/json; charset=utf-8", "mode": "INPUT",
        "data": '{"x": 1}', "encoding": "JSON"}
    for ident, raw in (("b", b"\x89PNG\x00\xff"), ("bad-utf8", b"\xff\xfe,1")):
        side = records[ident]["captureData"]["endpointInput"]
        assert side["encoding"] == "BASE64" and base64.b64decode(side["data"]) == raw
    assert w.stats.captured == 3 and w.stats.files_written == 1


def test_event_ids_are_distinct_version_4_uuids_and_times_are_each_records(tmp_path: Path) -> None:
    w = writer(tmp_path)
    start = NOW.replace(microsecond=0).timestamp()
    for i in range(500):
        w.record(b"1,2", b"0", inference_id=str(i), at=start + i * 0.37)
    assert w.flush()
    w.close()
    records = lines_under(tmp_path / "store" / "capture")
    ids = [uuid.UUID(r["eventMetadata"]["eventId"]) for r in records]
    assert len(set(ids)) == 500 and {u.version for u in ids} == {4}
    assert {u.variant for u in ids} == {uuid.RFC_4122}
    assert [str(u) for u in ids] == [r["eventMetadata"]["eventId"] for r in records]
    for r in records:
        at = datetime.fromtimestamp(start + int(r["eventMetadata"]["inferenceId"]) * 0.37, UTC)
        assert r["eventMetadata"]["inferenceTime"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_uncaptured_types_and_a_full_disk_are_counted_not_written(tmp_path: Path) -> None:
    w = writer(tmp_path, content_types=("text/csv",))
    assert not w.record(b"{}", b"{}", request_type="application/json")
    assert w.stats.not_captured_type == 1
    full = writer(tmp_path, max_disk_percent=1e-9)  # any disk is fuller than this
    assert not full.record(b"1,2", b"0", seconds=0.001)
    assert full.stats.dropped_disk_full == 1
    full.close()
    w.close()
    assert not list((tmp_path / "store" / "capture").rglob("*.jsonl"))
    rows = per_minute(read_telemetry(Store(str(tmp_path / "store")), "ep", NOW - timedelta(hours=1),
                                     NOW + timedelta(hours=1)))
    assert sum(r["dropped_disk_full"] for r in rows) == 1 and sum(r["not_captured_type"] for r in rows) == 1
    assert sum(r["invocations"] for r in rows) == 1


def test_a_multi_model_endpoint_files_each_model_apart(tmp_path: Path) -> None:
    w = writer(tmp_path, target_model_header="X-Amzn-SageMaker-Target-Model",
               target_models={"blue.tar.gz": "churn-blue"})
    w.record(b"1,2", b"0", target="blue.tar.gz", inference_id="1")
    w.record(b"3,4", b"1", target="green.tar.gz", inference_id="2")
    w.record(b"5,6", b"1", target="../etc", inference_id="3")
    w.close()
    root = tmp_path / "store" / "capture" / "ep" / "models"
    assert sorted(p.name for p in root.iterdir()) == ["_unrouted", "churn-blue", "green"]
    [blue] = lines_under(root / "churn-blue" / "AllTraffic")
    assert blue["eventMetadata"]["targetModel"] == "blue.tar.gz"
    batch = parse_capture((next((root / "green").rglob("*.jsonl"))).read_bytes(), "green", ["a", "b"])
    assert batch.columns["a"].to_pylist() == ["3"] and batch.records_malformed == 0


def test_the_middleware_passes_health_checks_and_counts_errors(tmp_path: Path) -> None:
    async def invocations(request: Request) -> Response:
        body = await request.body()
        if body == b"boom":
            return Response("bad", status_code=400)
        return Response("0.5", media_type="text/csv")

    app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]),
                            Route("/ping", lambda r: Response("ok"))])
    middleware = CaptureMiddleware(app, store=str(tmp_path / "store"), endpoint="ep", flush_seconds=30)

    async def traffic() -> None:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/ping")).status_code == 200
            await client.post("/invocations", content=b"1,2", headers={"content-type": "text/csv"})
            await client.post("/invocations", content=b"boom", headers={"content-type": "text/csv"})

    asyncio.run(traffic())
    middleware.writer.close()
    rows = per_minute(read_telemetry(Store(str(tmp_path / "store")), "ep", NOW - timedelta(hours=1),
                                     NOW + timedelta(hours=1)))
    assert sum(r["invocations"] for r in rows) == 2 and sum(r["errors_4xx"] for r in rows) == 1
    assert len(lines_under(tmp_path / "store" / "capture")) == 2


def test_bad_configuration_is_refused_up_front(tmp_path: Path) -> None:
    for options, said in (({"sampling_percentage": 0}, "sampling_percentage"),
                          ({"endpoint": "Bad Name"}, "endpoint name"),
                          ({"capture": "everything"}, "capture")):
        with pytest.raises(UserError, match=said):
            CaptureConfig(store=str(tmp_path), **{"endpoint": "ep", **options})


def test_latency_percentiles_are_within_the_bucket_error_of_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    latencies = rng.lognormal(mean=math.log(0.004), sigma=0.8, size=20_000)
    at = NOW.timestamp()
    halves = [TelemetryAggregator(), TelemetryAggregator()]  # two processes of one endpoint
    for i, seconds in enumerate(latencies):
        halves[i % 2].request(at, "AllTraffic", "", 200, float(seconds))
    store = Store(str(tmp_path / "store"))
    for n, aggregator in enumerate(halves):
        rows = minute_rows("ep", f"w{n}", aggregator.take(), {"cpu_percent": 10.0 * (n + 1)})
        write_rows(store, "ep", f"w{n}", rows)
    [row] = per_minute(read_telemetry(store, "ep", NOW - timedelta(hours=1), NOW + timedelta(hours=1)))
    assert row["invocations"] == 20_000 and row["cpu_percent"] == pytest.approx(15.0)
    for q in (50, 90, 99):
        exact = np.percentile(latencies, q, method="inverted_cdf") * 1000
        assert abs(row[f"latency_p{q}_ms"] / exact - 1) <= math.sqrt(LATENCY_RATIO) - 1 + 1e-12
    assert histogram_percentile(np.zeros(200), 50) is None
    assert latency_bucket(1e-9) == 0 and latency_bucket(1e6) == 199
    # the aggregator folds answers in bulk: the same buckets as one at a time
    spread = np.concatenate([np.geomspace(1e-7, 1e4, 20_000), [0.0, 1e-5, 1e6]])
    assert latency_buckets(spread).tolist() == [latency_bucket(s) for s in spread]


def test_the_endpoint_page_sums_steps_and_breaks_lines_at_gaps(tmp_path: Path) -> None:
    from modelwatch.tasks.endpoint_page import endpoint_telemetry, panels, render_endpoint_page

    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    aggregator = TelemetryAggregator()
    minutes = [m for m in range(60) if not 20 <= m < 40]  # twenty quiet minutes in the hour
    for m in minutes:
        at = (now - timedelta(minutes=60 - m)).timestamp()
        for k in range(m + 1):
            aggregator.request(at, "AllTraffic" if k % 4 else "Canary", "", 200 if k % 10 else 500, 0.002)
    store = Store(str(tmp_path / "store"))
    write_rows(store, "ep", "w", minute_rows("ep", "w", aggregator.take(), {"cpu_percent": 40.0}))
    view = endpoint_telemetry(store, "ep", "m", now)
    expected = {}
    for m in minutes:
        step = (now - timedelta(minutes=60 - m)).replace(minute=(m // 5) * 5)
        expected[step] = expected.get(step, 0) + m + 1
    assert {r["minute"]: r["invocations"] for r in view.day} == expected
    assert view.day_total["invocations"] == sum(m + 1 for m in minutes)
    shares = {t.variant: t.share for t in view.traffic}
    canary = sum(len(range(0, m + 1, 4)) for m in minutes)
    assert shares["Canary"] == pytest.approx(canary / view.day_total["invocations"])
    invocations = panels(view, "day")[0]
    assert len(invocations["series"][0]["polylines"]) == 2  # broken at the quiet minutes
    page = render_endpoint_page(view, model_href="../models/m.html")
    assert "<script>" not in page.split("</main>")[0] and 'data-variant="Canary"' in page

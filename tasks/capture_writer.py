"""The endpoint side of data capture: sampled requests go through a bounded in-memory queue to one
background thread that writes SageMaker capture JSONL, one file per flush interval and hour, into the
store, plus per-minute telemetry. The request path never waits: a full queue, a capture disk above its
threshold or a store that keeps failing drops records, and every drop is counted per minute.

What a killed process loses: the records still queued or buffered since the last flush (at most
`flush_seconds` of traffic) and the telemetry of the current minute. A process that exits normally
(interpreter exit, the ASGI lifespan's shutdown, `close()`) flushes both first.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import re
import socket
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from modelwatch.tasks.capture_records import (
    Encoding,
    capture_side,
    endpoint_record,
    format_inference_time,
)
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import SLUG, Store, check_slug
from modelwatch.tasks.telemetry import HostSampler, TelemetryAggregator, minute_rows, write_rows

CaptureMode = Literal["both", "input", "output"]
INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"  # as InvokeEndpoint's InferenceId travels
TARGET_MODEL_HEADER = "x-amzn-sagemaker-target-model"  # SageMaker's multi-model endpoints' header
CUSTOM_ATTRIBUTES_HEADER = "x-amzn-sagemaker-custom-attributes"
UNROUTED = "_unrouted"  # where records of a multi-model endpoint go whose model has no valid name
_ARCHIVE = re.compile(r"\.tar\.gz$|\.tgz$")


@dataclass(frozen=True)
class CaptureConfig:
    """How an endpoint captures its traffic.

    Parameters
    ----------
    store : str
        The store's root URI: a local folder or ``s3://bucket/prefix``.
    endpoint : str
        The endpoint's name (a slug); records go to ``<capture_uri>/<variant>/YYYY/MM/DD/HH/``.
    variant : str, default "AllTraffic"
        The production variant this process serves.
    sampling_percentage : float, default 100.0
        Share of requests captured, in percent, (0, 100]. Telemetry counts every request.
    capture : {"both", "input", "output"}, default "both"
        Which sides of a request are recorded (SageMaker's CaptureOptions).
    content_types : tuple of str, optional
        Request media types captured (``text/csv``, ...); None captures every request. Requests of
        other types are counted as ``not_captured_type``.
    csv_content_types, json_content_types : tuple of str
        Media types recorded with encoding CSV or JSON; any other body is recorded as BASE64.
    capture_uri : str, optional
        The endpoint's capture root; default ``<store>/capture/<endpoint>``.
    flush_seconds : float, default 60.0
        How often the background writer writes a capture file (and telemetry), in seconds.
    queue_size : int, default 10000
        Records held between flushes; beyond it records are dropped and counted.
    max_disk_percent : float, default 75.0
        Capture stops (records dropped and counted) while the capture disk is fuller than this: the
        local store's disk, or the temporary folder's for an S3 store.
    target_model_header : str, optional
        The request header naming the model of a multi-model endpoint, e.g.
        ``X-Amzn-SageMaker-Target-Model``. Its records carry ``eventMetadata.targetModel`` and go to
        ``<capture_uri>/models/<model>/<variant>/...``.
    target_models : mapping of str to str, optional
        Header value -> registered model name; unmapped values are used as the name (a trailing
        ``.tar.gz`` removed). A value that is no valid name goes to ``models/_unrouted``.
    inference_id_header : str, default "X-Amzn-SageMaker-Inference-Id"
        The request header whose value is recorded as ``eventMetadata.inferenceId`` (the id ground
        truth is joined on).
    storage_options : mapping, optional
        Extra arguments of every S3 write, e.g. ``{"ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "..."}``.
    telemetry : bool, default True
        Write per-minute telemetry under ``<store>/telemetry/<endpoint>/``.
    methods : tuple of str, default ("POST",)
        The HTTP methods of inference requests; others (health checks, say) pass untouched.
    paths : tuple of str, optional
        Path prefixes of inference requests (``/invocations``, ``/predict``); None means any path.

    Examples
    --------
    >>> config = CaptureConfig(store="./modelwatch-store", endpoint="churn", sampling_percentage=20)
    """

    store: str
    endpoint: str
    variant: str = "AllTraffic"
    sampling_percentage: float = 100.0
    capture: CaptureMode = "both"
    content_types: tuple[str, ...] | None = None
    csv_content_types: tuple[str, ...] = ("text/csv",)
    json_content_types: tuple[str, ...] = ("application/json",)
    capture_uri: str | None = None
    flush_seconds: float = 60.0
    queue_size: int = 10_000
    max_disk_percent: float = 75.0
    target_model_header: str | None = None
    target_models: Mapping[str, str] | None = None
    inference_id_header: str = INFERENCE_ID_HEADER
    storage_options: Mapping[str, Any] | None = None
    telemetry: bool = True
    methods: tuple[str, ...] = ("POST",)
    paths: tuple[str, ...] | None = None

    def inference(self, method: str, path: str) -> bool:
        """Whether a request is an inference the middleware observes."""
        return method in self.methods and (self.paths is None or path.startswith(self.paths))

    def __post_init__(self) -> None:
        from modelwatch.tasks.registry import check_variant

        check_slug(self.endpoint, "endpoint name")
        check_variant(self.variant)
        # lists (from JSON or YAML configuration) become tuples; media types compare in lower case
        for name in ("content_types", "csv_content_types", "json_content_types", "methods", "paths"):
            value = getattr(self, name)
            if value is not None:
                lowered = name.endswith("types")
                object.__setattr__(self, name, tuple(v.lower() if lowered else v for v in value))
        if not 0 < self.sampling_percentage <= 100:
            raise UserError(f"sampling_percentage {self.sampling_percentage}: expected (0, 100]")
        if self.capture not in ("both", "input", "output"):
            raise UserError(f"capture {self.capture!r}: expected 'both', 'input' or 'output'")
        if self.flush_seconds <= 0 or self.queue_size < 1:
            raise UserError("flush_seconds must be > 0 and queue_size >= 1")
        if not 0 < self.max_disk_percent <= 100:
            raise UserError(f"max_disk_percent {self.max_disk_percent}: expected (0, 100]")

    @property
    def root(self) -> str:
        return (self.capture_uri or f"{self.store.rstrip('/')}/capture/{self.endpoint}").rstrip("/")

    def model_of(self, target: str | None) -> str:
        """The registered model a target-model header value names ('' for a single-model endpoint)."""
        if self.target_model_header is None:
            return ""
        if not target:
            return UNROUTED
        name = (self.target_models or {}).get(target) or _ARCHIVE.sub("", target)
        return name if SLUG.match(name) else UNROUTED


@dataclass
class Exchange:
    """One sampled request as the request path hands it over: raw bytes, nothing encoded yet."""

    at: float  # epoch seconds when the request arrived
    request_type: str | None
    request: bytes | None
    response_type: str | None
    response: bytes | None
    inference_id: str | None = None
    target: str | None = None
    custom_attributes: str | None = None


@dataclass
class CaptureStats:
    """Totals since the writer started (per-minute figures are in the telemetry)."""

    captured: int = 0
    sampled_out: int = 0
    not_captured_type: int = 0
    dropped_queue_full: int = 0
    dropped_disk_full: int = 0
    dropped_store_failed: int = 0
    files_written: int = 0
    write_errors: list[str] = field(default_factory=list)


class CaptureWriter:
    """Samples, queues and writes an endpoint's capture and telemetry (see the module's docstring).

    Parameters
    ----------
    config : CaptureConfig
        What to capture and where.
    start : bool, default True
        Start the background thread now (else on the first `submit`).

    Examples
    --------
    >>> writer = CaptureWriter(CaptureConfig(store="./store", endpoint="churn"))  # doctest: +SKIP
    >>> writer.record(b"5.1,3.5", b"0.93", seconds=0.004)  # doctest: +SKIP
    """

    def __init__(self, config: CaptureConfig, start: bool = True) -> None:
        self.config = config
        self.stats = CaptureStats()
        self.telemetry = TelemetryAggregator()
        self.writer_id = _writer_id()
        self._store = Store(config.store, write_options=dict(config.storage_options or {}))
        self._capture_store = Store(config.root, write_options=dict(config.storage_options or {}))
        # A deque, not a queue.Queue: appends take no lock and wake nobody; the writer takes what
        # is there on its own clock (the bound is checked without a lock, so it may overshoot by
        # the few requests that race past the check at once).
        self._queue: deque[Exchange] = deque()
        self._share = config.sampling_percentage / 100.0
        self._random = random.random
        self._stop = threading.Event()
        self._flush_now = threading.Event()
        self._flushed = threading.Condition()
        self._flush_rounds = 0
        self._disk_full = False
        self._pending: list[Exchange] = []  # taken from the queue, not written yet
        self._kinds: dict[str | None, Encoding] = {}  # content type -> how its bodies are kept
        self._telemetry_rows: list[dict[str, Any]] = []  # this writer's rows of the current day
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        self._host: HostSampler | None = None
        if start:
            self.start()

    # --- the request path: constant time, never blocks -------------------------------------------
    def decide(self, at: float, content_type: str | None, target: str | None = None) -> bool:
        """Whether to capture a request arriving now: its media type is captured and the sampling
        draw took it. A request that is not is counted (``not_captured_type`` or ``sampled_out``)."""
        if self._thread is None:
            self.start()
        types = self.config.content_types
        if types is not None and _media_type(content_type) not in types:
            self._skipped(at, target, "not_captured_type")
            return False
        if self._share >= 1.0 or self._random() < self._share:
            return True
        self._skipped(at, target, "sampled_out")
        return False

    def submit(self, exchange: Exchange) -> bool:
        """Queue a sampled exchange; False (and counted) when it had to be dropped."""
        if self._disk_full:
            self._skipped(exchange.at, exchange.target, "dropped_disk_full")
            return False
        if len(self._queue) >= self.config.queue_size:
            self._skipped(exchange.at, exchange.target, "dropped_queue_full")
            return False
        self._queue.append(exchange)
        return True

    def answered(self, at: float, target: str | None, status: int, seconds: float) -> None:
        """Record one answered request in the telemetry (every request, sampled or not)."""
        self.telemetry.request(at, self.config.variant, self.config.model_of(target), status, seconds)

    def record(self, request: bytes | str | None, response: bytes | str | None, *,
               request_type: str | None = "text/csv", response_type: str | None = "text/csv",
               inference_id: str | None = None, target: str | None = None, status: int = 200,
               seconds: float | None = None, at: float | None = None) -> bool:
        """Capture one inference from code that is neither an ASGI nor a WSGI app.

        Parameters
        ----------
        request, response : bytes or str, optional
            The bodies as sent and answered.
        request_type, response_type : str, default "text/csv"
            Their content types.
        inference_id : str, optional
            Recorded as ``eventMetadata.inferenceId``.
        target : str, optional
            The model of a multi-model endpoint that answered.
        status : int, default 200
            The HTTP-like status, for the telemetry's error counts.
        seconds : float, optional
            The handler's latency; when given it goes into the telemetry.
        at : float, optional
            Epoch seconds of the request; default now.

        Returns
        -------
        bool
            Whether the record was queued (False: not sampled, or dropped and counted).
        """
        at = time.time() if at is None else at
        if seconds is not None:
            self.answered(at, target, status, seconds)
        if not self.decide(at, request_type, target):
            return False
        return self.submit(Exchange(at, request_type, _bytes(request), response_type, _bytes(response),
                                    inference_id, target))

    def _skipped(self, at: float, target: str | None, why: str) -> None:
        self.telemetry.count(at, self.config.variant, self.config.model_of(target), why)
        setattr(self.stats, why, getattr(self.stats, why) + 1)

    # --- the background writer --------------------------------------------------------------------
    def start(self) -> None:
        with self._started:
            if self._thread is not None:
                return
            self._host = HostSampler(self._disk_path())
            self._disk_full = self._host.disk_percent() > self.config.max_disk_percent
            self._thread = threading.Thread(
                target=self._run, name=f"modelwatch-capture-{self.config.endpoint}", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything submitted so far (and the telemetry up to now); True when done in time."""
        if self._thread is None:
            return True
        with self._flushed:
            target = self._flush_rounds + 1
            self._flush_now.set()
            return self._flushed.wait_for(lambda: self._flush_rounds >= target, timeout=timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush and stop the background thread (idempotent; also run at interpreter exit)."""
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._flush_now.set()
        self._thread.join(timeout)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    def _disk_path(self) -> str:
        if self._capture_store.is_local:
            path = self._capture_store.base
            while not os.path.exists(path):  # the capture folder is made on the first write
                path = os.path.dirname(path)
            return path
        return tempfile.gettempdir()

    def _run(self) -> None:
        next_flush = time.monotonic() + self.config.flush_seconds
        while True:
            stopping = self._stop.is_set()
            if not stopping:  # sleeps until the flush is due, asked for, or a second has passed
                self._flush_now.wait(min(1.0, max(0.0, next_flush - time.monotonic())))
                stopping = self._stop.is_set()
            self._drain()
            self._check_disk()
            forced = self._flush_now.is_set() or stopping
            if forced or time.monotonic() >= next_flush:
                self._flush_now.clear()
                self._drain()
                self._write_capture()
                self._write_telemetry(everything=forced)
                next_flush = time.monotonic() + self.config.flush_seconds
                with self._flushed:
                    self._flush_rounds += 1
                    self._flushed.notify_all()
            if stopping:
                return

    def _drain(self) -> None:
        bound = self.config.queue_size
        while self._queue:
            item = self._queue.popleft()
            if len(self._pending) < bound:
                self._pending.append(item)
            else:  # the store kept failing and its backlog is full
                self._count_lost([item])

    def _check_disk(self) -> None:
        assert self._host is not None
        with contextlib.suppress(OSError):
            self._disk_full = self._host.disk_percent() > self.config.max_disk_percent

    def _write_capture(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        groups: dict[tuple[str, str], list[Exchange]] = {}
        hours: dict[int, str] = {}
        for exchange in batch:
            hour = int(exchange.at // 3600)
            if hour not in hours:
                hours[hour] = datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y/%m/%d/%H")
            model = self.config.model_of(exchange.target)
            groups.setdefault((model, hours[hour]), []).append(exchange)
        failed: list[Exchange] = []
        for (model, hour), exchanges in groups.items():
            prefix = f"models/{model}/" if model else ""
            key = f"{prefix}{self.config.variant}/{hour}/{_file_name()}"
            try:
                times: dict[int, str] = {}
                self._capture_store.write_bytes(key, b"".join(
                    self._line(e, i, times) for e, i in zip(exchanges, event_ids(len(exchanges)),
                                                            strict=True)))
            except Exception as problem:  # the store failed after its own retries: keep, try again
                self.stats.write_errors = [*self.stats.write_errors[-9:], f"{key}: {problem}"]
                failed += exchanges
                continue
            self.stats.files_written += 1
            self.stats.captured += len(exchanges)
            minutes: dict[int, int] = {}
            for exchange in exchanges:
                minutes[int(exchange.at // 60)] = minutes.get(int(exchange.at // 60), 0) + 1
            for minute, n in minutes.items():
                self.telemetry.count(minute * 60.0, self.config.variant, model, "captured", n)
        self._pending = failed + self._pending

    def _count_lost(self, exchanges: list[Exchange]) -> None:
        for exchange in exchanges:
            self._skipped(exchange.at, exchange.target, "dropped_store_failed")

    def _line(self, exchange: Exchange, event_id: str, times: dict[int, str]) -> bytes:
        """One record's JSONL line; `times` caches the inference time per second of a file."""
        config = self.config
        sides: dict[str, Any] = {}
        if config.capture in ("both", "input") and exchange.request is not None:
            sides["endpointInput"] = capture_side("INPUT", exchange.request_type,
                                                  *self._encoded(exchange.request_type, exchange.request))
        if config.capture in ("both", "output") and exchange.response is not None:
            sides["endpointOutput"] = capture_side("OUTPUT", exchange.response_type,
                                                   *self._encoded(exchange.response_type,
                                                                  exchange.response))
        second = int(exchange.at)
        when = times.get(second)
        if when is None:
            when = times[second] = format_inference_time(datetime.fromtimestamp(second, UTC))
        attributes = [exchange.custom_attributes] if exchange.custom_attributes else None
        record = endpoint_record(
            sides, event_id=event_id, inference_time=when, inference_id=exchange.inference_id,
            target_model=exchange.target if config.target_model_header else None,
            custom_attributes=attributes)
        return orjson.dumps(record) + b"\n"

    def _encoded(self, content_type: str | None, body: bytes) -> tuple[str | bytes, Encoding]:
        """A body as its record keeps it: CSV or JSON text by media type (BASE64 when it is not
        UTF-8 after all), else BASE64 of the bytes. Media types are parsed once each."""
        kind = self._kinds.get(content_type)
        if kind is None:
            media = _media_type(content_type)
            kind = self._kinds[content_type] = "CSV" if media in self.config.csv_content_types \
                else "JSON" if media in self.config.json_content_types else "BASE64"
        if kind == "BASE64":
            return body, "BASE64"
        try:
            return body.decode("utf-8"), kind
        except UnicodeDecodeError:  # not text after all: kept whole, as bytes
            return body, "BASE64"

    def _write_telemetry(self, everything: bool) -> None:
        if not self.config.telemetry:
            self.telemetry.take()
            return
        now = datetime.now(UTC)
        before = None if everything else now.replace(second=0, microsecond=0)
        minutes = self.telemetry.take(before)
        if not minutes:
            return
        assert self._host is not None
        rows = minute_rows(self.config.endpoint, self.writer_id, minutes, self._host.sample())
        days = {m[0].date() for m in minutes}
        # a writer's day file holds all its rows of that day: the rows of days still being written
        # are kept; a minute flushed early (flush(), close()) and completed later is merged into one
        self._telemetry_rows = _merge_rows(
            [r for r in self._telemetry_rows if r["minute"].date() >= min(days)], rows)
        try:
            write_rows(self._store, self.config.endpoint, self.writer_id,
                       [r for r in self._telemetry_rows if r["minute"].date() in days])
        except Exception as problem:  # telemetry is rewritten whole next minute: nothing is lost
            self.stats.write_errors = [*self.stats.write_errors[-9:], f"telemetry: {problem}"]


def _merge_rows(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from modelwatch.tasks.telemetry import COUNTS, PERCENTILES, histogram_percentile

    index = {(r["minute"], r["variant"], r["model"]): r for r in old}
    for row in new:
        key = (row["minute"], row["variant"], row["model"])
        if key not in index:
            index[key] = row
            continue
        kept = index[key]
        for name in COUNTS:
            kept[name] += row[name]
        kept["latency_histogram"] = [a + b for a, b in zip(kept["latency_histogram"],
                                                           row["latency_histogram"], strict=True)]
        for q in PERCENTILES:
            seconds = histogram_percentile(kept["latency_histogram"], q)
            kept[f"latency_p{q}_ms"] = None if seconds is None else seconds * 1000
    return sorted(index.values(), key=lambda r: (r["minute"], r["variant"], r["model"]))


def event_ids(n: int) -> list[str]:
    """n random (version 4) UUIDs as text, from one urandom call for a whole file's records."""
    raw = bytearray(os.urandom(16 * n))
    raw[6::16] = bytes((b & 0x0F) | 0x40 for b in raw[6::16])
    raw[8::16] = bytes((b & 0x3F) | 0x80 for b in raw[8::16])
    h = raw.hex()
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-{h[i + 20:i + 32]}"
            for i in range(0, 32 * n, 32)]


def _bytes(body: bytes | str | None) -> bytes | None:
    return body.encode() if isinstance(body, str) else body


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _file_name() -> str:
    now = datetime.now(UTC)
    return f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"


def _writer_id() -> str:
    host = re.sub(r"[^a-z0-9\-]", "-", socket.gethostname().lower())[:30].strip("-") or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

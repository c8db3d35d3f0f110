"""Per-minute endpoint telemetry: invocations, 4xx/5xx, handler latency, capture counts and the host's
CPU, memory, disk (and NVIDIA GPU where present), kept as compact Parquet time series in the store.

Each serving process writes its own file per day, ``telemetry/<endpoint>/YYYY/MM/DD/<writer>.parquet``
(rewritten each minute), so several workers of one endpoint never race on one object; readers merge
them per minute. Latency is a fixed log-bucket histogram (ratio 2^(1/8), so a percentile read from it
is within 4.5 % of the true one) because histograms of several processes add up and percentiles don't.
"""

from __future__ import annotations

import contextlib
import io
import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modelwatch.tasks.store import Store, check_slug

LATENCY_FLOOR = 1e-5  # seconds: the first bucket's upper edge (10 microseconds)
LATENCY_RATIO = 2 ** (1 / 8)
LATENCY_BUCKETS = 200  # up to 1e-5 * 2**(199/8) = about 300 s; slower requests land in the last
_LOG_RATIO = math.log(LATENCY_RATIO)
CAPTURE_COUNTS = ("captured", "sampled_out", "not_captured_type", "dropped_queue_full",
                  "dropped_disk_full", "dropped_store_failed")
COUNTS = ("invocations", "errors_4xx", "errors_5xx", *CAPTURE_COUNTS)
HOST = ("cpu_percent", "memory_percent", "disk_percent", "gpu_percent", "gpu_memory_percent")
PERCENTILES = (50, 90, 99)


def latency_bucket(seconds: float) -> int:
    """The histogram bucket of a latency: 0 holds everything up to LATENCY_FLOOR."""
    if seconds <= LATENCY_FLOOR:
        return 0
    return min(LATENCY_BUCKETS - 1, 1 + int(math.log(seconds / LATENCY_FLOOR) / _LOG_RATIO))


def latency_buckets(seconds: np.ndarray) -> np.ndarray:
    """`latency_bucket` of many latencies at once."""
    seconds = np.asarray(seconds, dtype=float)
    above = np.maximum(seconds, LATENCY_FLOOR) / LATENCY_FLOOR
    index = np.minimum(LATENCY_BUCKETS - 1, 1 + (np.log(above) / _LOG_RATIO).astype(np.int64))
    return np.where(seconds <= LATENCY_FLOOR, 0, index)


def bucket_seconds(index: np.ndarray) -> np.ndarray:
    """The value a bucket stands for: the geometric middle of its edges (bucket 0: the floor)."""
    index = np.asarray(index, dtype=float)
    return np.where(index == 0, LATENCY_FLOOR, LATENCY_FLOOR * LATENCY_RATIO ** (index - 0.5))


def histogram_percentile(counts: np.ndarray, q: float) -> float | None:
    """The q-th percentile (0..100) of the latencies a histogram counts, in seconds; None if empty."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return None
    # the nearest-rank definition: the smallest value with at least q % of the counts at or below it
    rank = max(1, math.ceil(q / 100 * total))
    return float(bucket_seconds(np.searchsorted(np.cumsum(counts), rank)))


@dataclass
class MinuteCounts:
    """What one minute of one (variant, model) saw; updated under the aggregator's lock."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)


class TelemetryAggregator:
    """Counts per minute and (variant, model); `take` hands the finished minutes to the background
    writer. An answered request costs the request path one deque append (atomic, no lock): the
    answers are folded into minutes, vectorised, by whoever takes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # keyed by whole minutes since the epoch: the request path does no datetime work
        self._minutes: dict[tuple[int, str, str], MinuteCounts] = {}
        self._answers: dict[tuple[str, str], deque[tuple[float, int, float]]] = {}

    def _slot(self, minute: int, variant: str, model: str) -> MinuteCounts:
        key = (minute, variant, model)
        slot = self._minutes.get(key)
        if slot is None:
            slot = self._minutes[key] = MinuteCounts()
        return slot

    def request(self, at: float, variant: str, model: str, status: int, seconds: float) -> None:
        """One answered request: its status and its handler's latency in seconds."""
        answers = self._answers.get((variant, model))
        if answers is None:
            answers = self._answers.setdefault((variant, model), deque())
        answers.append((at, status, seconds))

    def _fold(self) -> None:
        """Move the queued answers into their minutes (called under the lock)."""
        for (variant, model), answers in list(self._answers.items()):
            n = len(answers)
            if not n:
                continue
            taken = np.array([answers.popleft() for _ in range(n)], dtype=float)
            minutes = (taken[:, 0] // 60).astype(np.int64)
            status, seconds = taken[:, 1], taken[:, 2]
            buckets = latency_buckets(seconds)
            for minute in np.unique(minutes):
                mine = minutes == minute
                slot = self._slot(int(minute), variant, model)
                slot.counts["invocations"] += int(mine.sum())
                slot.counts["errors_4xx"] += int((mine & (status >= 400) & (status < 500)).sum())
                slot.counts["errors_5xx"] += int((mine & (status >= 500)).sum())
                added = np.bincount(buckets[mine], minlength=LATENCY_BUCKETS)
                slot.latency = (np.asarray(slot.latency, np.int64) + added).tolist()

    def count(self, at: float, variant: str, model: str, what: str, n: int = 1) -> None:
        """Add to one of the capture counts (CAPTURE_COUNTS) of a minute."""
        with self._lock:
            self._slot(_minute(at), variant, model).counts[what] += n

    def take(self, before: datetime | None = None) -> dict[tuple[datetime, str, str], MinuteCounts]:
        """Remove and return the minutes that began before `before` (all of them when None)."""
        limit = None if before is None else int(before.timestamp() // 60)
        with self._lock:
            self._fold()
            keys = [k for k in self._minutes if limit is None or k[0] < limit]
            taken = {k: self._minutes.pop(k) for k in keys}
        return {(datetime.fromtimestamp(k[0] * 60, UTC), k[1], k[2]): v for k, v in taken.items()}


def _minute(at: float) -> int:
    return int(at // 60)


class HostSampler:
    """The host's utilisation, in percent: CPU since the previous sample, memory in use, the disk of
    `disk_path`, and the first NVIDIA GPU's when its management library loads (absent otherwise)."""

    def __init__(self, disk_path: str) -> None:
        import psutil

        self._psutil = psutil
        self.disk_path = disk_path
        psutil.cpu_percent(interval=None)  # starts the interval the first sample measures
        self._gpu = _nvidia_handle()

    def disk_percent(self) -> float:
        return float(self._psutil.disk_usage(self.disk_path).percent)

    def sample(self) -> dict[str, float | None]:
        values: dict[str, float | None] = {
            "cpu_percent": float(self._psutil.cpu_percent(interval=None)),
            "memory_percent": float(self._psutil.virtual_memory().percent),
            "disk_percent": self.disk_percent(),
            "gpu_percent": None, "gpu_memory_percent": None,
        }
        if self._gpu is not None:
            handle, nvml = self._gpu
            with contextlib.suppress(Exception):  # a GPU that went away reports nothing, not an error
                values["gpu_percent"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                values["gpu_memory_percent"] = 100.0 * memory.used / memory.total
        return values


def _nvidia_handle() -> tuple[Any, Any] | None:
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(0), pynvml
    except Exception:  # no library, no driver or no GPU: GPU columns stay empty
        return None


SCHEMA = pa.schema([
    ("minute", pa.timestamp("s", tz="UTC")),
    ("endpoint", pa.string()),
    ("variant", pa.string()),
    ("model", pa.string()),
    ("writer", pa.string()),
    *[(name, pa.int64()) for name in COUNTS],
    *[(f"latency_p{q}_ms", pa.float64()) for q in PERCENTILES],
    ("latency_histogram", pa.list_(pa.int64())),
    *[(name, pa.float64()) for name in HOST],
])


def telemetry_key(endpoint: str, day: datetime, writer: str) -> str:
    return f"telemetry/{check_slug(endpoint, 'endpoint name')}/{day:%Y/%m/%d}/{writer}.parquet"


def minute_rows(endpoint: str, writer: str, minutes: dict[tuple[datetime, str, str], MinuteCounts],
                host: dict[str, float | None]) -> list[dict[str, Any]]:
    """Telemetry rows of finished minutes, with the host sample taken when they were written."""
    rows = []
    for (minute, variant, model), slot in sorted(minutes.items()):
        row: dict[str, Any] = {"minute": minute, "endpoint": endpoint, "variant": variant,
                               "model": model, "writer": writer, **slot.counts}
        for q in PERCENTILES:
            seconds = histogram_percentile(np.asarray(slot.latency), q)
            row[f"latency_p{q}_ms"] = None if seconds is None else seconds * 1000
        row["latency_histogram"] = slot.latency
        row.update(host)
        rows.append(row)
    return rows


def write_rows(store: Store, endpoint: str, writer: str, rows: list[dict[str, Any]]) -> list[str]:
    """Write one Parquet file per day of `rows` (all of this writer's rows of that day), atomically."""
    written = []
    for day in sorted({r["minute"].date() for r in rows}):
        of_day = [r for r in rows if r["minute"].date() == day]
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(of_day, schema=SCHEMA), sink, compression="zstd")
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        written.append(store.write_bytes(telemetry_key(endpoint, moment, writer), sink.getvalue()))
    return written


def read_telemetry(store: Store, endpoint: str, start: datetime, end: datetime) -> pa.Table:
    """Every writer's rows of an endpoint with minutes in [start, end), unmerged."""
    check_slug(endpoint, "endpoint name")
    tables = []
    for day in _days(start, end):
        prefix = f"telemetry/{endpoint}/{day:%Y/%m/%d}"
        for key in store.list(prefix):
            if key.endswith(".parquet"):
                tables.append(pq.read_table(io.BytesIO(store.read_bytes(key)), schema=SCHEMA))
    if not tables:
        return SCHEMA.empty_table()
    table = pa.concat_tables(tables)
    minute = table["minute"].to_numpy(zero_copy_only=False)
    keep = (minute >= np.datetime64(_naive(start), "s")) & (minute < np.datetime64(_naive(end), "s"))
    return table.filter(pa.array(keep))


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _days(start: datetime, end: datetime) -> Iterable[datetime]:
    day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        yield day
        day += timedelta(days=1)


def per_minute(table: pa.Table, by: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows merged over writers (and over variants and models unless `by` names them) per minute."""
    return per_interval(table, 60, by)


def per_interval(table: pa.Table, seconds: int, by: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows merged per interval of `seconds` (a multiple of 60) beginning at its ``minute``: counts
    summed, latency percentiles from the summed histograms, host figures averaged."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        stamp = row["minute"].timestamp()
        start = datetime.fromtimestamp(stamp - stamp % seconds, UTC)
        groups.setdefault((start, *(row[k] for k in by)), []).append(row)
    return [{"minute": key[0], **dict(zip(by, key[1:], strict=True)), **_merged(rows)}
            for key, rows in sorted(groups.items(), key=lambda item: item[0])]


def totals(table: pa.Table, by: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """All rows merged into one (or one per value of the `by` columns), as `per_interval` merges."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    return [{**dict(zip(by, key, strict=True)), **_merged(rows)}
            for key, rows in sorted(groups.items(), key=lambda item: item[0])]


def _merged(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {name: sum(r[name] for r in rows) for name in COUNTS}
    histogram = np.sum([r["latency_histogram"] for r in rows], axis=0)
    for q in PERCENTILES:
        seconds = histogram_percentile(histogram, q)
        out[f"latency_p{q}_ms"] = None if seconds is None else seconds * 1000
    for name in HOST:
        values = [r[name] for r in rows if r[name] is not None]
        out[name] = float(np.mean(values)) if values else None
    return out

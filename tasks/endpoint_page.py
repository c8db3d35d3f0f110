"""An endpoint's telemetry as the dashboard shows it: the last day in 5-minute steps and the last week
in hours (invocations and errors, latency percentiles, host utilisation, capture counts), traffic per
variant and model, drawn as static SVG charts on a page with the dashboard's strict CSP."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
from pydantic import Field

from modelwatch.tasks.documents import OwnDocument
from modelwatch.tasks.store import Store
from modelwatch.tasks.telemetry import per_interval, read_telemetry, totals

DAY_STEP, WEEK_STEP = 300, 3600  # seconds per point of the day and week charts
CHART_W, CHART_H = 520, 170
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 14, 30
# (chart title, unit, [(label, field)]): what each panel draws
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Invocations", "requests per step", [("invocations", "invocations"), ("4xx", "errors_4xx"),
                                          ("5xx", "errors_5xx")]),
    ("Latency", "ms", [("p50", "latency_p50_ms"), ("p90", "latency_p90_ms"), ("p99", "latency_p99_ms")]),
    ("Host utilisation", "%", [("CPU", "cpu_percent"), ("memory", "memory_percent"),
                               ("disk", "disk_percent"), ("GPU", "gpu_percent")]),
    ("Capture", "records per step", [("captured", "captured"), ("sampled out", "sampled_out"),
                                     ("dropped", "dropped")]),
]


class TrafficShare(OwnDocument):
    variant: str
    model: str
    invocations: int
    share: float  # of the endpoint's invocations over the day, 0..1
    errors: int
    latency_p99_ms: float | None = None


class VariantRow(OwnDocument):
    """A production variant's share of a monitor type's latest execution (an A/B test)."""

    monitor_type: str
    window_end: datetime
    variant: str
    records: int
    status: str
    metric_name: str | None = None
    metric: float | None = None
    violation_count: int = 0


def variant_rows(latest: dict[str, Any]) -> list[VariantRow]:
    """Per monitor type (name -> its latest finished ExecutionSummary), one row per variant of that
    execution; a type whose latest execution saw a single variant has none."""
    rows = []
    for monitor_type, entry in latest.items():
        for variant, outcome in (entry.variants if entry is not None else {}).items():
            rows.append(VariantRow(monitor_type=monitor_type, window_end=entry.window_end,
                                   variant=variant, records=outcome.records, status=outcome.status,
                                   metric_name=outcome.metric_name, metric=outcome.metric,
                                   violation_count=outcome.violation_count))
    return rows


class EndpointTelemetry(OwnDocument):
    """What an endpoint page shows (and the model page's summary of each endpoint)."""

    endpoint: str
    model: str
    generated_at: datetime
    day: list[dict[str, Any]] = Field(default_factory=list)  # per DAY_STEP, the last 24 hours
    week: list[dict[str, Any]] = Field(default_factory=list)  # per WEEK_STEP, the last 7 days
    day_total: dict[str, Any] | None = None
    traffic: list[TrafficShare] = Field(default_factory=list)
    variant_quality: list[VariantRow] = Field(default_factory=list)  # the model's latest, per variant


def endpoint_telemetry(store: Store, endpoint: str, model: str, now: datetime) -> EndpointTelemetry:
    """Read an endpoint's last week of telemetry and merge it for the page."""
    week = read_telemetry(store, endpoint, now - timedelta(days=7), now)
    minutes = week["minute"].to_pylist()
    keep = [i for i, m in enumerate(minutes) if m >= now - timedelta(days=1)]
    day = week.take(pa.array(keep, pa.int64()))
    [day_total] = totals(day) if day.num_rows else [None]
    shares = []
    all_calls = day_total["invocations"] if day_total else 0
    for row in totals(day, ("variant", "model")):
        shares.append(TrafficShare(variant=row["variant"], model=row["model"],
                                   invocations=row["invocations"],
                                   share=row["invocations"] / all_calls if all_calls else 0.0,
                                   errors=row["errors_4xx"] + row["errors_5xx"],
                                   latency_p99_ms=row["latency_p99_ms"]))
    return EndpointTelemetry(endpoint=endpoint, model=model, generated_at=now,
                             day=_with_dropped(per_interval(day, DAY_STEP)),
                             week=_with_dropped(per_interval(week, WEEK_STEP)),
                             day_total=day_total, traffic=shares)


def _with_dropped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["dropped"] = row["dropped_queue_full"] + row["dropped_disk_full"] + row["dropped_store_failed"]
    return rows


def chart(title: str, unit: str, lines: list[tuple[str, str]], rows: list[dict[str, Any]],
          start: datetime, end: datetime, step: int) -> dict[str, Any]:
    """Geometry of one multi-line chart over [start, end): a polyline per series, broken where a
    step has no value; `message` when nothing is there to draw."""
    drawn = [(label, name) for label, name in lines if any(r.get(name) is not None for r in rows)]
    base: dict[str, Any] = {"title": title, "unit": unit, "message": None}
    if not rows or not drawn:
        return base | {"message": "No telemetry in this period."}
    top = max(float(r[name]) for r in rows for _l, name in drawn if r.get(name) is not None)
    top = 100.0 if unit == "%" else (top or 1.0)
    plot_w, plot_h = CHART_W - LEFT - RIGHT, CHART_H - TOP - BOTTOM
    span = (end - start).total_seconds()

    def x_of(t: datetime) -> float:
        return LEFT + ((t - start).total_seconds() + step / 2) / span * plot_w

    def y_of(v: float) -> float:
        return TOP + (top - v) / top * plot_h

    series = []
    for n, (label, name) in enumerate(drawn):
        runs: list[list[str]] = [[]]
        previous: datetime | None = None
        for row in rows:
            value = row.get(name)
            gap = previous is not None and (row["minute"] - previous).total_seconds() > step
            if value is None or gap:
                runs.append([])
            if value is not None:
                runs[-1].append(f"{x_of(row['minute']):.1f},{y_of(float(value)):.1f}")
            previous = row["minute"]
        latest = next((r[name] for r in reversed(rows) if r.get(name) is not None), None)
        series.append({"label": label, "css": f"s{n}", "latest": _fmt(latest),
                       "polylines": [" ".join(r) for r in runs if len(r) > 1],
                       "dots": [r[0] for r in runs if len(r) == 1]})
    return base | {
        "width": CHART_W, "height": CHART_H, "left": LEFT, "right": CHART_W - RIGHT,
        "base": CHART_H - BOTTOM, "series": series,
        "grid": [{"y": f"{y_of(v):.1f}", "label_y": f"{y_of(v) + 3:.1f}", "label": _fmt(v)}
                 for v in (0.0, top / 2, top)],
        "first": f"{start:%Y-%m-%d %H:%M}", "last": f"{end:%Y-%m-%d %H:%M}",
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3g}"


def panels(view: EndpointTelemetry, period: str) -> list[dict[str, Any]]:
    """The four charts of the day ("day") or the week ("week")."""
    rows, step, length = (view.day, DAY_STEP, timedelta(days=1)) if period == "day" else \
        (view.week, WEEK_STEP, timedelta(days=7))
    end = view.generated_at
    return [chart(title, unit, lines, rows, end - length, end, step) for title, unit, lines in PANELS]


def render_endpoint_page(view: EndpointTelemetry, model_href: str, index_href: str = "../index.html",
                         *, template: str = "endpoint.html", **extra: Any) -> str:
    """The endpoint's page: the day's totals, traffic per variant and model, day and week charts
    (`template`, one that extends endpoint.html, and `extra` context serve the console)."""
    from modelwatch.tasks.dashboard_html import page_context
    from modelwatch.tasks.html_templates import render

    return render(template, **{**page_context(f"modelwatch — endpoint {view.endpoint}"), **extra},
                  view=view,
                  day=panels(view, "day"), week=panels(view, "week"), model_href=model_href,
                  index_href=index_href)

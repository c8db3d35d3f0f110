"""An execution's report.html, led by the execution's own verdict: its status, then every check it made
(subject, check, value, threshold, verdict), then the pictures each monitor type supplies as charts
and tables. Pages come from the Jinja2 template report.html, carry no script and a strict
Content-Security-Policy; every name from traffic or baselines is escaped by the template."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from modelwatch.tasks.csp import policy
from modelwatch.tasks.documents import Check, Execution, Statistics
from modelwatch.tasks.html_templates import fmt_number, render, static_text, trusted

CHART_W, CHART_H = 360, 170
PAD_L, PAD_R, PAD_T, PAD_B = 44, 10, 10, 30
MAX_CATEGORIES = 12  # bars per categorical chart; the rest is summed as "other"
STYLE = static_text("report.css")
CSP = policy()


class Series(BaseModel):
    """One line or set of bars: its name (legend) and its points (x, y); bars use x as the index."""

    name: str
    points: list[tuple[float, float]]


class Chart(BaseModel):
    """A chart of one thing: `steps` (densities over value ranges), `lines` (curves) or `bars`
    (one group per category, a bar per series)."""

    title: str
    kind: Literal["steps", "lines", "bars"]
    series: list[Series]
    x_label: str = ""
    y_label: str = ""
    categories: list[str] = Field(default_factory=list)
    caption: str = ""
    failed: bool = False


class Table(BaseModel):
    title: str
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""


class Section(BaseModel):
    title: str
    charts: list[Chart] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)
    note: str = ""


class ExecutionReport(BaseModel):
    """What report.html shows, in order: the verdict, the facts of the window, the checks, the
    sections of pictures, the notes."""

    title: str
    monitor_type: str
    status: str
    facts: list[tuple[str, Any]] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    sections: list[Section] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


FACTS = (("files read", "files_read"), ("records read", "records_read"),
         ("rows profiled", "rows_profiled"), ("records malformed", "records_malformed"),
         ("outside the window", "records_outside_window"), ("without a time", "records_without_time"),
         ("violations", "violation_count"))


def window_facts(execution: Execution) -> list[tuple[str, Any]]:
    """The counts an execution recorded, for the report's header."""
    facts: list[tuple[str, Any]] = [("window", f"{execution.window_start:%Y-%m-%d %H:%M} to "
                                               f"{execution.window_end:%Y-%m-%d %H:%M} UTC"),
                                    ("baseline version", execution.model_version)]
    for label, name in FACTS:
        value = getattr(execution, name, None)
        if value is not None:
            facts.append((label, value))
    return facts


def render_report(report: ExecutionReport) -> str:
    """The self-contained HTML page of a report."""
    failed = [c for c in report.checks if not c.passed]
    return render("report.html", title=report.title, csp=CSP, style=trusted(STYLE), report=report,
                  failed=len(failed), checks=[_check_row(c) for c in _ordered(report.checks)],
                  sections=[{"section": s, "charts": [chart_geometry(c) for c in s.charts]}
                            for s in report.sections])


def _ordered(checks: list[Check]) -> list[Check]:
    """Failed checks first, each group in the execution's order."""
    return [c for c in checks if not c.passed] + [c for c in checks if c.passed]


RULE_WORDS = {"at least": "≥", "at most": "≤", "above": ">", "below": "<", "within": "in",
              "none": ""}


def threshold_text(check: Check) -> str:
    """Which values pass, e.g. "≤ 0.1" or "in [-0.1, 0.1]" (an open side is ∞)."""
    if check.passes == "within":
        low = "−∞" if check.threshold is None else fmt_number(check.threshold)
        high = "∞" if check.upper is None else fmt_number(check.upper)
        return f"in [{low}, {high}]"
    if check.threshold is None:
        return ""
    return f"{RULE_WORDS[check.passes]} {fmt_number(check.threshold)}".strip()


def _check_row(check: Check) -> dict[str, Any]:
    threshold = threshold_text(check)
    return {"subject": check.subject or "(window)", "check": check.check,
            "value": "" if check.value is None else fmt_number(check.value),
            "threshold": threshold, "verdict": "Pass" if check.passed else "Violation",
            "passed": check.passed, "description": "" if check.passed else check.description}


# ---- chart geometry (pure: numbers in, SVG coordinates out) ----


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    step = (high - low) / count
    return [low + i * step for i in range(count + 1)]


def chart_geometry(chart: Chart) -> dict[str, Any]:
    """SVG coordinates of a chart in a CHART_W x CHART_H box: polylines, bars, ticks and a legend."""
    inner_w, inner_h = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B
    points = [p for s in chart.series for p in s.points if all(map(math.isfinite, p))]
    geometry: dict[str, Any] = {"chart": chart, "width": CHART_W, "height": CHART_H,
                                "left": PAD_L, "right": CHART_W - PAD_R, "top": PAD_T,
                                "base": CHART_H - PAD_B, "lines": [], "bars": [], "x_ticks": [],
                                "y_ticks": [], "legend": [s.name for s in chart.series]}
    if not points:
        geometry["empty"] = True
        return geometry
    y_high = max(p[1] for p in points) or 1.0
    if chart.kind == "bars":
        groups = max(len(chart.categories), 1)
        group_w = inner_w / groups
        bar_w = group_w * 0.8 / max(len(chart.series), 1)
        for index, series in enumerate(chart.series):
            for x, y in series.points:
                height = inner_h * (y / y_high) if math.isfinite(y) else 0.0
                geometry["bars"].append({
                    "x": round(PAD_L + group_w * x + group_w * 0.1 + bar_w * index, 2),
                    "y": round(PAD_T + inner_h - height, 2), "w": round(bar_w, 2),
                    "h": round(height, 2), "series": index,
                    "tip": f"{series.name}: {chart.categories[int(x)]} {fmt_number(y)}"})
        geometry["x_ticks"] = [{"x": round(PAD_L + group_w * (i + 0.5), 2), "label": c}
                               for i, c in enumerate(chart.categories)]
    else:
        x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
        span = (x_high - x_low) or 1.0

        def sx(x: float) -> float:
            return round(PAD_L + inner_w * (x - x_low) / span, 2)

        def sy(y: float) -> float:
            return round(PAD_T + inner_h * (1 - y / y_high), 2)

        for index, series in enumerate(chart.series):
            coords = [(sx(x), sy(y)) for x, y in series.points if math.isfinite(x) and
                      math.isfinite(y)]
            geometry["lines"].append({"points": " ".join(f"{x},{y}" for x, y in coords),
                                      "series": index, "name": series.name})
        geometry["x_ticks"] = [{"x": sx(t), "label": fmt_number(t)} for t in _ticks(x_low, x_high)]
    geometry["y_ticks"] = [{"y": round(PAD_T + inner_h * (1 - t / y_high), 2),
                            "label": fmt_number(t)} for t in _ticks(0.0, y_high, 2)]
    return geometry


# ---- data quality ----


def _kll_steps(feature: Any) -> list[tuple[float, float]]:
    """A numeric feature's density over its KLL buckets, as step points."""
    numeric = feature.numerical_statistics if feature is not None else None
    buckets = (((numeric.distribution or {}).get("kll") or {}).get("buckets") or []) \
        if numeric is not None else []
    total = sum(float(b.get("count") or 0) for b in buckets)
    steps: list[tuple[float, float]] = []
    for bucket in buckets:
        low, high = float(bucket["lower_bound"]), float(bucket["upper_bound"])
        width = high - low
        density = float(bucket.get("count") or 0) / total / width if total and width > 0 else 0.0
        steps += [(low, density), (high, density)]
    return steps


def _category_shares(feature: Any) -> dict[str, float]:
    strings = feature.string_statistics if feature is not None else None
    buckets = (((strings.distribution or {}).get("categorical") or {}).get("buckets") or []) \
        if strings is not None else []
    total = sum(float(b.get("count") or 0) for b in buckets)
    return {str(b.get("value")): float(b.get("count") or 0) / total for b in buckets} if total else {}


def distribution_chart(name: str, inferred_type: str, baseline: Any, window: Any,
                       caption: str = "", failed: bool = False) -> Chart | None:
    """Baseline against window for one feature: densities over value ranges for numbers, shares of
    the most common values (the rest as "other") for strings; None when neither side has one."""
    if inferred_type in ("Integral", "Fractional"):
        series = [Series(name=side, points=_kll_steps(stats))
                  for side, stats in (("baseline", baseline), ("window", window))]
        if not any(s.points for s in series):
            return None
        return Chart(title=name, kind="steps", series=series, y_label="density",
                     caption=caption, failed=failed)
    if inferred_type == "String":
        base, current = _category_shares(baseline), _category_shares(window)
        if not base and not current:
            return None
        ranked = sorted(set(base) | set(current), key=lambda v: (-max(base.get(v, 0.0),
                                                                    current.get(v, 0.0)), v))
        shown = ranked[:MAX_CATEGORIES]
        categories = list(shown)
        if len(ranked) > len(shown):
            categories.append("other")

        def shares(side: dict[str, float]) -> list[tuple[float, float]]:
            values = [side.get(v, 0.0) for v in shown]
            if len(categories) > len(shown):
                values.append(max(0.0, 1.0 - sum(values)) if side else 0.0)
            return [(float(i), v) for i, v in enumerate(values)]

        return Chart(title=name, kind="bars", categories=categories, y_label="share",
                     series=[Series(name="baseline", points=shares(base)),
                             Series(name="window", points=shares(current))],
                     caption=caption, failed=failed)
    return None


def data_quality_sections(checks: list[Check], baseline: Statistics | None,
                          window: Statistics) -> list[Section]:
    """Per-feature distributions, baseline against window: features with a violation first, then by
    drift distance, largest first."""
    drift: dict[str, Check] = {}
    for c in checks:  # a feature's first drift check (on the file threshold's scale) heads it
        if c.check == "baseline_drift_check":
            drift.setdefault(c.subject, c)
    failing = {c.subject for c in checks if not c.passed}

    def order(feature: Any) -> tuple[int, float]:
        distance = drift.get(feature.name)
        value = distance.value if distance is not None and distance.value is not None else -1.0
        return (0 if feature.name in failing else 1, -value)

    charts = []
    for feature in sorted(window.features, key=order):
        base = baseline.feature(feature.name) if baseline else None
        check = drift.get(feature.name)
        caption = "" if check is None or check.value is None else (
            f"drift {fmt_number(check.value)} ({threshold_text(check)} passes)")
        chart = distribution_chart(feature.name, feature.inferred_type, base, feature, caption,
                                   feature.name in failing)
        if chart is not None:
            charts.append(chart)
    note = "" if baseline is not None else "No baseline statistics: the window's distributions only."
    return [Section(title="Distributions, baseline against window", charts=charts, note=note)]

"""Render the model dashboard as static, self-contained HTML: an index of all models and one page per
model (card, lineage, alerts, executions, trends).

The pages are opened from a store folder or a bucket by people who did not write the content, so
every user-written string (names, card text, URIs, lineage labels) is escaped, only http(s), file
and relative links become hrefs, and each page carries a Content-Security-Policy that allows no
network fetches and no script but ours (pinned by its sha256 hash). Everything is readable without
JavaScript; the script only sorts and filters.

Deep links (index page): ``index.html#sort=<column>[-asc|-desc]&status=<state>&risk=<rating>``,
for example ``index.html#sort=model-desc&status=Alarm&risk=High``. Columns are ``model``,
``version``, ``risk``, ``card``, ``endpoints``, ``batch`` and the four monitor types
(``data-quality`` ...); states are ``Alarm``, ``OK``, ``Inactive``, ``None``; ratings are ``High``,
``Medium``, ``Low``, ``Unknown``. The same parameters are also read from a ``?query`` when there is
no fragment. Sorting or filtering on the page rewrites the fragment, so the view can be shared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from modelwatch.tasks.csp import script_hash
from modelwatch.tasks.dashboard import (
    DashboardRow,
    ExecutionSummary,
    ModelPage,
    MonitorCell,
    MonitorColumn,
    columns_of,
    default_label,
)
from modelwatch.tasks.html_templates import (
    environment,
    fmt_number,
    fmt_time,
    iso,
    render,
    safe_href,
    shorten,
    static_text,
    trusted,
    utc,
)

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SCRIPT",
    "STYLE",
    "render_index",
    "render_model_page",
    "render_rows",
    "safe_href",
    "script_hash",
]

STATES = ("Alarm", "OK", "Inactive", "None")
# Severity order used for sorting: an alarm outranks everything, "no schedule" ranks lowest.
STATE_RANK = {"None": 0, "Inactive": 1, "OK": 2, "Alarm": 3}
RISKS = ("High", "Medium", "Low", "Unknown")
RISK_RANK = {"Unknown": 0, "Low": 1, "Medium": 2, "High": 3}

# The one script (sorting, filtering, deep links) and the stylesheet, in tasks/templates/. The
# script's exact text is hashed into the CSP, so any edit there is picked up automatically.
SCRIPT = static_text("dashboard.js")
STYLE = static_text("dashboard.css")
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {script_hash(SCRIPT)}; style-src 'unsafe-inline'; img-src 'none'; "
    "base-uri 'none'; form-action 'none'"
)


def page_context(title: str) -> dict[str, Any]:
    return {"title": title, "csp": CONTENT_SECURITY_POLICY, "style": trusted(STYLE),
            "script": trusted(SCRIPT)}


def _card_risk(card: dict[str, Any]) -> str:
    from modelwatch.tasks.cards import ModelCard, risk_rating

    return risk_rating(ModelCard.model_validate(card))


def _default_model_href(model: str) -> str:
    return f"models/{quote(model, safe='')}.html"


def _cell(row: DashboardRow, monitor_type: str) -> MonitorCell:
    return row.monitors.get(monitor_type) or MonitorCell()


def _monitor_details(cell: MonitorCell) -> tuple[str, str]:
    """(tooltip, secondary line) of a monitor cell: schedule, last execution, violations."""
    parts = [f"Status: {cell.status}"]
    if cell.in_alarm and cell.alert_raised_at:
        parts.append(f"alert raised {fmt_time(cell.alert_raised_at)}")
    if cell.schedule:
        parts.append(f"schedule {cell.schedule}")
    secondary = []
    if cell.last_execution_at:
        last = f"last execution {fmt_time(cell.last_execution_at)}"
        if cell.last_status:
            last += f" ({cell.last_status})"
        parts.append(last)
        secondary.append(f"last {utc(cell.last_execution_at):%Y-%m-%d %H:%M}")
    if cell.last_violation_count is not None:
        noun = "violation" if cell.last_violation_count == 1 else "violations"
        parts.append(f"{cell.last_violation_count} {noun}")
        secondary.append(f"{cell.last_violation_count} {noun}")
    return "; ".join(parts), " · ".join(secondary)


def _monitor(row: DashboardRow, column: MonitorColumn) -> dict[str, Any]:
    """What a monitor's cell (index) or card (model page) shows."""
    cell = _cell(row, column.name)
    title, secondary = _monitor_details(cell)
    # Sorts by severity, then by when the alarm was raised (or when the monitor last ran).
    when = iso(cell.alert_raised_at) if cell.in_alarm else iso(cell.last_execution_at)
    rank = STATE_RANK["Alarm"] if cell.in_alarm else STATE_RANK.get(cell.status, 0)
    return {"type": column.name, "label": column.label, "cell": cell, "title": title,
            "secondary": secondary, "sort": f"{rank}|{when}", "alarm_note": cell.alarm_note,
            "raised": cell.status == "Alarm" and cell.alert_raised_at is not None}


def _version_sort(version: str | None) -> str:
    digits = re.findall(r"\d+", version or "")
    return digits[-1] if digits else ""


def _states(row: DashboardRow, types: list[str]) -> list[str]:
    """The monitor states of a row, for the status filter (an alarm counts whatever the schedule)."""
    cells = [_cell(row, t) for t in types]
    present = {c.status for c in cells} | ({"Alarm"} if any(c.in_alarm for c in cells) else set())
    return [s for s in STATES if s in present]


def _row_view(row: DashboardRow, href: str, columns: list[MonitorColumn]) -> dict[str, Any]:
    """What the table's row of a model shows (the `model_row` macro of _model_row.html)."""
    return {
        "row": row, "href": href, "statuses": " ".join(_states(row, [c.name for c in columns])),
        "version_sort": _version_sort(row.latest_version),
        "risk_rank": RISK_RANK.get(row.risk_rating, 0),
        "batch_sort": iso(row.latest_batch_job.finished_at) if row.latest_batch_job else "",
        "monitors": [_monitor(row, c) for c in columns],
    }


def render_rows(
    rows: list[DashboardRow],
    model_page_href: Callable[[str], str],
    columns: list[MonitorColumn],
    *,
    endpoint_href: Callable[[str], str],
) -> dict[str, Markup]:
    """Each model's table row as HTML, keyed by model: a server renders them once per dashboard
    version and hands them to `render_index` (``fragments``) for every page and search after."""
    model_row = environment().get_template("_model_row.html").module.model_row  # type: ignore[attr-defined]
    return {row.model: Markup(model_row(_row_view(row, model_page_href(row.model), columns), endpoint_href))
            for row in rows}


def render_index(
    rows: list[DashboardRow],
    generated_at: datetime,
    model_page_href: Callable[[str], str] = _default_model_href,
    columns: list[MonitorColumn] | None = None,
    *,
    endpoint_href: Callable[[str], str] = lambda e: f"endpoints/{e}.html",
    template: str = "index.html",
    fragments: dict[str, Markup] | None = None,
    **extra: Any,
) -> str:
    """The dashboard's index page: one row per model, a column per monitor type, sortable and
    filterable.

    `model_page_href(model)` gives each model's link (default ``models/<model>.html``); `columns` the
    monitor types shown (default: those present in the rows). Stable hooks for tests and scripts:
    table ``#models``, rows ``tr.model-row`` (``data-model``, ``data-risk``, ``data-statuses``),
    selects ``#status-filter`` / ``#risk-filter``, count ``#visible-count``. `template` (one that
    extends index.html) and `extra` context serve the console's fleet page; `fragments` (from
    `render_rows`, with the same hrefs and columns) are the rows already rendered.
    """
    columns = columns if columns is not None else columns_of(rows)
    types = [c.name for c in columns]
    shown = [{"row": row} if fragments else _row_view(row, model_page_href(row.model), columns)
             for row in rows]
    return render(
        template, **{**page_context("modelwatch — model dashboard"), **extra}, rows=shown,
        endpoint_href=endpoint_href, fragments=fragments,
        generated_at=generated_at, columns=columns, states=STATES, risks=RISKS,
        noun="model" if len(rows) == 1 else "models",
        in_alarm=sum(1 for r in rows if any(_cell(r, t).in_alarm for t in types)),
        alarm_cells=sum(1 for r in rows for t in types if _cell(r, t).in_alarm))


# ---- lineage graph ---------------------------------------------------------------------------------

LAYER_OF_KIND = {"dataset": 0, "run": 1, "model": 2, "endpoint": 3, "batch": 3}
LAYER_TITLES = {0: "Data", 1: "Training", 2: "Model versions", 3: "Endpoints & batch jobs"}
NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD, TITLE_H = 220, 46, 80, 16, 16, 26
LABEL_CHARS = 25


def _kind(node: str) -> str:
    prefix = node.split(":", 1)[0] if ":" in node else ""
    return prefix if prefix in LAYER_OF_KIND else "other"


def _label(node: str) -> str:
    return node.split(":", 1)[1] if _kind(node) != "other" else node


def _layers(nodes: list[str], edges: list[tuple[str, str, str]]) -> dict[str, int]:
    """Known kinds sit in fixed columns; anything else goes one column right of its sources."""
    layer = {n: LAYER_OF_KIND.get(_kind(n), 0) for n in nodes}
    unknown = [n for n in nodes if _kind(n) == "other"]
    for _ in range(len(unknown)):  # bounded relaxation: cycles cannot loop forever
        changed = False
        for node in unknown:
            sources = [layer[a] for a, b, _k in edges if b == node and a != node]
            best = max(sources, default=-1) + 1
            if best != layer[node] and best <= max(LAYER_OF_KIND.values()) + 1:
                layer[node], changed = best, True
        if not changed:
            break
    return layer


def _natural(text: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _lineage_graph(lineage: list[dict[str, str]], row: DashboardRow) -> dict[str, Any] | None:
    """The lineage graph's geometry (columns by kind, boxes, curved edges), None without edges."""
    edges: list[tuple[str, str, str]] = []
    for edge in lineage:
        if not isinstance(edge, dict):
            continue
        source, target = edge.get("from"), edge.get("to")
        if isinstance(source, str) and isinstance(target, str) and source and target:
            edges.append((source, target, str(edge.get("kind") or "")))
    if not edges:
        return None
    nodes = list(dict.fromkeys(n for a, b, _k in edges for n in (a, b)))
    layer = _layers(nodes, edges)
    columns = sorted(set(layer.values()))
    # Order each column by the mean position of its sources, which keeps most arrows uncrossed.
    position: dict[str, float] = {}
    by_column: dict[int, list[str]] = {}
    for column in columns:
        members = [n for n in nodes if layer[n] == column]

        def barycenter(node: str) -> float:
            sources = [position[a] for a, b, _k in edges if b == node and a in position]
            return sum(sources) / len(sources) if sources else math.inf

        if column == LAYER_OF_KIND["model"]:
            members.sort(key=_natural)  # versions read top to bottom: v1, v2, v3
        else:
            members.sort(key=lambda n: (barycenter(n), _natural(n)))
        for i, node in enumerate(members):
            position[node] = i
        by_column[column] = members
    tallest = max(len(m) for m in by_column.values())
    height = PAD * 2 + TITLE_H + tallest * NODE_H + (tallest - 1) * ROW_GAP
    width = PAD * 2 + len(columns) * NODE_W + (len(columns) - 1) * COL_GAP
    box: dict[str, tuple[float, float]] = {}
    for ci, column in enumerate(columns):
        members = by_column[column]
        used = len(members) * NODE_H + (len(members) - 1) * ROW_GAP
        top = PAD + TITLE_H + (tallest * NODE_H + (tallest - 1) * ROW_GAP - used) / 2
        for i, node in enumerate(members):
            box[node] = (PAD + ci * (NODE_W + COL_GAP), top + i * (NODE_H + ROW_GAP))

    current = {f"model:{row.model}/v{row.latest_version}"} | {f"endpoint:{e}" for e in row.endpoints}
    if row.latest_batch_job:
        current.add(f"batch:{row.latest_batch_job.job_id}")
    drawn_edges = []
    for source, target, kind in edges:
        (sx, sy), (tx, ty) = box[source], box[target]
        tip = f"{source} → {target}" + (f" ({kind})" if kind else "")
        if layer[target] > layer[source]:
            x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H / 2, tx, ty + NODE_H / 2
            bend = (x2 - x1) / 2
            d = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
            css = "edge"
        elif layer[target] == layer[source]:
            # Same column (e.g. v1 -> v2): an arc bulging to the right of the boxes.
            x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H / 2, tx + NODE_W, ty + NODE_H / 2
            d = f"M{x1:.1f},{y1:.1f} C{x1 + 40:.1f},{y1:.1f} {x2 + 40:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
            css = "edge back"
        else:
            # Backward (e.g. a model feeding a retrain run): from its left side to the target's right.
            x1, y1, x2, y2 = sx, sy + NODE_H / 2, tx + NODE_W, ty + NODE_H / 2
            bend = (x1 - x2) / 2
            d = f"M{x1:.1f},{y1:.1f} C{x1 - bend:.1f},{y1:.1f} {x2 + bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
            css = "edge back"
        drawn_edges.append({"css": css, "d": d, "tip": tip})
    drawn_nodes = []
    for node in nodes:
        x, y = box[node]
        kind = _kind(node)
        drawn_nodes.append({
            "css": f"node kind-{kind}" + (" current" if node in current else ""), "node": node,
            "kind": kind, "label": shorten(_label(node), LABEL_CHARS), "x": f"{x:.1f}",
            "y": f"{y:.1f}", "text_x": f"{x + 10:.1f}", "kind_y": f"{y + 17:.1f}",
            "label_y": f"{y + 35:.1f}"})
    return {
        "width": width, "height": f"{height:.0f}", "node_w": NODE_W, "node_h": NODE_H,
        "titles": [{"x": PAD + ci * (NODE_W + COL_GAP), "y": PAD + 12,
                    "text": LAYER_TITLES.get(column, "Other")} for ci, column in enumerate(columns)],
        "edges": drawn_edges, "nodes": drawn_nodes,
    }


# ---- trends, alerts, executions --------------------------------------------------------------------

CHART_W, CHART_H = 440, 170
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 52, 14, 14, 30


def _trend(column: MonitorColumn, executions: list[ExecutionSummary]) -> dict[str, Any]:
    """A line of each execution's metric over window end (violation counts when no metric is set),
    as the chart's geometry; `message` instead when there is nothing to plot."""
    monitor_type = column.name
    chart: dict[str, Any] = {"monitor_type": monitor_type, "label": column.label,
                             "caption": _headline_caption(column), "message": None}
    runs = sorted((e for e in executions if e.monitor_type == monitor_type), key=lambda e: utc(e.window_end))
    if not runs:
        return chart | {"message": "No executions yet."}
    use_metric = any(e.metric is not None and math.isfinite(e.metric) for e in runs)
    if use_metric:
        points = [(e, float(e.metric)) for e in runs if e.metric is not None and math.isfinite(e.metric)]
        what = "metric"
    else:
        # A failed or empty window has no meaningful violation count; it is left off the line.
        points = [(e, float(e.violation_count)) for e in runs if e.status not in ("Failed", "NoData")]
        what = "violations per execution"
    if not points:
        return chart | {"message": f"{len(runs)} executions, none with a value to plot."}
    times = [utc(e.window_end).timestamp() for e, _v in points]
    values = [v for _e, v in points]
    t0, t1 = min(times), max(times)
    v0 = min(values) if use_metric else 0.0
    v1 = max(values)
    # The headline's threshold is drawn too: the axis reaches it, so a point's side of it shows.
    limit = column.threshold if use_metric and column.threshold is not None else None
    if limit is not None:
        v0, v1 = min(v0, limit), max(v1, limit)
    if v1 == v0:
        v0, v1 = v0 - (abs(v0) * 0.1 or 1), v1 + (abs(v1) * 0.1 or 1)
        if not use_metric:
            v0 = 0.0
    plot_w = CHART_W - CHART_LEFT - CHART_RIGHT
    plot_h = CHART_H - CHART_TOP - CHART_BOTTOM

    def x_of(t: float) -> float:
        return CHART_LEFT + (plot_w / 2 if t1 == t0 else (t - t0) / (t1 - t0) * plot_w)

    def y_of(v: float) -> float:
        return CHART_TOP + (v1 - v) / (v1 - v0) * plot_h

    first, last = utc(runs[0].window_end), utc(runs[-1].window_end)
    coords = [(x_of(t), y_of(v)) for t, v in zip(times, values, strict=True)]
    drawn = []
    for (e, v), (x, y) in zip(points, coords, strict=True):
        css = ("pt-violations" if e.violation_count or e.status == "CompletedWithViolations"
               else "pt-ok" if e.status == "Completed" else "pt-other")
        drawn.append({"css": css, "cx": f"{x:.1f}", "cy": f"{y:.1f}",
                      "tip": f"{fmt_time(e.window_end)}: {what} {fmt_number(v)} ({e.status}, "
                             f"{e.violation_count} violations)"})
    return chart | {
        "what": what, "latest": fmt_number(values[-1]), "runs": len(runs), "width": CHART_W,
        "height": CHART_H, "left": CHART_LEFT, "right": CHART_W - CHART_RIGHT,
        "base": CHART_H - CHART_BOTTOM,
        "grid": [{"y": f"{y_of(v):.1f}", "label_y": f"{y_of(v) + 3:.1f}",
                  "label": fmt_number(round(v, 6))} for v in (v0, (v0 + v1) / 2, v1)],
        "first": f"{first:%Y-%m-%d %H:%M}", "last": f"{last:%Y-%m-%d %H:%M}" if last != first else "",
        "polyline": " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) if len(coords) > 1 else "",
        "threshold": None if limit is None else {"y": f"{y_of(limit):.1f}",
                                                 "label": f"threshold {fmt_number(limit)}"},
        "points": drawn,
    }


def _headline_caption(column: MonitorColumn) -> str:
    """What the trend line measures: the type's headline metric, which way is worse, its threshold."""
    if not column.metric:
        return ""
    said = [column.metric]
    if column.direction:
        said.append(column.direction.replace("-", " "))
    if column.threshold is not None:
        said.append(f"threshold {fmt_number(column.threshold)}")
    return ", ".join(said)


def _report_href(uri: str | None, store_root: str | None, store_href: str) -> str | None:
    """A relative link when the report sits under the dashboard's store, else None (shown as text)."""
    if not uri or not store_root:
        return None

    def local(u: str) -> str:
        return u[len("file://"):] if u.startswith("file://") else u

    root, target = local(store_root).rstrip("/"), local(uri)
    if target.startswith(root + "/"):
        relative = target[len(root) + 1:]
        if all(s not in ("", ".", "..") for s in relative.split("/")):
            return store_href + quote(relative, safe="/")
    return None


RECENT_EXECUTIONS = 25  # rows of the executions table; the trend charts show the whole index


def _window_text(e: ExecutionSummary) -> str:
    start, end = utc(e.window_start), utc(e.window_end)
    return f"{start:%Y-%m-%d %H:%M} → " + (f"{end:%H:%M}" if start.date() == end.date()
                                           else f"{end:%Y-%m-%d %H:%M}")


def render_model_page(
    page: ModelPage,
    index_href: str = "../index.html",
    *,
    store_root: str | None = None,
    store_href: str = "../../",
    endpoints: list[Any] | None = None,
    endpoint_href: Callable[[str], str] = lambda e: f"../endpoints/{e}.html",
    violations: Callable[[ExecutionSummary], list[dict[str, Any]]] | None = None,
    template: str = "model.html",
    **extra: Any,
) -> str:
    """One model's page: status, model card, lineage graph, trends, alert history, executions, and
    the last day's telemetry of each endpoint in `endpoints` (EndpointTelemetry documents).

    Report links: when `store_root` (the store's root URI) is given, a report under it is linked as
    `store_href` + its key; the default fits pages written to <root>/dashboard/models/. Reports
    elsewhere, or without `store_root`, are shown as text: the page never links out to a store.
    `violations(execution)` lists an execution's violations under its count (the console's page);
    `template` (one that extends model.html) and `extra` context serve the console.
    """
    from modelwatch.tasks.card_render import card_view
    from modelwatch.tasks.endpoint_page import panels

    row = page.row
    columns = page.columns or columns_of([row])
    labels = {c.name: c.label for c in columns}
    alerts = [{"entry": a, "label": labels.get(a.monitor_type) or default_label(a.monitor_type)}
              for a in sorted(page.alert_history, key=lambda a: utc(a.at), reverse=True)]
    executions = [{"entry": e, "window": _window_text(e),
                   "label": labels.get(e.monitor_type) or default_label(e.monitor_type),
                   "report_href": _report_href(e.report_uri, store_root, store_href),
                   "violations": violations(e) if violations and e.violation_count else []}
                  for e in page.executions[:RECENT_EXECUTIONS]]
    return render(
        template, **{**page_context(f"modelwatch — {row.model}"), **extra}, page=page, row=row,
        endpoint_href=endpoint_href,
        index_href=index_href, monitors=[_monitor(row, c) for c in columns],
        card_view=card_view(page.card, row.risk_rating) if page.card else None,
        latest_card_view=card_view(page.latest_card, _card_risk(page.latest_card))
        if page.latest_card else None,
        lineage_graph=_lineage_graph(page.lineage, row),
        trends=[_trend(c, page.executions) for c in columns], alerts=alerts,
        executions=executions, endpoint_views=[
            {"view": v, "href": endpoint_href(v.endpoint), "charts": panels(v, "day")[:2]}
            for v in endpoints or []])

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

import html
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

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

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SCRIPT",
    "render_index",
    "render_model_page",
    "safe_href",
    "script_hash",
]

STATES = ("Alarm", "OK", "Inactive", "None")
# Severity order used for sorting: an alarm outranks everything, "no schedule" ranks lowest.
STATE_RANK = {"None": 0, "Inactive": 1, "OK": 2, "Alarm": 3}
RISKS = ("High", "Medium", "Low", "Unknown")
RISK_RANK = {"Unknown": 0, "Low": 1, "Medium": 2, "High": 3}

# ---- the one script (sorting, filtering, deep links) ----------------------------------------------
# Its exact text is hashed into the CSP, so any edit here is picked up automatically.
SCRIPT = """
(function () {
  "use strict";
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var modelTable = document.getElementById("models");
  var statusSelect = document.getElementById("status-filter");
  var riskSelect = document.getElementById("risk-filter");
  var originalOrder = modelTable ? Array.prototype.slice.call(modelTable.tBodies[0].rows) : [];

  function sortValue(cell, type) {
    if (!cell) { return null; }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (raw === "") { return null; }
    if (type === "number") { var n = parseFloat(raw); return isNaN(n) ? null : n; }
    if (type === "date") { var t = Date.parse(raw); return isNaN(t) ? null : t; }
    return raw;
  }

  function headers(table) {
    return Array.prototype.slice.call(table.querySelectorAll("thead th[data-key]"));
  }

  function sortTable(table, key, dir) {
    var th = headers(table).filter(function (h) { return h.getAttribute("data-key") === key; })[0];
    if (!th) { return false; }
    var index = th.cellIndex;
    var type = th.getAttribute("data-type") || "text";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return { row: row, i: i, v: sortValue(row.cells[index], type) };
    });
    rows.sort(function (a, b) {
      // Empty cells stay at the bottom whichever way the column is sorted.
      if (a.v === null || b.v === null) {
        return a.v === b.v ? a.i - b.i : (a.v === null ? 1 : -1);
      }
      var c = type === "text" ? collator.compare(a.v, b.v) : a.v - b.v;
      return (dir === "desc" ? -c : c) || a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    headers(table).forEach(function (h) {
      if (h === th) { h.setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending"); }
      else { h.removeAttribute("aria-sort"); }
    });
    table.setAttribute("data-sort-key", key);
    table.setAttribute("data-sort-dir", dir);
    return true;
  }

  function unsort(table) {
    var body = table.tBodies[0];
    originalOrder.forEach(function (row) { body.appendChild(row); });
    headers(table).forEach(function (h) { h.removeAttribute("aria-sort"); });
    table.removeAttribute("data-sort-key");
    table.removeAttribute("data-sort-dir");
  }

  function applyFilters() {
    if (!modelTable) { return; }
    var status = statusSelect ? statusSelect.value : "";
    var risk = riskSelect ? riskSelect.value : "";
    var rows = modelTable.querySelectorAll("tbody tr.model-row");
    var shown = 0;
    Array.prototype.forEach.call(rows, function (row) {
      var states = (row.getAttribute("data-statuses") || "").split(" ");
      var visible = (!status || states.indexOf(status) >= 0) &&
        (!risk || row.getAttribute("data-risk") === risk);
      row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    var count = document.getElementById("visible-count");
    if (count) { count.textContent = shown + " of " + rows.length + " models"; }
    var none = document.getElementById("no-match");
    if (none) { none.hidden = shown !== 0 || rows.length === 0; }
  }

  function hasOption(select, value) {
    return !!select && value !== null &&
      Array.prototype.some.call(select.options, function (o) { return o.value === value; });
  }

  function readState() {
    var text = location.hash.replace(/^#/, "") || location.search.replace(/^\\?/, "");
    return new URLSearchParams(text);
  }

  function applyState() {
    var params = readState();
    [[statusSelect, "status"], [riskSelect, "risk"]].forEach(function (pair) {
      var value = params.get(pair[1]);
      if (pair[0]) { pair[0].value = hasOption(pair[0], value) ? value : ""; }
    });
    if (modelTable) {
      var match = /^(.*?)(?:-(asc|desc))?$/.exec(params.get("sort") || "");
      if (!match[1] || !sortTable(modelTable, match[1], match[2] || "asc")) { unsort(modelTable); }
    }
    applyFilters();
  }

  function writeState() {
    var params = new URLSearchParams();
    var key = modelTable.getAttribute("data-sort-key");
    if (key) { params.set("sort", key + "-" + modelTable.getAttribute("data-sort-dir")); }
    if (statusSelect && statusSelect.value) { params.set("status", statusSelect.value); }
    if (riskSelect && riskSelect.value) { params.set("risk", riskSelect.value); }
    var text = params.toString();
    try {
      history.replaceState(null, "", text ? "#" + text : location.pathname + location.search);
    } catch (e) {
      // Some browsers refuse history updates on file: pages; the view itself is already updated.
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    headers(table).forEach(function (th) {
      // Buttons are added here, not in the HTML, so a page without JavaScript shows no dead controls.
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) { button.appendChild(th.firstChild); }
      th.appendChild(button);
      button.addEventListener("click", function () {
        var key = th.getAttribute("data-key");
        var again = table.getAttribute("data-sort-key") === key &&
          table.getAttribute("data-sort-dir") === "asc";
        sortTable(table, key, again ? "desc" : "asc");
        if (table === modelTable) { writeState(); }
      });
    });
  });

  var toolbar = document.getElementById("filters");
  if (toolbar) { toolbar.hidden = false; }
  [statusSelect, riskSelect].forEach(function (select) {
    if (select) { select.addEventListener("change", function () { applyFilters(); writeState(); }); }
  });
  window.addEventListener("hashchange", applyState);
  if (modelTable) { applyState(); }
}());
"""


# No fetches of any kind (default-src 'none', img-src 'none'), only our hashed script, inline
# styles for the stylesheet and the bar widths; base-uri/form-action close the remaining gaps.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {script_hash(SCRIPT)}; style-src 'unsafe-inline'; img-src 'none'; "
    "base-uri 'none'; form-action 'none'"
)

STYLE = """
:root {
  --fg: #1f2933; --muted: #616e7c; --line: #e4e7eb; --bg: #f5f7fa; --panel: #fff; --accent: #2563eb;
  --none-bg: #eef0f3; --none-fg: #52606d; --inactive-bg: #fff4d6; --inactive-fg: #8a5a00;
  --ok-bg: #e3f7ea; --ok-fg: #17663a; --alarm-bg: #fde4e4; --alarm-fg: #a61b1b;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif;
  color: var(--fg); background: var(--bg); }
header.top { background: #111827; color: #f9fafb; padding: 14px 28px; display: flex; align-items: baseline;
  gap: 16px; flex-wrap: wrap; }
header.top .brand { font-weight: 700; letter-spacing: .02em; }
header.top a { color: #bfdbfe; }
header.top .meta { color: #9ca3af; font-size: 13px; margin-left: auto; }
main { padding: 20px 28px 40px; max-width: 1500px; margin: 0 auto; }
h1 { font-size: 22px; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 17px; margin: 28px 0 10px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
h4 { font-size: 14px; margin: 14px 0 6px; }
h5 { font-size: 13px; margin: 12px 0 4px; color: var(--muted); }
a { color: var(--accent); }
.muted, .sub { color: var(--muted); }
.sub { display: block; font-size: 12px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px; }
.tiles { display: flex; gap: 12px; flex-wrap: wrap; margin: 4px 0 18px; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px;
  min-width: 150px; }
.tile .n { font-size: 24px; font-weight: 700; display: block; }
.tile.alarm .n { color: var(--alarm-fg); }
.toolbar { display: flex; gap: 18px; align-items: center; flex-wrap: wrap; margin: 0 0 10px; }
.toolbar label { font-weight: 600; }
.toolbar select { margin-left: 6px; padding: 4px 6px; border: 1px solid #cbd2d9; border-radius: 6px;
  background: #fff; font: inherit; }
.legend { display: flex; gap: 6px; align-items: center; margin-left: auto; }
.table-wrap { overflow-x: auto; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
tbody tr:last-child td { border-bottom: none; }
th { background: #f9fafb; font-size: 12px; text-transform: uppercase; letter-spacing: .03em;
  color: var(--muted); white-space: nowrap; position: sticky; top: 0; }
th .sort { all: inherit; cursor: pointer; padding: 0; border: 0; background: none; }
th .sort::after { content: " \\2195"; opacity: 0; }
th .sort:hover::after, th .sort:focus-visible::after { opacity: .5; }
th[aria-sort=ascending] .sort::after { content: " \\25B2"; opacity: 1; }
th[aria-sort=descending] .sort::after { content: " \\25BC"; opacity: 1; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.model-row td.model a { font-weight: 600; }
.chip { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600;
  background: var(--none-bg); color: var(--none-fg); white-space: nowrap; }
.chip.plain { font-weight: 500; background: #eef2ff; color: #3730a3; margin: 0 4px 2px 0;
  border-radius: 6px; }
.state-none { background: var(--none-bg); color: var(--none-fg); }
.state-inactive { background: var(--inactive-bg); color: var(--inactive-fg); }
.state-ok { background: var(--ok-bg); color: var(--ok-fg); }
.state-alarm { background: var(--alarm-bg); color: var(--alarm-fg); }
table#models { font-size: 13px; }
td.monitor { min-width: 130px; }
td.monitor .state { font-weight: 700; white-space: nowrap; }
td.monitor.raised .state::before { content: "\\25CF  Alarm since"; display: block; font-size: 11px;
  text-transform: uppercase; letter-spacing: .04em; }
th.monitor-col { white-space: normal; min-width: 110px; }
tr.model-row td.model { white-space: nowrap; }
td.endpoints { max-width: 220px; }
td.endpoints .chip { white-space: normal; overflow-wrap: anywhere; }
td.batch .sub { white-space: nowrap; }
td.monitor .sub { color: inherit; opacity: .8; }
.risk-high { background: var(--alarm-bg); color: var(--alarm-fg); }
.risk-medium { background: var(--inactive-bg); color: var(--inactive-fg); }
.risk-low { background: var(--ok-bg); color: var(--ok-fg); }
.status-completed { background: var(--ok-bg); color: var(--ok-fg); }
.status-completedwithviolations, .status-failed { background: var(--alarm-bg); color: var(--alarm-fg); }
.status-approved { background: var(--ok-bg); color: var(--ok-fg); }
.status-pendingreview, .status-draft, .status-inprogress {
  background: var(--inactive-bg); color: var(--inactive-fg); }
.empty { color: var(--muted); font-style: italic; margin: 8px 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 14px; }
.grid.trends { grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); }
.panel > :first-child { margin-top: 0; }
.trend-panel h3 { margin: 0 0 2px; }
.monitor-card { border-radius: 8px; padding: 10px 14px; }
.monitor-card .name { font-size: 12px; text-transform: uppercase; letter-spacing: .03em; font-weight: 600; }
.monitor-card .state { font-size: 17px; font-weight: 700; display: block; }
dl.kv { display: grid; grid-template-columns: minmax(140px, max-content) 1fr; gap: 4px 18px; margin: 0; }
dl.kv dt { color: var(--muted); font-weight: 600; }
dl.kv dd { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
dl.kv dd dl.kv { border-left: 3px solid var(--line); padding-left: 10px; }
ul.plain { margin: 0; padding-left: 18px; }
.card-section { border-top: 1px solid var(--line); padding-top: 4px; }
.card-section:first-of-type { border-top: none; }
table.inner { width: auto; min-width: 50%; margin: 4px 0 10px; border: 1px solid var(--line); }
table.inner th { position: static; }
table.matrix td { text-align: right; font-variant-numeric: tabular-nums; }
.bar { display: inline-block; height: 10px; background: #93c5fd; border-radius: 2px; vertical-align: middle; }
.wrap { overflow-wrap: anywhere; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif;
  fill: #1f2933; }
svg.trend { width: 100%; max-width: 600px; }
svg .node rect { stroke-width: 1.5; }
svg .node .kind { font-size: 10px; text-transform: uppercase; letter-spacing: .06em; fill: #52606d; }
svg .node .label { font-weight: 600; }
svg .kind-dataset rect { fill: #eff6ff; stroke: #60a5fa; }
svg .kind-run rect { fill: #f5f3ff; stroke: #a78bfa; }
svg .kind-model rect { fill: #ecfdf5; stroke: #34d399; }
svg .kind-endpoint rect { fill: #fff7ed; stroke: #fb923c; }
svg .kind-batch rect { fill: #fefce8; stroke: #facc15; }
svg .kind-other rect { fill: #f3f4f6; stroke: #9ca3af; }
svg .node.current rect { stroke: #111827; stroke-width: 2.5; }
svg .edge { fill: none; stroke: #9aa5b1; stroke-width: 1.5; }
svg .edge.back { stroke-dasharray: 5 4; }
svg .arrowhead { fill: #9aa5b1; }
svg .column-title { font-size: 11px; font-weight: 600; fill: #616e7c; text-transform: uppercase;
  letter-spacing: .06em; }
svg .axis { stroke: #cbd2d9; stroke-width: 1; }
svg .grid-line { stroke: #eef0f3; stroke-width: 1; }
svg .tick { font-size: 10px; fill: #616e7c; }
svg .series { fill: none; stroke: #2563eb; stroke-width: 2; }
svg .pt { stroke: #fff; stroke-width: 1.5; }
svg .pt-ok { fill: #17663a; }
svg .pt-violations { fill: #dc2626; }
svg .pt-other { fill: #9aa5b1; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
code { font-size: 12px; background: #eef0f3; padding: 1px 4px; border-radius: 4px; }
"""


# ---- small helpers ------------------------------------------------------------------------------

def esc(value: Any) -> str:
    """Escape any value for HTML text or a double-quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
# Browsers drop ASCII whitespace and control characters inside a URL before reading its scheme
# ("java\tscript:" is javascript:), so the scheme is judged on the URL without them.
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]")
SAFE_SCHEMES = frozenset({"http", "https", "file"})


def safe_href(url: Any) -> str | None:
    """The URL if it may become an href (http, https, file or relative), else None."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    cleaned = _URL_NOISE.sub("", url)
    if not cleaned or cleaned.startswith("\\") or cleaned.startswith("/\\"):
        return None
    match = _SCHEME.match(cleaned)
    if match and match.group(1).lower() not in SAFE_SCHEMES:
        return None
    return url


def link(url: Any, text: Any = None, *, css: str = "") -> str:
    """An <a> when the URL is safe, else the escaped text (so hostile URLs stay visible, inert)."""
    label = esc(url if text is None else text)
    href = safe_href(url)
    if href is None:
        return f'<span class="wrap">{label}</span>'
    external = ' rel="noopener noreferrer"' if href.lower().startswith(("http:", "https:")) else ""
    css_attr = f' class="{esc(css)}"' if css else ""
    return f'<a href="{esc(href)}"{css_attr}{external}>{label}</a>'


_URL_LIKE = re.compile(r"^(https?|file)://\S+$", re.IGNORECASE)


def text_or_link(value: str) -> str:
    """Card strings that are whole http(s)/file URLs become links; everything else is text."""
    return link(value) if _URL_LIKE.match(value.strip()) else esc(value)


def utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (the store writes UTC everywhere)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def fmt_time(moment: datetime | None) -> str:
    return utc(moment).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def iso(moment: datetime | None) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def fmt_number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 10_000 or abs(value) < 0.001):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def shorten(text: str, limit: int) -> str:
    """Keep both ends of a long label: URIs differ at the end, names at the start."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 3
    tail = limit - 1 - head
    return f"{text[:head]}…{text[-tail:]}"


def humanize(key: Any) -> str:
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def css_token(value: Any) -> str:
    """A class-name fragment from a status word ("CompletedWithViolations" -> "completedwithviolations")."""
    return re.sub(r"[^a-z0-9]", "", str(value).lower())


def chip(text: Any, css: str = "") -> str:
    return f'<span class="chip {esc(css)}">{esc(text)}</span>'


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CONTENT_SECURITY_POLICY)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def _th(label: str, key: str, kind: str = "text", css: str = "") -> str:
    css_attr = f' class="{css}"' if css else ""
    return f'<th scope="col" data-key="{esc(key)}" data-type="{kind}"{css_attr}>{esc(label)}</th>'


# ---- index ----------------------------------------------------------------------------------------

def _default_model_href(model: str) -> str:
    return f"models/{quote(model, safe='')}.html"


def _cell(row: DashboardRow, monitor_type: str) -> MonitorCell:
    return row.monitors.get(monitor_type) or MonitorCell()


def _monitor_details(cell: MonitorCell) -> tuple[str, str]:
    """(tooltip, secondary line) of a monitor cell: schedule, last execution, violations."""
    parts = [f"Status: {cell.status}"]
    if cell.status == "Alarm" and cell.alert_raised_at:
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


def _monitor_td(cell: MonitorCell, monitor_type: str) -> str:
    title, secondary = _monitor_details(cell)
    # Sorts by severity, then by when the alarm was raised (or when the monitor last ran).
    when = iso(cell.alert_raised_at) if cell.status == "Alarm" else iso(cell.last_execution_at)
    sort_key = f"{STATE_RANK.get(cell.status, 0)}|{when}"
    sub = f'<span class="sub">{esc(secondary)}</span>' if secondary else ""
    raised = " raised" if cell.status == "Alarm" and cell.alert_raised_at else ""
    return (
        f'<td class="monitor state-{cell.status.lower()}{raised}" data-monitor="{esc(monitor_type)}" '
        f'data-state="{esc(cell.status)}" data-sort="{esc(sort_key)}" title="{esc(title)}">'
        f'<span class="state">{esc(cell.display)}</span>{sub}</td>'
    )


def _version_sort(version: str | None) -> str:
    digits = re.findall(r"\d+", version or "")
    return digits[-1] if digits else ""


def _states(row: DashboardRow, types: list[str]) -> list[str]:
    present = {_cell(row, t).status for t in types}
    return [s for s in STATES if s in present]


def _index_row(row: DashboardRow, href: str, types: list[str]) -> str:
    statuses = " ".join(_states(row, types))
    problem = f'<span class="sub">{esc(row.problem_type)}</span>' if row.problem_type else ""
    endpoints = "".join(chip(e, "plain") for e in row.endpoints) or '<span class="muted">—</span>'
    if row.latest_batch_job:
        job = row.latest_batch_job
        finished = f'<span class="sub">{esc(fmt_time(job.finished_at))}</span>' if job.finished_at else ""
        batch = (f'<span class="wrap">{esc(job.job_id)}</span> '
                 f'{chip(job.status, "status-" + css_token(job.status))}{finished}')
        batch_sort = iso(job.finished_at)
    else:
        batch, batch_sort = '<span class="muted">—</span>', ""
    card = (chip(row.card_status, "status-" + css_token(row.card_status)) if row.card_status
            else '<span class="muted">no card</span>')
    cells = [
        f'<td class="model" data-sort="{esc(row.model)}">{link(href, row.model)}{problem}</td>',
        f'<td class="num" data-sort="{esc(_version_sort(row.latest_version))}">'
        f'{esc(row.latest_version or "—")}</td>',
        f'<td data-sort="{RISK_RANK.get(row.risk_rating, 0)}">'
        f'{chip(row.risk_rating, "risk-" + row.risk_rating.lower())}</td>',
        f'<td data-sort="{esc(row.card_status or "")}">{card}</td>',
        f'<td class="endpoints" data-sort="{esc(", ".join(row.endpoints))}">{endpoints}</td>',
        f'<td class="batch" data-sort="{esc(batch_sort)}">{batch}</td>',
        *(_monitor_td(_cell(row, t), t) for t in types),
    ]
    return (
        f'<tr class="model-row" data-model="{esc(row.model)}" data-risk="{esc(row.risk_rating)}" '
        f'data-statuses="{esc(statuses)}">' + "".join(cells) + "</tr>"
    )


def _options(values: Iterable[str], all_label: str) -> str:
    options = [f'<option value="">{esc(all_label)}</option>']
    options += [f'<option value="{esc(v)}">{esc(v)}</option>' for v in values]
    return "".join(options)


def render_index(
    rows: list[DashboardRow],
    generated_at: datetime,
    model_page_href: Callable[[str], str] = _default_model_href,
    columns: list[MonitorColumn] | None = None,
) -> str:
    """The dashboard's index page: one row per model, a column per monitor type, sortable and
    filterable.

    `model_page_href(model)` gives each model's link (default ``models/<model>.html``); `columns` the
    monitor types shown (default: those present in the rows). Stable hooks
    for tests and scripts: table ``#models``, rows ``tr.model-row`` (``data-model``, ``data-risk``,
    ``data-statuses``), selects ``#status-filter`` / ``#risk-filter``, count ``#visible-count``.
    """
    columns = columns if columns is not None else columns_of(rows)
    types = [c.name for c in columns]
    in_alarm = sum(1 for r in rows if any(_cell(r, t).status == "Alarm" for t in types))
    alarm_cells = sum(1 for r in rows for t in types if _cell(r, t).status == "Alarm")
    noun = "model" if len(rows) == 1 else "models"
    header = (
        '<header class="top"><span class="brand">modelwatch</span><span>Model dashboard</span>'
        f'<span class="meta">generated {esc(fmt_time(generated_at))}</span></header>'
    )
    tiles = (
        '<div class="tiles">'
        f'<div class="tile" id="count-models"><span class="n">{len(rows)}</span>{noun}</div>'
        f'<div class="tile{" alarm" if in_alarm else ""}" id="count-alarm"><span class="n">{in_alarm}</span>'
        "models in alarm</div>"
        f'<div class="tile"><span class="n">{alarm_cells}</span>monitors in alarm</div>'
        "</div>"
    )
    legend = "".join(chip(s, f"state-{s.lower()}") for s in STATES)
    toolbar = (
        '<div class="toolbar" id="filters" hidden>'
        f'<label>Status <select id="status-filter">{_options(STATES, "any")}</select></label>'
        f'<label>Risk <select id="risk-filter">{_options(RISKS, "any")}</select></label>'
        f'<span class="legend"><span class="muted">Monitor states:</span>{legend}</span>'
        "</div>"
    )
    head = "".join([
        _th("Model", "model"), _th("Version", "version", "number"), _th("Risk", "risk", "number"),
        _th("Card", "card"), _th("Endpoints", "endpoints"), _th("Latest batch job", "batch", "date"),
        *(_th(c.label, c.name, css="monitor-col") for c in columns),
    ])
    body_rows = "\n".join(_index_row(r, model_page_href(r.model), types) for r in rows)
    empty = "" if rows else '<p class="empty">No registered models yet.</p>'
    body = (
        f"{header}\n<main>\n<h1>Models</h1>\n{tiles}\n{toolbar}\n"
        f'<p class="muted"><span id="visible-count">{len(rows)} {noun}</span></p>\n'
        f'<div class="table-wrap"><table id="models" class="sortable" data-deeplink="true">'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body_rows}\n</tbody></table></div>\n"
        f'{empty}<p class="empty" id="no-match" hidden>No model matches these filters.</p>\n'
        "<footer>Monitor cells show <b>None</b> (no schedule), <b>Inactive</b> (schedule paused), "
        "<b>OK</b>, or the time an alert was raised. Link to a view with "
        "<code>#sort=&lt;column&gt;-desc&amp;status=Alarm&amp;risk=High</code>.</footer>\n</main>"
    )
    return _page("modelwatch — model dashboard", body)


# ---- model card -----------------------------------------------------------------------------------

CARD_SECTIONS = (
    ("model_overview", "Overview"),
    ("intended_uses", "Intended uses"),
    ("business_details", "Business details"),
    ("training_details", "Training details"),
    ("evaluation_details", "Evaluation"),
    ("additional_information", "Additional information"),
)
MAX_DEPTH = 6


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | datetime)


def _scalar(value: Any) -> str:
    if value is None:
        return '<span class="muted">—</span>'
    if isinstance(value, str):
        return text_or_link(value)
    if isinstance(value, datetime):  # cards loaded in Python mode carry datetimes, not strings
        return esc(fmt_time(value))
    return esc(fmt_number(value))


def _name_value_table(items: list[dict[str, Any]]) -> str:
    """Training metrics and hyper-parameters: [{name, value, notes?}] as a small table."""
    has_notes = any(i.get("notes") for i in items)
    head = "<tr><th>Name</th><th>Value</th>" + ("<th>Notes</th>" if has_notes else "") + "</tr>"
    body = "".join(
        f"<tr><td>{esc(i.get('name'))}</td><td class=\"num\">{_value(i.get('value'), MAX_DEPTH)}</td>"
        + (f"<td>{_value(i.get('notes'), MAX_DEPTH)}</td>" if has_notes else "") + "</tr>"
        for i in items
    )
    return f'<table class="inner"><thead>{head}</thead><tbody>{body}</tbody></table>'


def _value(value: Any, depth: int = 0) -> str:
    """Any card value as HTML: scalars as text, lists as lists or tables, objects as <dl>."""
    if _is_scalar(value):
        return _scalar(value)
    if depth >= MAX_DEPTH:
        return esc(repr(value))
    if isinstance(value, list):
        if not value:
            return '<span class="muted">—</span>'
        if all(isinstance(v, dict) and "name" in v and "value" in v for v in value):
            return _name_value_table(value)
        if all(_is_scalar(v) for v in value):
            return '<ul class="plain">' + "".join(f"<li>{_scalar(v)}</li>" for v in value) + "</ul>"
        return '<ul class="plain">' + "".join(f"<li>{_value(v, depth + 1)}</li>" for v in value) + "</ul>"
    if isinstance(value, dict):
        return _dl(value, depth + 1)
    return esc(value)


def _dl(mapping: dict[str, Any], depth: int = 0, special: dict[str, str] | None = None) -> str:
    if not mapping:
        return '<p class="empty">Not provided.</p>'
    items = []
    for key, value in mapping.items():
        rendered = (special or {}).get(key)
        items.append(f"<dt>{esc(humanize(key))}</dt><dd>{rendered or _value(value, depth)}</dd>")
    return '<dl class="kv">' + "".join(items) + "</dl>"


def _metric_value(metric: dict[str, Any]) -> str:
    """One metric of an evaluation metric group: simple, bar chart, matrix or linear graph."""
    kind, value = metric.get("type"), metric.get("value")
    if kind == "bar_chart" and isinstance(value, list):
        names = metric.get("x_axis_name") if isinstance(metric.get("x_axis_name"), list) else []
        numbers = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
        top = max((abs(v) for v in numbers), default=0) or 1
        rows = []
        for i, v in enumerate(value):
            label = names[i] if i < len(names) else f"#{i + 1}"
            width = 120 * abs(v) / top if v in numbers else 0
            rows.append(f'<tr><td>{esc(label)}</td><td><span class="bar" style="width:{width:.0f}px">'
                        f"</span></td><td class=\"num\">{_scalar(v)}</td></tr>")
        return f'<table class="inner"><tbody>{"".join(rows)}</tbody></table>'
    if kind == "matrix" and isinstance(value, list) and all(isinstance(r, list) for r in value):
        cols = metric.get("x_axis_name") if isinstance(metric.get("x_axis_name"), list) else []
        rows_axis = metric.get("y_axis_name") if isinstance(metric.get("y_axis_name"), list) else []
        head = "<tr><th></th>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr>" if cols else ""
        body = "".join(
            f"<tr><th>{esc(rows_axis[i] if i < len(rows_axis) else '')}</th>"
            + "".join(f"<td>{_scalar(v)}</td>" for v in row) + "</tr>"
            for i, row in enumerate(value)
        )
        return f'<table class="inner matrix"><thead>{head}</thead><tbody>{body}</tbody></table>'
    if kind == "linear_graph" and isinstance(value, list):
        points = [(p[0], p[1]) for p in value if isinstance(p, list | tuple) and len(p) == 2
                  and all(isinstance(c, int | float) and not isinstance(c, bool) for c in p)]
        axes = " vs ".join(esc(metric.get(k)) for k in ("y_axis_name", "x_axis_name") if metric.get(k))
        return _sparkline(points) + f'<span class="sub">{len(points)} points {axes}</span>'
    return _value(value, MAX_DEPTH - 1)


def _sparkline(points: list[tuple[float, float]], width: int = 140, height: int = 44) -> str:
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 4) / ((x1 - x0) or 1)
    sy = (height - 4) / ((y1 - y0) or 1)
    path = " ".join(f"{2 + (x - x0) * sx:.1f},{height - 2 - (y - y0) * sy:.1f}" for x, y in points)
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<polyline class="series" points="{path}"/></svg>')


def _metric_groups(groups: Any) -> str:
    if not isinstance(groups, list) or not groups:
        return ""
    out = []
    for group in groups:
        if not isinstance(group, dict):
            continue
        data = group.get("metric_data") if isinstance(group.get("metric_data"), list) else []
        has_notes = any(isinstance(m, dict) and m.get("notes") for m in data)
        rows = "".join(
            f"<tr><td>{esc(m.get('name'))}</td><td>{_metric_value(m)}</td>"
            + (f"<td>{_value(m.get('notes'), MAX_DEPTH)}</td>" if has_notes else "") + "</tr>"
            for m in data if isinstance(m, dict)
        )
        notes_head = "<th>Notes</th>" if has_notes else ""
        out.append(
            f"<h5>{esc(group.get('name', 'metrics'))}</h5>"
            f'<table class="inner metric-group"><thead><tr><th>Metric</th><th>Value</th>{notes_head}</tr>'
            f"</thead><tbody>{rows}</tbody></table>"
        )
    return "".join(out)


def _evaluations(evaluations: Any) -> str:
    if not isinstance(evaluations, list) or not evaluations:
        return _value(evaluations) if evaluations else '<p class="empty">Not provided.</p>'
    out = []
    for evaluation in evaluations:
        if not isinstance(evaluation, dict):
            out.append(_value(evaluation))
            continue
        details = {k: v for k, v in evaluation.items() if k not in ("name", "metric_groups")}
        out.append(
            f"<h4>{esc(evaluation.get('name', 'evaluation'))}</h4>"
            + (_dl(details) if details else "") + _metric_groups(evaluation.get("metric_groups"))
        )
    return "".join(out)


def _card_html(card: dict[str, Any] | None, row: DashboardRow) -> str:
    if not card:
        return '<p class="empty">This model has no model card yet.</p>'
    content = card.get("content") if isinstance(card.get("content"), dict) else {}
    status = card.get("status")
    meta = [f"version {esc(card.get('card_version', '?'))}"]
    if status:
        meta.append(chip(status, "status-" + css_token(status)))
    if card.get("created_at"):
        meta.append(f"created {_scalar(card.get('created_at'))}")
    sections = [f'<p class="muted">Model card {" · ".join(meta)}</p>']
    for key, title in CARD_SECTIONS:
        value = content.get(key)
        if key == "evaluation_details":
            inner = _evaluations(value)
        elif key == "intended_uses" and isinstance(value, dict | None):
            # The risk rating always shows here, falling back to the dashboard's when the card has none.
            value = {**(value or {}), "risk_rating": (value or {}).get("risk_rating", row.risk_rating)}
            special = {"risk_rating": chip(value["risk_rating"], "risk-" + css_token(value["risk_rating"]))}
            inner = _dl(value, special=special)
        elif isinstance(value, dict):
            inner = _dl(value)
        elif value is None:
            inner = '<p class="empty">Not provided.</p>'
        else:
            inner = _value(value)
        sections.append(
            f'<section class="card-section" id="card-{esc(key)}"><h3>{esc(title)}</h3>{inner}</section>')
    known = {k for k, _ in CARD_SECTIONS}
    for key, value in content.items():
        if key not in known:
            sections.append(
                f'<section class="card-section"><h3>{esc(humanize(key))}</h3>{_value(value)}</section>')
    history = card.get("status_history") if isinstance(card.get("status_history"), list) else []
    if history:
        rows = "".join(
            f"<tr><td>{chip(h.get('status'), 'status-' + css_token(h.get('status')))}</td>"
            f"<td>{esc(h.get('by') or '')}</td><td>{_scalar(h.get('at'))}</td>"
            f"<td>{_value(h.get('note'))}</td></tr>"
            for h in history if isinstance(h, dict)
        )
        sections.append(
            '<section class="card-section" id="card-status-history"><h3>Status history</h3>'
            '<table class="inner"><thead><tr><th>Status</th><th>By</th><th>At</th><th>Note</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></section>"
        )
    return "".join(sections)


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


def _lineage_svg(lineage: list[dict[str, str]], row: DashboardRow) -> str:
    edges: list[tuple[str, str, str]] = []
    for edge in lineage:
        if not isinstance(edge, dict):
            continue
        source, target = edge.get("from"), edge.get("to")
        if isinstance(source, str) and isinstance(target, str) and source and target:
            edges.append((source, target, str(edge.get("kind") or "")))
    if not edges:
        return '<p class="empty">No lineage recorded for this model.</p>'
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
    parts = [
        f'<svg id="lineage" class="lineage" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" role="img" aria-label="Lineage graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path class="arrowhead" d="M0,0 L10,5 L0,10 z"/></marker></defs>',
    ]
    for ci, column in enumerate(columns):
        title = LAYER_TITLES.get(column, "Other")
        parts.append(f'<text class="column-title" x="{PAD + ci * (NODE_W + COL_GAP)}" y="{PAD + 12}">'
                     f"{esc(title)}</text>")
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
        parts.append(f'<path class="{css}" d="{d}" marker-end="url(#arrow)"><title>{esc(tip)}</title></path>')
    for node in nodes:
        x, y = box[node]
        kind = _kind(node)
        css = f"node kind-{kind}" + (" current" if node in current else "")
        parts.append(
            f'<g class="{css}" data-node="{esc(node)}"><title>{esc(node)}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="7"/>'
            f'<text class="kind" x="{x + 10:.1f}" y="{y + 17:.1f}">{esc(kind)}</text>'
            f'<text class="label" x="{x + 10:.1f}" y="{y + 35:.1f}">'
            f"{esc(shorten(_label(node), LABEL_CHARS))}</text>"
            "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)


# ---- trends, alerts, executions --------------------------------------------------------------------

CHART_W, CHART_H = 440, 170
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 52, 14, 14, 30


def _trend_svg(monitor_type: str, executions: list[ExecutionSummary]) -> str:
    """A line of each execution's metric over window end (violation counts when no metric is set)."""
    runs = sorted((e for e in executions if e.monitor_type == monitor_type), key=lambda e: utc(e.window_end))
    if not runs:
        return '<p class="empty">No executions yet.</p>'
    use_metric = any(e.metric is not None and math.isfinite(e.metric) for e in runs)
    if use_metric:
        points = [(e, float(e.metric)) for e in runs if e.metric is not None and math.isfinite(e.metric)]
        what = "metric"
    else:
        # A failed or empty window has no meaningful violation count; it is left off the line.
        points = [(e, float(e.violation_count)) for e in runs if e.status not in ("Failed", "NoData")]
        what = "violations per execution"
    if not points:
        return f'<p class="empty">{len(runs)} executions, none with a value to plot.</p>'
    times = [utc(e.window_end).timestamp() for e, _v in points]
    values = [v for _e, v in points]
    t0, t1 = min(times), max(times)
    v0 = min(values) if use_metric else 0.0
    v1 = max(values)
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

    parts = [f'<svg class="trend" data-monitor="{esc(monitor_type)}" width="{CHART_W}" height="{CHART_H}" '
             f'viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{esc(monitor_type)} {what}">']
    for v in (v0, (v0 + v1) / 2, v1):
        y = y_of(v)
        parts.append(f'<line class="grid-line" x1="{CHART_LEFT}" x2="{CHART_W - CHART_RIGHT}" '
                     f'y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{CHART_LEFT - 6}" y="{y + 3:.1f}" text-anchor="end">'
                     f"{esc(fmt_number(round(v, 6)))}</text>")
    base = CHART_H - CHART_BOTTOM
    parts.append(
        f'<line class="axis" x1="{CHART_LEFT}" x2="{CHART_W - CHART_RIGHT}" y1="{base}" y2="{base}"/>')
    first, last = utc(runs[0].window_end), utc(runs[-1].window_end)
    parts.append(f'<text class="tick" x="{CHART_LEFT}" y="{base + 16}">{first:%Y-%m-%d %H:%M}</text>')
    if last != first:
        parts.append(f'<text class="tick" x="{CHART_W - CHART_RIGHT}" y="{base + 16}" text-anchor="end">'
                     f"{last:%Y-%m-%d %H:%M}</text>")
    coords = [(x_of(t), y_of(v)) for t, v in zip(times, values, strict=True)]
    if len(coords) > 1:
        parts.append('<polyline class="series" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')
    for (e, v), (x, y) in zip(points, coords, strict=True):
        css = ("pt-violations" if e.violation_count or e.status == "CompletedWithViolations"
               else "pt-ok" if e.status == "Completed" else "pt-other")
        tip = f"{fmt_time(e.window_end)}: {what} {fmt_number(v)} ({e.status}, {e.violation_count} violations)"
        parts.append(
            f'<circle class="pt {css}" cx="{x:.1f}" cy="{y:.1f}" r="4"><title>{esc(tip)}</title></circle>')
    parts.append("</svg>")
    latest = fmt_number(values[-1])
    return f'<p class="sub">{esc(what)} · latest {esc(latest)} · {len(runs)} executions</p>' + "".join(parts)


def _report_link(uri: str | None, store_root: str | None, store_href: str) -> str:
    """A relative link when the report sits under the dashboard's store, else the URI as text."""
    if not uri:
        return '<span class="muted">—</span>'
    if store_root:

        def local(u: str) -> str:
            return u[len("file://"):] if u.startswith("file://") else u

        root, target = local(store_root).rstrip("/"), local(uri)
        if target.startswith(root + "/"):
            relative = target[len(root) + 1:]
            segments = relative.split("/")
            if all(s not in ("", ".", "..") for s in segments):
                return link(store_href + quote(relative, safe="/"), "report")
    return f'<span class="wrap">{esc(uri)}</span>'


def _labels(page: ModelPage) -> dict[str, str]:
    return {c.name: c.label for c in _page_columns(page)}


def _page_columns(page: ModelPage) -> list[MonitorColumn]:
    return page.columns or columns_of([page.row])


def _alerts_table(page: ModelPage) -> str:
    if not page.alert_history:
        return '<p class="empty">No alerts raised or resolved yet.</p>'
    entries = sorted(page.alert_history, key=lambda a: utc(a.at), reverse=True)
    labels = _labels(page)
    rows = "".join(
        f'<tr class="alert-row"><td data-sort="{esc(iso(a.at))}">{esc(fmt_time(a.at))}</td>'
        f"<td>{esc(labels.get(a.monitor_type) or default_label(a.monitor_type))}</td>"
        f'<td>{chip(a.state, "state-alarm" if a.state == "ALARM" else "state-ok")}</td>'
        f'<td class="wrap">{esc(a.reason)}</td></tr>'
        for a in entries
    )
    head = "".join([_th("At", "at", "date"), _th("Monitor", "monitor"), _th("State", "state"),
                    _th("Reason", "reason")])
    return (f'<div class="table-wrap"><table id="alerts" class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


RECENT_EXECUTIONS = 25  # rows of the executions table; the trend charts show the whole index


def _executions_table(page: ModelPage, store_root: str | None, store_href: str) -> str:
    if not page.executions:
        return '<p class="empty">No monitoring executions yet.</p>'
    rows = []
    labels = _labels(page)
    for e in page.executions[:RECENT_EXECUTIONS]:
        start, end = utc(e.window_start), utc(e.window_end)
        window = f"{start:%Y-%m-%d %H:%M} → " + (f"{end:%H:%M}" if start.date() == end.date()
                                                 else f"{end:%Y-%m-%d %H:%M}")
        metric = "" if e.metric is None else fmt_number(e.metric)
        rows.append(
            f'<tr class="execution-row" data-monitor="{esc(e.monitor_type)}">'
            f'<td data-sort="{esc(iso(e.window_end))}">{esc(window)}</td>'
            f"<td>{esc(labels.get(e.monitor_type) or default_label(e.monitor_type))}</td>"
            f'<td data-sort="{esc(e.status)}">{chip(e.status, "status-" + css_token(e.status))}</td>'
            f'<td class="num">{e.violation_count}</td>'
            f'<td class="num">{esc(fmt_number(e.records_read))}</td>'
            f'<td class="num" data-sort="{"" if e.metric is None else e.metric}">{esc(metric)}</td>'
            f'<td>{_report_link(e.report_uri, store_root, store_href)}</td></tr>'
        )
    head = "".join([
        _th("Window (UTC)", "window", "date"), _th("Monitor", "monitor"), _th("Status", "status"),
        _th("Violations", "violations", "number", "num"), _th("Records", "records", "number", "num"),
        _th("Metric", "metric", "number", "num"), _th("Report", "report"),
    ])
    return (f'<div class="table-wrap"><table id="executions" class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _monitor_cards(row: DashboardRow, columns: list[MonitorColumn]) -> str:
    cards = []
    for column in columns:
        monitor_type = column.name
        cell = _cell(row, monitor_type)
        title, secondary = _monitor_details(cell)
        schedule = (f'<span class="sub">schedule <code>{esc(cell.schedule)}</code></span>'
                    if cell.schedule else "")
        prefix = "Alarm since " if cell.status == "Alarm" and cell.alert_raised_at else ""
        cards.append(
            f'<div class="monitor-card state-{cell.status.lower()}" data-monitor="{esc(monitor_type)}" '
            f'title="{esc(title)}"><span class="name">{esc(column.label)}</span>'
            f'<span class="state">{esc(prefix + cell.display)}</span>'
            f'<span class="sub">{esc(secondary)}</span>{schedule}</div>'
        )
    return '<div class="grid">' + "".join(cards) + "</div>"


def _headline_caption(column: MonitorColumn) -> str:
    """What the trend line measures: the type's headline metric, which way is worse, its threshold."""
    if not column.metric:
        return ""
    said = [column.metric]
    if column.direction:
        said.append(column.direction.replace("-", " "))
    if column.threshold is not None:
        said.append(f"threshold {fmt_number(column.threshold)}")
    return f'<p class="sub headline">{esc(", ".join(said))}</p>'


def _problems_html(row: DashboardRow) -> str:
    """What could not be read or updated for this model, so a partial row is never mistaken for a
    whole one."""
    if not row.problems:
        return ""
    items = "".join(f"<li>{esc(p)}</li>" for p in row.problems)
    return (f'<div class="panel" id="problems"><strong>Not everything about this model could be read '
            f"or updated:</strong><ul>{items}</ul></div>\n")


def render_model_page(
    page: ModelPage,
    index_href: str = "../index.html",
    *,
    store_root: str | None = None,
    store_href: str = "../../",
) -> str:
    """One model's page: status, model card, lineage graph, trends, alert history, executions.

    Report links: when `store_root` (the store's root URI) is given, a report under it is linked as
    `store_href` + its key; the default fits pages written to <root>/dashboard/models/. Reports
    elsewhere, or without `store_root`, are shown as text: the page never links out to a store.
    """
    row = page.row
    facts = [f"version {esc(row.latest_version or '—')}",
             chip(row.risk_rating, "risk-" + row.risk_rating.lower()) + " risk"]
    if row.problem_type:
        facts.append(esc(row.problem_type))
    if row.card_status:
        facts.append("card " + chip(row.card_status, "status-" + css_token(row.card_status)))
    if row.endpoints:
        facts.append("endpoints " + "".join(chip(e, "plain") for e in row.endpoints))
    if row.latest_batch_job:
        job = row.latest_batch_job
        status = chip(job.status, "status-" + css_token(job.status))
        facts.append(f"latest batch job {esc(job.job_id)} {status}")
    generated = (f'<span class="meta">generated {esc(fmt_time(page.generated_at))}</span>'
                 if page.generated_at else "")
    columns = _page_columns(page)
    trends = "".join(
        f'<div class="panel trend-panel" data-monitor="{esc(c.name)}"><h3>{esc(c.label)}</h3>'
        f"{_headline_caption(c)}{_trend_svg(c.name, page.executions)}</div>"
        for c in columns
    )
    body = (
        '<header class="top"><span class="brand">modelwatch</span>'
        f'{link(index_href, "← All models")}{generated}</header>\n<main>\n'
        f'<h1 id="model-name">{esc(row.model)}</h1>\n<p class="muted">{" · ".join(facts)}</p>\n'
        f"{_problems_html(row)}"
        f"{_monitor_cards(row, columns)}\n"
        f'<h2 id="card">Model card</h2>\n<div class="panel">{_card_html(page.card, row)}</div>\n'
        '<h2 id="lineage-title">Lineage</h2>\n<div class="panel" style="overflow-x:auto">'
        f"{_lineage_svg(page.lineage, row)}</div>\n"
        f'<h2 id="trends">Metric trends</h2>\n<div class="grid trends">{trends}</div>\n'
        f'<h2 id="alerts-title">Alert history</h2>\n{_alerts_table(page)}\n'
        '<h2 id="executions-title">Recent executions</h2>\n'
        f"{_executions_table(page, store_root, store_href)}\n"
        "</main>"
    )
    return _page(f"modelwatch — {row.model}", body)

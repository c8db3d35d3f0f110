"""Tests for tasks/dashboard_html.py: the rendered strings (escaping, CSP, columns) and the pages as a real
browser runs them (headless Chromium: DOM after our script ran, deep-link sorting/filtering, a
hostile model card that must stay inert, screenshots).

Browser tests need Debian's chromium (`apt-get install -y chromium`); they are skipped without it.
Set DASHBOARD_SHOTS_DIR to also copy the screenshots there for a human to look at.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from modelwatch.flows.monitor_types import monitor_types
from modelwatch.flows.summary import dashboard_columns
from modelwatch.tasks.dashboard import (
    AlertHistoryEntry,
    BatchJobCell,
    DashboardRow,
    ExecutionSummary,
    ModelPage,
    MonitorCell,
)
from modelwatch.tasks.dashboard_html import SCRIPT, render_index, render_model_page, safe_href
from tests.chromium import needs_chromium

T0 = datetime(2024, 5, 1, tzinfo=UTC)
PWN_SCRIPT = "<script>document.title='pwned';window.__pwned=1</script>"
PWN_IMG = "<img src=x onerror=\"document.title='pwned'\">"
PWN_ATTR = "\"><img src=x onerror=alert(1)>"
HOSTILE_ENDPOINT = f"ep{PWN_ATTR}"
STORE = "/data/store"
ORDER = ["churn-xgb", "fraud-detector", "price-regressor", "hostile-model"]  # as rendered


# ---- fixtures: a small fleet of models ---------------------------------------------------------

def _rows() -> list[DashboardRow]:
    return [
        DashboardRow(
            model="churn-xgb", latest_version="3", problem_type="binary", risk_rating="High",
            card_status="Approved", endpoints=["churn-prod"],
            latest_batch_job=BatchJobCell(job_id="churn-batch-7", status="Completed",
                                          finished_at=T0 + timedelta(days=2)),
            monitors={
                "data-quality": MonitorCell(status="Alarm", alert_raised_at=T0 + timedelta(hours=8),
                                            last_execution_at=T0 + timedelta(hours=9),
                                            last_status="CompletedWithViolations", last_violation_count=3,
                                            schedule="0 * * * *"),
                "model-quality": MonitorCell(status="OK", last_execution_at=T0, last_status="Completed",
                                             last_violation_count=0),
                "bias-drift": MonitorCell(status="Inactive", schedule="0 0 * * *"),
            },
        ),
        DashboardRow(
            model="fraud-detector", latest_version="12", problem_type="binary", risk_rating="Medium",
            card_status="PendingReview", endpoints=["fraud-a", "fraud-b"],
            latest_batch_job=BatchJobCell(job_id="fraud-batch-1", status="Failed",
                                          finished_at=T0 + timedelta(days=5)),
            monitors={t: MonitorCell(status="OK", last_execution_at=T0, last_violation_count=0)
                      for t in monitor_types()[:3]}
            | {"feature-attribution-drift": MonitorCell(status="Inactive")},
        ),
        DashboardRow(model="price-regressor", latest_version="2", problem_type="regression",
                     risk_rating="Low", card_status="Draft"),
        DashboardRow(
            model="hostile-model", latest_version="1", risk_rating="Unknown", card_status="Draft",
            endpoints=[HOSTILE_ENDPOINT, "javascript:alert(1)"],
            latest_batch_job=BatchJobCell(job_id="b-1", status="InProgress"),
            monitors={"model-quality": MonitorCell(status="Alarm", alert_raised_at=T0 + timedelta(days=2),
                                                   last_violation_count=1)},
        ),
    ]


def _hostile_card() -> dict:
    return {
        "model": "hostile-model", "card_version": 2, "status": "Draft",
        "created_at": "2024-05-01T00:00:00Z",
        "content": {
            "model_overview": {
                "model_description": f"Looks innocent. {PWN_SCRIPT}",
                "model_owner": PWN_ATTR,
                "model_artifact": ["javascript:alert(document.domain)", "https://example.org/model.tar.gz",
                                   "java\tscript:alert(2)"],
            },
            "intended_uses": {"purpose_of_model": PWN_IMG, "risk_rating": "High</span><script>x()</script>"},
            "business_details": {"business_problem": "Churn </dd><script>alert(3)</script>"},
            "training_details": {
                "objective_function": {"function": {"function": "Minimize", "facet": "Loss"}},
                "training_job_details": {
                    "training_metrics": [{"name": "<b>auc</b>", "value": 0.91}],
                    "hyper_parameters": [{"name": "max_depth", "value": "6"}],
                },
            },
            "evaluation_details": [{
                "name": f"holdout {PWN_SCRIPT}",
                "metric_groups": [{
                    "name": "binary_classification_metrics",
                    "metric_data": [
                        {"name": "accuracy", "type": "number", "value": 0.875},
                        {"name": "confusion_matrix", "type": "matrix", "value": [[50, 3], [4, 43]],
                         "x_axis_name": ["0", "1"], "y_axis_name": ["0", "1"]},
                        {"name": "shap", "type": "bar_chart", "value": [0.4, 0.1],
                         "x_axis_name": ["tenure", PWN_IMG]},
                        {"name": "roc", "type": "linear_graph", "value": [[0, 0], [0.1, 0.7], [1, 1]],
                         "x_axis_name": "fpr", "y_axis_name": "tpr"},
                    ],
                }],
            }],
            "additional_information": {"custom_details": {"docs": "javascript:alert(4)", "note": PWN_IMG}},
        },
        "status_history": [
            {"status": "Draft", "by": PWN_ATTR, "at": "2024-05-01T00:00:00Z", "note": PWN_SCRIPT},
        ],
    }


def _hostile_page() -> ModelPage:
    row = next(r for r in _rows() if r.model == "hostile-model")
    executions = [
        ExecutionSummary(
            monitor_type="model-quality", window_start=T0 + timedelta(hours=i),
            window_end=T0 + timedelta(hours=i + 1),
            status="CompletedWithViolations" if i % 3 else "Completed",
            violation_count=i % 3, records_read=1000 + i, metric=0.9 - 0.02 * i,
            report_uri=f"{STORE}/monitoring/hostile-model/model-quality/w{i}/report.html",
        )
        for i in range(8, 0, -1)
    ] + [
        ExecutionSummary(monitor_type="data-quality", window_start=T0, window_end=T0 + timedelta(hours=1),
                         status="Completed", report_uri="javascript:alert(5)"),
        ExecutionSummary(monitor_type="data-quality", window_start=T0 + timedelta(hours=1),
                         window_end=T0 + timedelta(hours=2), status="CompletedWithViolations",
                         violation_count=4, report_uri="s3://elsewhere/report.html"),
    ]
    return ModelPage(columns=dashboard_columns(),
        row=row, card=_hostile_card(), generated_at=T0 + timedelta(days=3),
        lineage=[
            {"from": "dataset:s3://bucket/train/2024-05-01/customers-with-a-very-long-name.csv",
             "to": "run:run-1", "kind": "trained-on"},
            {"from": "run:run-1", "to": "model:hostile-model/v1"},
            {"from": "model:hostile-model/v1", "to": f"endpoint:{HOSTILE_ENDPOINT}"},
            {"from": "model:hostile-model/v1", "to": "batch:b-1"},
            {"from": f"dataset:{PWN_SCRIPT}", "to": "run:run-1"},
        ],
        alert_history=[
            AlertHistoryEntry(monitor_type="model-quality", state="ALARM", at=T0 + timedelta(days=2),
                              reason=f"2 of 3 executions had violations {PWN_IMG}"),
            AlertHistoryEntry(monitor_type="model-quality", state="OK", at=T0 + timedelta(days=1),
                              reason="ok"),
        ],
        executions=executions,
    )


def _churn_page() -> ModelPage:
    row = _rows()[0]
    return ModelPage(columns=dashboard_columns(),
        row=row, generated_at=T0,
        card={"model": "churn-xgb", "card_version": 1, "status": "Approved",
              "content": {"model_overview": {"model_description": "Gradient boosted churn model."},
                          "intended_uses": {"risk_rating": "High"}}},
        lineage=[
            {"from": "dataset:s3://b/train.csv", "to": "run:r1"},
            {"from": "run:r1", "to": "model:churn-xgb/v1"},
            {"from": "model:churn-xgb/v1", "to": "model:churn-xgb/v2", "kind": "retrain"},
            {"from": "model:churn-xgb/v2", "to": "run:r2"},
            {"from": "run:r2", "to": "model:churn-xgb/v3"},
            {"from": "model:churn-xgb/v3", "to": "endpoint:churn-prod"},
        ],
    )


# ---- a tiny DOM, enough to query what Chromium dumped -----------------------------------------

@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, css: str | None = None, **attrs: str) -> list[Node]:
        return [n for n in self.iter()
                if (tag is None or n.tag == tag)
                and (css is None or css in (n.attrs.get("class") or "").split())
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def find(self, tag: str | None = None, css: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, css, **attrs)
        assert found, f"no <{tag} class={css} {attrs}>"
        return found[0]


VOID = {"meta", "link", "br", "hr", "img", "input", "source", "wbr", "area", "col", "embed", "track", "base"}


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(markup: str) -> Node:
    builder = TreeBuilder()
    builder.feed(markup)
    builder.close()
    return builder.root


def assert_inert(doc: Node) -> None:
    """Only our script, no injected elements, no event-handler or javascript: attributes."""
    scripts = doc.find_all("script")
    assert len(scripts) == 1 and scripts[0].text == SCRIPT
    assert not doc.find_all("img")
    for node in doc.iter():
        for name, value in node.attrs.items():
            assert not name.startswith("on"), f"<{node.tag} {name}=...> was created"
            if name in ("href", "src", "action", "xlink:href"):
                assert not re.sub(r"[\x00-\x20]", "", value or "").lower().startswith("javascript:")


# ---- unit tests on the strings ----------------------------------------------------------------

def test_index_has_rows_columns_and_hooks() -> None:
    page = render_index(_rows(), T0)
    doc = parse(page)
    table = doc.find("table", id="models")
    keys = [th.attrs["data-key"] for th in table.find_all("th")]
    assert all(t in keys for t in monitor_types())
    rows = table.find_all("tr", "model-row")
    assert [r.attrs["data-model"] for r in rows] == ORDER
    churn = rows[0]
    assert churn.attrs["data-risk"] == "High"
    assert churn.attrs["data-statuses"].split() == ["Alarm", "OK", "Inactive", "None"]
    dq = churn.find("td", data_monitor="data-quality")
    assert "state-alarm" in dq.attrs["class"] and "2024-05-01 08:00 UTC" in dq.text
    assert "3 violations" in dq.attrs["title"] and "2024-05-01 09:00 UTC" in dq.attrs["title"]
    assert churn.find("td", data_monitor="bias-drift").text == "Inactive"
    assert churn.find("td", data_monitor="feature-attribution-drift").text == "None"
    assert churn.find("a").attrs["href"] == "models/churn-xgb.html"
    for hook in ("status-filter", "risk-filter", "visible-count"):
        doc.find(id=hook)
    assert doc.find(id="count-alarm").text.startswith("2")



def test_rows_rendered_once_give_the_same_page() -> None:
    from modelwatch.tasks.dashboard import columns_of
    from modelwatch.tasks.dashboard_html import render_rows

    rows = _rows()
    fragments = render_rows(rows, lambda m: f"/models/{m}", columns_of(rows),
                            endpoint_href=lambda e: f"/endpoints/{e}")
    assert set(fragments) == {r.model for r in rows}
    whole = render_index(rows, T0, lambda m: f"/models/{m}", endpoint_href=lambda e: f"/endpoints/{e}")
    assert render_index(rows, T0, lambda m: f"/models/{m}", endpoint_href=lambda e: f"/endpoints/{e}",
                        fragments=fragments) == whole
    # A subset (a search's result) joins the same fragments.
    subset = render_index(rows[1:], T0, lambda m: f"/models/{m}", endpoint_href=lambda e: f"/endpoints/{e}",
                          fragments=fragments)
    assert [r.attrs["data-model"] for r in parse(subset).find_all("tr", "model-row")] == ORDER[1:]

def test_csp_pins_the_one_script_by_hash() -> None:
    for page in (render_index(_rows(), T0), render_model_page(_hostile_page())):
        scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
        assert scripts == [SCRIPT]
        digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
        csp = parse(page).find("meta", http_equiv="Content-Security-Policy").attrs["content"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == f"'sha256-{digest}'"
        assert directives["default-src"] == "'none'" and directives["img-src"] == "'none'"
        assert "unsafe-inline" in directives["style-src"]


def test_hostile_strings_are_escaped() -> None:
    index = render_index(_rows(), T0)
    model = render_model_page(_hostile_page(), store_root=STORE)
    for page in (index, model):
        assert page.count("<script") == 1
        assert not re.search(r"<img", page)
        assert not re.search(r'href="\s*javascript', page, flags=re.I)
        assert_inert(parse(page))
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;" in model
    assert "javascript:alert(document.domain)" in parse(model).text  # shown, as text
    doc = parse(model)
    assert doc.find("a", href="https://example.org/model.tar.gz")
    assert not doc.find_all("a", href="javascript:alert(4)")


def test_safe_href() -> None:
    assert safe_href("https://x.org/a") == "https://x.org/a"
    assert safe_href("../../monitoring/m/report.html") == "../../monitoring/m/report.html"
    assert safe_href("file:///tmp/r.html") == "file:///tmp/r.html"
    for bad in ("javascript:alert(1)", " JavaScript:alert(1)", "java\nscript:x", "data:text/html,x",
                "vbscript:x", "\\\\evil", "", None, 3):
        assert safe_href(bad) is None


def test_model_page_sections_reports_and_trends() -> None:
    doc = parse(render_model_page(_hostile_page(), store_root=STORE))
    executions = doc.find("table", id="executions").find_all("tr", "execution-row")
    assert len(executions) == 10
    newest = executions[0]
    assert newest.find("a").attrs["href"] == "../../monitoring/hostile-model/model-quality/w8/report.html"
    s3_row = next(r for r in executions if "elsewhere" in r.text)
    assert not s3_row.find_all("a") and "s3://elsewhere/report.html" in s3_row.text
    trend = doc.find("svg", "trend", data_monitor="model-quality")
    assert len(trend.find_all("circle")) == 8
    assert doc.find("div", "trend-panel", data_monitor="bias-drift").find("p", "empty")
    assert doc.find("table", "metric-group")
    lineage = doc.find("svg", id="lineage")
    assert len(lineage.find_all("g", "node")) == 6
    long = lineage.find("g", data_node="dataset:s3://bucket/train/2024-05-01/customers-with-a-very-long-name.csv")
    assert "…" in long.find("text", "label").text and "customers-with" in long.find("title").text
    assert len(doc.find("table", id="alerts").find_all("tr")) == 3
    # Without a store root nothing links to the store.
    plain = parse(render_model_page(_hostile_page()))
    assert not plain.find("table", id="executions").find_all("a")


def test_empty_states() -> None:
    doc = parse(render_index([], T0))
    assert doc.find("p", "empty").text == "No registered models yet."
    row = DashboardRow(model="bare")
    page = parse(render_model_page(ModelPage(row=row)))
    assert len(page.find_all("p", "empty")) >= 4  # card, lineage, alerts, executions, trends


# ---- browser tests ----------------------------------------------------------------------------

@pytest.fixture
def site(tmp_path: Path) -> Path:
    """index.html and models/<model>.html as the dashboard flow lays them out."""
    root = tmp_path / "site"
    (root / "models").mkdir(parents=True)
    (root / "index.html").write_text(render_index(_rows(), T0 + timedelta(days=3)), encoding="utf-8")
    (root / "models" / "hostile-model.html").write_text(render_model_page(_hostile_page()), encoding="utf-8")
    (root / "models" / "churn-xgb.html").write_text(render_model_page(_churn_page()), encoding="utf-8")
    return root


def _model_rows(dom: Node) -> list[Node]:
    return dom.find("table", id="models").find_all("tr", "model-row")


@needs_chromium
def test_browser_index_table(browser, site: Path) -> None:
    dom = parse(browser(f"{site.as_uri()}/index.html", "--dump-dom"))
    rows = _model_rows(dom)
    assert [r.attrs["data-model"] for r in rows] == ORDER
    assert not any("hidden" in r.attrs for r in rows)
    churn = rows[0]
    states = [td.find("span", "state").text for td in churn.find_all("td", "monitor")]
    assert states == ["2024-05-01 08:00 UTC", "OK", "Inactive", "None"]
    assert dom.find(id="visible-count").text == "4 of 4 models"  # written by our script: it ran
    assert "hidden" not in dom.find(id="filters").attrs
    assert dom.find_all("button", "sort")  # header buttons are added by the script
    assert_inert(dom)


@needs_chromium
@pytest.mark.parametrize(
    ("link", "order", "visible", "count"),
    [
        ("#sort=model-desc&status=Alarm", ["price-regressor", "hostile-model", "fraud-detector", "churn-xgb"],
         ["hostile-model", "churn-xgb"], "2 of 4"),
        # Versions compare as numbers: 12 > 3 > 2 > 1 (text order would put "12" before "2").
        ("#sort=version-desc", ["fraud-detector", "churn-xgb", "price-regressor", "hostile-model"],
         None, "4 of 4"),
        # Dates; rows without one (no job, a job still running) stay last, in their original order.
        ("#sort=batch-desc&risk=Low", ["fraud-detector", "churn-xgb", "price-regressor", "hostile-model"],
         ["price-regressor"], "1 of 4"),
        ("#status=Alarm&risk=Low", ORDER, [], "0 of 4"),
        ("?sort=risk-desc&risk=High", ORDER,
         ["churn-xgb"], "1 of 4"),
        ("#sort=data-quality-desc&status=Inactive",
         ORDER, ["churn-xgb", "fraud-detector"], "2 of 4"),
    ],
)
def test_browser_deep_links_sort_and_filter(browser, site: Path, link: str, order: list[str],
                                            visible: list[str] | None, count: str) -> None:
    dom = parse(browser(f"{site.as_uri()}/index.html{link}", "--dump-dom"))
    rows = _model_rows(dom)
    assert [r.attrs["data-model"] for r in rows] == order
    shown = [r.attrs["data-model"] for r in rows if "hidden" not in r.attrs]
    assert shown == (order if visible is None else visible)
    assert dom.find(id="visible-count").text == f"{count} models"
    if count.startswith("0 "):
        assert "hidden" not in dom.find(id="no-match").attrs
    sorted_th = [th for th in dom.find_all("th") if th.attrs.get("aria-sort")]
    assert len(sorted_th) == (1 if "sort=" in link else 0)


@needs_chromium
def test_browser_hostile_model_page_stays_inert(browser, site: Path) -> None:
    dom = parse(browser(f"{site.as_uri()}/models/hostile-model.html", "--dump-dom"))
    assert dom.find("title").text == "modelwatch — hostile-model"
    assert_inert(dom)
    body_text = dom.find("main").text
    assert PWN_SCRIPT in body_text and PWN_IMG in body_text  # visible, as text
    assert "javascript:alert(document.domain)" in body_text
    assert dom.find("a").attrs["href"] == "../index.html"


@needs_chromium
def test_browser_csp_blocks_injected_script(browser, site: Path) -> None:
    """Defence in depth: were escaping ever to fail, the CSP still runs only our hashed script."""
    page = site / "index.html"
    page.write_text(page.read_text().replace("<main>", "<main><script>document.title='pwned'</script>", 1))
    dom = parse(browser(f"{page.as_uri()}#status=OK", "--dump-dom"))
    assert dom.find("title").text == "modelwatch — model dashboard"
    assert dom.find(id="visible-count").text == "2 of 4 models"  # ours did run


@needs_chromium
def test_browser_screenshots(browser, site: Path, tmp_path: Path) -> None:
    shots = {
        "index.png": f"{site.as_uri()}/index.html",
        "hostile-model.png": f"{site.as_uri()}/models/hostile-model.html",
        "churn-xgb.png": f"{site.as_uri()}/models/churn-xgb.html",
    }
    for name, url in shots.items():
        target = tmp_path / name
        browser(url, f"--screenshot={target}", "--window-size=1400,900", "--hide-scrollbars")
        data = target.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000, name
        if os.environ.get("DASHBOARD_SHOTS_DIR"):
            Path(os.environ["DASHBOARD_SHOTS_DIR"]).mkdir(parents=True, exist_ok=True)
            shutil.copy(target, Path(os.environ["DASHBOARD_SHOTS_DIR"]) / name)


def test_the_model_page_and_the_card_export_render_a_card_alike() -> None:
    """One card renderer: the model page and the HTML export show the same sections under the same
    titles, the same status history, and the same escaped text."""
    from modelwatch.tasks.cards import ModelCard, card_to_html

    page = _hostile_page()
    exported = card_to_html(ModelCard.model_validate(page.card))
    shown = render_model_page(page)

    def sections(html: str, level: int) -> list[tuple[str, str]]:
        pattern = rf'<section class="card-section"(?: id="([^"]*)")?><h{level}>(.*?)</h{level}>'
        return re.findall(pattern, html)

    assert sections(shown, 3) == sections(exported, 2)
    assert [title for _, title in sections(shown, 3)][:8] == [
        "Summary", "Model overview", "Intended uses", "Business details", "Training details",
        "Evaluation details", "Additional information", "Status history"]
    for html in (shown, exported):
        assert "Looks innocent. &lt;script&gt;" in html and "<img" not in html


def test_a_trend_chart_draws_its_threshold() -> None:
    """The headline metric's threshold is a line on the chart, with the axis stretched to reach it."""
    from modelwatch.tasks.dashboard import MonitorColumn

    column = MonitorColumn(name="data-quality", label="Data quality", metric="max drift distance",
                           direction="higher-is-worse", threshold=0.1)
    runs = [ExecutionSummary(monitor_type="data-quality", window_start=T0 + timedelta(days=i),
                             window_end=T0 + timedelta(days=i + 1), status=status, metric=value,
                             violation_count=int(value > 0.1))
            for i, (value, status) in enumerate([(0.02, "Completed"), (0.05, "Completed"),
                                                 (0.3, "CompletedWithViolations")])]
    page = parse(render_model_page(ModelPage(row=DashboardRow(model="m"), executions=runs,
                                             columns=[column])))
    svg = page.find("svg", "trend", data_monitor="data-quality")
    [line] = svg.find_all("line", "threshold")
    ys = [float(c.attrs["cy"]) for c in svg.find_all("circle")]
    assert ys[1] > float(line.attrs["y1"]) > ys[2]  # below the line 0.05, above it 0.3 (SVG y grows down)
    assert "threshold 0.1" in line.text
    # Only the threshold line reaches below the lowest point when every value is above it.
    high = [r.model_copy(update={"metric": r.metric + 1}) for r in runs]
    svg = parse(render_model_page(ModelPage(row=DashboardRow(model="m"), executions=high,
                                            columns=[column]))).find("svg", "trend")
    assert float(svg.find("line", "threshold").attrs["y1"]) >= max(
        float(c.attrs["cy"]) for c in svg.find_all("circle"))
